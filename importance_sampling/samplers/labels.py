"""Class labels of a dataset's training targets."""

import numpy as np
from keras import tree


def class_labels(y):
    """Integer class labels from one-hot, sparse or binary targets.

    Returns:
        A tuple `(labels, num_classes)`.

    Raises:
        ValueError: for targets that are not classes.
    """
    if tree.is_nested(y):
        raise ValueError(
            "This sampler needs the class targets of a model with one output. "
            f"Received: targets for {len(tree.flatten(y))} outputs"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)
    else:
        flat = y.reshape(len(y), -1)
        if flat.shape[1] != 1 or not np.all(flat == np.round(flat)) or flat.min() < 0:
            raise ValueError(
                "This sampler needs class targets: one-hot rows or integer "
                f"labels. Received: targets of shape {y.shape} and dtype {y.dtype}"
            )
        labels = flat[:, 0]
    labels = labels.astype("int64")
    return labels, max(2, int(labels.max()) + 1)
