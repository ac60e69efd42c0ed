"""A run interrupted at an epoch's end and resumed with
`importance_sampling.callbacks.BackupAndRestore` ends with the weights of the
uninterrupted run: the sampling state that the model's weights do not hold
is backed up beside them and restored."""

import functools

import keras
import numpy as np
import pytest
from conftest import blobs

from importance_sampling.callbacks import STATE_FILE, BackupAndRestore
from importance_sampling.training import (
    ApproximateImportanceTraining,
    ImportanceTraining,
    InfoBatchTraining,
    LSTMSampler,
    OrderedSGDTraining,
    SVRG,
)

X, LABELS = blobs(64, num_classes=3)
SEED = 5
EPOCHS = 4
INTERRUPTED_AT = 2


class QuickApproximateImportanceTraining(ApproximateImportanceTraining):
    """Its loss predictor samples after 4 uniform steps, not 100."""

    def _make_sampler(self, dataset, presample, batch_size):
        return LSTMSampler(dataset, self.reweighting, presample=presample, warmup=4)


TRAININGS = {
    "in-step": lambda model: ImportanceTraining(model, presample=32),
    # `tau` is about 1.3: importance sampling turns on after some 10 steps.
    "tau_th": lambda model: ImportanceTraining(model, presample=32, tau_th=1.05),
    "lstm": lambda model: QuickApproximateImportanceTraining(model, presample=32),
    "adaptive_smoothing": lambda model: ImportanceTraining(
        model, presample=32, smooth=0.5, adaptive_smoothing=True
    ),
    "infobatch": lambda model: InfoBatchTraining(model, prune_ratio=0.5),
    "svrg": lambda model: SVRG(model, B=4.0, B_over_b=32),
}


@pytest.fixture(scope="module", autouse=True)
def deterministic_ops():
    """TensorFlow's deterministic ops, which an exact resumption asks for."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf
    from tensorflow.python.framework import config

    tf.config.experimental.enable_op_determinism()
    yield
    config.disable_op_determinism()


class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == INTERRUPTED_AT:
            raise KeyboardInterrupt


def start(name):
    """A new model and training object, as a new process makes them."""
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model, TRAININGS[name](model)


def fit(training, callbacks, epochs=EPOCHS):
    return training.fit(X, LABELS, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks)


@functools.cache
def uninterrupted_weights(name):
    model, training = start(name)
    fit(training, [])
    return model.get_weights()


def interrupted_run(name, backup_dir, **kwargs):
    model, training = start(name)
    with pytest.raises(KeyboardInterrupt):
        fit(training, [BackupAndRestore(training, backup_dir, **kwargs), Interrupt()])


def assert_resumes_as_uninterrupted(name, backup_dir):
    model, training = start(name)
    history = fit(training, [BackupAndRestore(training, backup_dir)])
    assert len(history.history["loss"]) < EPOCHS
    for expected, resumed in zip(uninterrupted_weights(name), model.get_weights()):
        np.testing.assert_allclose(resumed, expected, rtol=1e-5, atol=1e-6)
    assert not backup_dir.exists()


@pytest.mark.parametrize("name", list(TRAININGS))
def test_a_resumed_run_ends_as_the_uninterrupted_one(name, tmp_path):
    backup_dir = tmp_path / "backup"
    interrupted_run(name, backup_dir)
    assert (backup_dir / STATE_FILE).exists()
    assert_resumes_as_uninterrupted(name, backup_dir)


def test_a_run_resumed_from_the_previous_backup_restores_its_state(tmp_path):
    backup_dir = tmp_path / "backup"
    interrupted_run("adaptive_smoothing", backup_dir, double_checkpoint=True)
    # The latest backup is unreadable: Keras falls back to the previous one.
    (backup_dir / "latest.weights.h5").write_bytes(b"torn")
    assert_resumes_as_uninterrupted("adaptive_smoothing", backup_dir)


def test_a_backup_without_the_sampling_state_is_refused(tmp_path):
    backup_dir = tmp_path / "backup"
    model, training = start("in-step")
    with pytest.raises(KeyboardInterrupt):
        fit(training, [keras.callbacks.BackupAndRestore(backup_dir), Interrupt()])
    model, training = start("in-step")
    with pytest.raises(ValueError, match=f"no sampling state of its epoch.*{STATE_FILE}"):
        fit(training, [BackupAndRestore(training, backup_dir)])


def test_a_state_of_another_kind_of_fit_is_refused():
    model, training = start("in-step")
    training.set_state({"sampler": {"rng": np.random.default_rng(0).bit_generator.state}})
    with pytest.raises(ValueError, match=r"entries \[\].*Received: a state with the entries "
                                         r"\['sampler'\]"):
        fit(training, [], epochs=1)
    assert int(model.optimizer.iterations) == 0


def test_ordered_sgd_resumes_with_the_halvings_of_its_schedule():
    model, _ = start("in-step")
    training = OrderedSGDTraining(model, q=8, schedule=True)
    training.schedule_accuracies = (0.0, 0.0)  # two halvings after the first epoch
    training.fit(X, LABELS, batch_size=16, epochs=1, verbose=0)
    assert training.halvings == 2
    state = training.get_state()
    model, _ = start("in-step")
    resumed = OrderedSGDTraining(model, q=8, schedule=True)
    # One threshold passed is fewer than the two halvings already made: q stays.
    resumed.schedule_accuracies = (0.0,)
    resumed.set_state(state)
    history = resumed.fit(X, LABELS, batch_size=16, epochs=2, verbose=0)
    assert resumed.halvings == 2 and history.history["q"] == [2, 2]
