"""Decorators that transform the scores of any sampler before drawing."""

import numpy as np

from importance_sampling.samplers.base import BaseSampler
from importance_sampling.utils import checks


class SamplerDecorator(BaseSampler):
    """Wrap a sampler and transform the scores of its candidates.

    Subclasses implement `transform(scores)`. Everything else is delegated
    to the wrapped sampler.

    Args:
        sampler: The `BaseSampler` to wrap.
    """

    def __init__(self, sampler):
        self.sampler = sampler

    @property
    def dataset(self):
        return self.sampler.dataset

    @property
    def reweighting(self):
        return self.sampler.reweighting

    @property
    def rng(self):
        return self.sampler.rng

    def transform(self, scores):
        """Return the transformed scores (a float64 array)."""
        raise NotImplementedError

    def candidates(self, batch_size):
        found = self.sampler.candidates(batch_size)
        if found.scores is None:
            return found
        return found._replace(scores=self.transform(np.asarray(found.scores, "float64")))

    def update(self, idxs, scores):
        self.sampler.update(idxs, scores)

    def reset(self):
        self.sampler.reset()

    def get_state(self):
        return {"sampler": self.sampler.get_state()}

    def set_state(self, state):
        self.sampler.set_state(state["sampler"])


class AdditiveSmoothingSampler(SamplerDecorator):
    """Add a constant to every score: `s_i + c`, pulling towards uniform.

    Args:
        sampler: The `BaseSampler` to wrap.
        c: The constant, at least 0. Defaults to `1.0`.
    """

    def __init__(self, sampler, c=1.0):
        super().__init__(sampler)
        # The training classes pass their `smooth` as `c`.
        self.c = checks.check_number("smooth", c, low=0)

    def transform(self, scores):
        return scores + self.c


class AdaptiveAdditiveSmoothingSampler(SamplerDecorator):
    """Add a share of the running mean score to every score: `s_i + percentage * mu`.

    Before each draw, `mu` is updated with the mean of the (unsmoothed)
    scores of the candidates, `mu <- forget * mu + (1 - forget) * mean(s)`,
    starting from `mu = 1`; a mean that is not finite (NaN or infinite
    scores, whose step is drawn uniformly) leaves `mu` as it is. With scores
    that are losses, `mu` follows the training loss and `percentage` says
    how much of it every score gets.

    Args:
        sampler: The `BaseSampler` to wrap.
        percentage: The share of `mu` added to every score, at least 0.
            Defaults to `0.5`.
        forget: The forgetting factor of the moving average, in `[0, 1)`;
            larger values make `mu` change more slowly. Defaults to `0.9`.
    """

    def __init__(self, sampler, percentage=0.5, forget=0.9):
        super().__init__(sampler)
        self.percentage = checks.check_number("percentage", percentage, low=0)
        self.forget = checks.check_number("forget", forget, low=0, high=1, high_open=True)
        self.mu = 1.0

    def transform(self, scores):
        mean = float(scores.mean())
        if np.isfinite(mean):
            self.mu = self.forget * self.mu + (1 - self.forget) * mean
        return scores + self.percentage * self.mu

    def reset(self):
        super().reset()
        self.mu = 1.0

    def get_state(self):
        return {**super().get_state(), "mu": self.mu}

    def set_state(self, state):
        super().set_state(state)
        self.mu = state["mu"]


class PowerSmoothingSampler(SamplerDecorator):
    """Raise every score to a power in `[0, 1]`: `s_i ** power`.

    Args:
        sampler: The `BaseSampler` to wrap.
        power: The exponent; 1 keeps the scores, 0 makes sampling uniform.
            Defaults to `0.5`.
    """

    def __init__(self, sampler, power=0.5):
        super().__init__(sampler)
        self.power = checks.check_number("power", power, low=0, high=1)

    def transform(self, scores):
        return scores**self.power
