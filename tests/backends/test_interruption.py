"""An interrupted `fit`, on every backend: the model keeps the weights and the
optimizer state of the last completed step, its own train step, and can be
saved and trained again, for steps drawn in the train step and on the host."""

import functools

import keras
import numpy as np
import pytest
from conftest import blobs, one_hot

from importance_sampling import signals
from importance_sampling.training import ImportanceTraining

from .common import bn_dropout_classifier

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)

# Adaptive smoothing keeps a moving average on the host: its steps are drawn there.
PATHS = {"in-step": {}, "host": {"smooth": 0.5, "adaptive_smoothing": True}}
INTERRUPTED_AT = 3


class RaiseAt(keras.callbacks.Callback):
    """Raise an `error` (a class) in the hook `hook` of batch `batch`, before touching the model."""

    def __init__(self, hook, batch, error):
        super().__init__()
        self.hook = hook
        self.batch = batch
        self.error = error

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "begin" and batch == self.batch:
            raise self.error

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == "end" and batch == self.batch:
            raise self.error


class StopAfter(keras.callbacks.Callback):
    """Stop `fit` cleanly once `steps` steps are completed."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps - 1:
            self.model.stop_training = True


def seeded_training(path):
    """A model with BatchNormalization and Dropout and its training, from one seed."""
    keras.utils.set_random_seed(42)
    model = bn_dropout_classifier()
    return model, ImportanceTraining(model, presample=64, **PATHS[path])


def fit(training, callbacks=(), steps=None):
    return training.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=list(callbacks),
                        steps_per_epoch=steps)


def state(model):
    """The weights (BatchNormalization statistics included) and the optimizer's variables."""
    return model.get_weights(), [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]


def assert_same_state(got, want):
    for got_part, want_part in zip(got, want, strict=True):
        assert len(got_part) == len(want_part)
        for got_array, want_array in zip(got_part, want_part):
            np.testing.assert_array_equal(got_array, want_array)


@functools.cache
def clean_stop(path, completed):
    """A `fit` stopped cleanly after `completed` steps, then trained 4 steps more.

    Returns:
        The state after the stop, the names of the model's metrics then,
        and the state after the 4 steps.
    """
    model, training = seeded_training(path)
    fit(training, [StopAfter(completed)])
    assert int(model.optimizer.iterations) == completed
    stopped = state(model), [m.name for m in model.metrics]
    keras.utils.set_random_seed(7)
    fit(training, steps=4)
    return *stopped, state(model)


def assert_left_as_a_clean_stop(model, training, completed, path, tmp_path):
    """`model` is the model of a `fit` stopped cleanly after `completed` steps.

    It has their weights and optimizer state, its own train step and
    metrics, it round-trips through `save`, and `training` trains it on as
    the cleanly stopped run's training does.
    """
    stopped, metric_names, trained_on = clean_stop(path, completed)
    assert_same_state(state(model), stopped)
    assert "train_step" not in vars(model)
    assert model.train_function is None  # the model had none of its own
    assert [m.name for m in model.metrics] == metric_names

    model.save(tmp_path / "interrupted.keras")
    restored = keras.saving.load_model(tmp_path / "interrupted.keras")
    assert_same_state(state(restored), stopped)
    np.testing.assert_array_equal(restored.predict(X, verbose=0), model.predict(X, verbose=0))

    keras.utils.set_random_seed(7)
    fit(training, steps=4)
    assert int(model.optimizer.iterations) == completed + 4
    assert_same_state(state(model), trained_on)


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(
    "hook, error, completed",
    [
        ("end", KeyboardInterrupt, INTERRUPTED_AT + 1),
        ("end", RuntimeError, INTERRUPTED_AT + 1),
        ("begin", KeyboardInterrupt, INTERRUPTED_AT),
    ],
    ids=["keyboard-interrupt-at-batch-end", "error-at-batch-end",
         "keyboard-interrupt-at-batch-begin"],
)
def test_an_exception_in_a_callback_leaves_the_last_completed_step(
        path, hook, error, completed, tmp_path):
    model, training = seeded_training(path)
    with pytest.raises(error):
        fit(training, [RaiseAt(hook, INTERRUPTED_AT, error)])
    assert int(model.optimizer.iterations) == completed
    assert_left_as_a_clean_stop(model, training, completed, path, tmp_path)


def test_an_interrupt_inside_a_host_step_leaves_the_last_completed_step(tmp_path):
    # A receiver of `is.sample` runs in the step, after the draw, before the update.
    drawn = []

    def receiver(event):
        drawn.append(event)
        if len(drawn) == INTERRUPTED_AT + 1:
            raise KeyboardInterrupt

    model, training = seeded_training("host")
    signals.sample.connect(receiver)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(training)
    finally:
        signals.sample.disconnect(receiver)
    assert int(model.optimizer.iterations) == INTERRUPTED_AT
    assert_left_as_a_clean_stop(model, training, INTERRUPTED_AT, "host", tmp_path)
