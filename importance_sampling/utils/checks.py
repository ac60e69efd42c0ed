"""Checks of arguments and training data, with errors in the style of Keras.

Every check raises a `ValueError` that names what it checks, says what is
expected and shows what it received ("`name` must be ... Received:
name=value"). The argument checks return the value in its plain Python
type.
"""

import numbers

import keras
import numpy as np
from keras import tree

from importance_sampling.utils import nested


def _shown(value):
    """`value` as the message shows it: strings quoted, NumPy scalars plain."""
    return repr(value) if isinstance(value, str) else str(value)


def _refuse(name, value, expected):
    raise ValueError(f"`{name}` must be {expected}. Received: {name}={_shown(value)}")


def _describe(low, high, low_open, high_open, integer):
    """What the bounds ask for, e.g. "a positive integer" or "a number in [0, 1)"."""
    kind = "integer" if integer else "number"
    article = "an" if integer else "a"
    if high is None:
        if low is None:
            return f"{article} {kind}"
        if low == 0:
            return f"a {'positive' if low_open else 'non-negative'} {kind}"
        if low == 1 and integer and not low_open:
            return "a positive integer"
        return f"{article} {kind} {'larger than' if low_open else 'of at least'} {low}"
    if low is None:
        return f"{article} {kind} {'smaller than' if high_open else 'of at most'} {high}"
    opening, closing = "(" if low_open else "[", ")" if high_open else "]"
    return f"{article} {kind} in {opening}{low}, {high}{closing}"


def is_number(value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Whether `value` is a finite number (not a boolean) within bounds; see `check_number`."""
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or not np.isfinite(value):
        return False
    if low is not None and not (value > low if low_open else value >= low):
        return False
    return high is None or (value < high if high_open else value <= high)


def check_number(name, value, low=None, high=None, low_open=False, high_open=False,
                 integer=False, optional=False, expected=None):
    """A finite number (not a boolean) within bounds, as a `float` or an `int`.

    Args:
        name: The name of the argument, for the message.
        value: Its value.
        low: The smallest value allowed, or `None`.
        high: The largest value allowed, or `None`.
        low_open: Whether `low` itself is refused.
        high_open: Whether `high` itself is refused.
        integer: Whether the value must be an integer (an `int` or a NumPy
            integer; `2.0` is refused).
        optional: Whether `None` is allowed (and returned).
        expected: What the message says is expected, instead of a
            description of the bounds.

    Returns:
        `value` as an `int` (`integer=True`) or a `float`, or `None`.

    Raises:
        ValueError: naming the argument and showing its value.
    """
    if optional and value is None:
        return None
    if not is_number(value, low, high, low_open, high_open, integer):
        if expected is None:
            expected = _describe(low, high, low_open, high_open, integer)
            if optional:
                expected = f"`None` or {expected}"
        _refuse(name, value, expected)
    return int(value) if integer else float(value)


def check_positive_int(name, value):
    """A positive `int`; see `check_number`."""
    return check_number(name, value, low=1, integer=True)


def check_bool(name, value):
    """`value` as a `bool`, which it must be (a Python or NumPy boolean)."""
    if not isinstance(value, (bool, np.bool_)):
        _refuse(name, value, "a boolean, `True` or `False`")
    return bool(value)


def check_one_of(name, value, options):
    """`value`, which must be one of `options` (strings or integers)."""
    known = (isinstance(value, (str, numbers.Integral)) and not isinstance(value, bool)
             and value in options)
    if not known:
        _refuse(name, value, f"one of {tuple(options)}")
    return value


def check_seed(value, name="seed"):
    """A seed of NumPy's random generators: `None`, an integer of at least 0 or a list of them."""
    seeds = value if isinstance(value, (list, tuple)) else [value]
    if value is not None and not (seeds and all(is_number(s, low=0, integer=True)
                                                for s in seeds)):
        _refuse(name, value, "`None`, a non-negative integer or a list of them")
    return value


# Training data


def _paths(name, data):
    """`(name, leaf)` of every array of `data`, named like `x`, `x[0]` or `x['image']`."""
    for path, leaf in tree.flatten_with_path(data):
        yield name + "".join(f"[{key!r}]" for key in path), leaf


def _takes_strings(model):
    inputs = getattr(model, "inputs", None) or []
    return any(keras.backend.standardize_dtype(i.dtype) == "string" for i in inputs)


def check_training_arrays(model, x, y):
    """Raise a `ValueError` for training arrays that `model` cannot train on.

    The arrays must hold numbers (or booleans; strings in `x` for a model
    with string inputs) and at least one sample, and class targets must fit
    the compiled loss (see `check_class_targets`).

    Args:
        model: The compiled `keras.Model`.
        x: Inputs: a NumPy array, or a list or dict of them.
        y: Targets, likewise.
    """
    strings = _takes_strings(model)
    for name, data in (("x", x), ("y", y)):
        for path, array in _paths(name, data):
            numeric = np.issubdtype(array.dtype, np.number) or array.dtype == bool
            if not (numeric or (name == "x" and strings and array.dtype.kind in "US")):
                raise ValueError(
                    f"`{path}` must hold numbers (an array of a numeric or boolean "
                    f"dtype). Received: {path} of dtype {array.dtype} and shape "
                    f"{array.shape}"
                )
    if nested.num_samples(x) == 0:
        raise ValueError(
            "The training data must hold at least one sample. Received: x and y "
            "with 0 samples"
        )
    _check_class_targets(model, y)


def _loss_function(model):
    """The function of a model's single compiled loss, or `None`."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss.values()))
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return None
    return getattr(loss, "fn", loss)


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_class_targets(model, y):
    """Raise a `ValueError` for class targets that do not fit the compiled loss.

    For a model with one output of a known shape `(batch, ..., classes)`
    compiled with `sparse_categorical_crossentropy`, `y` must hold integer
    class indices in `[0, classes)`, of shape `(N, ...)` or `(N, ..., 1)`;
    with `categorical_crossentropy`, one-hot rows of shape `(N, ...,
    classes)`. Other models and losses are not checked.
    """
    outputs = getattr(model, "outputs", None) or []
    loss = _loss_function(model)
    sparse = loss is keras.losses.sparse_categorical_crossentropy
    if len(outputs) != 1 or tree.is_nested(y) or not (
        sparse or loss is keras.losses.categorical_crossentropy
    ):
        return
    output = tuple(outputs[0].shape)
    classes = output[-1]
    y = np.asarray(y)
    indices = y.ndim == len(output) - 1 or (y.ndim == len(output) and y.shape[-1] == 1)
    one_hot = ("N",) + output[1:]
    if sparse:
        fits, hint = indices, "one-hot targets need `categorical_crossentropy`"
        expected = f"integer class indices, of shape {_shape_text(one_hot[:-1])}"
    else:
        fits = y.ndim == len(output) and all(
            d is None or d == s for d, s in zip(output[1:], y.shape[1:])
        )
        hint = ("class indices need `sparse_categorical_crossentropy` or "
                f"`keras.utils.to_categorical(y, {classes})`")
        expected = f"one-hot targets, of shape {_shape_text(one_hot)}"
    name = loss.__name__
    if not fits:
        looks_other = y.ndim == len(output) and not indices if sparse else indices
        raise ValueError(
            f"`y` does not fit the loss `{name}` of model {model.name!r}, which takes "
            f"{expected}{f' ({hint})' if looks_other else ''}. Received: y of shape {y.shape}"
        )
    if sparse and classes is not None and y.size:
        labels = y.astype("float64").reshape(-1)
        wrong = (labels < 0) | (labels >= classes) | (labels != np.round(labels))
        if wrong.any():
            raise ValueError(
                f"`y` does not fit the loss `{name}` of model {model.name!r}, which "
                f"takes integer class indices in [0, {classes}) for its {classes} "
                f"outputs. Received: y holding {_shown(y.reshape(-1)[wrong][0])}"
            )
