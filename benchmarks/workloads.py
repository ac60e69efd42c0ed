"""The models, data and trainers that the benchmarks compare."""

import keras
import numpy as np

from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

MODELS = ("mlp", "cnn")
# The per-step variants, in table order; "fit" is plain `model.fit`, and
# "_spe8" variants run with `steps_per_execution=8`.
VARIANTS = ("fit", "importance_256", "importance_1024", "approximate")
SPE8_VARIANTS = ("fit_spe8", "importance_256_spe8")


def sample_shape(name):
    """The shape of one input sample of the benchmark model `name`."""
    return (784,) if name == "mlp" else (28, 28, 1)


def build_model(name, input_shape=None, num_classes=10, seed=0, jit_compile=False,
                steps_per_execution=1):
    """A compiled benchmark model.

    Args:
        name: `"mlp"` (784-512-512-10) or `"cnn"` (two small convolutions and
            a dense layer, for 28x28x1 images).
        input_shape: Shape of one input sample. Defaults to the shape of the
            benchmark data of `name`.
        num_classes: Number of softmax outputs. Defaults to `10`.
        seed: Seed of the initial weights. Defaults to `0`.
        jit_compile: Compile the model with XLA (which the library's train
            step then uses too). Defaults to `False`, what Keras chooses on
            a machine without a GPU.
        steps_per_execution: Steps per call of the train function.
            Defaults to `1`.

    Returns:
        A `keras.Model` compiled with Adam, categorical cross-entropy and
        accuracy.
    """
    if name not in MODELS:
        raise ValueError(f"`name` must be one of {MODELS}. Received: name={name!r}")
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    if name == "mlp":
        body = [
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
        ]
    else:
        body = [
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
        ]
    model = keras.Sequential(
        [keras.Input(input_shape or sample_shape(name))]
        + body
        + [layers.Dense(num_classes, activation="softmax")]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def synthetic_data(name, num_samples, num_classes=10, seed=0):
    """Random float32 inputs for model `name` and one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.random((num_samples, *sample_shape(name)), dtype="float32")
    y = np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, num_samples)]
    return x, y


def make_trainer(variant, model):
    """The object whose `fit(x, y, ...)` trains `model` for `variant`."""
    variant = variant.removesuffix("_spe8")
    if variant == "fit":
        return model
    if variant.startswith("importance_"):
        return ImportanceTraining(model, presample=int(variant.split("_")[1]))
    if variant == "approximate":
        return ApproximateImportanceTraining(model)
    raise ValueError(
        f"`variant` must be one of {VARIANTS + SPE8_VARIANTS}. Received: variant={variant!r}"
    )


def steps_per_execution(variant):
    """The `steps_per_execution` of a variant."""
    return 8 if variant.endswith("_spe8") else 1


def trace_counts(trainer):
    """Number of traces of the library's compiled functions, by name.

    `model.fit`'s own train function does not expose its count: `{}`.
    """
    if isinstance(trainer, keras.Model):
        return {}
    return dict(trainer.trace_counts)
