"""Indexing of data given as an array or a list or dict of arrays."""

import numpy as np
from keras import ops, tree


def _rows(array, idxs):
    """`array[idxs]`, also for a tensor indexed by an array or a tensor of indices."""
    if isinstance(array, np.ndarray) or isinstance(idxs, (slice, int, np.integer)):
        return array[idxs]
    return ops.take(array, idxs, axis=0)


def take(data, idxs):
    """Rows `idxs` of every array or tensor in `data` (`None` stays `None`)."""
    return tree.map_structure(lambda array: _rows(array, idxs), data, none_is_leaf=False)


def num_samples(data):
    """The common number of rows of the arrays in `data`.

    Raises:
        ValueError: if the arrays disagree.
    """
    lengths = {len(array) for array in tree.flatten(data) if array is not None}
    if len(lengths) != 1:
        raise ValueError(
            "All input arrays must have the same number of samples. "
            f"Received lengths: {sorted(lengths)}"
        )
    return lengths.pop()


def to_numpy(data):
    """Convert every leaf of `data` to a NumPy array."""
    return tree.map_structure(np.asarray, data)


def concatenate(parts):
    """Concatenate a list of equally structured batches along the first axis."""
    return tree.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


def map_shapes(data):
    """The shape of one sample of every array in `data`."""
    return tree.map_structure(lambda array: tuple(array.shape[1:]), data)


def check_lengths(x, y, name):
    """Raise a `ValueError` unless `x` and `y` have as many samples."""
    num_x, num_y = num_samples(x), num_samples(y)
    if num_x != num_y:
        raise ValueError(
            f"The {name} inputs and targets must have the same number of "
            f"samples. Received: {num_x} inputs and {num_y} targets"
        )
