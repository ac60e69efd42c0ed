"""Keras callbacks in importance training, on every backend, for steps drawn in
the train step and on the host."""

import contextlib

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling.training import ImportanceTraining

from .common import host_steps

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
X_VAL, LABELS_VAL = blobs(64, num_classes=3, seed=1)
Y_VAL = one_hot(LABELS_VAL, 3)

PATHS = ["in-step", "host"]


def on_path(path):
    return host_steps() if path == "host" else contextlib.nullcontext()


class HookRecorder(keras.callbacks.Callback):
    """Record every hook called, with the model it was given."""

    def __init__(self, stop_at_batch=None):
        super().__init__()
        self.calls = []
        self.models = set()
        self.stop_at_batch = stop_at_batch

    def _record(self, name, logs):
        self.calls.append((name, dict(logs or {})))
        self.models.add(id(self.model))

    def on_train_begin(self, logs=None):
        self._record("train_begin", logs)

    def on_train_end(self, logs=None):
        self._record("train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", logs)

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._record("batch_begin", logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("batch_end", logs)
        if batch == self.stop_at_batch:
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self._record("test_begin", logs)

    def on_test_end(self, logs=None):
        self._record("test_end", logs)

    def names(self):
        return [name for name, _ in self.calls]


def test_the_history_and_every_hook_see_the_users_model():
    model = make_classifier(2, 3)
    recorder = HookRecorder()
    history = ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=32, epochs=2, verbose=0, callbacks=[recorder],
        validation_data=(X_VAL, Y_VAL),
    )
    epoch = (["epoch_begin"] + ["batch_begin", "batch_end"] * 8
             + ["test_begin", "test_end", "epoch_end"])
    assert recorder.names() == ["train_begin"] + epoch * 2 + ["train_end"]
    assert recorder.models == {id(model)}
    batch_logs = [logs for name, logs in recorder.calls if name == "batch_end"]
    assert all(set(logs) == {"loss", "unbiased_loss", "accuracy"} for logs in batch_logs)
    assert isinstance(history, keras.callbacks.History) and history.model is model
    assert history.epoch == [0, 1] and history.params["epochs"] == 2
    assert set(history.history) == {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}
    epoch_logs = [logs for name, logs in recorder.calls if name == "epoch_end"]
    for name, values in history.history.items():
        assert values == [logs[name] for logs in epoch_logs]
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(X_VAL, Y_VAL, verbose=0)[0], rel=1e-5
    )


@pytest.mark.parametrize("path", PATHS)
def test_stop_training_is_honoured_in_the_middle_of_an_epoch(path):
    model = make_classifier(2, 3)
    recorder = HookRecorder(stop_at_batch=2)
    with on_path(path):
        history = ImportanceTraining(model, presample=64).fit(
            X, Y, batch_size=16, epochs=5, verbose=0, callbacks=[recorder]
        )
    assert recorder.names().count("batch_end") == 3
    assert len(history.history["loss"]) == 1
    assert int(model.optimizer.iterations) == 3


def test_early_stopping_stops_the_loop():
    model = make_classifier(2, 3)
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=1)
    history = ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=32, epochs=10, verbose=0, callbacks=[stopper]
    )
    assert len(history.history["loss"]) == 2
    assert stopper.stopped_epoch == 1
    assert int(model.optimizer.iterations) == 16


@pytest.mark.parametrize("path", PATHS)
def test_model_checkpoint_saves_the_trained_model_of_each_epoch(path, tmp_path):
    model = make_classifier(2, 3)
    every_epoch = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "epoch{epoch}.weights.h5"), save_weights_only=True
    )
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True
    )
    with on_path(path):
        history = ImportanceTraining(model, presample=64).fit(
            X, Y, batch_size=32, epochs=2, verbose=0, callbacks=[every_epoch, best],
            validation_data=(X_VAL, Y_VAL),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.keras", "epoch1.weights.h5", "epoch2.weights.h5"
    ]
    fresh = make_classifier(2, 3)
    fresh.load_weights(tmp_path / "epoch2.weights.h5")
    for saved, trained in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(saved, trained)
    first = make_classifier(2, 3)
    first.load_weights(tmp_path / "epoch1.weights.h5")
    assert first.evaluate(X_VAL, Y_VAL, verbose=0)[0] == pytest.approx(
        history.history["val_loss"][0], rel=1e-5
    )
    restored = keras.saving.load_model(tmp_path / "best.keras")
    assert restored.evaluate(X_VAL, Y_VAL, verbose=0)[0] == pytest.approx(
        min(history.history["val_loss"]), rel=1e-5
    )
