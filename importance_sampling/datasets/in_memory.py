"""Datasets held in memory as NumPy arrays."""

import numpy as np
from keras import tree

from importance_sampling.datasets.base import BaseDataset, as_batch
from importance_sampling.utils import nested




def _to_categorical(y, num_classes):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return y
    return np.eye(num_classes, dtype="float32")[y]


class InMemoryDataset(BaseDataset):
    """A dataset made of arrays.

    Args:
        x_train: Training inputs: an array, or a list or dict of arrays for a
            model with several inputs.
        y_train: Training targets: an array, or a list or dict of arrays for
            a model with several outputs.
        x_test: Test inputs, or `None`.
        y_test: Test targets, or `None`.
        categorical: When `True`, integer class labels of a single output are
            turned into one-hot rows. Defaults to `True`.

    Example:

    >>> import numpy as np
    >>> dataset = InMemoryDataset(np.zeros((4, 2)), np.array([0, 1, 2, 1]),
    ...                           np.zeros((2, 2)), np.array([0, 2]))
    >>> x, y = dataset.train_data[:2]
    >>> y.shape, dataset.output_size, len(dataset.test_data)
    ((2, 3), 3, 2)
    """

    def __init__(self, x_train, y_train, x_test=None, y_test=None, categorical=True):
        x_train, y_train = nested.to_numpy(x_train), nested.to_numpy(y_train)
        nested.check_lengths(x_train, y_train, "training")
        if x_test is not None:
            x_test, y_test = nested.to_numpy(x_test), nested.to_numpy(y_test)
            nested.check_lengths(x_test, y_test, "test")
        if categorical and not tree.is_nested(y_train):
            labels = [y for y in (y_train, y_test) if y is not None]
            if all(np.issubdtype(y.dtype, np.integer) for y in labels):
                num_classes = int(max(y.max() for y in labels if y.size)) + 1
                y_train = _to_categorical(y_train, num_classes)
                y_test = None if y_test is None else _to_categorical(y_test, num_classes)
        self._data = {"train": (x_train, y_train), "test": (x_test, y_test)}

    @classmethod
    def from_loadable(cls, loadable, categorical=True):
        """Make a dataset from a module with a Keras-style `load_data()`.

        Args:
            loadable: An object whose `load_data()` returns
                `((x_train, y_train), (x_test, y_test))`, such as
                `keras.datasets.mnist`.
            categorical: See the class arguments. Defaults to `True`.
        """
        (x_train, y_train), (x_test, y_test) = loadable.load_data()
        return cls(x_train, y_train, x_test, y_test, categorical=categorical)

    def _get(self, split, idxs):
        x, y = self._data[split]
        if x is None:
            raise IndexError(f"The dataset has no {split} data.")
        return as_batch((x, y), idxs)

    def _size(self, split):
        x, _ = self._data[split]
        return 0 if x is None else nested.num_samples(x)

    @property
    def shape(self):
        x, _ = self._data["train"]
        return nested.map_shapes(x)

    @property
    def output_size(self):
        _, y = self._data["train"]
        return tree.map_structure(lambda a: int(a.shape[1]) if a.ndim > 1 else 1, y)

