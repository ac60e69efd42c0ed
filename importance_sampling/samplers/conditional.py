"""Sample uniformly until importance sampling is worth it.

`ConditionalStartSampler` draws uniform batches (weights 1) until its
condition is satisfied, then hands every step to the sampler it wraps. The
condition learns from scores: while the batches are uniform, from the
per-sample scores that the train step observes on each batch (passed to
`update()`); once importance sampling is on, from the scores of each
presample, when they are computed.

The conditions:

- `WarmupCondition(warmup)`: on after `warmup` updates.
- `ExpCondition(lambda_th, momentum)`: reads the scores as draws of an
  exponential distribution, whose rate is `1 / mean(s)`; on while the
  moving average of the rate exceeds `lambda_th`.
- `TotalVariationCondition(tv_th, momentum)`: on while the moving average of
  the total variation distance between `s / sum(s)` and the uniform
  distribution exceeds `tv_th`.
- `VarianceReductionCondition(vr_th, momentum)`: on while the moving average
  of the variance reduction `tau` of eq. 29 of Katharopoulos & Fleuret
  (2018) exceeds `vr_th`.

Every moving average starts at 0 and follows `a <- m a + (1 - m) a_new`.
"""

import numpy as np

from importance_sampling.samplers.base import Candidates
from importance_sampling.samplers.smoothing import SamplerDecorator
from importance_sampling.utils import checks
from importance_sampling.variance import variance_reduction


class Condition:
    """Decides when `ConditionalStartSampler` starts importance sampling.

    Subclasses implement `satisfied` and `update(scores)`, and keep their
    state in `get_state()` and `set_state()`.
    """

    @property
    def satisfied(self):
        """Whether importance sampling is on; reading it changes nothing."""
        raise NotImplementedError

    def update(self, scores):
        """Observe the scores of a batch or of a presample."""

    def reset(self):
        """Forget what was observed."""

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


class WarmupCondition(Condition):
    """On once `warmup` updates were observed: the first `warmup` steps are uniform.

    Args:
        warmup: The number of uniform steps. Defaults to `100`.
    """

    def __init__(self, warmup=100):
        self.warmup = checks.check_number("warmup", warmup, low=0, integer=True)
        self.updates = 0

    @property
    def satisfied(self):
        return self.updates >= self.warmup

    def update(self, scores):
        self.updates += 1

    def reset(self):
        self.updates = 0

    def get_state(self):
        return {"updates": self.updates}

    def set_state(self, state):
        self.updates = state["updates"]


class _MovingAverageCondition(Condition):
    """On while a moving average of a statistic of the scores exceeds a threshold.

    Args:
        threshold: The threshold, a checked number.
        momentum: Of the moving average, in `[0, 1)`.
    """

    def __init__(self, threshold, momentum):
        self.threshold = threshold
        self.momentum = checks.check_number("momentum", momentum, low=0, high=1,
                                            high_open=True)
        self.value = 0.0

    def statistic(self, scores):
        """The statistic of one vector of scores (float64)."""
        raise NotImplementedError

    @property
    def satisfied(self):
        return self.value > self.threshold

    def update(self, scores):
        scores = np.asarray(scores, dtype="float64").reshape(-1)
        if scores.size == 0:
            return
        new = float(self.statistic(scores))
        if np.isnan(new):
            return
        self.value = self.momentum * self.value + (1 - self.momentum) * new

    def reset(self):
        self.value = 0.0

    def get_state(self):
        return {"value": self.value}

    def set_state(self, state):
        self.value = state["value"]


class ExpCondition(_MovingAverageCondition):
    """On while the moving average of `1 / mean(s)` exceeds `lambda_th`.

    Scores drawn from an exponential distribution of rate `lambda` have mean
    `1 / lambda`: a large rate means that most scores are small and a few
    are large, which is when importance sampling helps. Scores that are all
    0 have an infinite rate, which turns the condition on for good.

    Args:
        lambda_th: The threshold of the rate, at least 0. Defaults to `2.0`.
        momentum: Of the moving average, in `[0, 1)`. Defaults to `0.9`.

    Attributes:
        lambda_: The moving average of the rate.
    """

    def __init__(self, lambda_th=2.0, momentum=0.9):
        super().__init__(checks.check_number("lambda_th", lambda_th, low=0), momentum)

    @property
    def lambda_(self):
        return self.value

    def statistic(self, scores):
        mean = scores.mean()
        return np.inf if mean <= 0 else 1.0 / mean


class TotalVariationCondition(_MovingAverageCondition):
    """On while the moving average of `0.5 * sum(|s / sum(s) - 1 / n|)` exceeds `tv_th`.

    That is the total variation distance between the distribution of the
    scores and the uniform one, in `[0, 1 - 1/n]`. Scores summing to 0 count
    as uniform (a distance of 0).

    Args:
        tv_th: The threshold of the distance, in `[0, 1)`. Defaults to `0.5`.
        momentum: Of the moving average, in `[0, 1)`. Defaults to `0.9`.

    Attributes:
        total_variation: The moving average of the distance.
    """

    def __init__(self, tv_th=0.5, momentum=0.9):
        super().__init__(
            checks.check_number("tv_th", tv_th, low=0, high=1, high_open=True), momentum
        )

    @property
    def total_variation(self):
        return self.value

    def statistic(self, scores):
        total = scores.sum()
        if total <= 0:
            return 0.0
        return 0.5 * np.abs(scores / total - 1.0 / len(scores)).sum()


class VarianceReductionCondition(_MovingAverageCondition):
    """On while the moving average of the variance reduction `tau` exceeds `vr_th`.

    `tau` is `importance_sampling.variance.variance_reduction` of the scores
    (eq. 29 of Katharopoulos & Fleuret, 2018): 1 for equal scores, up to
    `sqrt(n)` when one of `n` scores carries all the mass.

    Args:
        vr_th: The threshold of `tau`, at least 0. Defaults to `1.2`.
        momentum: Of the moving average, in `[0, 1)`. Defaults to `0.9`.

    Attributes:
        variance_reduction: The moving average of `tau`, from 0.
    """

    def __init__(self, vr_th=1.2, momentum=0.9):
        super().__init__(checks.check_number("vr_th", vr_th, low=0), momentum)

    @property
    def variance_reduction(self):
        return self.value

    def statistic(self, scores):
        return variance_reduction(scores)


class ConditionalStartSampler(SamplerDecorator):
    """Draw uniformly, with weights 1, until `condition` is satisfied.

    Afterwards every batch comes from `sampler`. The condition is updated
    with the scores that the train step observes on each uniform batch and,
    once importance sampling is on, with the scores of each of `sampler`'s
    presamples (before any smoothing that decorates this sampler). `sampler`
    itself receives every update.

    Args:
        sampler: The `BaseSampler` to use once the condition holds.
        condition: A `Condition`, e.g. `VarianceReductionCondition()`.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, sampler, condition):
        super().__init__(sampler)
        self.condition = condition
        self._uniform_step = False

    def candidates(self, batch_size):
        if self.condition.satisfied:
            self._uniform_step = False
            found = self.sampler.candidates(batch_size)
            if found.scores is not None:
                self.condition.update(found.scores)
            return found
        self._uniform_step = True
        idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
        return Candidates(idxs, x, y)

    def update(self, idxs, scores):
        if self._uniform_step:
            self.condition.update(scores)
        self.sampler.update(idxs, scores)

    def reset(self):
        super().reset()
        self.condition.reset()
        self._uniform_step = False

    def get_state(self):
        return {**super().get_state(), "condition": self.condition.get_state()}

    def set_state(self, state):
        super().set_state(state)
        self.condition.set_state(state["condition"])
