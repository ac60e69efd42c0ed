"""Streamed training data: generators, PyDataset and tf.data, read as Keras reads them."""

import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.training import ImportanceTraining

X, LABELS = blobs(120, num_classes=3)
Y = one_hot(LABELS, 3)


class CountingBatches(keras.utils.PyDataset):
    """Batches of 10 samples whose first feature counts the samples served."""

    def __init__(self, batches=12, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        self.epoch_ends = 0

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        idxs = np.arange(index * 10, index * 10 + 10) % len(X)
        x = X[idxs].copy()
        x[:, 0] = np.arange(index * 10, index * 10 + 10)
        return x, Y[idxs]

    def on_epoch_end(self):
        self.epoch_ends += 1


def counted_samples(monkeypatch, training):
    """Record the first feature of every candidate that a host step scores."""
    seen = []
    original = training.wrapper.score

    def score(x, y, batch_size=128):
        seen.extend(np.asarray(x)[:, 0].tolist())
        return original(x, y, batch_size)

    monkeypatch.setattr(training.wrapper, "score", score)
    return seen


@pytest.fixture
def host_steps():
    """Keep the steps on the host while the test runs (see `counted_samples`)."""
    receiver = lambda event: None  # noqa: E731
    signals.score.connect(receiver)
    yield
    signals.score.disconnect(receiver)


def test_an_epoch_is_one_pass_over_a_py_dataset_in_batches_of_presample(
        monkeypatch, host_steps):
    source = CountingBatches(batches=12)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    history = training.fit(source, batch_size=5, epochs=2, verbose=0)
    # 120 samples a pass, 20 candidates a step: 6 steps of 5 items an epoch
    assert history.params["steps"] == 6
    assert int(training.model.optimizer.iterations) == 12
    np.testing.assert_array_equal(seen, np.tile(np.arange(120), 2))
    assert source.epoch_ends >= 2


def test_steps_drawn_in_the_train_step_read_a_py_dataset_like_keras():
    source = CountingBatches(batches=12)
    training = ImportanceTraining(make_classifier(2, 3), presample=20.0 / 5)
    history = training.fit(source, batch_size=5, epochs=3, verbose=0)
    assert history.params["steps"] == 6
    assert int(training.model.optimizer.iterations) == 18


class SlowThreadRecordingBatches(CountingBatches):
    """`CountingBatches` that take a while and record which thread read them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.threads = set()

    def __getitem__(self, index):
        self.threads.add(threading.get_ident())
        time.sleep(0.01)
        return super().__getitem__(index)


def test_py_dataset_workers_read_batches_in_parallel_and_in_order(monkeypatch, host_steps):
    source = SlowThreadRecordingBatches(batches=12, workers=3, max_queue_size=6)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    training.fit_generator(source, batch_size=5, epochs=2, verbose=0)
    np.testing.assert_array_equal(seen, np.tile(np.arange(120), 2))
    assert len(source.threads - {threading.get_ident()}) >= 2


def test_py_dataset_multiprocessing_workers_keep_the_order(monkeypatch, host_steps):
    source = CountingBatches(batches=12, workers=2, use_multiprocessing=True)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    training.fit_generator(source, steps_per_epoch=4, batch_size=5, verbose=0)
    np.testing.assert_array_equal(seen, np.arange(80))


def keras_steps(batches):
    """The optimizer steps that `keras.Model.fit` takes on a generator of `batches`."""
    model = make_classifier(2, 3)
    model.fit((batch for batch in batches), verbose=0)
    return int(model.optimizer.iterations)


def test_streamed_sample_weights_weigh_the_loss():
    def weighted_batches(weight):
        for _ in range(4):
            yield X[:10], Y[:10], np.full(10, weight, "float32")

    model = make_classifier(2, 3)
    before = model.get_weights()
    ImportanceTraining(model, presample=20).fit(weighted_batches(0.0), batch_size=8,
                                               verbose=0)
    # Keras's own count of steps for the 2 regrouped batches of 20 samples
    assert int(model.optimizer.iterations) == keras_steps([(X[:20], Y[:20])] * 2)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    ImportanceTraining(model, presample=20).fit(weighted_batches(1.0), batch_size=8,
                                               verbose=0)
    assert not np.array_equal(before[0], model.get_weights()[0])


def test_a_tf_data_stream_with_steps_per_epoch_is_read_on_across_epochs(
        monkeypatch, host_steps):
    counter = tf.data.Dataset.range(10**6).map(
        lambda i: (tf.stack([tf.cast(i, tf.float32), 0.0]), tf.one_hot(i % 3, 3))
    )
    stream = counter.batch(8).repeat()
    training = ImportanceTraining(make_classifier(2, 3), presample=16)
    seen = counted_samples(monkeypatch, training)
    training.fit_dataset(stream, steps_per_epoch=3, batch_size=4, epochs=3, verbose=0)
    np.testing.assert_array_equal(seen, np.arange(9 * 16))


def test_batch_size_none_takes_the_size_of_the_streams_batches():
    stream = tf.data.Dataset.from_tensor_slices((X, Y)).batch(10)
    training = ImportanceTraining(make_classifier(2, 3), presample=3.0)
    training.fit(stream, batch_size=None, epochs=1, verbose=0)
    # The steps of `model.fit` on the 120 samples in batches of 3 * 10
    model = make_classifier(2, 3)
    model.fit(tf.data.Dataset.from_tensor_slices((X, Y)).batch(30).rebatch(30), verbose=0)
    assert int(training.model.optimizer.iterations) == int(model.optimizer.iterations)


def test_validation_data_may_be_a_tf_dataset_or_a_py_dataset():
    model = make_classifier(2, 3)
    training = ImportanceTraining(model, presample=32)
    validation = tf.data.Dataset.from_tensor_slices((X, Y)).batch(40)
    history = training.fit_generator(
        CountingBatches(), steps_per_epoch=2, batch_size=8, verbose=0,
        validation_data=validation,
    )
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(X, Y, verbose=0)[0], rel=1e-5
    )
    history = training.fit_generator(
        CountingBatches(), steps_per_epoch=2, batch_size=8, verbose=0,
        validation_data=CountingBatches(batches=2),
    )
    assert "val_accuracy" in history.history


def test_a_generator_that_runs_out_ends_the_epoch_with_keras_warning():
    def three_batches():
        for _ in range(3):
            yield X[:10], Y[:10]

    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    with pytest.warns(UserWarning, match="ran out of data"):
        training.fit_generator(three_batches(), steps_per_epoch=5, batch_size=8,
                               verbose=0)
    # 30 samples: one step of 20 candidates and one of the last 10
    assert int(training.model.optimizer.iterations) == keras_steps(
        [(X[:20], Y[:20]), (X[:10], Y[:10])]
    )


def test_a_generator_without_steps_per_epoch_is_read_to_its_end():
    def four_batches():
        for _ in range(4):
            yield X[:10], Y[:10]

    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    training.fit(four_batches(), batch_size=8, verbose=0)
    assert int(training.model.optimizer.iterations) == keras_steps([(X[:20], Y[:20])] * 2)
