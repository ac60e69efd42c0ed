"""Samplers whose batch size changes from step to step (Katharopoulos & Fleuret, 2018).

Both start with uniform batches of `b` items and watch the variance
reduction `tau` of the scores (a `VarianceReductionCondition`). Once it is
large enough:

- `ConstantVarianceSampler` scores its `b` uniform candidates and trains on
  fewer of them, `(1 / tau + extra_samples) * b`, drawn by importance with
  unbiased weights: about the variance of a uniform batch of `b`, for fewer
  backward passes.
- `ConstantTimeSampler` spends the time of a uniform step, `(1 +
  backward_time) * b` forward-pass units, on scoring `B > b` candidates and
  training on `a < b` of them: a better gradient for the same time.

A train step traced for every batch size would be traced at every step, so
the sizes are rounded to a multiple of a quarter of `b` (see
`bucketed_size`; up for the constant variance, which keeps the variance at
most that of a uniform batch, to the nearest for the constant time, which
keeps the time of a step about that of a uniform one): the train step and
the scoring are traced for a few sizes only.
"""

import math

import numpy as np

from importance_sampling.samplers.base import BaseSampler, Candidates
from importance_sampling.samplers.conditional import VarianceReductionCondition
from importance_sampling.utils import checks, nested

SIZE_PARTS = 4


def bucketed_size(count, batch_size, parts=SIZE_PARTS, nearest=False):
    """`count` rounded to a size `ceil(j * batch_size / parts)`, `j >= 1`.

    With `parts=4` and `batch_size=32` the sizes are 8, 16, 24, 32, 40, ...

    Args:
        count: The number of items wanted (a number).
        batch_size: The batch size `b`.
        parts: Into how many parts `b` is split. Defaults to `4`.
        nearest: Round to the nearest size (halves up) instead of up to the
            smallest size not below `count`. Defaults to `False`.
    """
    if nearest:
        part = max(1, math.floor(count * parts / batch_size + 0.5))
    else:
        count = max(1, math.ceil(count - 1e-9))
        # the smallest j with ceil(j * b / parts) >= count, i.e. j b / parts > count - 1
        part = (count - 1) * parts // batch_size + 1
    return -(-part * batch_size // parts)


def check_backward_time(backward_time):
    """`backward_time` as a `float`; a `ValueError` unless it is a positive number."""
    return checks.check_number(
        "backward_time", backward_time, low=0, low_open=True,
        expected="a positive number (the time of a backward pass in forward passes)",
    )


def constant_variance_threshold(backward_time, extra_samples):
    """The `tau` above which `ConstantVarianceSampler` trains on fewer items.

    It is `1 / (backward_time / (1 + backward_time) - extra_samples)`.

    Raises:
        ValueError: unless `backward_time > 0`, `extra_samples >= 0` and
            `extra_samples < backward_time / (1 + backward_time)`.
    """
    backward_time = check_backward_time(backward_time)
    extra_samples = checks.check_number("extra_samples", extra_samples, low=0)
    share = backward_time / (1 + backward_time) - extra_samples
    if share <= 0:
        raise ValueError(
            "`extra_samples` must be smaller than backward_time / (1 + "
            f"backward_time) = {backward_time / (1 + backward_time):.4g}, or no "
            "step can save time. Received: "
            f"extra_samples={extra_samples!r}, backward_time={backward_time!r}"
        )
    return 1.0 / share


def constant_time_sizes(batch_size, tau, backward_time, ratio, min_a):
    """`(B, a)` of a step of `ConstantTimeSampler` at variance reduction `tau`.

    With the budget `t = (1 + backward_time) * b`, `a = max(min_a * b, b /
    tau)` and `B' = t - (1 + backward_time) * a`, the step scores `B = int(b
    + (B' - b) * ratio)` candidates and trains on `a = int((t - B) / (1 +
    backward_time))` of them. These are the sizes before rounding (see
    `bucketed_size`).
    """
    budget = (1.0 + backward_time) * batch_size
    trained = max(min_a * batch_size, batch_size / tau)
    largest = budget - (1.0 + backward_time) * trained
    scored = int(batch_size + (largest - batch_size) * ratio)
    trained = int((budget - scored) / (1.0 + backward_time))
    return scored, trained


class _StepSizeSampler(BaseSampler):
    """A sampler that decides the size of each batch itself.

    `candidates(batch_size)` draws (and scores) the candidates of a step and
    sets `step_size`, the number of items the step trains on; `sample()`
    draws that many from them, as `BaseSampler.sample` draws a batch.
    `update()` feeds the condition with the scores of a uniform batch.

    Attributes:
        condition: The `VarianceReductionCondition` of the sampler.
        step_size: The number of items of the last step.
        backward_samples: The number of items trained on (back-propagated)
            so far.
        scored_samples: The number of candidates scored so far, outside the
            train steps.
    """

    def __init__(self, dataset, reweighting, model, threshold, seed=None):
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.condition = VarianceReductionCondition(threshold)
        self._pending = None
        self._uniform_step = False
        self.step_size = None
        self.backward_samples = 0
        self.scored_samples = 0

    def _importance_candidates(self, batch_size):
        """Candidates with scores; sets `step_size`."""
        raise NotImplementedError

    def candidates(self, batch_size):
        if self._pending is not None:
            return self._pending
        self._uniform_step = not self.condition.satisfied
        if self._uniform_step:
            self.step_size = batch_size
            idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
            return Candidates(idxs, x, y)
        found = self._importance_candidates(batch_size)
        self.condition.update(found.scores)
        return found

    def sample(self, batch_size):
        """Draw the batch of one step: `step_size` items, which need not be `batch_size`."""
        self._pending = self.candidates(batch_size)
        try:
            batch = super().sample(self.step_size)
        finally:
            self._pending = None
        self.backward_samples += len(batch.idxs)
        return batch

    def _score(self, x, y, batch_size):
        """The scores of the candidates, in forward passes of `batch_size` at most."""
        count = nested.num_samples(x)
        parts = []
        for start in range(0, count, batch_size):
            rows = slice(start, min(count, start + batch_size))
            x_i, y_i = nested.take((x, y), rows)
            parts.append(np.asarray(self.model.score(x_i, y_i, batch_size=batch_size)))
        self.scored_samples += count
        return np.concatenate(parts)

    def update(self, idxs, scores):
        if self._uniform_step:
            self.condition.update(scores)

    def reset(self):
        self.condition.reset()
        self._uniform_step = False

    def get_state(self):
        return {**super().get_state(), "condition": self.condition.get_state()}

    def set_state(self, state):
        super().set_state(state)
        self.condition.set_state(state["condition"])


class ConstantVarianceSampler(_StepSizeSampler):
    """Keep the variance of a uniform batch, for fewer backward passes.

    Every step draws `b` candidates uniformly. While the moving average of
    the variance reduction `tau` is at most `1 / (backward_time / (1 +
    backward_time) - extra_samples)`, they are the batch (weights 1) and
    their scores, observed in the train step, update `tau`. Above it, the
    candidates are scored, which updates `tau`, and the step trains on `(1 /
    tau + extra_samples) * b` of them (`tau` as it stood at the step's
    start), rounded up to a multiple of `b / 4`, drawn in proportion to the
    scores and weighted by the reweighting policy (unbiased for
    `BiasedReweightingPolicy(1.0)`).

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`, normally `BiasedReweightingPolicy(1.0)`.
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        backward_time: The time of a backward pass, in forward passes.
            Defaults to `2.0`.
        extra_samples: The share of `b` trained on beyond `b / tau`, to make
            up for the approximate scores. Defaults to `0.2`.
        seed: Seed of the sampler's random generator.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, dataset, reweighting, model, backward_time=2.0,
                 extra_samples=0.2, seed=None):
        threshold = constant_variance_threshold(backward_time, extra_samples)
        super().__init__(dataset, reweighting, model, threshold, seed)
        self.backward_time = float(backward_time)
        self.extra_samples = float(extra_samples)

    def _importance_candidates(self, batch_size):
        fraction = 1.0 / self.condition.variance_reduction + self.extra_samples
        self.step_size = min(batch_size, bucketed_size(fraction * batch_size, batch_size))
        idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
        return Candidates(idxs, x, y, self._score(x, y, batch_size))


class ConstantTimeSampler(_StepSizeSampler):
    """Spend the time of a uniform step on a better gradient.

    While the moving average of the variance reduction `tau` is at most
    `tau_th`, every step is a uniform batch of `b` (weights 1), whose scores,
    observed in the train step, update `tau`. Above it, with `tau` as it
    stood at the step's start, the step scores `B` uniform candidates, which
    updates `tau`, and trains on `a` of them drawn in proportion to the
    scores and weighted by the reweighting policy, `(B, a)` given by
    `constant_time_sizes` and each rounded to the nearest multiple of `b /
    4` (at least `b / 4`; `a` at most `b`).

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`, normally `BiasedReweightingPolicy(1.0)`.
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        backward_time: The time of a backward pass, in forward passes.
            Defaults to `2.0`.
        tau_th: The threshold of `tau`. Defaults to `2.0`.
        ratio: Where `B` lies between `b` (0) and the most candidates the
            budget allows (1). Defaults to `0.5`.
        min_a: The fewest items trained on, as a share of `b`. Defaults to
            `0.2`.
        seed: Seed of the sampler's random generator.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, dataset, reweighting, model, backward_time=2.0, tau_th=2.0,
                 ratio=0.5, min_a=0.2, seed=None):
        backward_time = check_backward_time(backward_time)
        tau_th = checks.check_number("tau_th", tau_th, low=0, low_open=True)
        ratio = checks.check_number("ratio", ratio, low=0, high=1)
        min_a = checks.check_number("min_a", min_a, low=0, high=1, low_open=True)
        super().__init__(dataset, reweighting, model, tau_th, seed)
        self.backward_time = backward_time
        self.tau_th = tau_th
        self.ratio = ratio
        self.min_a = min_a

    def _importance_candidates(self, batch_size):
        scored, trained = constant_time_sizes(
            batch_size, self.condition.variance_reduction, self.backward_time,
            self.ratio, self.min_a,
        )
        self.step_size = min(batch_size, bucketed_size(trained, batch_size, nearest=True))
        count = bucketed_size(scored, batch_size, nearest=True)
        idxs, x, y = self.dataset.train_data.draw(count, self.rng)
        return Candidates(idxs, x, y, self._score(x, y, batch_size))
