"""Shared fixtures: seeded runs, tiny datasets and tiny compiled models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
# The repository's `benchmarks` and `scripts`, after the installed packages,
# so that `importance_sampling` is the installed package (run the suite from
# `tests/`, where the source tree is not on the path).
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def pytest_configure(config):
    """On JAX, compile each step once per session, not once per test.

    The tests build new models of the same few shapes, whose steps JAX would
    compile again for each test; its persistent compilation cache, in a
    directory of this session, reuses them (it halves the run on two cores).
    """
    if keras.backend.backend() != "jax":
        return
    import jax

    cache = tempfile.mkdtemp(prefix="jax-compilation-cache-")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(1234)


def make_classifier(input_dim=2, num_classes=2, loss="categorical_crossentropy",
                    metrics=("accuracy",), learning_rate=0.01, hidden=16):
    """A small compiled softmax (or, with 1 class, sigmoid) classifier."""
    activation = "sigmoid" if num_classes == 1 else "softmax"
    model = keras.Sequential([
        keras.Input((input_dim,)),
        keras.layers.Dense(hidden, activation="tanh"),
        keras.layers.Dense(num_classes, activation=activation),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), loss, metrics=list(metrics))
    return model


def blobs(n=256, num_classes=3, input_dim=2, seed=0):
    """Gaussian blobs: float32 inputs and integer labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    centers = rng.normal(size=(num_classes, input_dim)) * 3
    x = centers[labels] + rng.normal(size=(n, input_dim))
    return x.astype("float32"), labels.astype("int64")


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def sgd_classifier(learning_rate=0.5):
    """A classifier of 2-d blobs into 3 classes, trained by plain SGD."""
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    return model


def sgd_gradients(model, x, y, step_weights):
    """The loss `mean(step_weights * loss)` of a batch and its gradients, by hand.

    The gradient of the sparse categorical cross-entropy of a `sgd_classifier`
    (Dense-tanh, Dense-softmax) is back-propagated with NumPy, so that the
    expectation depends on no Keras backend.

    Returns:
        A tuple `(loss, gradients)`: a float and float64 arrays in the order of
        `model.get_weights()`.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == len(model.layers) == 2, "a Dense-tanh, Dense-softmax model"
    assert [layer.activation.__name__ for layer in dense] == ["tanh", "softmax"]
    kernel_1, bias_1, kernel_2, bias_2 = (np.asarray(w, "float64") for w in model.get_weights())
    x = np.asarray(x, "float64")
    y = np.asarray(y).reshape(-1).astype("int64")
    step_weights = np.asarray(step_weights, "float64").reshape(-1)
    hidden = np.tanh(x @ kernel_1 + bias_1)
    logits = hidden @ kernel_2 + bias_2
    logits = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rows = np.arange(len(x))
    per_sample = -np.log(probabilities[rows, y])
    d_logits = probabilities.copy()
    d_logits[rows, y] -= 1.0
    d_logits *= step_weights[:, None] / len(x)
    d_hidden = (d_logits @ kernel_2.T) * (1.0 - hidden**2)
    gradients = [x.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)]
    return float(np.mean(step_weights * per_sample)), gradients


def expected_sgd_step(model, x, y, step_weights, learning_rate):
    """The weights after one SGD step on `mean(step_weights * loss)`, by hand.

    Returns:
        A tuple `(loss, weights)`: the weighted loss before the step and the
        weights after it, in the order of `model.get_weights()`.
    """
    loss, gradients = sgd_gradients(model, x, y, step_weights)
    after = [(np.asarray(w, "float64") - learning_rate * g).astype("float32")
             for w, g in zip(model.get_weights(), gradients)]
    return loss, after


def proportional_positions(scores, variates):
    """Inverse transform sampling, written anew with NumPy."""
    cumulative = np.cumsum(scores)
    positions = np.searchsorted(cumulative, variates * cumulative[-1], side="right")
    return np.minimum(positions, len(scores) - 1)


def sparse_losses(model, x, y):
    """Per-sample sparse categorical cross-entropy of `model` in inference mode."""
    y_pred = model(x, training=False)
    return keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(y, y_pred)
    ).astype("float64")


def assert_single_device_step(run, drawn, learning_rate):
    """`run`'s weights after one distributed step are a single-device SGD step.

    `run` holds the weights `initial` and `after` the step and its logged
    `loss`; `drawn` is `(x, y, weights, metric_weights, sample_weight)` of
    all the items drawn in the step. The reference is both
    `OracleWrapper.train_batch` and `expected_sgd_step`, computed by hand.
    """
    from importance_sampling.model_wrappers import OracleWrapper
    from importance_sampling.reweighting import BiasedReweightingPolicy

    x_b, y_b, weights, metric_weights, weight_b = drawn
    reference = sgd_classifier(learning_rate)
    reference.set_weights(run["initial"])
    expected_loss, expected = expected_sgd_step(
        reference, x_b, y_b, weights[:, 0] * weight_b, learning_rate
    )
    loss, _, _ = OracleWrapper(reference, BiasedReweightingPolicy(1.0)).train_batch(
        x_b, y_b, weights, metric_weights, weight_b
    )
    for after, single, by_hand in zip(run["after"], reference.get_weights(), expected):
        np.testing.assert_allclose(after, single, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(after, by_hand, rtol=1e-5, atol=1e-6)
    assert run["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    # The step moved the weights: the comparison is not between initial weights.
    assert max(np.abs(a - i).max() for a, i in zip(run["after"], run["initial"])) > 1e-3


class FirstColumnScorer:
    """A model stand-in for the samplers: the score of a sample is its first feature."""

    def __init__(self):
        self.calls = []

    def score(self, x, y, batch_size=128):
        self.calls.append((len(x), batch_size))
        return x[:, 0].astype("float32")
