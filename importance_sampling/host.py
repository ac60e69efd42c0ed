"""What runs on the host around the train function that Keras's `fit` calls.

Importance training wraps Keras's train function in a "side": for batches
drawn inside the train step, `CompiledSide` only collects whether the scores
were usable; for batches drawn on the host, `HostSide` runs the sampler
before each step and feeds the observed scores back after it.
"""

import keras
import numpy as np

from importance_sampling import signals
from importance_sampling.datasets import BaseDataset
from importance_sampling.model_wrappers import announce_step, pack_batch
from importance_sampling.samplers.base import warn_uniform_fallback
from importance_sampling.step import IMPORTANCE, SCORES, USABLE
from importance_sampling.utils import nested


class StreamCandidates(BaseDataset):
    """The candidates that Keras handed the current step, for a host sampler."""

    random_access = False

    def __init__(self):
        self.batch = None
        self.position = 0

    def _draw(self, split, count, rng):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(self.batch)
        x, y = keras.tree.map_structure(keras.ops.convert_to_numpy, (x, y))
        size = nested.num_samples(x)
        start, self.position = self.position, self.position + size
        return np.arange(start, start + size), x, y


class StepNumbers(keras.callbacks.Callback):
    """Tell a source of candidates from arrays the number of each epoch's first step.

    It is the optimizer's `iterations` at the epoch's start (after
    `BackupAndRestore` has restored it), so that the candidates of a step
    depend on its number, in a resumed run as in the uninterrupted one.
    """

    def __init__(self, source):
        super().__init__()
        self.source = source

    def on_epoch_begin(self, epoch, logs=None):
        # `int()` of a `tf.distribute` variable fails; its NumPy value does not.
        iterations = keras.ops.convert_to_numpy(self.model.optimizer.iterations)
        self.source.set_first_step(int(iterations))


class CompiledSide(keras.callbacks.Callback):
    """What runs on the host around a step drawn in the train step.

    Whether each step's scores were usable, and whether its batch was drawn
    by importance, are read at the end of an epoch, not after each step, so
    that the host does not wait for the steps.

    Attributes:
        importance_steps: The number of steps so far whose batch was drawn
            by importance (all of them without a `VarianceReductionSwitch`).
    """

    def __init__(self):
        super().__init__()
        self._usable = []
        self._importance = []
        self.importance_steps = 0

    def on_train_begin(self, logs=None):
        if signals.host_signals_received():
            raise RuntimeError(
                "A receiver of the `is.sample`, `is.score` or `is.training` signals "
                "was connected after `fit` started (e.g. in a callback's "
                "`on_train_begin`). These signals are sent by steps drawn on the "
                "host, which `fit` chooses when it starts: connect the receiver "
                "before calling `fit`."
            )

    def __call__(self, train_function, args, backend_module):
        logs, rest = backend_module.split_outputs(train_function(*args))
        logs = dict(logs)
        self._usable.append(logs.pop(USABLE))
        self._importance.append(logs.pop(IMPORTANCE, 1))
        return backend_module.join_outputs(logs, rest)

    def on_epoch_end(self, epoch, logs=None):
        usable = [float(keras.ops.convert_to_numpy(u)) for u in self._usable]
        importance = [float(keras.ops.convert_to_numpy(i)) for i in self._importance]
        # A batch drawn from unusable scores was drawn uniformly.
        self.importance_steps += int(np.dot(usable, importance))
        self._usable, self._importance = [], []
        if min(usable, default=1) < 1:
            warn_uniform_fallback()


class HostSide:
    """Draw each step's batch on the host with a sampler, and feed it back.

    Args:
        wrapper: The `OracleWrapper` of the model.
        sampler: The `BaseSampler` that draws the batches. Its `sample()`
            may return `None` (Selective Backprop on a stream, until enough
            candidates are kept): the call then updates nothing, and Keras
            gets the logs of the last step that trained.
        batch_size: The number of items of a step.
        arrays: `(x, y, sample_weight)` of the training data, or `None`.
        dataset: The dataset that the sampler draws from; a
            `StreamCandidates` receives the candidates of each step.

    Attributes:
        importance_steps: The number of steps so far whose batch the
            sampler drew from scores (not uniformly).
    """

    def __init__(self, wrapper, sampler, batch_size, arrays, dataset):
        self.importance_steps = 0
        self.wrapper = wrapper
        self.sampler = sampler
        self.batch_size = batch_size
        self.sample_weight = None if arrays is None else arrays[2]
        self.stream = dataset if isinstance(dataset, StreamCandidates) else None
        self.logs = {}

    def __call__(self, train_function, args, backend_module):
        *state, _ = args
        if self.stream is not None:
            self.stream.batch = backend_module.next_batch(args)
        self.wrapper.fit_state = state
        try:
            batch = self.sampler.sample(self.batch_size)
        finally:
            self.wrapper.fit_state = None
        if batch is None:
            # The sampler took the candidates in and waits for more: no update.
            return backend_module.unchanged_outputs(self.logs, args)
        self.importance_steps += batch.by_importance
        weights = np.ones(len(batch.idxs), "float32")
        if self.sample_weight is not None:
            weights = self.sample_weight[batch.idxs]
        packed = pack_batch(batch.weights, batch.metric_weights, weights)
        outputs = train_function(*state, backend_module.one_batch((batch.x, batch.y, packed)))
        logs, rest = backend_module.split_outputs(outputs)
        logs = dict(logs)
        logs.pop(USABLE)
        logs, scores = announce_step(logs, logs.pop(SCORES))
        self.sampler.update(batch.idxs, scores)
        condition = getattr(self.sampler, "condition", None)
        if hasattr(condition, "variance_reduction"):
            logs["tau"] = condition.variance_reduction
        self.logs = logs
        return backend_module.join_outputs(logs, rest)
