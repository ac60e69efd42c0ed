"""Uniform sampling."""

from importance_sampling.samplers.base import BaseSampler, Candidates


class UniformSampler(BaseSampler):
    """Draw every batch uniformly with replacement.

    Weights come from the reweighting policy with equal scores, so they are
    all 1 for the policies of this library.
    """

    def candidates(self, batch_size):
        idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
        return Candidates(idxs, x, y)
