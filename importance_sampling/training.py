"""Train a compiled Keras model with importance sampling.

```python
from importance_sampling.training import ImportanceTraining

model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
ImportanceTraining(model).fit(x_train, y_train, batch_size=128, epochs=3)
model.evaluate(x_test, y_test)  # the model was trained in place
```
"""

import functools
import warnings

import keras
import numpy as np
import tensorflow as tf

from importance_sampling.datasets import GeneratorDataset, InMemoryDataset
from importance_sampling.fused_step import FusedSampling, FusedStep, can_fuse
from importance_sampling.model_wrappers import OracleWrapper, _EvaluationSignals
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    LSTMSampler,
    ModelSampler,
)
from importance_sampling.utils import nested
from importance_sampling.utils.weights import user_sample_weights


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _warn_on_custom_train_step(model):
    """Tell the user that an overridden `train_step` will not be used."""
    if type(model).train_step is not keras.Model.train_step:
        warnings.warn(
            f"The model {model.name!r} overrides `train_step`. Importance "
            "training runs its own weighted train step (the compiled loss and "
            "optimizer, plus the model's regularisation losses), so the "
            "custom `train_step` will not be called.",
            UserWarning,
            stacklevel=3,
        )


def _smoothed(sampler, smooth, adaptive_smoothing):
    """Wrap `sampler` in the smoothing that the training arguments ask for."""
    if smooth == 0:
        return sampler
    if adaptive_smoothing:
        return AdaptiveAdditiveSmoothingSampler(sampler, smooth)
    return AdditiveSmoothingSampler(sampler, smooth)


def _default_steps_per_epoch(dataset, batch_size):
    """One pass over the training data, when its size is known."""
    if dataset.random_access:
        return max(1, len(dataset.train_data) // batch_size)
    steps = getattr(dataset, "batches_per_pass", None)
    if steps is None:
        raise ValueError(
            "`steps_per_epoch` is required for a stream of unknown length "
            "(a generator or an infinite dataset). Received: steps_per_epoch=None"
        )
    return steps


def _split_validation(data, validation_split):
    """Keep the last `validation_split` of the samples of `data` for validation.

    Returns:
        A tuple `(train, validation)` of structures like `data`;
        `validation` is `None` when nothing is held out.
    """
    count = nested.num_samples(data)
    num_train = count - int(count * validation_split)
    if num_train == count:
        return data, None
    return nested.take(data, slice(0, num_train)), nested.take(data, slice(num_train, None))


def _validation_pair(validation_data):
    """`(x_val, y_val)` from the `validation_data` argument of `fit`."""
    if validation_data is None:
        return None, None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(
            "`validation_data` must be a tuple `(x_val, y_val)` of arrays. "
            f"Received: {type(validation_data).__name__}"
            + (f" of length {len(validation_data)}"
               if isinstance(validation_data, (tuple, list)) else "")
        )
    return validation_data


class _BaseImportanceTraining:
    """The training loop shared by all importance training classes.

    Subclasses implement `_make_sampler(dataset)`.

    Args:
        model: A compiled `keras.Model`, trained in place.
        k: The bias exponent of `BiasedReweightingPolicy`.
        smooth: Additive smoothing of the scores, at least 0.
        adaptive_smoothing: Multiply `smooth` by a moving average of the
            scores.
        presample: Number of candidates scored for each batch.
    """

    def __init__(self, model, k, smooth, adaptive_smoothing, presample):
        if not smooth >= 0:
            raise ValueError(
                f"`smooth` must be a non-negative number. Received: smooth={smooth}"
            )
        _check_positive_int("presample", presample)
        _warn_on_custom_train_step(model)
        self.model = model
        self.reweighting = BiasedReweightingPolicy(k)
        self.smooth = float(smooth)
        self.adaptive_smoothing = bool(adaptive_smoothing)
        self.presample = presample
        self.wrapper = OracleWrapper(model, self.reweighting)
        self._fused_step = None

    def _make_sampler(self, dataset):
        raise NotImplementedError

    def _fused_sampling(self):
        """The `FusedSampling` that draws as `_make_sampler` does, or `None`."""
        return None

    def _step_function(self, dataset, batch_size, sample_weight):
        """A function that takes one training step and returns its logs.

        Data held in memory are trained on with a `FusedStep` when the
        sampling allows it; otherwise the sampler draws on the host.
        """
        sampling = self._fused_sampling()
        if sampling is not None and can_fuse(dataset):
            if self._fused_step is None or self._fused_step.sampling != sampling:
                self._fused_step = FusedStep(self.wrapper, sampling)
            take_step = self._fused_step.start(
                dataset.tensors(), sample_weight, seed=np.random.randint(2**31 - 1)
            )
            return functools.partial(take_step, batch_size)

        sampler = self._make_sampler(dataset)

        def host_step():
            batch = sampler.sample(batch_size)
            _, logs, scores = self.wrapper.train_batch(
                batch.x, batch.y, batch.weights, batch.metric_weights,
                None if sample_weight is None else sample_weight[batch.idxs],
            )
            sampler.update(batch.idxs, scores)
            return logs

        return host_step

    @property
    def trace_counts(self):
        """Number of traces of each compiled function, by name.

        `fused` is the whole step on data held in memory (see `FusedStep`),
        `train` the weighted train step (which `fused` calls) and `score`
        the host path's scoring of the candidates.
        """
        fused = 0 if self._fused_step is None else self._fused_step.trace_count
        return {**self.wrapper.trace_counts, "fused": fused}

    def _check_batch_size(self, dataset, batch_size):
        _check_positive_int("batch_size", batch_size)
        if self.presample <= batch_size:
            raise ValueError(
                "`presample` must be larger than `batch_size`. Received: "
                f"presample={self.presample}, batch_size={batch_size}"
            )
        if dataset.random_access and batch_size > len(dataset.train_data):
            raise ValueError(
                "`batch_size` must not exceed the number of training samples. "
                f"Received: batch_size={batch_size} for "
                f"{len(dataset.train_data)} training samples"
            )

    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, steps_per_epoch=None,
            class_weight=None, sample_weight=None):
        """Train the model on arrays.

        A sampled item enters the loss of its step with its importance
        weight times its user weight (`sample_weight` times the
        `class_weight` of its class), so the step minimises an estimate of
        the same weighted loss that `keras.Model.fit` minimises. Samples are
        scored by their unweighted loss.

        Args:
            x: Training inputs: a NumPy array, or a list or a dict (keyed by
                input name) of arrays for a model with several inputs.
            y: Training targets: a NumPy array, or a list or a dict (keyed by
                output name) of arrays for a model with several outputs.
            batch_size: Number of samples per gradient update. Defaults to `32`.
            epochs: Number of epochs of `steps_per_epoch` updates. Defaults to
                `1`.
            verbose: `0` for silence, `1` for the Keras progress bar, `2` for a
                line per epoch. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.
            validation_split: Fraction in `[0, 1)` of the training data (taken
                from the end) to hold out for validation. Defaults to `0.0`.
            validation_data: A tuple `(x_val, y_val)` of arrays to evaluate on
                at the end of each epoch. When given, `validation_split` is
                ignored and all of `x` is trained on, as in `keras.Model.fit`.
            steps_per_epoch: Number of gradient updates per epoch. Defaults to
                the number of training samples divided by `batch_size`.
            class_weight: A dict mapping class indices to a weight of the
                samples of that class in the loss (classes not in it weigh
                1), for a model with one output.
            sample_weight: An array with one weight per training sample.
                With `validation_split`, the weights of the held-out samples
                are not used.

        Returns:
            A `keras.callbacks.History`.
        """
        x, y = nested.to_numpy(x), nested.to_numpy(y)
        nested.check_lengths(x, y, "training")
        weights = user_sample_weights(y, class_weight, sample_weight)
        if not 0 <= validation_split < 1:
            raise ValueError(
                "`validation_split` must be in [0, 1). "
                f"Received: validation_split={validation_split}"
            )
        x_val, y_val = _validation_pair(validation_data)
        if validation_data is None:
            (x, y, weights), held_out = _split_validation((x, y, weights), validation_split)
            if held_out is not None:
                x_val, y_val, _ = held_out
        dataset = InMemoryDataset(x, y, x_val, y_val, categorical=False)
        return self._fit(dataset, steps_per_epoch, batch_size, epochs, verbose,
                         callbacks, sample_weight=weights)

    def fit_generator(self, train, steps_per_epoch=None, batch_size=32, epochs=1,
                      verbose=1, callbacks=None, validation_data=None,
                      validation_steps=None):
        """Train the model on batches read from a generator.

        The candidates of each step are the next samples of the stream, which
        is read on across epochs and never restarted.

        Args:
            train: An endless generator yielding `(x, y)` batches, a
                `keras.utils.PyDataset` or a `tf.data.Dataset` of `(x, y)`
                batches.
            steps_per_epoch: Number of gradient updates per epoch. Defaults
                to the number of batches of a finite `PyDataset` or
                `tf.data.Dataset`; required for a generator.
            batch_size: Number of samples per gradient update; it need not be
                the generator's batch size. Defaults to `32`.
            epochs: Number of epochs. Defaults to `1`.
            verbose: Verbosity, as in `fit`. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.
            validation_data: A tuple `(x_val, y_val)` of arrays, a generator
                of `(x, y)` batches, a `PyDataset` or a `tf.data.Dataset`.
            validation_steps: Number of batches to read from a validation
                generator.

        Returns:
            A `keras.callbacks.History`.
        """
        dataset = GeneratorDataset(train, validation_data, validation_steps)
        try:
            return self._fit(dataset, steps_per_epoch, batch_size, epochs,
                             verbose, callbacks)
        finally:
            dataset.close()

    def fit_dataset(self, dataset, steps_per_epoch=None, batch_size=32, epochs=1,
                    verbose=1, callbacks=None):
        """Train the model on a `BaseDataset`.

        Args:
            dataset: A `importance_sampling.datasets.BaseDataset` (its test
                split, if any, is evaluated at the end of each epoch) or a
                `tf.data.Dataset` of `(x, y)` batches.
            steps_per_epoch: Number of gradient updates per epoch. Defaults to
                the number of training samples divided by `batch_size`;
                required for streamed datasets.
            batch_size: Number of samples per gradient update. Defaults to `32`.
            epochs: Number of epochs. Defaults to `1`.
            verbose: Verbosity, as in `fit`. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.

        Returns:
            A `keras.callbacks.History`.
        """
        if isinstance(dataset, tf.data.Dataset):
            return self.fit_generator(
                dataset, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
                epochs=epochs, verbose=verbose, callbacks=callbacks,
            )
        return self._fit(dataset, steps_per_epoch, batch_size, epochs, verbose,
                         callbacks)

    def _fit(self, dataset, steps_per_epoch, batch_size, epochs, verbose,
             callbacks, sample_weight=None):
        """Check the arguments, then run the loop; see `fit_dataset`.

        `sample_weight` holds the user's weight of every training sample of
        `dataset`, or is `None`.
        """
        self._check_batch_size(dataset, batch_size)
        _check_positive_int("epochs", epochs)
        if steps_per_epoch is None:
            steps_per_epoch = _default_steps_per_epoch(dataset, batch_size)
        _check_positive_int("steps_per_epoch", steps_per_epoch)
        step = self._step_function(dataset, batch_size, sample_weight)
        callback_list = keras.callbacks.CallbackList(
            list(callbacks or []) + [_EvaluationSignals()],
            add_history=True,
            add_progbar=verbose != 0,
            model=self.model,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
        )
        history = next(
            c for c in callback_list.callbacks if isinstance(c, keras.callbacks.History)
        )
        self._run(dataset, step, callback_list, steps_per_epoch, batch_size, epochs)
        return history

    def _run(self, dataset, step_function, callbacks, steps_per_epoch, batch_size,
             epochs):
        """The loop of epochs of steps, with the callbacks and validation."""
        model = self.model
        evaluation = dataset.evaluation_arguments()
        model.stop_training = False
        callbacks.on_train_begin()
        # `BackupAndRestore` announces the epoch to resume from here, as in `fit`.
        first_epoch, model._initial_epoch = model._initial_epoch or 0, None
        epoch_logs = {}
        for epoch in range(first_epoch, epochs):
            self.wrapper.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            logs = {}
            for step in range(steps_per_epoch):
                callbacks.on_train_batch_begin(step)
                logs = step_function()
                callbacks.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            epoch_logs = dict(logs)
            if evaluation is not None:
                val_logs = self.wrapper.evaluate(
                    **evaluation, batch_size=batch_size, callbacks=callbacks
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        callbacks.on_train_end(logs=epoch_logs)


class ImportanceTraining(_BaseImportanceTraining):
    """Train a model with importance sampling, scoring samples by their loss.

    For every batch, `presample` samples are drawn uniformly and their loss is
    computed with a forward pass of the model; the batch is then drawn from
    them in proportion to their loss, and the step is weighted with the
    biased importance weights of `BiasedReweightingPolicy(k)`. On arrays
    (without adaptive smoothing) all of it runs as one compiled call per
    step, a `FusedStep`.

    Args:
        model: A compiled `keras.Model`, trained in place. With several
            outputs, a sample's score is its total loss (the
            `loss_weights`-weighted sum over the outputs).
        k: Bias exponent in `(-inf, 1]`; smaller values focus more on hard
            examples, `k=1` is unbiased. Defaults to `0.5`.
        smooth: Added to every score before sampling, pulling the
            distribution towards uniform. Defaults to `0.0`.
        adaptive_smoothing: When `True`, `smooth` is multiplied by a moving
            average of the scores (the training loss). Defaults to `False`.
        presample: Number of samples scored per batch; must be larger than
            the batch size. Defaults to `256`.
        forward_batch_size: Batch size of the scoring forward passes.
            Defaults to `128`.

    Raises:
        ValueError: for an uncompiled model, `k > 1` or a negative `smooth`.

    References:
        - [Katharopoulos & Fleuret, 2017](https://arxiv.org/abs/1706.00043)
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)

    Example:

    ```python
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    ImportanceTraining(model, k=0.5).fit(x, y, batch_size=128, epochs=3)
    ```
    """

    def __init__(self, model, k=0.5, smooth=0.0, adaptive_smoothing=False,
                 presample=256, forward_batch_size=128):
        super().__init__(model, k, smooth, adaptive_smoothing, presample)
        _check_positive_int("forward_batch_size", forward_batch_size)
        self.forward_batch_size = forward_batch_size

    def _make_sampler(self, dataset):
        sampler = ModelSampler(
            dataset, self.reweighting, self.wrapper,
            large_batch=self.presample,
            forward_batch_size=self.forward_batch_size,
        )
        return _smoothed(sampler, self.smooth, self.adaptive_smoothing)

    def _fused_sampling(self):
        # The adaptive smoothing keeps a moving average on the host.
        if self.adaptive_smoothing and self.smooth > 0:
            return None
        return FusedSampling(self.presample, self.forward_batch_size, self.smooth)


class ApproximateImportanceTraining(_BaseImportanceTraining):
    """Train a model with importance sampling on predicted losses.

    A small LSTM predicts the loss of each sample from the history of its
    observed losses and its class (see `LSTMSampler`), so no forward pass of
    the model is spent on scoring. It can be faster than `ImportanceTraining`
    for a model whose forward pass costs more than the predictor's over the
    presample (for small models it is slower; see `docs/benchmarks.md`), but
    it is less accurate, and it needs random access to the data and integer
    or one-hot class targets.

    Args:
        model: A compiled `keras.Model` with one output; it is trained in
            place.
        k: Bias exponent in `(-inf, 1]`. Defaults to `0.5`.
        smooth: Added to every predicted score before sampling. Defaults to
            `0.0`.
        adaptive_smoothing: When `True`, `smooth` is multiplied by a moving
            average of the scores. Defaults to `False`.
        presample: Number of samples whose score is predicted per batch.
            Defaults to `2048`.
    """

    def __init__(self, model, k=0.5, smooth=0.0, adaptive_smoothing=False,
                 presample=2048):
        super().__init__(model, k, smooth, adaptive_smoothing, presample)

    def _make_sampler(self, dataset):
        sampler = LSTMSampler(dataset, self.reweighting, presample=self.presample)
        return _smoothed(sampler, self.smooth, self.adaptive_smoothing)

    def fit_generator(self, *args, **kwargs):
        """Not supported: the loss predictor needs random access to the data.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "ApproximateImportanceTraining cannot train from a generator: its "
            "loss predictor keeps a history per training sample and needs the "
            "class of every sample, which a stream does not provide. Use "
            "`fit` with arrays, or `ImportanceTraining.fit_generator`."
        )
