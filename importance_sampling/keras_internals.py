"""Every private part of Keras that the library uses, in one place.

Keras 3 has no public API for these; each is named here so that a change in
Keras breaks one module, and the minimum Keras version in `pyproject.toml` is
the oldest one that has them all.
"""

import contextlib

import keras

# Re-exported, each named here once.
from keras.src.datasets.cifar import load_batch  # noqa: F401
from keras.src.datasets.npz_utils import load_npz  # noqa: F401
from keras.src.losses.loss import unscale_loss_for_distribution  # noqa: F401
from keras.src.trainers.data_adapters.py_dataset_adapter import (  # noqa: F401
    PyDatasetAdapter,
)
from keras.src.trainers.data_adapters import get_data_adapter  # noqa: F401
from keras.src.trainers.data_adapters.array_data_adapter import (  # noqa: F401
    can_convert_arrays,
)
from keras.src.trainers.trainer import model_supports_jit  # noqa: F401
from keras.src.utils import file_utils  # noqa: F401

# Also: `importance_sampling.callbacks.BackupAndRestore` extends the private
# `_save_model` and `_load_model` of `keras.callbacks.BackupAndRestore` and
# reads its `_training_metadata_path`.


def compiled_losses(model, y_true, y_pred):
    """The compiled loss of `model`: `(output_names, entries)`.

    Each entry has `path` (its place in the `loss` of `compile`), `loss` and
    `loss_weights`. `entries` is empty for a model compiled without a loss.
    The compiled loss is built for `y_true` and `y_pred` if it is not yet.
    """
    compile_loss = model._compile_loss
    if compile_loss is None:
        return [], []
    if not compile_loss.built:
        compile_loss.build(y_true, y_pred)
    return list(compile_loss.output_names or []), list(compile_loss._flat_losses)


def loss_tracker(model):
    """The metric whose result is the `loss` of the training logs."""
    return model._loss_tracker


def update_compiled_metrics(model, y, y_pred, metric_weights, sample_weight):
    """Update every compiled metric, weighted by `metric_weights`.

    Keras weights only the `weighted_metrics` of `compile`, by the user's
    sample weights. Here `metric_weights` reach every metric, and the
    `weighted_metrics` are also weighted by `sample_weight`, as in `fit`.
    """
    compiled = model._compile_metrics
    if compiled is None:
        return
    if not compiled.built:
        compiled.build(y, y_pred)
    y_true, y_pred = compiled._flatten_y(y), compiled._flatten_y(y_pred)
    for metric_lists, weights in (
        (compiled._flat_metrics, metric_weights),
        (compiled._flat_weighted_metrics, metric_weights * sample_weight),
    ):
        for metrics, y_t, y_p in zip(metric_lists, y_true, y_pred):
            if metrics is not None:
                metrics.update_state(y_t, y_p, sample_weight=weights)


def compute_loss(model, x, y, y_pred, sample_weight):
    """`model.compute_loss` in training mode, also for overrides without `training`."""
    return model._compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )


@contextlib.contextmanager
def training_metrics(model, metrics):
    """Make `metrics` some of `model.metrics` while `fit` trains.

    Keras threads the variables of `model.metrics` through the train step
    (JAX's stateless step among them) and puts their results in the logs.
    The context yields a callback for `fit` that takes the metrics out while
    `fit` validates, so that they are not in the validation logs (nor in a
    test function that Keras keeps). `None` entries are ignored.
    """
    callback = _TrainingOnly(model, [m for m in metrics if m is not None])
    callback.on_test_end()
    try:
        yield callback
    finally:
        callback.on_test_begin()


class _TrainingOnly(keras.callbacks.Callback):
    def __init__(self, model, metrics):
        super().__init__()
        self._owner = model
        self._extra = metrics

    def on_test_begin(self, logs=None):
        for metric in self._extra:
            if metric in self._owner._metrics:
                self._owner._metrics.remove(metric)

    def on_test_end(self, logs=None):
        for metric in self._extra:
            if metric not in self._owner._metrics:
                self._owner._metrics.append(metric)
