"""The dataset interface the samplers draw from."""

import numpy as np

from importance_sampling.utils import nested


class DataProxy:
    """Index access to one split of a dataset: `dataset.train_data[idxs]`.

    An integer gives one sample, a slice or an integer array gives a batch;
    either way the result is a tuple `(x, y)`.
    """

    def __init__(self, dataset, split):
        self._dataset = dataset
        self._split = split

    def __getitem__(self, idxs):
        return self._dataset._get(self._split, idxs)

    def __len__(self):
        return self._dataset._size(self._split)

    def draw(self, count, rng):
        """Draw `count` samples uniformly with replacement.

        Returns:
            A tuple `(idxs, x, y)`.
        """
        return self._dataset._draw(self._split, count, rng)


class BaseDataset:
    """Training and test data that the samplers can draw from.

    Subclasses implement `_get(split, idxs)`, `_size(split)`, `shape` and
    `output_size`; `split` is `"train"` or `"test"`. Streamed datasets set
    `random_access = False` and override `_draw`.
    """

    random_access = True

    @property
    def train_data(self):
        """The training split, as a `DataProxy`."""
        return DataProxy(self, "train")

    @property
    def test_data(self):
        """The test split, as a `DataProxy`."""
        return DataProxy(self, "test")

    @property
    def shape(self):
        """The shape of one input sample."""
        raise NotImplementedError

    @property
    def output_size(self):
        """The size of one target (the number of classes for one-hot targets)."""
        raise NotImplementedError

    def _get(self, split, idxs):
        raise NotImplementedError

    def _size(self, split):
        raise NotImplementedError

    def _draw(self, split, count, rng):
        idxs = rng.integers(0, self._size(split), size=count)
        x, y = self._get(split, idxs)
        return idxs, x, y

    def evaluation_arguments(self):
        """Keyword arguments of `keras.Model.evaluate` for the test split.

        Returns:
            A dict, or `None` when the dataset has no test split.
        """
        if self._size("test") == 0:
            return None
        x, y = self._get("test", slice(None))
        return {"x": x, "y": y}


def as_batch(data, idxs):
    """`take` that turns an integer index into a single sample."""
    if isinstance(idxs, (int, np.integer)):
        return nested.take(data, int(idxs))
    return nested.take(data, idxs)
