"""Per-sample values of the losses a model was compiled with."""

import keras
from keras import ops, tree

from importance_sampling import keras_internals


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


def _reduce_to_samples(values, mask=None):
    """Mean over every axis but the first (time steps, pixels, ...).

    With a `mask` (Keras's mask of the output, e.g. the padded time steps of
    a sequence) the mean is taken over the unmasked entries only.
    """
    values = ops.convert_to_tensor(values)
    axes = tuple(range(1, len(values.shape)))
    if mask is None:
        return ops.mean(values, axis=axes) if axes else values
    mask = ops.cast(mask, values.dtype)
    while len(mask.shape) > len(values.shape):
        mask = ops.squeeze(mask, -1)
    mask = ops.broadcast_to(mask, ops.shape(values))
    if not axes:
        return values * mask
    return ops.divide_no_nan(ops.sum(values * mask, axis=axes), ops.sum(mask, axis=axes))


def per_sample_loss_function(loss):
    """Turn one loss of `compile(loss=...)` into a per-sample loss function.

    Args:
        loss: A loss name, a `keras.losses.Loss` instance (its reduction is
            ignored) or a callable `f(y_true, y_pred)`.

    Returns:
        A function `f(y_true, y_pred)` returning a float32 tensor of shape
        `(batch_size,)`: the loss of each sample, averaged over any further
        axes (time steps, pixels), skipping the entries that Keras masks.

    Raises:
        ValueError: for a loss of another kind.
    """
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        loss_fn = loss.call
    elif callable(loss):
        loss_fn = loss
    else:
        raise ValueError(
            "Expected a loss name, a `keras.losses.Loss` or a callable "
            f"`f(y_true, y_pred)`. Received: loss={loss!r} of type "
            f"{type(loss).__name__}"
        )

    def compute(y_true, y_pred):
        mask = getattr(y_pred, "_keras_mask", None)
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        y_true, y_pred = _align_ranks(y_true, y_pred)
        return _reduce_to_samples(loss_fn(y_true, y_pred), mask)

    return compute


def _select(data, key, output_names):
    """The part of targets or predictions `data` that belongs to output `key`.

    `key` is an output's position or name; `data` a single array, a list in
    the order of the model's outputs, or a dict keyed by output name.
    """
    if not tree.is_nested(data):
        return data
    if isinstance(data, dict):
        return data[key if isinstance(key, str) else output_names[key]]
    return data[output_names.index(key) if isinstance(key, str) else key]


class ModelLoss:
    """The per-sample total of a model's compiled losses.

    For a model with several outputs the per-sample loss is the sum over the
    outputs of each output's loss times its `loss_weights` entry, as in the
    scalar loss that Keras minimises. Targets may be a single array, a list
    in the order of the outputs or a dict keyed by output name.

    Args:
        model: A compiled `keras.Model`.

    Raises:
        ValueError: at the first call, for a model compiled without a loss,
            or with losses nested deeper than one list or dict.
    """

    def __init__(self, model):
        self.model = model
        self.terms = None
        self._output_names = None

    def _resolve(self, y_true, y_pred):
        """Read the compiled losses, building them for `y_true` and `y_pred`."""
        model = self.model
        output_names, entries = keras_internals.compiled_losses(model, y_true, y_pred)
        if not entries:
            raise ValueError(
                "Importance training scores samples with the compiled loss; "
                f"compile the model {model.name!r} with `loss=...`. "
                "Received: a model compiled without a loss"
            )
        self._output_names = output_names
        terms = []
        for entry in entries:
            if len(entry.path) > 1:
                raise ValueError(
                    "Importance training supports losses given as one loss, "
                    "a list or a dict with one entry per output. Received: a "
                    f"loss nested at {entry.path}"
                )
            key = entry.path[0] if entry.path else None
            weight = 1.0 if entry.loss_weights is None else float(entry.loss_weights)
            terms.append((key, per_sample_loss_function(entry.loss), weight))
        self.terms = terms

    def output_losses(self, y_true, y_pred):
        """The per-sample loss of each output, unweighted, in a list."""
        if self.terms is None:
            self._resolve(y_true, y_pred)
        losses = []
        for key, loss_fn, _ in self.terms:
            if key is None:
                losses.append(loss_fn(y_true, y_pred))
            else:
                losses.append(loss_fn(
                    _select(y_true, key, self._output_names),
                    _select(y_pred, key, self._output_names),
                ))
        return losses

    def total(self, output_losses):
        """The `loss_weights`-weighted sum of `output_losses`."""
        return sum(weight * loss for (_, _, weight), loss in zip(self.terms, output_losses))

    def __call__(self, y_true, y_pred):
        return self.total(self.output_losses(y_true, y_pred))
