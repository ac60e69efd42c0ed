"""The per-sample weights that a user passes to `fit`."""

import numpy as np
from keras import tree

from importance_sampling.utils import nested


def _class_indices(y):
    """Class index of every target: one-hot rows, integer labels or binary."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] > 1:
        return y.argmax(axis=-1).reshape(len(y))
    return np.round(y).astype("int64").reshape(len(y))


def user_sample_weights(y, class_weight=None, sample_weight=None):
    """Combine `class_weight` and `sample_weight` into one weight per sample.

    As in `keras.Model.fit`, a class missing from `class_weight` has weight
    1, and both arguments may be given (their weights multiply).

    Args:
        y: Training targets, of one output.
        class_weight: A dict from class index to weight, or `None`.
        sample_weight: An array of one weight per sample, or `None`.

    Returns:
        A float32 array of shape `(num_samples,)`, or `None` when neither
        argument is given.

    Raises:
        ValueError: for weights of the wrong shape, negative or non-finite
            weights, or `class_weight` with targets of several outputs.
    """
    if class_weight is None and sample_weight is None:
        return None
    count = nested.num_samples(y)
    weights = np.ones(count, dtype="float32")
    if sample_weight is not None:
        given = np.asarray(sample_weight, dtype="float32")
        if given.size != count or given.ndim > 2:
            raise ValueError(
                "`sample_weight` must hold one weight per training sample, "
                f"of shape ({count},). Received: shape {given.shape}"
            )
        weights *= given.reshape(count)
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise ValueError(
                "`class_weight` must be a dict from class index to weight. "
                f"Received: class_weight of type {type(class_weight).__name__}"
            )
        if tree.is_nested(y):
            raise ValueError(
                "`class_weight` is only supported for models with a single "
                "output, as in `keras.Model.fit`. Received: targets for "
                f"{len(tree.flatten(y))} outputs"
            )
        classes = _class_indices(y)
        weights *= np.array([class_weight.get(int(c), 1.0) for c in classes], "float32")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            "Sample and class weights must be finite and non-negative. "
            f"Received: weights between {weights.min()} and {weights.max()}"
        )
    return weights
