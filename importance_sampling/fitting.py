"""The `fit` of every training class: `keras.Model.fit` with an importance step.

`BaseImportanceTraining.fit` checks what it is given, plans how the batches
are drawn (inside the train step from arrays or a stream of candidates, or on
the host by a sampler), installs the importance-sampling train step on the
model for the duration of the call (`importance_sampling.step`) and lets
Keras's own `fit` drive it, with its callbacks, progress bar, validation,
data adapters, `steps_per_execution` and distribution.
"""

import dataclasses
import numbers
import warnings
from typing import Any, Callable, NamedTuple, Optional

import keras
import numpy as np

from importance_sampling import candidates, keras_internals, signals
from importance_sampling.datasets import BaseDataset, InMemoryDataset
from importance_sampling.host import CompiledSide, HostSide, StepNumbers, StreamCandidates
from importance_sampling.model_wrappers import (
    OracleWrapper,
    _EvaluationSignals,
    installed_train_step,
    model_scope,
)
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.samplers.base import one_fallback_warning
from importance_sampling.step import ImportanceDraw, WeightedStep
from importance_sampling.utils import checks, nested
from importance_sampling.utils.checks import check_positive_int
from importance_sampling.utils.weights import user_sample_weights
from importance_sampling.variance import VarianceReductionSwitch, default_threshold

def _check_presample(presample):
    integer = isinstance(presample, numbers.Integral)
    checks.check_number(
        "presample", presample, low=1, low_open=not integer, integer=integer,
        expected="a positive integer (a number of candidates) or a float larger "
        "than 1 (a multiple of the batch size)",
    )


def _check_tau_th(tau_th):
    if tau_th is None or tau_th == "auto":
        return
    checks.check_number(
        "tau_th", tau_th, low=1,
        expected="`None` (always importance sampling), `'auto'` or a number of at "
        "least 1 (the variance reduction above which importance sampling is on)",
    )


def _check_fit_arguments(epochs, verbose, callbacks, shuffle, initial_epoch,
                         validation_steps, validation_batch_size, validation_freq):
    """Raise a `ValueError` for an argument of `fit` of a kind Keras's `fit` does not take."""
    checks.check_number("epochs", epochs, low=0, integer=True)
    checks.check_number("initial_epoch", initial_epoch, low=0, integer=True)
    checks.check_one_of("verbose", verbose, ("auto", 0, 1, 2))
    if not isinstance(shuffle, str) or shuffle != "batch":
        checks.check_bool("shuffle", shuffle)
    if callbacks is not None and not (
        isinstance(callbacks, (list, tuple))
        and all(isinstance(c, keras.callbacks.Callback) for c in callbacks)
    ):
        raise ValueError(
            "`callbacks` must be `None` or a list of `keras.callbacks.Callback`. "
            f"Received: callbacks={callbacks!r}"
        )
    checks.check_number("validation_steps", validation_steps, low=1, integer=True,
                        optional=True)
    checks.check_number("validation_batch_size", validation_batch_size, low=1,
                        integer=True, optional=True)
    freqs = validation_freq if isinstance(validation_freq, list) else [validation_freq]
    if not all(checks.is_number(f, low=1, integer=True) for f in freqs):
        raise ValueError(
            "`validation_freq` must be a positive integer (validate every that "
            "many epochs) or a list of them (the epochs to validate after). "
            f"Received: validation_freq={validation_freq!r}"
        )


def _warn_on_custom_train_step(model):
    """Tell the user that an overridden `train_step` will not be used."""
    if _own_train_step(type(model)):
        warnings.warn(
            f"The model {model.name!r} overrides `train_step`. Importance "
            "training runs its own weighted train step (the model's "
            "`compute_loss` and optimizer), so the custom `train_step` will "
            "not be called.",
            UserWarning,
            stacklevel=3,
        )


def _own_train_step(cls):
    """Whether a class below `keras.Model` defines `train_step`."""
    for klass in cls.__mro__:
        if klass is keras.Model:
            return False
        if "train_step" in vars(klass):
            return True
    return False


@dataclasses.dataclass
class _Plan:
    """What one call of `fit` hands to `keras.Model.fit`, checked beforehand.

    `kind` is `"arrays"` or `"stream"` (batches drawn in the train step from
    candidates of that origin) or `"host"` (drawn by a sampler on the host).
    """

    kind: str
    batch_size: int
    presample: int
    steps: Optional[int]
    validation_data: Any
    class_weight: Any
    dataset: Any = None
    arrays: Any = None
    stream: Any = None
    validation_arrays: bool = False


class BaseImportanceTraining:
    """The `fit` shared by all importance training classes.

    Subclasses implement `_make_sampler(dataset, presample, batch_size)`, the
    sampler of the steps drawn on the host, and may implement `_draw_settings()`, for
    steps drawn inside the train step by an `ImportanceDraw`.

    Args:
        model: A compiled `keras.Model`, trained in place.
        k: The bias exponent of `BiasedReweightingPolicy`.
        smooth: Additive smoothing of the scores, at least 0.
        adaptive_smoothing: Multiply `smooth` by a moving average of the
            scores.
        presample: Number of candidates scored for each batch (an `int`),
            or a multiple of the batch size (a `float`).
        score: The kind of score of `OracleWrapper`.
        layer: The layer of `score="gnorm"`.
        tau_th: `None` to sample by importance at every step, or the
            threshold of the variance reduction `tau` (a number, or `"auto"`
            for `(B + 3 b) / 3 b`) above which importance sampling is on.

    Attributes:
        importance_steps: The number of steps of the last `fit` whose batch
            was drawn by importance (not uniformly).
        sampler: The sampler of the steps of the last `fit` drawn on the
            host, or `None`.
    """

    def __init__(self, model, k, smooth, adaptive_smoothing, presample,
                 score="loss", layer=None, tau_th=None):
        smooth = checks.check_number("smooth", smooth, low=0)
        adaptive_smoothing = checks.check_bool("adaptive_smoothing", adaptive_smoothing)
        _check_presample(presample)
        _check_tau_th(tau_th)
        _warn_on_custom_train_step(model)
        self.model = model
        self.reweighting = BiasedReweightingPolicy(k)
        self.smooth = smooth
        self.adaptive_smoothing = adaptive_smoothing
        self.presample = presample
        self.tau_th = tau_th
        self.wrapper = OracleWrapper(model, self.reweighting, score=score, layer=layer)
        self._seed = np.random.randint(2**31 - 1)
        self._built_steps = {}
        self.importance_steps = 0
        self.sampler = None
        self._fit_metric = None
        self._restored_state = None

    stream_refusal = None

    def _make_sampler(self, dataset, presample, batch_size):
        raise NotImplementedError

    def _draw_settings(self):
        """The settings of the `ImportanceDraw` of a step drawn in the train step.

        Returns:
            A tuple of `(name, value)` pairs of keyword arguments, or `None`
            when the batches are drawn on the host by the sampler.
        """
        return None

    def _presample_size(self, batch_size):
        """The number of candidates of a step of `batch_size` items."""
        if isinstance(self.presample, (float, np.floating)):
            size = int(round(self.presample * batch_size))
        else:
            size = int(self.presample)
        if size <= batch_size:
            raise ValueError(
                "`presample` must be larger than `batch_size`: each step draws "
                "its batch from `presample` scored candidates. Received: "
                f"presample={self.presample!r}, batch_size={batch_size}. Pass a "
                "larger `presample`, or a float to score a multiple of the "
                "batch size (e.g. presample=3.0)"
            )
        return size

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True,
            class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        """Train the model with importance sampling; `keras.Model.fit`'s arguments.

        A sampled item enters the loss of its step with its importance
        weight times its user weight (`sample_weight` times the
        `class_weight` of its class), so the step minimises an estimate of
        the same weighted loss that `keras.Model.fit` minimises. Samples are
        scored by their unweighted loss.

        What an epoch is depends on `x`:

        - arrays: `steps_per_epoch` steps (`N // batch_size` by default),
          each drawing `presample` candidates uniformly with replacement;
          `shuffle` has no effect on them.
        - a stream (`tf.data.Dataset`, `keras.utils.PyDataset`, generator,
          `torch.utils.data.DataLoader`): one pass over the stream, whose
          samples are the candidates, `presample` of them a step (so
          `presample / batch_size` times fewer steps than samples per
          batch); `steps_per_epoch` as in `keras.Model.fit`.

        Args:
            x: Training inputs: arrays (or a list or dict of arrays), or a
                stream of `(x, y)` or `(x, y, sample_weight)` batches.
            y: Training targets for array inputs; `None` for a stream.
            batch_size: Number of samples per gradient update. Defaults to
                `32`; for a stream, `None` takes the size of its first batch.
            epochs: Number of epochs. Defaults to `1`.
            verbose: `0` for silence, `1` for the Keras progress bar, `2` for
                a line per epoch. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.
            validation_split: Fraction in `[0, 1)` of array training data
                (taken from the end) to hold out for validation. Defaults
                to `0.0`.
            validation_data: Data to evaluate on at the end of each epoch,
                in any form `keras.Model.fit` takes. When given,
                `validation_split` is ignored and all of `x` is trained on.
            shuffle: Passed to Keras for streams; candidates from arrays are
                drawn at random anyway. Defaults to `True`.
            class_weight: A dict mapping class indices to a weight of the
                samples of that class in the loss.
            sample_weight: An array with one weight per training sample
                (arrays only; a stream carries its own).
            initial_epoch: The epoch at which to start training. Defaults
                to `0`.
            steps_per_epoch: Number of gradient updates per epoch.
            validation_steps: Number of validation batches to read.
            validation_batch_size: Batch size of the validation.
            validation_freq: Validate every `validation_freq` epochs.
                Defaults to `1`.

        Returns:
            A `keras.callbacks.History`.

        Raises:
            ValueError: before any step, for an argument of the wrong kind
                or value, or for array data that the model cannot train on
                (not numbers, no samples, class targets that do not fit the
                compiled loss); during training, for a batch of a stream
                that is not `(x, y)` or `(x, y, sample_weight)`, naming it.
                A stream that ends an epoch before `steps_per_epoch` steps
                ends it with a warning naming the step.
        """
        _check_fit_arguments(
            epochs=epochs, verbose=verbose, callbacks=callbacks, shuffle=shuffle,
            initial_epoch=initial_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq,
        )
        plan = self._plan(
            x, y, batch_size, validation_split, validation_data,
            class_weight, sample_weight, steps_per_epoch,
        )
        if validation_batch_size is None and plan.validation_arrays:
            validation_batch_size = plan.batch_size
        if plan.stream is not None and plan.steps is not None:
            callbacks = list(callbacks or []) + [candidates.EarlyEndWarning(plan.steps)]
        # Candidates are drawn at random from arrays, and a stream is read
        # in its own order: `shuffle` has no effect.
        del shuffle
        return self._run(plan, epochs, callbacks, dict(
            verbose=verbose, initial_epoch=initial_epoch,
            validation_steps=validation_steps,
            validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
        ))

    def fit_generator(self, train, steps_per_epoch=None, batch_size=32, epochs=1,
                      verbose=1, callbacks=None, validation_data=None,
                      validation_steps=None):
        """Train the model on batches read from a stream; see `fit`.

        Args:
            train: A generator yielding `(x, y)` batches, a
                `keras.utils.PyDataset` or a `tf.data.Dataset` of `(x, y)`
                batches.
            steps_per_epoch: Number of gradient updates per epoch. Defaults
                to one pass over the stream.
            batch_size: Number of samples per gradient update; it need not be
                the stream's batch size. Defaults to `32`.
            epochs: Number of epochs. Defaults to `1`.
            verbose: Verbosity, as in `fit`. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.
            validation_data: Validation data in any form `fit` takes.
            validation_steps: Number of batches to read from a validation
                generator.

        Returns:
            A `keras.callbacks.History`.
        """
        return self.fit(
            train, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_data=validation_data,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
        )

    def fit_dataset(self, dataset, steps_per_epoch=None, batch_size=32, epochs=1,
                    verbose=1, callbacks=None):
        """Train the model on a `BaseDataset`; see `fit`.

        Args:
            dataset: A `importance_sampling.datasets.BaseDataset` (its test
                split, if any, is evaluated at the end of each epoch) or a
                `tf.data.Dataset` of `(x, y)` batches.
            steps_per_epoch: Number of gradient updates per epoch. Defaults to
                the number of training samples divided by `batch_size`.
            batch_size: Number of samples per gradient update. Defaults to `32`.
            epochs: Number of epochs. Defaults to `1`.
            verbose: Verbosity, as in `fit`. Defaults to `1`.
            callbacks: A list of `keras.callbacks.Callback`.

        Returns:
            A `keras.callbacks.History`.
        """
        if not isinstance(dataset, BaseDataset):
            return self.fit(
                dataset, batch_size=batch_size, epochs=epochs, verbose=verbose,
                callbacks=callbacks, steps_per_epoch=steps_per_epoch,
            )
        evaluation = dataset.evaluation_arguments() or {}
        validation = evaluation.get("x")
        if "y" in evaluation:
            validation = (evaluation["x"], evaluation["y"])
        if not dataset.random_access:
            return self.fit(
                dataset.stream, batch_size=batch_size, epochs=epochs,
                verbose=verbose, callbacks=callbacks, validation_data=validation,
                steps_per_epoch=steps_per_epoch,
                validation_steps=evaluation.get("steps"),
            )
        return self.fit(
            dataset, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_data=validation,
            steps_per_epoch=steps_per_epoch,
        )

    # What `fit` hands to Keras

    def _plan(self, x, y, batch_size, validation_split, validation_data,
              class_weight, sample_weight, steps_per_epoch):
        """Check the arguments of `fit` and decide what Keras's `fit` gets."""
        if steps_per_epoch is not None:
            check_positive_int("steps_per_epoch", steps_per_epoch)
        checks.check_number("validation_split", validation_split, low=0, high=1,
                            high_open=True)
        if isinstance(x, BaseDataset) or not candidates.is_stream(x):
            plan = self._array_plan(
                x, y, batch_size, validation_split, validation_data,
                class_weight, sample_weight, steps_per_epoch,
            )
        else:
            plan = self._stream_plan(
                x, y, batch_size, validation_split, validation_data, class_weight,
                sample_weight, steps_per_epoch,
            )
        plan.validation_arrays = _are_arrays(plan.validation_data)
        self._check_distribution(plan)
        return plan

    def _array_plan(self, x, y, batch_size, validation_split, validation_data,
                    class_weight, sample_weight, steps_per_epoch):
        if batch_size is None:
            batch_size = 32
        check_positive_int("batch_size", batch_size)
        if isinstance(x, InMemoryDataset):
            dataset, arrays = x, (*x.train_data[:], np.ones(len(x.train_data), "float32"))
        elif isinstance(x, BaseDataset):
            # Its samples may change at every access (augmentation): the
            # sampler reads them on the host, step by step.
            dataset, arrays = x, None
        else:
            if x is None:
                raise ValueError(
                    "`x` is required: training arrays or a stream of batches. "
                    "Received: x=None"
                )
            if y is None:
                raise ValueError(
                    "`y` is required when `x` holds arrays. Received: y=None"
                )
            x, y = nested.to_numpy(x), nested.to_numpy(y)
            nested.check_lengths(x, y, "training")
            checks.check_training_arrays(self.model, x, y)
            weights = user_sample_weights(y, class_weight, sample_weight)
            if weights is None:
                weights = np.ones(nested.num_samples(x), "float32")
            if validation_data is None and validation_split:
                count = nested.num_samples(x)
                kept = count - int(count * validation_split)
                if kept < count:
                    validation_data = nested.take((x, y), slice(kept, None))
                    x, y, weights = nested.take((x, y, weights), slice(0, kept))
            dataset, arrays = InMemoryDataset(x, y, categorical=False), (x, y, weights)
        num_samples = len(dataset.train_data)
        if batch_size > num_samples:
            raise ValueError(
                "`batch_size` must not exceed the number of training samples. "
                f"Received: batch_size={batch_size} for {num_samples} training samples"
            )
        # Variables made while tracing would make the step trace twice.
        self.wrapper.build(*dataset.train_data[:1])
        host = arrays is None or not self._draws_in_step()
        return _Plan(
            kind="host" if host else "arrays", batch_size=batch_size,
            presample=self._presample_size(batch_size), dataset=dataset,
            arrays=arrays, steps=steps_per_epoch or max(1, num_samples // batch_size),
            validation_data=validation_data, class_weight=None,
        )

    def _stream_plan(self, x, y, batch_size, validation_split, validation_data,
                     class_weight, sample_weight, steps_per_epoch):
        if self.stream_refusal:
            raise NotImplementedError(self.stream_refusal)
        if y is not None:
            raise ValueError(
                "`y` must be `None` when `x` is a stream of batches, which "
                f"carries its targets. Received: y of type {type(y).__name__}"
            )
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` cannot be given for a stream of batches: "
                "yield `(x, y, sample_weight)` batches instead. Received: "
                f"sample_weight of type {type(sample_weight).__name__}"
            )
        if validation_split:
            raise ValueError(
                "`validation_split` needs array inputs; pass `validation_data` "
                f"for a stream. Received: validation_split={validation_split}"
            )
        if batch_size is None:
            batch_size = candidates.first_batch_size(x)
            if batch_size is None:
                raise ValueError(
                    "`batch_size` is required for a Python generator, whose "
                    "first batch cannot be read ahead. Received: batch_size=None"
                )
        check_positive_int("batch_size", batch_size)
        presample = self._presample_size(batch_size)
        host = not self._draws_in_step()
        return _Plan(
            kind="host" if host else "stream", batch_size=batch_size,
            presample=presample, dataset=StreamCandidates() if host else None,
            # Each process feeds its share of the step's candidates.
            stream=candidates.rebatched(x, presample // self.wrapper.backend.processes()),
            steps=steps_per_epoch,
            validation_data=validation_data, class_weight=class_weight,
        )

    def _draws_in_step(self):
        """Whether the batches are drawn inside the train step.

        They are drawn on the host by a sampler when the training class has
        no `ImportanceDraw`, or when someone listens to the signals
        `is.sample`, `is.score` or `is.training`, whose payloads exist on
        the host only.
        """
        return self._draw_settings() is not None and not signals.host_signals_received()

    def _check_distribution(self, plan):
        # Replicas (tf.distribute) or devices (keras.distribution, over all
        # processes) that each get an equal share of a batch.
        replicas = self.wrapper.backend.shards(self.model)
        for name in ("batch_size", "presample"):
            value = getattr(plan, name)
            if value % replicas:
                raise ValueError(
                    f"`{name}` must be a multiple of the number of replicas or "
                    f"devices, {replicas}, since each gets an equal share of it. "
                    f"Received: {name}={value}"
                )
        distributed = replicas > 1 or keras.distribution.distribution() is not None
        if plan.kind == "host" and distributed:
            raise ValueError(
                "Steps drawn on the host (for `ApproximateImportanceTraining`, "
                "`adaptive_smoothing=True` or receivers of the `is.sample`, "
                "`is.score` or `is.training` signals) run on one device. "
                "Received: a model distributed over several devices"
            )

    # Running Keras's `fit` with the importance-sampling step

    def _run(self, plan, epochs, callbacks, fit_kwargs):
        """Run `keras.Model.fit` with the importance step, then restore the model."""
        model = self.model
        built = self._built_step(plan)
        self._fit_metric = built.switch
        callbacks = list(callbacks or []) + [_EvaluationSignals(), _RestoredState(self)]
        if plan.kind == "host":
            if model.steps_per_execution > 1:
                warnings.warn(
                    "Steps drawn on the host run one step per call of the train "
                    "function; `steps_per_execution="
                    f"{model.steps_per_execution}` is ignored.",
                    UserWarning,
                    stacklevel=3,
                )
            sampler = self.sampler = self._make_sampler(
                plan.dataset, plan.presample, plan.batch_size
            )
            side = HostSide(self.wrapper, sampler, plan.batch_size, plan.arrays,
                             plan.dataset)
            if plan.dataset.random_access:
                # Keras iterates over the step numbers; the sampler draws.
                x, keras_batch_size, steps = np.arange(plan.steps), 1, None
            else:
                x, keras_batch_size, steps = plan.stream, None, plan.steps
        else:
            self.sampler = None
            side = CompiledSide()
            callbacks.append(side)
            keras_batch_size, steps = None, plan.steps
            if plan.kind == "arrays":
                # Another stream than the draws in the step, of the same seed.
                x = built.source.load(
                    plan.arrays, plan.presample, plan.steps,
                    (self._seed + 1) % (2**31 - 1),
                )
                callbacks.append(StepNumbers(built.source))
                steps = None
            else:
                x = plan.stream
        backend_module = self.wrapper.backend

        def train_function(*args):
            return side(built.train_function, args, backend_module)

        if built.switch is not None:
            built.switch.restart()
        try:
            with installed_train_step(model, built.train_step, train_function), \
                    one_fallback_warning(), \
                    keras_internals.training_metrics(
                        model, [built.switch, getattr(built.step, "unbiased_loss", None)]
                    ) as metric:
                history = model.fit(
                    x, None, batch_size=keras_batch_size, epochs=epochs,
                    callbacks=callbacks + [metric], steps_per_epoch=steps,
                    class_weight=plan.class_weight, shuffle=False,
                    validation_data=plan.validation_data, **fit_kwargs,
                )
                self.importance_steps = side.importance_steps
                return history
        finally:
            if built.source is not None:
                built.source.release()

    def _built_step(self, plan):
        """The train step of `plan` and Keras's train function, built once.

        They are kept across calls of `fit` with the same kind of data, batch
        size, presample and compilation of the model, as `keras.Model.fit`
        keeps its train function, so that they are traced once.
        """
        model = self.model
        settings = self._draw_settings()
        key = (plan.kind, plan.batch_size, plan.presample, settings, self.tau_th,
               model.steps_per_execution, model.jit_compile, id(model.optimizer))
        if key not in self._built_steps:
            backend_module = self.wrapper.backend
            source = backend_module.array_source() if plan.kind == "arrays" else None
            with model_scope(model):
                metric = self._step_metric(plan)
            draw = None
            if plan.kind != "host":
                draw = self._make_draw(plan, None if source is None else source.rows, metric)
            step = self._make_step(plan, metric)
            train_step = backend_module.make_train_step(model, step, draw)
            # Keras (JAX under a distribution) lays out the metrics' state
            # when it makes the train function: the step's metrics take part.
            with installed_train_step(model, train_step), keras_internals.training_metrics(
                model, [metric, getattr(step, "unbiased_loss", None)]
            ):
                model.make_train_function(force=True)
                self._built_steps[key] = _BuiltStep(
                    step, train_step, model.train_function, source, metric
                )
        return self._built_steps[key]

    def _step_metric(self, plan):
        """A metric that the steps of `plan` read and update, or `None`.

        During `fit` it is one of the model's metrics, so that Keras threads
        its state through the train step on every backend and its result is
        in the training logs; its `restart()` is called at the start of
        `fit`. Here it is the `VarianceReductionSwitch` of `tau_th` for steps
        drawn in the train step (a host sampler keeps its own condition).
        """
        threshold = self.tau_threshold(plan.batch_size, plan.presample)
        if threshold is None or plan.kind == "host":
            return None
        return VarianceReductionSwitch(threshold)

    def _make_draw(self, plan, rows, metric):
        """The draw of the steps of `plan` drawn in the train step.

        Args:
            plan: The `_Plan` of the `fit`.
            rows: A function turning the batch that Keras hands the step into
                the candidates, or `None` for the batch itself.
            metric: What `_step_metric(plan)` returned.
        """
        return ImportanceDraw(
            self.wrapper, self.reweighting, plan.batch_size, plan.presample,
            seed=self._seed, rows=rows, switch=metric, **dict(self._draw_settings()),
        )

    def _make_step(self, plan, metric):
        """The `WeightedStep` of `plan`; `metric` is `_step_metric(plan)`."""
        return WeightedStep(self.wrapper, return_scores=plan.kind == "host", switch=metric)

    def tau_threshold(self, batch_size, presample):
        """The threshold of `tau` for `batch_size` items from `presample`, or `None`."""
        if self.tau_th == "auto":
            return default_threshold(presample, batch_size)
        return None if self.tau_th is None else float(self.tau_th)

    def get_state(self):
        """The state of the sampling that the model's weights do not hold.

        It is what a run resumed from the model's weights needs to go on as
        the uninterrupted run would: the state of the last `fit`'s host
        sampler (its learned scores and its random generator) and the
        variables of its step metric (e.g. the moving average `tau` of
        `tau_th`). `importance_sampling.callbacks.BackupAndRestore` saves
        it beside Keras's backup.

        Returns:
            A dict of NumPy arrays, numbers, strings, lists and dicts.
        """
        state = {}
        if self.sampler is not None:
            state["sampler"] = self.sampler.get_state()
        if self._fit_metric is not None:
            state["step_metric"] = [
                keras.ops.convert_to_numpy(v) for v in self._fit_metric.variables
            ]
        return state

    def set_state(self, state):
        """Restore a state of `get_state()` when the next `fit` starts.

        Called from a callback's `on_train_begin` (as by
        `importance_sampling.callbacks.BackupAndRestore`), it restores the
        state into the `fit` that is starting.

        Args:
            state: A dict returned by `get_state()`.
        """
        self._restored_state = state

    def _restore_state(self):
        """Restore the state given to `set_state()`, if any, into the running `fit`."""
        state, self._restored_state = self._restored_state, None
        if state is None:
            return
        expected = sorted(self.get_state())
        if sorted(state) != expected:
            raise ValueError(
                f"The state to restore does not fit this `fit` of "
                f"{type(self).__name__}, whose state has the entries {expected} "
                "(was it saved by a `fit` that drew its batches otherwise?). "
                f"Received: a state with the entries {sorted(state)}"
            )
        self._load_state(state)

    def _load_state(self, state):
        """Put `state`, of `get_state()`, into the objects of the running `fit`."""
        if self.sampler is not None:
            self.sampler.set_state(state["sampler"])
        if self._fit_metric is not None:
            for variable, value in zip(self._fit_metric.variables, state["step_metric"]):
                variable.assign(value)

    @property
    def trace_counts(self):
        """Number of traces of the compiled functions, by name.

        `train` counts the traces of the train steps (each of which also
        scores and draws, when the batch is drawn in the step), `score` the
        traces of the host samplers' scoring.
        """
        return {
            "train": sum(built.step.traces for built in self._built_steps.values()),
            "score": self.wrapper.score_traces,
        }


class _BuiltStep(NamedTuple):
    step: WeightedStep
    train_step: Callable
    train_function: Callable
    source: Any
    switch: Any


def _are_arrays(data):
    return data is not None and not candidates.is_stream(
        keras.utils.unpack_x_y_sample_weight(tuple(data))[0]
        if isinstance(data, (tuple, list)) else data
    )


class _RestoredState(keras.callbacks.Callback):
    """Restore the state given to a training's `set_state()` when `fit` starts.

    It follows the user's callbacks, so that a state that one of them gives
    in its `on_train_begin` is restored too.
    """

    def __init__(self, training):
        super().__init__()
        self.training = training

    def on_train_begin(self, logs=None):
        self.training._restore_state()
