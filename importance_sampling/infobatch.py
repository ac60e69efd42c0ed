"""InfoBatch: prune well-learned samples at random, rescale the rest (Qin et al., ICLR 2024).

```python
from importance_sampling.infobatch import InfoBatchTraining

model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
history = InfoBatchTraining(model, prune_ratio=0.5, delta=0.875).fit(
    x_train, y_train, batch_size=128, epochs=40)
history.history["steps"]   # fewer steps in the pruned epochs
```
"""

import numpy as np

from importance_sampling import signals
from importance_sampling.epochs import EpochPassTraining
from importance_sampling.samplers.base import BaseSampler, SampledBatch, check_random_access
from importance_sampling.utils import checks


def _check_pruning(prune_ratio, delta):
    """`(prune_ratio, delta)` as floats; a `ValueError` unless in `[0, 1)` and `(0, 1]`."""
    return (
        checks.check_number("prune_ratio", prune_ratio, low=0, high=1, high_open=True),
        checks.check_number("delta", delta, low=0, high=1, low_open=True),
    )


def infobatch_prune(scores, seen, prune_ratio, rng):
    """The samples kept for an epoch by InfoBatch's soft pruning, and their weights.

    A sample is well learned when its last recorded loss is below the mean
    of the recorded losses; `prune_ratio` of the well-learned samples are
    dropped at random, and the kept ones weigh `1 / (1 - prune_ratio)`.
    The number kept is `(1 - prune_ratio) * n` rounded up or down at random
    (up with probability its fractional part), so that every well-learned
    sample is kept with probability exactly `1 - prune_ratio` and the
    weighted loss of the kept samples is an unbiased estimate of the loss
    of all of them. Samples without a recorded loss are never dropped.

    Args:
        scores: The last recorded loss of every sample.
        seen: Whether each sample has a recorded loss.
        prune_ratio: The share of the well-learned samples dropped, in
            `[0, 1)`.
        rng: A `numpy.random.Generator`.

    Returns:
        A tuple `(indices, weights)`: the kept samples in ascending order,
        and their weights (1, or `1 / (1 - prune_ratio)` for the kept
        well-learned samples).
    """
    scores = np.asarray(scores, dtype="float64")
    seen = np.asarray(seen, dtype=bool)
    count = len(scores)
    weights = np.ones(count, dtype="float32")
    keep = np.ones(count, dtype=bool)
    if prune_ratio > 0 and seen.any():
        mean = scores[seen].mean()
        well_learned = np.flatnonzero(seen & (scores < mean))
        expected = (1 - prune_ratio) * len(well_learned)
        kept_count = int(np.floor(expected))
        if rng.random() < expected - kept_count:
            kept_count += 1
        kept = rng.choice(well_learned, size=kept_count, replace=False)
        keep[well_learned] = False
        keep[kept] = True
        weights[kept] = 1 / (1 - prune_ratio)
    indices = np.flatnonzero(keep)
    return indices, weights[indices]


class InfoBatchSampler(BaseSampler):
    """The batches of InfoBatch for a loop of `steps` optimizer steps.

    The sampler walks through the training set in passes. Each pass is a
    new random order of the samples that `infobatch_prune` keeps, with their
    weights, except that the passes starting after `delta * steps` steps are
    the full data, unweighted (annealing); a batch that reaches the end of
    a pass continues with the next, so that every batch has `batch_size`
    samples. `update()` records the losses of the trained samples, which
    the next passes prune by.

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`; its weights (1 for the policies
            of the library) are multiplied by InfoBatch's.
        steps: The number of steps of the run.
        prune_ratio: The share of the well-learned samples dropped from each
            pass, in `[0, 1)`. Defaults to `0.5`.
        delta: The share of the steps during which the passes prune, in
            `(0, 1]`. Defaults to `0.875`.
        seed: Seed of the sampler's random generator.

    Attributes:
        pruned: The number of samples dropped from each pass begun so far.
    """

    def __init__(self, dataset, reweighting, steps, prune_ratio=0.5, delta=0.875, seed=None):
        check_random_access(self, dataset, "keeps the last loss of every training sample")
        self.steps = checks.check_positive_int("steps", steps)
        self.prune_ratio, self.delta = _check_pruning(prune_ratio, delta)
        super().__init__(dataset, reweighting, seed)
        self.reset()

    def reset(self):
        count = len(self.dataset.train_data)
        self.scores = np.zeros(count, dtype="float32")
        self.seen = np.zeros(count, dtype=bool)
        self.order = np.zeros(0, dtype="int64")
        self.order_weights = np.zeros(0, dtype="float32")
        self.position = 0
        self.taken = 0
        self.pruned = []

    def _begin_pass(self):
        count = len(self.scores)
        if self.taken < self.delta * self.steps:
            kept, weights = infobatch_prune(self.scores, self.seen, self.prune_ratio, self.rng)
        else:
            kept, weights = np.arange(count), np.ones(count, dtype="float32")
        shuffle = self.rng.permutation(len(kept))
        self.order, self.order_weights = kept[shuffle], weights[shuffle]
        self.position = 0
        self.pruned.append(count - len(kept))

    def sample(self, batch_size):
        idxs, infobatch_weights = [], []
        while len(idxs) < batch_size:
            if self.position >= len(self.order):
                self._begin_pass()
            end = min(self.position + batch_size - len(idxs), len(self.order))
            idxs.extend(self.order[self.position:end])
            infobatch_weights.extend(self.order_weights[self.position:end])
            self.position = end
        idxs = np.asarray(idxs, dtype="int64")
        infobatch_weights = np.asarray(infobatch_weights, dtype="float32")
        x, y = self.dataset.train_data[idxs]
        weights = self.reweighting.sample_weights(np.arange(batch_size), np.ones(batch_size))
        weights = weights * infobatch_weights[:, None]
        self.taken += 1
        scores = self.scores[idxs]
        signals.sample.send({"idxs": idxs, "xy": (x, y), "w": weights,
                             "predicted_scores": scores})
        return SampledBatch(idxs, x, y, weights, infobatch_weights, scores)

    @property
    def passes(self):
        """The number of passes begun so far."""
        return len(self.pruned)

    def update(self, idxs, scores):
        self.scores[idxs] = scores
        self.seen[idxs] = True

    def get_state(self):
        return {
            **super().get_state(),
            "scores": self.scores.copy(), "seen": self.seen.copy(),
            "order": self.order.copy(), "order_weights": self.order_weights.copy(),
            "position": self.position, "taken": self.taken, "pruned": list(self.pruned),
        }

    def set_state(self, state):
        super().set_state(state)
        self.scores = state["scores"].copy()
        self.seen = state["seen"].copy()
        self.order = state["order"].copy()
        self.order_weights = state["order_weights"].copy()
        self.position = state["position"]
        self.taken = state["taken"]
        self.pruned = list(state["pruned"])


class InfoBatchTraining(EpochPassTraining):
    """Train with InfoBatch's unbiased dynamic data pruning (Qin et al., ICLR 2024).

    Every sample keeps its last training loss, recorded by the train steps
    that trained on it (no extra forward pass). At the start of each epoch,
    `prune_ratio` of the samples whose recorded loss is below the mean are
    dropped at random for that epoch, and the losses of the kept
    below-mean samples are multiplied by `1 / (1 - prune_ratio)`, so that
    the epoch's gradient is an unbiased estimate of the full data's. The
    samples above the mean are never dropped. For the last `1 - delta` of
    the epochs (annealing), the epoch is the full data, unweighted.

    An epoch is one pass over the kept samples, in shuffled batches of
    `batch_size`: the pruned epochs take fewer steps. The progress bar
    counts the steps actually taken, and `History.history["steps"]` holds
    them per epoch. The first epoch, before any loss is recorded, is the
    full data. The displayed training metrics are weighted by the same
    rescaling, so that they estimate the metrics of the full data.

    Args:
        model: A compiled `keras.Model`, trained in place.
        prune_ratio: The share of the well-learned samples dropped each
            epoch, in `[0, 1)`. Defaults to `0.5`, the paper's.
        delta: The share of the epochs that prune, in `(0, 1]`: epoch `e`
            (from 0) of a `fit` of `epochs` epochs prunes when `e < delta *
            epochs`. Defaults to `0.875`, the paper's.
        seed: The seed of the pruning and the shuffling; `None` draws one
            from NumPy's global generator.

    Attributes:
        scores: The last recorded training loss of every sample.
        pruned: The number of samples dropped in each epoch of the last
            `fit`.
        kept: The samples of each epoch of the last `fit`, and `weights`
            their weights.

    References:
        - [Qin et al., 2024. InfoBatch: Lossless Training Speed Up by
          Unbiased Dynamic Data Pruning](https://arxiv.org/abs/2303.04947)
    """

    def __init__(self, model, prune_ratio=0.5, delta=0.875, seed=None):
        self.prune_ratio, self.delta = _check_pruning(prune_ratio, delta)
        super().__init__(model, seed=seed)
        self.scores = None
        self._seen = None
        self.pruned, self.kept, self.weights = [], [], []

    def _run(self, plan, epochs, callbacks, fit_kwargs):
        count = len(plan.dataset.train_data)
        if self.scores is None or len(self.scores) != count:
            self.scores = np.zeros(count, dtype="float32")
            self._seen = np.zeros(count, dtype=bool)
        self.pruned, self.kept, self.weights = [], [], []
        return super()._run(plan, epochs, callbacks, fit_kwargs)

    def prunes(self, epoch, epochs):
        """Whether `epoch` of a `fit` of `epochs` epochs prunes (the rest anneal)."""
        return epoch < self.delta * epochs

    def _choose(self, epoch, epochs, sampler):
        count = len(self.scores)
        if self.prunes(epoch, epochs):
            indices, weights = infobatch_prune(self.scores, self._seen, self.prune_ratio,
                                               sampler.rng)
        else:
            indices, weights = np.arange(count), np.ones(count, dtype="float32")
        self.pruned.append(count - len(indices))
        self.kept.append(indices)
        self.weights.append(weights)
        return indices, weights

    def _on_scores(self, idxs, scores):
        self.scores[idxs] = scores
        self._seen[idxs] = True

    def get_state(self):
        state = super().get_state()
        if self.scores is not None:
            state.update(scores=self.scores.copy(), seen=self._seen.copy())
        return state

    def _load_state(self, state):
        super()._load_state(state)
        self.scores = state["scores"].copy()
        self._seen = state["seen"].copy()
