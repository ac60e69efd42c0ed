"""Datasets streamed from a generator, a `PyDataset` or a `tf.data.Dataset`."""

import math

import keras
import numpy as np
from keras import tree

from importance_sampling.datasets.base import BaseDataset, as_batch
from importance_sampling.keras_internals import PyDatasetAdapter
from importance_sampling.utils import nested


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow")


def _is_batch_source(data):
    return isinstance(data, keras.utils.PyDataset) or _is_tf_dataset(data)


def _py_dataset_batches(py_dataset):
    """Cycle through a `PyDataset`, with its hooks around each pass.

    Batches are read as `fit` reads them: in order, by `workers` threads or
    processes (`use_multiprocessing`) when the `PyDataset` asks for them.
    """
    adapter = PyDatasetAdapter(py_dataset, shuffle=False)
    try:
        while True:
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()
    finally:
        if adapter.enqueuer is not None:
            adapter.enqueuer.stop()


def _tf_dataset_batches(dataset):
    """Read a `tf.data.Dataset` on, starting it again only once it is exhausted."""
    while True:
        for batch in dataset:
            yield tree.map_structure(keras.ops.convert_to_numpy, batch)


def batches_of(source):
    """An iterator of `(x, y)` batches from any supported source."""
    if isinstance(source, keras.utils.PyDataset):
        return _py_dataset_batches(source)
    if _is_tf_dataset(source):
        return _tf_dataset_batches(source)
    return iter(source)


def num_batches(source):
    """The number of batches of a finite `PyDataset` or `tf.data.Dataset`, else `None`."""
    if isinstance(source, keras.utils.PyDataset):
        return source.num_batches
    if _is_tf_dataset(source):
        cardinality = int(source.cardinality())
        return cardinality if cardinality > 0 else None
    return None


def _describe_batch(batch):
    if isinstance(batch, (tuple, list)):
        return f"Received: a batch of {len(batch)} elements."
    return f"Received: a batch of type {type(batch).__name__}."


_TRAINING_EXHAUSTED = (
    "The training generator is exhausted. Importance training "
    "reads more batches than `steps_per_epoch` (it assembles its "
    "candidates from the stream): pass a generator that loops "
    "forever, e.g. a `while True:` loop."
)
_TEST_EXHAUSTED = (
    "The test generator is exhausted. Every evaluation reads "
    "`test_data_length` samples from it: pass a generator that loops "
    "forever, e.g. a `while True:` loop."
)


class _BatchStream:
    """Cut a stream of `(x, y)` batches into pieces of any size.

    The stream is read on and never restarted, so consecutive requests see
    consecutive samples.
    """

    def __init__(self, batches, exhausted=_TRAINING_EXHAUSTED):
        self._batches = batches
        self._exhausted = exhausted
        self._buffer = []
        self._buffered = 0
        self.position = 0

    def _next_batch(self):
        try:
            batch = next(self._batches)
        except StopIteration:
            raise ValueError(self._exhausted) from None
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "Importance training reads `(x, y)` batches from a stream. "
                + _describe_batch(batch)
                + " Per-sample weights of streamed data are not supported; "
                "pass arrays and `sample_weight` to `fit` instead."
            )
        return nested.to_numpy(tuple(batch))

    def close(self):
        """Stop reading: close the stream (and a `PyDataset`'s workers)."""
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()

    def peek(self):
        """The first buffered batch, read from the stream if needed."""
        if not self._buffer:
            batch = self._next_batch()
            self._buffer.append(batch)
            self._buffered += nested.num_samples(batch[0])
        return self._buffer[0]

    def take(self, count):
        """The next `count` samples as one batch."""
        while self._buffered < count:
            batch = self._next_batch()
            self._buffer.append(batch)
            self._buffered += nested.num_samples(batch[0])
        data = nested.concatenate(self._buffer)
        self._buffer = [nested.take(data, slice(count, None))]
        self._buffered -= count
        self.position += count
        return nested.take(data, slice(0, count))


def _check_test_data_length(length):
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(
            "`test_data_length` must be a positive integer, the number of "
            "test samples to read from the test generator, or `None`. "
            f"Received: test_data_length={length!r}"
        )
    return int(length)


class GeneratorDataset(BaseDataset):
    """A dataset whose training split is read as a stream of batches.

    Sampling from it is streamed: the candidates of each step are the next
    samples of the stream, so the stream should be shuffled. A training
    class's `fit_dataset` reads `stream` as `keras.Model.fit` reads a stream
    (one pass an epoch); the samplers' own draws (`train_data.draw`, as the
    experiment command uses them) read it on across epochs, never
    restarting it: a `PyDataset` is cycled through (with `on_epoch_end()`
    after each pass) and a finite `tf.data.Dataset` is iterated again only
    once exhausted.

    Test data given as arrays can be indexed (`test_data[idxs]`). Test data
    read from a generator are evaluated `test_data_length` samples at a time:
    every evaluation reads the next `test_data_length` samples of the test
    stream, in batches of the size of its first batch.

    Args:
        train_data: An endless generator (or any iterator) yielding `(x, y)`
            batches, a `keras.utils.PyDataset` or a `tf.data.Dataset` of
            `(x, y)` batches.
        test_data: Test data: a tuple of arrays `(x, y)`, a generator of
            batches, a `PyDataset`, a `tf.data.Dataset`, or `None`.
        test_data_length: The number of test **samples** that an evaluation
            reads from the test stream. Required when `test_data` is a plain
            generator; for a `PyDataset` or a `tf.data.Dataset`, `None`
            evaluates one pass over it. Ignored for test arrays, whose
            length counts.

    Raises:
        ValueError: for a `test_data_length` that is not a positive integer,
            or none for a test generator.
    """

    random_access = False

    def __init__(self, train_data, test_data=None, test_data_length=None):
        self.stream = train_data
        self._stream = _BatchStream(batches_of(train_data))
        self.batches_per_pass = num_batches(train_data)
        self._test_data = test_data
        self.test_data_length = _check_test_data_length(test_data_length)
        self._test_stream = None
        if self._test_is_streamed() and self.test_data_length is None:
            if not _is_batch_source(test_data):
                raise ValueError(
                    "`test_data_length` (the number of test samples to read) "
                    "is required when `test_data` is a generator. Received: "
                    "test_data_length=None"
                )

    def _test_is_streamed(self):
        return self._test_data is not None and not isinstance(self._test_data, (tuple, list))

    def close(self):
        """Release the training stream (and a `PyDataset`'s workers)."""
        self._stream.close()
        if self._test_stream is not None:
            self._test_stream.close()

    def _draw(self, split, count, rng):
        if split != "train":
            raise ValueError("Only the training split of a GeneratorDataset is streamed.")
        start = self._stream.position
        x, y = self._stream.take(count)
        return list(range(start, start + count)), x, y

    def _get(self, split, idxs):
        if split == "test" and self._test_data is not None and not self._test_is_streamed():
            return as_batch(tuple(self._test_data), idxs)
        raise TypeError(
            "A GeneratorDataset is read as a stream and has no random access. "
            f"Received an index into its {split} data"
        )

    def _size(self, split):
        if split == "test":
            if self._test_data is None:
                return 0
            if not self._test_is_streamed():
                return nested.num_samples(self._test_data[0])
            if self.test_data_length is not None:
                return self.test_data_length
        raise TypeError(f"The {split} data of a GeneratorDataset has no length.")

    def _test_passes(self, batch_size):
        """Endless passes of `test_data_length` test samples, in batches."""
        while True:
            left = self.test_data_length
            while left > 0:
                count = min(batch_size, left)
                yield self._test_stream.take(count)
                left -= count

    def evaluation_arguments(self):
        if self._test_data is None:
            return None
        if not self._test_is_streamed():
            x, y = self._test_data
            return {"x": x, "y": y}
        if self.test_data_length is None:
            return {"x": self._test_data, "steps": None}
        if self._test_stream is None:
            self._test_stream = _BatchStream(batches_of(self._test_data), _TEST_EXHAUSTED)
        batch_size = nested.num_samples(self._test_stream.peek()[0])
        return {
            "x": self._test_passes(batch_size),
            "steps": math.ceil(self.test_data_length / batch_size),
        }

    @property
    def shape(self):
        return nested.map_shapes(self._stream.peek()[0])

    @property
    def output_size(self):
        y = self._stream.peek()[1]
        return tree.map_structure(lambda a: int(a.shape[1]) if a.ndim > 1 else 1, y)
