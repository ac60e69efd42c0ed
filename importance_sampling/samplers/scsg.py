"""The sampler of SVRG / SCSG: uniform batches and a periodic mean gradient."""

import numpy as np

from importance_sampling.samplers.base import BaseSampler, Candidates, check_random_access
from importance_sampling.utils import checks


class SCSGSampler(BaseSampler):
    """Uniform batches, and the mean gradient of a large batch every `B_over_b` steps.

    Before the first step and then every `B_over_b` steps, the sampler
    draws `B` distinct training samples at random (all of them when `B` is
    0 or at least the number of samples `N`) and hands them, in batches of
    the step's batch size, to `model.update_grad()`, which snapshots the
    weights and computes the mean gradient over them. Then `B <- min(B *
    B_rate, N)`. Every step's batch is drawn uniformly with replacement.

    With `B = N` and `B_rate = 1` this is SVRG (Johnson & Zhang, 2013);
    with `B < N`, SCSG (Lei & Jordan, 2017).

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`, normally `NoReweightingPolicy()`.
        model: An `SVRGWrapper` (anything with `update_grad(batches)`, which
            takes an iterable of `(x, y, sample_weight)` batches).
        B: The number of samples of the mean gradient, or `0` for all of
            them. Defaults to `1024`.
        B_over_b: The number of steps between two mean gradients. Defaults
            to `32`.
        B_rate: The factor of `B` after each mean gradient. Defaults to `1.0`.
        sample_weight: The user's weight of every training sample, or `None`.
        seed: Seed of the sampler's random generator.

    Attributes:
        B: The number of samples of the next mean gradient.
        gradient_samples: The number of samples of all the mean gradients so
            far (each costs a forward and a backward pass).
        backward_samples: The number of samples back-propagated so far: two
            per item of a step (at the weights and at the snapshot) and one
            per sample of a mean gradient.

    References:
        - [Johnson & Zhang, 2013](https://papers.nips.cc/paper/4937)
        - [Lei & Jordan, 2017](https://arxiv.org/abs/1609.03261)
    """

    def __init__(self, dataset, reweighting, model, B=1024, B_over_b=32, B_rate=1.0,
                 sample_weight=None, seed=None):
        check_random_access(self, dataset, "draws the mean gradients' samples at random")
        check_svrg_arguments(B, B_rate, B_over_b)
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.N = len(dataset.train_data)
        if sample_weight is not None and np.shape(sample_weight) != (self.N,):
            raise ValueError(
                "`sample_weight` must be `None` or one weight per training sample, "
                f"of shape ({self.N},). Received: sample_weight of shape "
                f"{np.shape(sample_weight)}"
            )
        self.initial_B = float(B)
        self.B_over_b = int(B_over_b)
        self.B_rate = float(B_rate)
        self.sample_weight = sample_weight
        self.reset()

    def reset(self):
        self.B = self.initial_B or self.N
        self.iteration = 0
        self.gradient_samples = 0
        self.backward_samples = 0

    def candidates(self, batch_size):
        if self.iteration % self.B_over_b == 0:
            if not hasattr(self.model, "update_grad"):
                raise ValueError(
                    "SCSGSampler needs a model wrapper that computes mean gradients "
                    "(an `importance_sampling.svrg.SVRGWrapper`). Received: "
                    f"{type(self.model).__name__}"
                )
            self.model.update_grad(self._large_batch(batch_size))
            self.B = min(self.B * self.B_rate, self.N)
        self.iteration += 1
        self.backward_samples += 2 * batch_size
        idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
        return Candidates(idxs, x, y)

    def _large_batch(self, batch_size):
        """`B` distinct random samples, as batches of `(x, y, sample_weight)`."""
        count = max(1, min(int(self.B), self.N))
        idxs = self.rng.permutation(self.N)[:count]
        self.gradient_samples += count
        self.backward_samples += count
        for start in range(0, count, batch_size):
            rows = np.sort(idxs[start:start + batch_size])
            x, y = self.dataset.train_data[rows]
            weights = None if self.sample_weight is None else self.sample_weight[rows]
            yield x, y, weights

    def get_state(self):
        return {**super().get_state(), "B": self.B, "iteration": self.iteration,
                "gradient_samples": self.gradient_samples,
                "backward_samples": self.backward_samples}

    def set_state(self, state):
        super().set_state(state)
        self.B = state["B"]
        self.iteration = state["iteration"]
        self.gradient_samples = state["gradient_samples"]
        self.backward_samples = state["backward_samples"]


def check_svrg_arguments(B, B_rate, B_over_b):
    """Raise a `ValueError` unless `B >= 0`, `B_rate > 0` and `B_over_b >= 1` (an int)."""
    checks.check_number("B", B, low=0)
    checks.check_number("B_rate", B_rate, low=0, low_open=True)
    checks.check_positive_int("B_over_b", B_over_b)
