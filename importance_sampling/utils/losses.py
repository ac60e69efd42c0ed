"""Per-sample values of the loss a model was compiled with."""

import keras
from keras import ops


def _align_ranks(y_true, y_pred):
    """Expand the lower-rank side when ranks differ by one over a unit axis.

    This is what Keras does before calling a loss, so that `y` of shape
    `(batch,)` and a sigmoid output of shape `(batch, 1)` line up.
    """
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_true = ops.expand_dims(y_true, -1)
    elif true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_pred = ops.expand_dims(y_pred, -1)
    return y_true, y_pred


def _reduce_to_samples(values):
    """Mean over every axis but the first (time steps, pixels, ...)."""
    values = ops.convert_to_tensor(values)
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values


def per_sample_loss(loss):
    """Turn a `compile(loss=...)` argument into a per-sample loss function.

    Args:
        loss: A loss name, a `keras.losses.Loss` instance (its reduction is
            ignored) or a callable `f(y_true, y_pred)`.

    Returns:
        A function `f(y_true, y_pred)` returning a float32 tensor of shape
        `(batch_size,)`.

    Raises:
        ValueError: for a loss of another kind, such as a list or a dict of
            losses for a model with several outputs.
    """
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        loss_fn = loss.call
    elif callable(loss):
        loss_fn = loss
    else:
        raise ValueError(
            "Importance training needs a model compiled with a single loss: a "
            "loss name, a `keras.losses.Loss` or a callable. "
            f"Received: loss={loss!r} of type {type(loss).__name__}"
        )

    def compute(y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        y_true, y_pred = _align_ranks(y_true, y_pred)
        return _reduce_to_samples(loss_fn(y_true, y_pred))

    return compute
