"""Keras callbacks work with importance training as they do with `fit`."""

import csv

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling.training import ImportanceTraining

X, LABELS = blobs(128, num_classes=3)
Y = one_hot(LABELS, 3)
X_VAL, LABELS_VAL = blobs(32, num_classes=3, seed=1)
Y_VAL = one_hot(LABELS_VAL, 3)


def fit(model, callbacks, epochs=3, **kwargs):
    return ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks,
        validation_data=(X_VAL, Y_VAL), **kwargs,
    )


class LearningRateLog(keras.callbacks.Callback):
    """The learning rate at the start of every train batch, and the update it made."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_early_stopping_restores_the_best_weights():
    model = make_classifier(2, 3)
    best = {}

    class RememberBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not best or logs["val_loss"] < best["loss"]:
                best.update(loss=logs["val_loss"], weights=self.model.get_weights())

    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=10.0, restore_best_weights=True
    )
    history = fit(model, [RememberBest(), stopper], epochs=6)
    assert len(history.history["val_loss"]) == 2
    for expected, restored in zip(best["weights"], model.get_weights()):
        np.testing.assert_array_equal(expected, restored)


@pytest.mark.parametrize("filename", ["model.keras", "model.weights.h5"])
def test_model_checkpoint_saves_the_best_epoch(tmp_path, filename):
    model = make_classifier(2, 3)
    path = tmp_path / filename
    checkpoint = keras.callbacks.ModelCheckpoint(
        path, monitor="val_loss", save_best_only=True,
        save_weights_only=filename.endswith(".weights.h5"),
    )
    history = fit(model, [checkpoint])
    best_epoch = int(np.argmin(history.history["val_loss"]))
    if filename.endswith(".keras"):
        restored = keras.models.load_model(path)
    else:
        restored = make_classifier(2, 3)
        restored.load_weights(path)
    assert restored.evaluate(X_VAL, Y_VAL, verbose=0)[0] == pytest.approx(
        history.history["val_loss"][best_epoch], rel=1e-5
    )


def test_learning_rate_scheduler_sets_the_rate_of_the_next_steps():
    model = make_classifier(2, 3, learning_rate=0.1)
    log = LearningRateLog()
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    fit(model, [scheduler, log])
    steps = 128 // 16
    np.testing.assert_allclose(log.rates[::steps], [0.1, 0.05, 0.1 / 3], rtol=1e-6)


def test_a_zero_learning_rate_set_by_a_callback_freezes_the_weights():
    model = make_classifier(2, 3)
    frozen = {}

    class Freeze(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate = 0.0
                frozen["weights"] = self.model.get_weights()

    fit(model, [Freeze()], epochs=2)
    for old, new in zip(frozen["weights"], model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_reduce_lr_on_plateau_lowers_the_rate():
    model = make_classifier(2, 3, learning_rate=0.01)
    log = LearningRateLog()
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=100.0
    )
    fit(model, [reduce, log])
    steps = 128 // 16
    # epoch 0 improves on the initial infinity; epoch 1 does not: halve
    np.testing.assert_allclose(log.rates[::steps], [0.01, 0.01, 0.005], rtol=1e-6)


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    history = fit(make_classifier(2, 3), [keras.callbacks.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", "loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows],
                               history.history["val_loss"], rtol=1e-5)


def test_tensorboard_writes_event_files(tmp_path):
    fit(make_classifier(2, 3), [keras.callbacks.TensorBoard(tmp_path / "logs")], epochs=1)
    events = list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert {path.parent.name for path in events} == {"train", "validation"}


def test_terminate_on_nan_stops_at_the_first_nan_step():
    x = X.copy()
    x[:] = np.nan
    model = make_classifier(2, 3)
    with pytest.warns(RuntimeWarning):
        ImportanceTraining(model, presample=64).fit(
            x, Y, batch_size=16, epochs=3, verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
    assert int(model.optimizer.iterations) == 1


def test_backup_and_restore_resumes_an_interrupted_run(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    model = make_classifier(2, 3)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(model, [backup, Interrupt()], epochs=4)
    saved = model.get_weights()

    resumed = make_classifier(2, 3)
    recorder = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not recorder:
                for expected, restored in zip(saved, self.model.get_weights()):
                    np.testing.assert_array_equal(expected, restored)
            recorder.append(epoch)

    history = fit(resumed, [keras.callbacks.BackupAndRestore(tmp_path / "backup"), Epochs()],
                  epochs=4)
    assert recorder == [2, 3]
    assert len(history.history["loss"]) == 2
