"""Samplers that keep a score for every training sample."""

import numpy as np

from importance_sampling.samplers.base import BaseSampler, Candidates, check_random_access
from importance_sampling.utils import checks


class _ScoreTableSampler(BaseSampler):
    """Keep the latest score of every sample; re-score all of them periodically.

    Subclasses implement `_sampling_scores()` from `self.scores` and set
    `_recompute_period` (in steps; 0 never re-scores).
    """

    _recompute_period = 0

    def __init__(self, dataset, reweighting, model, forward_batch_size=128, seed=None):
        check_random_access(self, dataset, "keeps a score per training sample")
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.forward_batch_size = checks.check_positive_int("forward_batch_size",
                                                            forward_batch_size)
        self.reset()

    def reset(self):
        count = len(self.dataset.train_data)
        self.scores = np.zeros(count)
        self.seen = np.zeros(count, dtype=bool)
        self.steps = 0

    def rescore(self):
        """Score the whole training set with the model."""
        x, y = self.dataset.train_data[:]
        self.scores = self.model.score(x, y, batch_size=self.forward_batch_size)
        self.scores = self.scores.astype("float64")
        self.seen[:] = True

    def _sampling_scores(self):
        raise NotImplementedError

    def candidates(self, batch_size):
        period = self._recompute_period
        if period and self.steps % period == 0:
            self.rescore()
        idxs = np.arange(len(self.scores))
        return Candidates(idxs, scores=self._sampling_scores())

    def update(self, idxs, scores):
        self.scores[idxs] = scores
        self.seen[idxs] = True
        self.steps += 1

    def get_state(self):
        return {**super().get_state(), "scores": self.scores.copy(), "seen": self.seen.copy(),
                "steps": self.steps}

    def set_state(self, state):
        super().set_state(state)
        self.scores = state["scores"].copy()
        self.seen = state["seen"].copy()
        self.steps = state["steps"]


class HistorySampler(_ScoreTableSampler):
    """Sample the whole training set by the last observed score of each sample.

    Samples never seen get the mean score of those seen (1 before any is).
    The whole training set is re-scored with the model every `recompute`
    batches.

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`.
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        forward_batch_size: Batch size of the re-scoring passes. Defaults to
            `128`.
        recompute: Re-score every this many batches; 0 never re-scores.
            Defaults to `2`.
        seed: Seed of the sampler's random generator.
    """

    def __init__(self, dataset, reweighting, model, forward_batch_size=128,
                 recompute=2, seed=None):
        self._recompute_period = checks.check_number("recompute", recompute, low=0,
                                                     integer=True)
        super().__init__(dataset, reweighting, model, forward_batch_size, seed)

    def _sampling_scores(self):
        fill = self.scores[self.seen].mean() if self.seen.any() else 1.0
        return np.where(self.seen, self.scores, fill)


class OnlineBatchSelectionSampler(_ScoreTableSampler):
    """Online batch selection: probabilities decay exponentially with loss rank.

    Samples are ranked by their latest loss, highest first; the sample of
    rank `r` among `N` is drawn with probability proportional to
    `exp(-log(s_e) r / N)`, so the first is `s_e` times likelier than the
    last. The selection pressure `s_e` moves geometrically from `s_e[0]` to
    `s_e[1]` over `n_epochs` epochs. The whole set is re-scored every
    `recompute` epochs.

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy`, usually `NoReweightingPolicy()`.
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        steps_per_epoch: Number of batches in an epoch.
        recompute: Re-score every this many epochs. Defaults to `2`.
        s_e: Selection pressure at the first and the last epoch. Defaults to
            `(100.0, 100.0)`.
        n_epochs: Number of epochs over which `s_e` moves. Defaults to `1`.
        forward_batch_size: Batch size of the re-scoring passes. Defaults to
            `128`.
        seed: Seed of the sampler's random generator.

    References:
        - [Loshchilov & Hutter, 2015](https://arxiv.org/abs/1511.06343)
    """

    def __init__(self, dataset, reweighting, model, steps_per_epoch, recompute=2,
                 s_e=(100.0, 100.0), n_epochs=1, forward_batch_size=128, seed=None):
        self.steps_per_epoch = checks.check_positive_int("steps_per_epoch", steps_per_epoch)
        if not (isinstance(s_e, (tuple, list)) and len(s_e) == 2
                and all(checks.is_number(s, low=1) for s in s_e)):
            raise ValueError(
                "`s_e` must be a pair of numbers of at least 1, the selection "
                f"pressures at the first and the last epoch. Received: s_e={s_e!r}"
            )
        self.s_e = tuple(float(s) for s in s_e)
        self.n_epochs = checks.check_positive_int("n_epochs", n_epochs)
        recompute = checks.check_number("recompute", recompute, low=0, integer=True)
        self._recompute_period = recompute * self.steps_per_epoch
        super().__init__(dataset, reweighting, model, forward_batch_size, seed)

    def selection_pressure(self):
        """`s_e` at the current epoch."""
        progress = min(self.steps / self.steps_per_epoch / max(self.n_epochs - 1, 1), 1.0)
        start, end = self.s_e
        return start * (end / start) ** progress

    def _sampling_scores(self):
        count = len(self.scores)
        ranks = np.empty(count)
        ranks[np.argsort(-self.scores, kind="stable")] = np.arange(count)
        return np.exp(-np.log(self.selection_pressure()) * ranks / count)
