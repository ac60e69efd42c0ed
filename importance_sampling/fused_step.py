"""A whole training step in one compiled call, for data held in memory.

On the host, a step is a draw by the sampler, a compiled scoring call, a
second draw on the host and a compiled train step, with the data copied in
between. When the training data are in memory and the draw is the one of
`ImportanceTraining` (a uniform presample scored by the model, additive
smoothing, `BiasedReweightingPolicy`) or a plain uniform draw, `FusedStep`
does all of it in one compiled function on tensors that stay resident.
"""

from typing import Any, NamedTuple, Optional

import tensorflow as tf
from keras import ops

from importance_sampling import signals
from importance_sampling.datasets import InMemoryDataset
from importance_sampling.model_wrappers import announce_step
from importance_sampling.reweighting import unbiased_weights
from importance_sampling.samplers.base import scores_are_usable, warn_uniform_fallback
from importance_sampling.utils import nested


class FusedSampling(NamedTuple):
    """How `FusedStep` draws a batch.

    Attributes:
        presample: Number of uniformly drawn candidates scored per batch, or
            `None` for uniform batches (no scoring).
        forward_batch_size: Batch size of the scoring forward passes.
        smooth: Added to every score before the batch is drawn.
    """

    presample: Optional[int] = None
    forward_batch_size: int = 128
    smooth: float = 0.0


class Draw(NamedTuple):
    """A batch drawn inside the compiled step (all tensors).

    Attributes:
        idxs: Training-set indices of the items.
        x: Their inputs.
        y: Their targets.
        weights: Importance weights of the reweighting policy.
        metric_weights: `1 / (B p_i)`, the weights of the logged metrics.
        sample_weight: The user's weights of the items.
        candidates: Training-set indices of the scored candidates (the
            items themselves under uniform sampling).
        scores: The candidates' smoothed scores (ones under uniform
            sampling, or when the scores were not usable).
        positions: Positions of the items among the candidates.
        usable: Whether the scores could define the distribution; when not,
            the batch was drawn uniformly.
    """

    idxs: Any
    x: Any
    y: Any
    weights: Any
    metric_weights: Any
    sample_weight: Any
    candidates: Any
    scores: Any
    positions: Any
    usable: Any


def can_fuse(dataset):
    """Whether the steps on `dataset` may run as `FusedStep`s.

    The data must be held in memory, and nobody may listen to the signals
    `is.sample` and `is.score`, whose payloads exist on the host path only.
    """
    listened = signals.sample.receivers or signals.score.receivers
    return isinstance(dataset, InMemoryDataset) and not listened


def _proportional_positions(scores, uniform):
    """Positions drawn with probabilities proportional to `scores`.

    Inverse transform sampling, one position per uniform variate in
    `uniform`: position `i` is drawn when the variate falls in
    `[S_{i-1}, S_i)` of the cumulative sums `S`, scaled to `[0, 1)`.
    """
    cumulative = tf.cumsum(scores)
    targets = uniform * cumulative[-1]
    below = ops.cast(cumulative[None, :] <= targets[:, None], "int32")
    return ops.minimum(ops.sum(below, axis=1), ops.shape(scores)[0] - 1)


class FusedStep:
    """Draw, score, weight and train in one compiled call.

    It computes what `ModelSampler` (or `UniformSampler`), an
    `AdditiveSmoothingSampler`, `BiasedReweightingPolicy` and
    `OracleWrapper.train_batch` compute together, with the wrapper's own
    scoring and train step, but on tensors that stay resident and without
    returning to the host between the parts. The function is traced once
    per batch size and kept across `fit` calls.

    Args:
        wrapper: An `OracleWrapper` whose reweighting has `draw_weights()`
            (a `BiasedReweightingPolicy`).
        sampling: A `FusedSampling`.
    """

    def __init__(self, wrapper, sampling):
        self.wrapper = wrapper
        self.sampling = sampling
        with tf.device("CPU:0"):
            self._generator = tf.random.Generator.from_seed(0)
        self._function = tf.function(self._step)

    def start(self, data, sample_weight, seed):
        """Start training on `data`.

        Args:
            data: The training split `(x, y)` as tensors.
            sample_weight: The user's weight of every training sample, or
                `None`.
            seed: Seed of the draws.

        Returns:
            A function of the batch size that takes one step and returns
            its logs. The data are released with it.
        """
        if sample_weight is None:
            sample_weight = tf.ones([nested.num_samples(data)])
        inputs = (*data, tf.convert_to_tensor(sample_weight, "float32"))
        self._generator.reset_from_seed(seed)
        self.wrapper._build(*nested.take(data, slice(0, 1)))

        def take_step(batch_size):
            logs, scores, usable = self._function(*inputs, batch_size)
            if not usable:
                warn_uniform_fallback()
            logs, _ = announce_step(logs, scores)
            return logs

        return take_step

    def draw(self, x, y, sample_weight, batch_size):
        """Draw a batch from the training data; traceable.

        Returns:
            A `Draw`.
        """
        presample = self.sampling.presample
        size = batch_size if presample is None else presample
        # The data stay in host memory; only the candidates move on.
        with tf.device("CPU:0"):
            candidates = self._generator.uniform(
                [size], 0, ops.shape(sample_weight)[0], "int32"
            )
            x_c, y_c, weight_c = nested.take((x, y, sample_weight), candidates)
        if presample is None:
            ones = ops.ones([batch_size])
            return Draw(candidates, x_c, y_c, ones, ones, weight_c, candidates,
                        ones, ops.arange(batch_size), tf.constant(True))
        scores = self.wrapper._score_step(
            x_c, y_c, self.sampling.forward_batch_size
        ) + self.sampling.smooth
        usable = scores_are_usable(scores, ops)
        scores = ops.where(usable, scores, ops.ones_like(scores))
        positions = _proportional_positions(scores, self._generator.uniform([batch_size]))
        x_b, y_b, weight_b = nested.take((x_c, y_c, weight_c), positions)
        return Draw(
            ops.take(candidates, positions), x_b, y_b,
            self.wrapper.reweighting.draw_weights(positions, scores, ops),
            unbiased_weights(positions, scores, ops), weight_b,
            candidates, scores, positions, usable,
        )

    def _step(self, x, y, sample_weight, batch_size):
        drawn = self.draw(x, y, sample_weight, batch_size)
        # The wrapper's compiled train step, with XLA when the model has it.
        logs, scores = self.wrapper._train_function(
            drawn.x, drawn.y, drawn.weights[:, None], drawn.metric_weights,
            drawn.sample_weight,
        )
        return logs, scores, drawn.usable

    @property
    def trace_count(self):
        """Number of traces of the compiled step."""
        return self._function.experimental_get_tracing_count()
