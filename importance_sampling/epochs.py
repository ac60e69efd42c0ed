"""Training classes whose epoch is one pass over instances chosen for that epoch.

`SelectiveTraining` (the top or the bottom of the loss ranking) and
`InfoBatchTraining` (the data less some well-learned samples) choose, at the
start of every epoch, the instances of the epoch and a weight for each; the
epoch is one pass over them in batches, so its number of steps changes from
epoch to epoch.

Keras's `fit` fixes the number of steps of an epoch (and the progress bar's
target) once per call, so `EpochPassTraining.fit` runs Keras's own `fit`
once per epoch (`initial_epoch=epoch, epochs=epoch + 1`), all of them with
one `keras.callbacks.CallbackList` whose callbacks see a single training:
`on_train_begin` before the first epoch, `on_train_end` after the last, the
progress bar's target and `params["steps"]` set to each epoch's steps, one
`History` (whose `history["steps"]` holds the steps of every epoch), and
`model.stop_training` ending the whole training.
"""

import math

import keras
import numpy as np

from importance_sampling import keras_internals, signals
from importance_sampling.fitting import (
    BaseImportanceTraining,
    _RestoredState,
    check_positive_int,
)
from importance_sampling.host import HostSide
from importance_sampling.model_wrappers import _EvaluationSignals, installed_train_step
from importance_sampling.ranking import dataset_losses
from importance_sampling.samplers.base import BaseSampler, SampledBatch
from importance_sampling.utils import checks, nested

STEPS = "steps"


class EpochPassSampler(BaseSampler):
    """Draw the batches of one pass over the instances of an epoch.

    `start_epoch(indices, weights)` sets the epoch's instances; `sample()`
    then returns them `batch_size` at a time, shuffled (or in the order
    given). Every batch has `batch_size` items: the last batch of an epoch
    is filled up with instances of the epoch at weight 0, and its other
    items' weights are multiplied by `batch_size / count` so that the
    step's loss is the mean over its `count` real items, as in a last,
    partial batch of `keras.Model.fit`. Fixed shapes keep the compiled step
    from tracing again.

    Attributes:
        batch_positions: The positions (in the epoch's order) of the real
            items of the last batch.
        last_count: The number of real items of the last batch.
    """

    def __init__(self, dataset, reweighting, seed=None, shuffle=True):
        super().__init__(dataset, reweighting, seed)
        self.shuffle = shuffle
        self.order = np.zeros(0, dtype="int64")
        self.item_weights = np.zeros(0, dtype="float32")
        self.position = 0
        self.last_count = 0
        self.on_update = None

    def start_epoch(self, indices, weights=None):
        """Start a pass over `indices` (with per-item `weights`, ones by default)."""
        indices = np.asarray(indices, dtype="int64")
        weights = (np.ones(len(indices), "float32") if weights is None
                   else np.asarray(weights, "float32"))
        if self.shuffle:
            permutation = self.rng.permutation(len(indices))
            indices, weights = indices[permutation], weights[permutation]
        self.order, self.item_weights, self.position = indices, weights, 0

    def steps(self, batch_size):
        """The number of steps of a pass over the epoch's instances."""
        return max(1, math.ceil(len(self.order) / batch_size))

    def sample(self, batch_size):
        start = self.position
        stop = min(start + batch_size, len(self.order))
        if stop <= start:
            raise RuntimeError("The epoch's instances are exhausted")
        self.position = stop
        count = stop - start
        idxs = self.order[start:stop]
        weights = self.item_weights[start:stop]
        metric_weights = weights.copy()
        if count < batch_size:
            fill = self.rng.integers(0, len(self.order), size=batch_size - count)
            idxs = np.concatenate([idxs, self.order[fill]])
            weights = np.concatenate([weights * (batch_size / count),
                                      np.zeros(batch_size - count, "float32")])
            metric_weights = np.concatenate([metric_weights,
                                             np.zeros(batch_size - count, "float32")])
        self.last_count = count
        x, y = self.dataset.train_data[idxs]
        weights = weights.astype("float32")[:, None]
        # The items of the epoch, without the fill of a last batch.
        signals.sample.send({
            "idxs": idxs[:count], "xy": nested.take((x, y), slice(0, count)),
            "w": weights[:count], "predicted_scores": np.ones(count),
        })
        return SampledBatch(idxs, x, y, weights, metric_weights.astype("float32"),
                            np.ones(batch_size), False)

    def update(self, idxs, scores):
        if self.on_update is not None:
            count = self.last_count
            self.on_update(np.asarray(idxs)[:count], np.asarray(scores)[:count])


class _OneTraining(keras.callbacks.CallbackList):
    """The callbacks of all the per-epoch `fit`s, as the callbacks of one training.

    `on_train_begin` and `on_train_end` reach the callbacks once (from
    `begin()` and `end()`), `set_epoch_steps()` gives them each epoch's
    number of steps, and `epoch_end_hook(epoch, logs)` may add entries to
    an epoch's logs before the callbacks see them.
    """

    def __init__(self, callbacks, epoch_end_hook=None, **kwargs):
        super().__init__(callbacks, **kwargs)
        self._epoch_end_hook = epoch_end_hook
        self.last_logs = {}
        self.epoch_steps = []

    def begin(self):
        super().on_train_begin()

    def end(self):
        super().on_train_end(self.last_logs)

    def set_epoch_steps(self, steps):
        self.set_params({**self.params, "steps": steps})
        self.epoch_steps.append(steps)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        if self._async_train:
            self._flush_futures()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self._epoch_end_hook is not None:
            logs.update(self._epoch_end_hook(epoch, logs))
        super().on_epoch_end(epoch, logs)
        if self._history is not None:
            self._history.history.setdefault(STEPS, []).append(self.epoch_steps[-1])
        self.last_logs = logs


class EpochPassTraining(BaseImportanceTraining):
    """The `fit` of training classes that choose the instances of each epoch.

    Subclasses implement `_choose(epoch, epochs, sampler)`, which returns
    `(indices, weights)` of the epoch (weights may be `None`), and may use
    `self.fit_state` (see `fit`). Each epoch is one pass over the chosen
    instances, in batches of `batch_size`, shuffled unless `fit` gets
    `shuffle=False` (then in the order that `_choose` gives them).

    Args:
        model: A compiled `keras.Model`, trained in place.
        seed: The seed of the shuffling and of any random choice; `None`
            draws one from NumPy's global generator (which
            `keras.utils.set_random_seed` seeds).
        forward_batch_size: Samples per forward pass of the losses computed
            outside the train steps. Defaults to `128`.
    """

    stream_refusal = (
        "{name} cannot train from a stream: it chooses the instances of "
        "every epoch among all of the training data, which needs random "
        "access. Pass arrays (or a dataset of random access) to `fit`."
    )

    def __init__(self, model, seed=None, forward_batch_size=128):
        check_positive_int("forward_batch_size", forward_batch_size)
        seed = checks.check_number("seed", seed, low=0, integer=True, optional=True)
        super().__init__(model, 1.0, 0.0, False, 1)
        self.stream_refusal = self.stream_refusal.format(name=type(self).__name__)
        if seed is None:
            seed = np.random.randint(2**31 - 1)
        self.seed = seed
        self.forward_batch_size = forward_batch_size
        self.sampler = None
        self._fits = 0

    def _presample_size(self, batch_size):
        return batch_size

    def _make_sampler(self, dataset, presample, batch_size):
        # Another stream of random numbers for every `fit` of the same seed.
        return EpochPassSampler(dataset, self.reweighting,
                                seed=[self.seed, self._fits], shuffle=self._shuffle)

    def _choose(self, epoch, epochs, sampler):
        raise NotImplementedError

    def _on_scores(self, idxs, scores):
        """The training losses observed for `idxs` in a step."""

    def _epoch_logs(self, epoch, logs):
        """Entries to add to the logs of `epoch`, at its end."""
        return {}

    def _end_of_training(self):
        """Called once after the last epoch of a `fit`."""

    def training_losses(self):
        """The per-sample losses of the training data of the running `fit`, in inference mode."""
        return dataset_losses(self.wrapper, self._dataset, self.forward_batch_size)

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True,
            class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        """Train the model; `keras.Model.fit`'s arguments.

        Every epoch is one pass over the instances chosen at its start, in
        batches of `batch_size` (the last one partial), shuffled unless
        `shuffle=False`; `steps_per_epoch`, when given, caps the steps of an
        epoch. `History.history["steps"]` holds the steps of each epoch, and
        the progress bar counts them. Streams are refused: the choice needs
        random access to the training data.

        Returns:
            A `keras.callbacks.History`.
        """
        self._shuffle = bool(shuffle)
        self._steps_cap = steps_per_epoch
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle,
            class_weight=class_weight, sample_weight=sample_weight,
            initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
        )

    def _run(self, plan, epochs, callbacks, fit_kwargs):
        """Run Keras's `fit` once per epoch, each over the epoch's steps."""
        if plan.kind != "host":
            raise AssertionError("the epochs are drawn on the host")
        model = self.model
        built = self._built_step(plan)
        self._dataset = plan.dataset
        self._validation_data = plan.validation_data
        self._epochs = epochs
        sampler = self.sampler = self._make_sampler(plan.dataset, plan.presample,
                                                    plan.batch_size)
        self._fits += 1
        sampler.on_update = self._on_scores
        side = HostSide(self.wrapper, sampler, plan.batch_size, plan.arrays, plan.dataset)
        backend_module = self.wrapper.backend

        def train_function(*args):
            return side(built.train_function, args, backend_module)

        verbose = fit_kwargs.pop("verbose")
        initial_epoch = fit_kwargs.pop("initial_epoch")
        with installed_train_step(model, built.train_step, train_function), \
                keras_internals.training_metrics(model, [built.step.unbiased_loss]) as metric:
            training = _OneTraining(
                list(callbacks or []) + [_EvaluationSignals(), metric, _RestoredState(self)],
                epoch_end_hook=self._epoch_logs, add_history=True,
                add_progbar=verbose != 0, model=model, verbose=verbose,
                epochs=epochs, steps=None,
            )
            model.stop_training = False
            training.begin()
            # `BackupAndRestore` tells the epoch to resume from in `on_train_begin`.
            start = getattr(model, "_initial_epoch", None) or initial_epoch
            model._initial_epoch = None
            for epoch in range(start, epochs):
                indices, weights = self._choose(epoch, epochs, sampler)
                sampler.start_epoch(indices, weights)
                steps = sampler.steps(plan.batch_size)
                if self._steps_cap is not None:
                    steps = min(steps, self._steps_cap)
                training.set_epoch_steps(steps)
                model.fit(
                    np.arange(steps), None, batch_size=1, epochs=epoch + 1,
                    initial_epoch=epoch, callbacks=training, shuffle=False,
                    validation_data=plan.validation_data, verbose=verbose,
                    **fit_kwargs,
                )
                if model.stop_training:
                    break
            self._end_of_training()
            training.end()
        return training._history
