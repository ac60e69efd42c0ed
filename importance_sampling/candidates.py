"""The candidates that Keras's `fit` hands the importance-sampling step.

- From arrays (or any dataset with random access), `ArrayCandidates` draws
  `presample` indices uniformly with replacement for every step, from the
  library's own random stream: an epoch is `steps_per_epoch` optimizer
  steps (`N // batch_size` by default), whatever `shuffle` says, and the
  candidates of a step depend only on the seed and the step's number
  (`optimizer.iterations`), so that a run resumed from a checkpoint draws
  as the uninterrupted run.
- From a stream (a `tf.data.Dataset`, a `keras.utils.PyDataset`, a Python
  generator or a `torch.utils.data.DataLoader`), `rebatched()` regroups the
  stream into batches of `presample` samples: an epoch is one pass over the
  stream, `presample` samples a step.
"""

import math
import types
import warnings

import keras
import numpy as np

from importance_sampling import keras_internals
from importance_sampling.utils import nested


def is_stream(x):
    """Whether `x` is a stream of batches rather than arrays."""
    return not keras_internals.can_convert_arrays((x,))


def _described(batch):
    if isinstance(batch, (tuple, list)):
        return f"{type(batch).__name__} of {len(batch)} elements"
    if isinstance(batch, dict):
        return f"dict with the keys {sorted(batch, key=str)}"
    shape = getattr(batch, "shape", None)
    return type(batch).__name__ + ("" if shape is None else f" of shape {tuple(shape)}")


def checked_batch(batch, index):
    """The batch `index` (from 0) of a training stream, as a tuple `(x, y[, sample_weight])`.

    Raises:
        ValueError: for a batch of another structure, naming it.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(
            f"Batch {index} (counting from 0) of the training stream must be a tuple "
            f"`(x, y)` or `(x, y, sample_weight)`. Received: {_described(batch)}"
        )
    return tuple(batch)


class EarlyEndWarning(keras.callbacks.Callback):
    """Warn, naming the step, when a stream ends an epoch before `steps` steps.

    Keras's `fit` ends such an epoch with a warning that does not say where
    the stream ran out.

    Args:
        steps: The `steps_per_epoch` of the `fit`.
    """

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self._done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._done = 0

    def on_train_batch_end(self, batch, logs=None):
        self._done = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if self._done < self.steps and not self.model.stop_training:
            warnings.warn(
                f"The training stream ran out of data at step {self._done + 1} of "
                f"epoch {epoch + 1}: the epoch ended after {self._done} of its "
                f"`steps_per_epoch={self.steps}` steps. Make sure that the stream "
                "yields at least `steps_per_epoch * epochs` steps' worth of "
                "samples (`presample` samples a step).",
                UserWarning,
                stacklevel=2,
            )


class ArrayCandidates(keras.utils.PyDataset):
    """Uniformly drawn candidates from data with random access, a batch a step.

    Args:
        draw: A function of an integer array of indices returning the rows
            `(x, y, sample_weight)` at those indices.
        num_samples: The number of training samples.
        presample: The number of candidates of a step.
        steps: The number of steps of an epoch.
        seed: The seed of the draws.
    """

    def __init__(self, draw, num_samples, presample, steps, seed):
        super().__init__()
        self._draw = draw
        self.num_samples = num_samples
        self.presample = presample
        self.steps = steps
        self.seed = seed
        self.first_step = 0

    def __len__(self):
        return self.steps

    def indices(self, step):
        """The training-set indices of the candidates of `step` of this epoch."""
        rng = np.random.default_rng([self.seed, self.first_step + step])
        return rng.integers(0, self.num_samples, size=self.presample)

    def __getitem__(self, step):
        # Keras reads nested batches of a `PyDataset` as tuples, not lists.
        return keras.tree.lists_to_tuples(self._draw(self.indices(step)))


class HostArraySource:
    """Candidates from arrays, gathered on the host by `ArrayCandidates`.

    A source of candidates from arrays gives Keras's `fit` what to iterate
    over (`load()`) and turns each batch that `fit` hands the train step into
    the candidates `(x, y, sample_weight)` (`rows()`, traceable). This one
    hands `fit` the candidates themselves.
    """

    candidates = None

    def load(self, data, presample, steps, seed):
        """What `fit` iterates over: `steps` batches of `presample` candidates."""

        def draw(idxs):
            return nested.take(data, idxs)

        self.candidates = ArrayCandidates(
            draw, nested.num_samples(data[0]), presample, steps, seed
        )
        return self.candidates

    def set_first_step(self, step):
        """Number the steps of the coming epoch from `step` on."""
        self.candidates.first_step = step

    @staticmethod
    def rows(batch):
        return batch

    def release(self):
        """Forget the arrays."""
        self.candidates = None


class _RebatchedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` read in batches of `size` samples.

    The source's batches must all have the size of its first batch, except
    its last one, as `keras.Model.fit` expects of a `PyDataset`.
    """

    def __init__(self, source, size):
        super().__init__(
            workers=source.workers,
            use_multiprocessing=source.use_multiprocessing,
            max_queue_size=source.max_queue_size,
        )
        self.source = source
        self.size = size
        count = source.num_batches
        if count == 0:
            raise ValueError(
                "The training `PyDataset` must have at least one batch. "
                "Received: a PyDataset of 0 batches"
            )
        self._source_batch = nested.num_samples(checked_batch(source[0], 0))
        last = nested.num_samples(checked_batch(source[count - 1], count - 1))
        self._num_samples = (count - 1) * self._source_batch + last
        self._cached = (None, None)

    def __len__(self):
        return math.ceil(self._num_samples / self.size)

    def _source_rows(self, index):
        if self._cached[0] != index:
            self._cached = (index, checked_batch(self.source[index], index))
        return self._cached[1]

    def __getitem__(self, index):
        start = index * self.size
        stop = min(start + self.size, self._num_samples)
        parts = []
        while start < stop:
            batch, offset = divmod(start, self._source_batch)
            rows = min(stop - start, self._source_batch - offset)
            parts.append(nested.take(self._source_rows(batch), slice(offset, offset + rows)))
            start += rows
        return nested.concatenate(parts)

    def on_epoch_end(self):
        self.source.on_epoch_end()


def _rebatched_iterator(batches, size):
    """Regroup an iterator of batches into batches of `size` samples."""
    parts, count = [], 0
    for index, batch in enumerate(batches):
        batch = keras.tree.map_structure(np.asarray, checked_batch(batch, index))
        parts.append(batch)
        count += nested.num_samples(batch)
        while count >= size:
            joined = nested.concatenate(parts)
            yield nested.take(joined, slice(0, size))
            rest = nested.take(joined, slice(size, None))
            count -= size
            parts = [rest] if count else []
    if parts:
        yield nested.concatenate(parts)


def _rebatched_data_loader(loader, size):
    import torch

    class Rebatched(torch.utils.data.IterableDataset):
        def __iter__(self):
            return _rebatched_iterator(loader, size)

    return torch.utils.data.DataLoader(Rebatched(), batch_size=None)


def rebatched(stream, size):
    """The stream `stream` regrouped into batches of `size` samples.

    Raises:
        ValueError: for a stream of a kind that Keras's `fit` does not read.
    """
    if isinstance(stream, keras.utils.PyDataset):
        return _RebatchedPyDataset(stream, size)
    if isinstance(stream, types.GeneratorType):
        return _rebatched_iterator(stream, size)
    module = type(stream).__module__
    if module.startswith("tensorflow"):
        spec = stream.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                "The elements of the training `tf.data.Dataset` must be tuples "
                "`(x, y)` or `(x, y, sample_weight)`. Received: elements of the "
                f"structure {spec}"
            )
        return stream.rebatch(size)
    if module.startswith("torch"):
        return _rebatched_data_loader(stream, size)
    raise ValueError(
        "`x` must be arrays (or lists or dicts of arrays), a `tf.data.Dataset`, "
        "a `keras.utils.PyDataset`, a Python generator or a "
        f"`torch.utils.data.DataLoader`. Received: x of type {type(stream).__name__}"
    )


def first_batch_size(stream):
    """The number of samples in the first batch of `stream`, read without consuming it.

    Returns:
        An integer, or `None` when it cannot be read without consuming the
        stream (a Python generator).
    """
    if isinstance(stream, keras.utils.PyDataset):
        return nested.num_samples(checked_batch(stream[0], 0))
    if isinstance(stream, types.GeneratorType):
        return None
    batch = keras.tree.map_structure(np.asarray, checked_batch(next(iter(stream)), 0))
    return nested.num_samples(batch)
