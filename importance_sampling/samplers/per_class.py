"""Score samples by the statistics of their class's losses."""

import numpy as np

from importance_sampling.samplers.base import BaseSampler, Candidates
from importance_sampling.samplers.labels import class_labels
from importance_sampling.utils import checks


class PerClassGaussian(BaseSampler):
    """Score each sample by the mean plus the standard deviation of its class's loss.

    Per class, exponential moving averages of the observed losses and of
    their squares are kept, updated once per observed loss in the order of
    the batch: `mean <- alpha mean + (1 - alpha) loss`. The score of a class
    is `mean + std`. The means start at `log(num_classes)`, the loss of a
    classifier that predicts every class alike, and the second moments at 1,
    so before any loss is observed all classes score the same and sampling is
    uniform.

    Args:
        dataset: A `BaseDataset` with random access and class targets.
        reweighting: A `ReweightingPolicy`.
        alpha: Momentum of the moving averages, applied per observed loss.
            Defaults to `0.9`.
        presample: Number of uniform candidates per batch. Defaults to `2048`.
        seed: Seed of the sampler's random generator.
    """

    def __init__(self, dataset, reweighting, alpha=0.9, presample=2048, seed=None):
        super().__init__(dataset, reweighting, seed)
        self.alpha = checks.check_number("alpha", alpha, low=0, high=1, high_open=True)
        self.presample = checks.check_positive_int("presample", presample)
        self.labels, self.num_classes = class_labels(dataset.train_data[:][1])
        self.reset()

    def reset(self):
        self.means = np.full(self.num_classes, np.log(self.num_classes))
        self.second_moments = np.ones(self.num_classes)

    def class_scores(self):
        """The score of every class: `mean + std` of its observed losses."""
        variance = np.maximum(self.second_moments - self.means**2, 0)
        return self.means + np.sqrt(variance)

    def candidates(self, batch_size):
        idxs = self.rng.integers(0, len(self.labels), size=self.presample)
        return Candidates(idxs, scores=self.class_scores()[self.labels[idxs]])

    def update(self, idxs, scores):
        labels = self.labels[np.asarray(idxs)]
        scores = np.asarray(scores, dtype="float64")
        for label in np.unique(labels):
            observed = scores[labels == label]
            # The closed form of one update per observed loss, in order.
            kept = self.alpha ** len(observed)
            decay = (1 - self.alpha) * self.alpha ** np.arange(len(observed) - 1, -1, -1)
            self.means[label] = kept * self.means[label] + decay @ observed
            self.second_moments[label] = (
                kept * self.second_moments[label] + decay @ observed**2
            )

    def get_state(self):
        return {**super().get_state(), "means": self.means.copy(),
                "second_moments": self.second_moments.copy()}

    def set_state(self, state):
        super().set_state(state)
        self.means = state["means"].copy()
        self.second_moments = state["second_moments"].copy()
