"""Score samples by the statistics of their class's losses."""

import numpy as np

from importance_sampling.samplers.base import BaseSampler, Candidates
from importance_sampling.samplers.labels import class_labels


class PerClassGaussian(BaseSampler):
    """Score each sample by the mean plus the standard deviation of its class's loss.

    Per class, exponential moving averages of the observed losses and of
    their squares are kept; the score of a class is `mean + std`. Before any
    loss is observed all classes score 1, i.e. sampling is uniform.

    Args:
        dataset: A `BaseDataset` with random access and class targets.
        reweighting: A `ReweightingPolicy`.
        alpha: Momentum of the moving averages. Defaults to `0.9`.
        presample: Number of uniform candidates per batch. Defaults to `2048`.
        seed: Seed of the sampler's random generator.
    """

    def __init__(self, dataset, reweighting, alpha=0.9, presample=2048, seed=None):
        super().__init__(dataset, reweighting, seed)
        if not 0 <= alpha < 1:
            raise ValueError(f"`alpha` must be in [0, 1). Received: alpha={alpha}")
        self.labels, self.num_classes = class_labels(dataset.train_data[:][1])
        self.alpha = float(alpha)
        self.presample = presample
        self.reset()

    def reset(self):
        self.means = np.ones(self.num_classes)
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
            self.means[label] = (
                self.alpha * self.means[label] + (1 - self.alpha) * observed.mean()
            )
            self.second_moments[label] = (
                self.alpha * self.second_moments[label]
                + (1 - self.alpha) * np.mean(observed**2)
            )

    def get_state(self):
        return {"means": self.means.copy(), "second_moments": self.second_moments.copy()}

    def set_state(self, state):
        self.means = state["means"].copy()
        self.second_moments = state["second_moments"].copy()
