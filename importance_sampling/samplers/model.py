"""Exact importance sampling: score a uniform presample with the model."""

from importance_sampling.samplers.base import BaseSampler, Candidates
from importance_sampling.utils import checks


class ModelSampler(BaseSampler):
    """Score `large_batch` uniform candidates with the model, then resample.

    Args:
        dataset: A `BaseDataset`.
        reweighting: A `ReweightingPolicy`.
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        large_batch: Number of candidates scored per batch; must be larger
            than the batch size. Defaults to `1024`.
        forward_batch_size: Batch size of the scoring forward passes, or
            `None` for the batch size. Defaults to `128`.
        seed: Seed of the sampler's random generator. Defaults to `None`.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, dataset, reweighting, model, large_batch=1024,
                 forward_batch_size=128, seed=None):
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.large_batch = checks.check_positive_int("large_batch", large_batch)
        self.forward_batch_size = checks.check_number(
            "forward_batch_size", forward_batch_size, low=1, integer=True, optional=True
        )

    def candidates(self, batch_size):
        if self.large_batch <= batch_size:
            raise ValueError(
                "`presample` must be larger than `batch_size`. Received: "
                f"presample={self.large_batch}, batch_size={batch_size}"
            )
        idxs, x, y = self.dataset.train_data.draw(self.large_batch, self.rng)
        scores = self.model.score(x, y, batch_size=self.forward_batch_size or batch_size)
        return Candidates(idxs, x, y, scores)
