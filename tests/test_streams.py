"""Streamed training data: generators, PyDataset and tf.data, never restarted."""

import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, make_classifier, one_hot

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
    """Record the first feature of every candidate that training reads."""
    seen = []
    original = training.wrapper.score

    def score(x, y, batch_size=128):
        seen.extend(x[:, 0].tolist())
        return original(x, y, batch_size)

    monkeypatch.setattr(training.wrapper, "score", score)
    return seen


def test_a_py_dataset_is_read_on_across_epochs_and_defaults_the_epoch_length(monkeypatch):
    source = CountingBatches(batches=12)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    history = training.fit_generator(source, batch_size=5, epochs=2, verbose=0)
    assert history.params["steps"] == 12
    # 24 steps of 20 candidates: 480 consecutive samples, cycling through the
    # 120 samples of the PyDataset with on_epoch_end() after each pass
    np.testing.assert_array_equal(seen, np.arange(480) % 120)
    assert source.epoch_ends == 3


class SlowThreadRecordingBatches(CountingBatches):
    """`CountingBatches` that take a while and record which thread read them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.threads = set()

    def __getitem__(self, index):
        self.threads.add(threading.get_ident())
        time.sleep(0.01)
        return super().__getitem__(index)


def test_py_dataset_workers_read_batches_in_parallel_and_in_order(monkeypatch):
    source = SlowThreadRecordingBatches(batches=12, workers=3, max_queue_size=6)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    training.fit_generator(source, batch_size=5, epochs=2, verbose=0)
    np.testing.assert_array_equal(seen, np.arange(480) % 120)
    assert len(source.threads - {threading.get_ident()}) >= 2


def test_py_dataset_multiprocessing_workers_keep_the_order(monkeypatch):
    source = CountingBatches(batches=12, workers=2, use_multiprocessing=True)
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    seen = counted_samples(monkeypatch, training)
    training.fit_generator(source, steps_per_epoch=9, batch_size=5, verbose=0)
    np.testing.assert_array_equal(seen, np.arange(180) % 120)


def test_streamed_sample_weights_get_a_clear_error():
    def weighted_batches():
        while True:
            yield X[:10], Y[:10], np.ones(10)

    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    with pytest.raises(ValueError, match="3 elements.*sample_weight"):
        training.fit_generator(weighted_batches(), steps_per_epoch=2, batch_size=8,
                               verbose=0)


def test_a_repeated_tf_data_stream_resumes_where_it_left_off(monkeypatch):
    counter = tf.data.Dataset.range(10**6).map(
        lambda i: (tf.stack([tf.cast(i, tf.float32), 0.0]), tf.one_hot(i % 3, 3))
    )
    stream = counter.batch(8).repeat()
    training = ImportanceTraining(make_classifier(2, 3), presample=16)
    seen = counted_samples(monkeypatch, training)
    training.fit_dataset(stream, steps_per_epoch=3, batch_size=4, epochs=3, verbose=0)
    np.testing.assert_array_equal(seen, np.arange(9 * 16))


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


def test_an_exhausted_generator_gets_a_clear_error():
    def three_batches():
        for _ in range(3):
            yield X[:10], Y[:10]

    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    with pytest.raises(ValueError, match="generator is exhausted"):
        training.fit_generator(three_batches(), steps_per_epoch=5, batch_size=8, verbose=0)


def test_a_generator_needs_steps_per_epoch():
    training = ImportanceTraining(make_classifier(2, 3), presample=20)
    with pytest.raises(ValueError, match="steps_per_epoch=None"):
        training.fit_generator(iter([]), batch_size=8, verbose=0)
