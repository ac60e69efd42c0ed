"""Numerical faults on every backend, for steps drawn in the train step and on
the host: unusable scores make a step draw uniformly, with one warning per
`fit`, and the weights stay finite; a NaN loss is stopped by `TerminateOnNaN`."""

import contextlib
import warnings

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot
from keras import ops

from importance_sampling.training import ImportanceTraining

from .common import host_steps

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
STEPS = 2 * 256 // 16  # two epochs of batches of 16

# Steps drawn in the train step; on the host by the plain sampler (a receiver
# of `is.score` makes `fit` draw there); on the host with adaptive smoothing,
# whose moving average of the scores must survive unusable ones.
PATHS = {
    "in-step": {},
    "host": {},
    "host-adaptive-smoothing": {"smooth": 0.5, "adaptive_smoothing": True},
}


def on_path(path):
    return contextlib.nullcontext([]) if path == "in-step" else host_steps()


def fallback_warnings(caught):
    return [w for w in caught if issubclass(w.category, RuntimeWarning)
            and "sampled uniformly" in str(w.message)]


def fit_and_catch(training, x, y, **kwargs):
    """`training.fit` for two epochs, and the uniform fallback warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = training.fit(x, y, batch_size=16, epochs=2, verbose=0, **kwargs)
    return history, fallback_warnings(caught)


def assert_finite(model):
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


class NonFiniteWhenScored(keras.layers.Layer):
    """The identity in training; `value` in inference mode for some samples.

    The samples whose first feature is above `threshold` get a non-finite
    score, and a finite loss in the step that trains on them.
    """

    def __init__(self, value, threshold, **kwargs):
        super().__init__(**kwargs)
        self.value = value
        self.threshold = threshold

    def call(self, x, training=None):
        if training:
            return x
        return ops.where(x[:, :1] > self.threshold, ops.full_like(x, self.value), x)


@pytest.mark.parametrize(
    "value, path",
    [(np.nan, "in-step"), (np.inf, "in-step"), (np.nan, "host"),
     (np.nan, "host-adaptive-smoothing")],
    ids=["nan-in-step", "inf-in-step", "nan-host", "nan-host-adaptive-smoothing"],
)
def test_steps_with_non_finite_scores_draw_uniformly_and_the_others_by_importance(
        value, path):
    # 3 of the 256 samples: about half of the steps score one of them
    threshold = np.sort(X[:, 0])[-4]
    faulty = np.flatnonzero(X[:, 0] > threshold)
    model = keras.Sequential([
        keras.Input((2,)), NonFiniteWhenScored(value, threshold),
        keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy")
    training = ImportanceTraining(model, presample=64, **PATHS[path])
    with on_path(path) as scored:
        history, caught = fit_and_catch(training, X, Y)
    assert len(caught) == 1
    assert int(model.optimizer.iterations) == STEPS
    assert_finite(model)
    assert np.all(np.isfinite(history.history["loss"]))
    if path == "in-step":
        assert 0 < training.importance_steps < STEPS
    else:
        # Exactly the steps that scored none of the faulty samples.
        clean = [not np.isin(faulty, event["idxs"]).any() for event in scored]
        assert len(scored) == STEPS and 0 < sum(clean) < STEPS
        assert training.importance_steps == sum(clean)


def zero_loss_regressor():
    """A model that fits its data exactly: every loss, and its gradient, is 0."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(keras.optimizers.Adam(0.01), "mean_squared_error")
    return model


@pytest.mark.parametrize("path", ["in-step", "host"])
def test_all_zero_scores_draw_uniformly_with_one_warning_per_fit(path):
    model = zero_loss_regressor()
    before = model.get_weights()
    training = ImportanceTraining(model, presample=64)
    with on_path(path):
        for _ in range(2):
            history, caught = fit_and_catch(training, X, np.zeros((256, 1), "float32"))
            assert len(caught) == 1
            assert training.importance_steps == 0
            assert history.history["loss"] == [0.0, 0.0]
    assert int(model.optimizer.iterations) == 2 * STEPS
    # Weights of 1: the zero gradients leave the model as it was.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("path", ["in-step", "host"])
def test_a_very_negative_k_keeps_the_weights_finite(path):
    # Confident predictions, 1 in 16 of them against the label: losses from
    # about 0 to about 20, whose ratios to the power 50 overflow float32.
    model = make_classifier(2, 3, metrics=())
    last = model.layers[-1]
    last.kernel.assign(20.0 * last.kernel)
    labels = np.argmax(model.predict(X, verbose=0), axis=1)
    labels[::16] = (labels[::16] + 1) % 3
    losses = keras.losses.categorical_crossentropy(one_hot(labels, 3), model.predict(X, verbose=0))
    losses = keras.ops.convert_to_numpy(losses)
    assert (np.max(losses) / np.mean(losses)) ** 50 > np.finfo("float32").max
    training = ImportanceTraining(model, k=-50.0, presample=64)
    with on_path(path):
        history, caught = fit_and_catch(training, X, one_hot(labels, 3))
    assert caught == []
    assert training.importance_steps == STEPS
    assert_finite(model)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.fixture(params=["float16", "mixed_float16"])
def float16_regressor(request):
    """A linear model computing in float16, for targets of about 300."""
    if request.param == "mixed_float16":
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        dtype = "float16" if request.param == "float16" else None
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, dtype=dtype)])
        model.compile(keras.optimizers.SGD(1e-4), "mean_squared_error")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[0].compute_dtype == "float16"
    return model


@pytest.mark.parametrize("path", ["in-step", "host"])
def test_scores_of_a_float16_model_beyond_the_float16_range_stay_usable(
        float16_regressor, path):
    model = float16_regressor
    y = (300.0 + 20.0 * X[:, :1]).astype("float32")
    # Squared errors up to about 9e4, past float16's largest number, 65504.
    losses = keras.losses.mean_squared_error(y, model.predict(X, verbose=0).astype("float32"))
    assert np.max(keras.ops.convert_to_numpy(losses)) > np.finfo("float16").max
    before = model.evaluate(X, y, verbose=0)
    training = ImportanceTraining(model, presample=64)
    with on_path(path):
        history, caught = fit_and_catch(training, X, y)
    assert caught == []
    assert training.importance_steps == STEPS
    assert_finite(model)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(X, y, verbose=0) < before


@pytest.mark.parametrize("path", ["in-step", "host"])
def test_a_nan_loss_draws_uniformly_and_terminate_on_nan_stops_the_run(path):
    x = X.copy()
    x[::2] = np.nan
    model = make_classifier(2, 3)
    training = ImportanceTraining(model, presample=64)
    with on_path(path):
        history, caught = fit_and_catch(
            training, x, Y, callbacks=[keras.callbacks.TerminateOnNaN()]
        )
    assert len(caught) == 1
    assert training.importance_steps == 0
    assert int(model.optimizer.iterations) == 1
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
