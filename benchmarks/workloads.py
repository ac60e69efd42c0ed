"""The models, data and trainers that the benchmarks compare."""

import keras
import numpy as np

from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

MODELS = ("mlp", "cnn")
# The per-step variants, in table order; "fit" is plain `model.fit`.
VARIANTS = ("fit", "importance_256", "importance_1024", "approximate")


def sample_shape(name):
    """The shape of one input sample of the benchmark model `name`."""
    return (784,) if name == "mlp" else (28, 28, 1)


def build_model(name, input_shape=None, num_classes=10, seed=0, jit_compile=False):
    """A compiled benchmark model.

    Args:
        name: `"mlp"` (784-512-512-10) or `"cnn"` (two small convolutions and
            a dense layer, for 28x28x1 images).
        input_shape: Shape of one input sample. Defaults to the shape of the
            benchmark data of `name`.
        num_classes: Number of softmax outputs. Defaults to `10`.
        seed: Seed of the initial weights. Defaults to `0`.
        jit_compile: Compile the model with XLA (which the library's train
            and score steps then use too). Defaults to `False`, what Keras
            chooses on a machine without a GPU.

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
                  jit_compile=jit_compile)
    return model


def synthetic_data(name, num_samples, num_classes=10, seed=0):
    """Random float32 inputs for model `name` and one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.random((num_samples, *sample_shape(name)), dtype="float32")
    y = np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, num_samples)]
    return x, y


def make_trainer(variant, model):
    """The object whose `fit(x, y, ...)` trains `model` for `variant`."""
    if variant == "fit":
        return model
    if variant.startswith("importance_"):
        return ImportanceTraining(model, presample=int(variant.split("_")[1]))
    if variant == "approximate":
        return ApproximateImportanceTraining(model)
    raise ValueError(f"`variant` must be one of {VARIANTS}. Received: variant={variant!r}")


def trace_counts(trainer):
    """Number of traces of the compiled functions of a trainer, by name."""
    if isinstance(trainer, keras.Model):
        function = getattr(trainer, "train_function", None)
        count = getattr(function, "experimental_get_tracing_count", None)
        return {"train": count()} if count else {}
    return dict(trainer.trace_counts)
