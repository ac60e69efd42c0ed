"""The sampler interface and the one place where a batch is drawn.

A step goes: `candidates()` picks items and (optionally) scores them,
decorators transform the scores, `sample()` draws the batch from the
candidates in proportion to their scores and asks the reweighting policy for
the weights, and after the train step `update()` receives the observed scores.
"""

import contextlib
import contextvars
import warnings
from typing import Any, NamedTuple

import numpy as np

from importance_sampling import signals
from importance_sampling.reweighting import scores_are_usable, unbiased_weights
from importance_sampling.utils import checks, nested


class Candidates(NamedTuple):
    """Items a batch is drawn from.

    `scores` is `None` for uniform sampling. `x` and `y` may be `None`, in
    which case only the drawn items are read from the dataset.
    """

    idxs: Any
    x: Any = None
    y: Any = None
    scores: Any = None


class SampledBatch(NamedTuple):
    """One drawn batch.

    Attributes:
        idxs: Dataset indices of the items.
        x: Their inputs.
        y: Their targets.
        weights: The reweighting policy's weights, `(batch_size, weight_size)`.
        metric_weights: `1 / (B p_i)`, the weights that make the batch's mean
            an unbiased estimate of the mean over the training set; used for
            the displayed training metrics.
        scores: Their scores; ones when the candidates had no scores
            (uniform sampling).
        by_importance: Whether the batch was drawn in proportion to scores
            (not uniformly).
    """

    idxs: Any
    x: Any
    y: Any
    weights: Any
    metric_weights: Any
    scores: Any
    by_importance: bool = False


def sampling_scores(scores):
    """Scores fit to be sampling probabilities, or `None` to sample uniformly.

    NaN, infinite or negative scores, or scores that are all zero, cannot
    define a distribution: a warning is issued and `None` is returned.
    """
    scores = np.asarray(scores, dtype="float64")
    if scores_are_usable(scores):
        return scores
    warn_uniform_fallback(stacklevel=3)
    return None


def check_random_access(sampler, dataset, reason):
    """Raise a `ValueError` unless `dataset` gives random access to its samples.

    Args:
        sampler: The sampler that needs it, named in the message.
        dataset: A `BaseDataset`.
        reason: Why, e.g. `"keeps a score per training sample"`.
    """
    if not dataset.random_access:
        raise ValueError(
            f"{type(sampler).__name__} {reason} and needs random access to the "
            f"training data. Received: a streamed {type(dataset).__name__}"
        )


# Within `one_fallback_warning()`, whether its warning was issued.
_fallback_warned = contextvars.ContextVar("fallback_warned", default=None)


@contextlib.contextmanager
def one_fallback_warning():
    """Within the context (a `fit`), warn of the uniform fallback once at most."""
    token = _fallback_warned.set(False)
    try:
        yield
    finally:
        _fallback_warned.reset(token)


def warn_uniform_fallback(stacklevel=2):
    """Warn that a step's batch is drawn uniformly, its scores being unusable.

    Within `one_fallback_warning()`, only the first call warns.
    """
    warned = _fallback_warned.get()
    if warned:
        return
    if warned is not None:
        _fallback_warned.set(True)
    warnings.warn(
        "The importance scores of this step are not usable as sampling "
        "probabilities (NaN, infinite, negative or all zero); the batch is "
        "sampled uniformly instead.",
        RuntimeWarning,
        stacklevel=stacklevel + 1,
    )


class BaseSampler:
    """Draw batches from a dataset.

    Subclasses implement `candidates()` and, when they learn from the train
    steps, `update()`. Samplers with state extend `get_state()` and
    `set_state()`, whose base keeps the state of the random generator;
    `reset()` is called at the start of every `fit`.

    Args:
        dataset: A `BaseDataset`.
        reweighting: A `ReweightingPolicy`.
        seed: Seed of the sampler's random generator. Defaults to a seed
            drawn from NumPy's global generator, so that
            `keras.utils.set_random_seed()` makes runs reproducible.
    """

    def __init__(self, dataset, reweighting, seed=None):
        self.dataset = dataset
        self.reweighting = reweighting
        checks.check_seed(seed)
        if seed is None:
            seed = np.random.randint(2**31 - 1)
        self.rng = np.random.default_rng(seed)

    def candidates(self, batch_size):
        """The candidates of one batch of `batch_size` items, as `Candidates`."""
        raise NotImplementedError

    def sample(self, batch_size):
        """Draw one batch of `batch_size` items.

        Returns:
            A `SampledBatch`.
        """
        found = self.candidates(batch_size)
        count = len(found.idxs)
        scores = None
        if found.scores is not None:
            signals.score.send({"idxs": found.idxs, "scores": found.scores})
            scores = sampling_scores(found.scores)
        if scores is None:
            uniform = np.ones(count)
            if count == batch_size:
                positions = np.arange(count)
            else:
                positions = self.rng.integers(0, count, size=batch_size)
            weights = self.reweighting.sample_weights(positions, uniform)
            metric_weights = np.ones(batch_size, dtype="float32")
        else:
            relative = scores / scores.max()  # so that their sum stays finite
            positions = self.rng.choice(count, size=batch_size, p=relative / relative.sum())
            weights = self.reweighting.sample_weights(positions, scores)
            metric_weights = unbiased_weights(positions, scores).astype("float32")
        if found.scores is None:
            # Uniform sampling predicts the same score for every item.
            chosen_scores = np.ones(batch_size)
        else:
            chosen_scores = np.asarray(found.scores)[positions]
        idxs = np.asarray(found.idxs)[positions]
        if found.x is None:
            x, y = self.dataset.train_data[idxs]
        else:
            x, y = nested.take((found.x, found.y), positions)
        signals.sample.send(
            {"idxs": idxs, "xy": (x, y), "w": weights, "predicted_scores": chosen_scores}
        )
        return SampledBatch(idxs, x, y, weights, metric_weights, chosen_scores,
                            scores is not None)

    def update(self, idxs, scores):
        """Receive the scores observed for `idxs` in the train step."""

    def reset(self):
        """Forget what was learned (called at the start of `fit`)."""

    def get_state(self):
        """The sampler's learned state and the state of its random generator.

        Returns:
            A dict of NumPy arrays, numbers, strings, lists and dicts.
        """
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state):
        """Restore a state returned by `get_state()`."""
        # In place, for whoever shares the generator.
        self.rng.bit_generator.state = state["rng"]
