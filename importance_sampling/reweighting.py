"""Reweighting policies: turn the scores of the sampled items into weights.

A policy works in two stages. `sample_weights()` runs on the host, when the
batch is drawn, and returns a `(batch_size, weight_size)` array. `step_weights()`
runs inside the compiled train step and turns that array, together with the
scores observed in the step, into one weight per sample. Most policies know
their weights before the step and simply pass the first column through.
"""

import numpy as np
from keras import ops

from importance_sampling.utils import checks

_EPSILON = 1e-12
# Scores below this are read as this (it is a normal float32), and weights
# are at most e ** _LOG_LARGEST, within the float32 range.
_TINY = 1e-37
_LOG_LARGEST = 80.0
_FLOAT32_MAX = float(np.finfo("float32").max)


def scores_are_usable(scores, xp=np):
    """Whether `scores` are finite, non-negative and not all zero.

    `xp` is `numpy` (the default) or `keras.ops` inside a compiled step.
    """
    return xp.all(xp.isfinite(scores)) & xp.all(scores >= 0) & (xp.sum(scores) > 0)


def _distribution(scores):
    """`scores` as float64, or ones when they are not usable, as the samplers do."""
    scores = np.asarray(scores, dtype="float64")
    return scores if scores_are_usable(scores) else np.ones_like(scores)


def _check_k(k):
    return checks.check_number(
        "k", k, high=1, expected="a number of at most 1 (1 is unbiased importance "
        "sampling, smaller values focus on hard examples)",
    )


def _biased_weights(chosen, mean, k, xp):
    """`b * mean * chosen_i ** -k / sum_j chosen_j ** (1 - k)`, in log space.

    These are the unbiased weights `mean / chosen_i` of the `b` chosen
    items raised to the power `k`, rescaled so that the weighted loss of the
    batch, `sum(w * chosen)`, keeps its value. `chosen` and `mean` are
    scores divided by their maximum, so that the weights stay finite for
    scores that span many orders of magnitude or are zero, and for very
    negative `k`; they are capped at `e ** 80`. `xp` is `numpy` on the host
    or `keras.ops` in a step.
    """
    log_chosen = xp.log(xp.maximum(chosen, _TINY))
    exponents = (1.0 - k) * log_chosen
    largest = xp.max(exponents)
    log_normaliser = largest + xp.log(xp.sum(xp.exp(exponents - largest)))
    log_count = xp.log(xp.sum(xp.ones_like(log_chosen)))
    log_weights = (log_count + xp.log(xp.maximum(mean, _TINY))
                   - k * log_chosen - log_normaliser)
    return xp.exp(xp.minimum(log_weights, _LOG_LARGEST))


class ReweightingPolicy:
    """Base class of the reweighting policies.

    Subclasses implement `sample_weights()` and, when the weights depend on
    what the train step observes, `step_weights()` and `weight_size`.
    """

    weight_size = 1

    def sample_weights(self, positions, scores):
        """Weights of the items drawn from a set of scored candidates.

        Args:
            positions: Integer array, the positions of the drawn items among
                the candidates (with repetitions).
            scores: Float array of the scores of all candidates. Scores
                that are not usable (see `scores_are_usable`) count as equal.

        Returns:
            A float32 array of shape `(len(positions), weight_size)`.
        """
        raise NotImplementedError

    def step_weights(self, weights, scores):
        """Final per-sample weights inside the train step.

        Args:
            weights: Tensor of shape `(batch_size, weight_size)` from
                `sample_weights()`.
            scores: Tensor of shape `(batch_size,)`, the scores observed in the
                step's forward pass.

        Returns:
            A tensor of shape `(batch_size,)`.
        """
        return weights[:, 0]


class NoReweightingPolicy(ReweightingPolicy):
    """Give every sampled item the weight 1 (plain hard-example mining)."""

    def sample_weights(self, positions, scores):
        return np.ones((len(positions), 1), dtype="float32")


class BiasedReweightingPolicy(ReweightingPolicy):
    """Importance weights raised to the power `k`, then rescaled.

    With `B` candidates of scores `s`, the unbiased weight of item `i` is
    `w_i = (sum(s) / B) / s_i`. The policy uses `w_i ** k`, scaled so that the
    weighted loss of the batch, `sum(w * s)`, stays the same.

    Args:
        k: Bias exponent, at most 1. `k=1` gives unbiased importance sampling,
            `k=0` ignores the weights (max-loss end), `k<0` biases further
            towards hard examples. Defaults to `1.0`.

    References:
        - [Katharopoulos & Fleuret, 2017](https://arxiv.org/abs/1706.00043)
    """

    def __init__(self, k=1.0):
        self.k = _check_k(k)

    def sample_weights(self, positions, scores):
        weights = self.draw_weights(positions, _distribution(scores), np)
        return np.asarray(weights, dtype="float32")[:, None]

    def draw_weights(self, positions, scores, xp):
        """The weights of `sample_weights()` as a vector, in namespace `xp`.

        `xp` is `numpy` on the host or `keras.ops` inside a compiled step.
        """
        scores = scores / xp.max(scores)
        return _biased_weights(xp.take(scores, positions), xp.mean(scores), self.k, xp)


class AdjustedBiasedReweightingPolicy(ReweightingPolicy):
    """Biased weights recomputed from the scores observed in the train step.

    The candidates outside the batch keep their presample scores; the batch's
    own scores are replaced by those of the step's forward pass, and the
    weights of `BiasedReweightingPolicy` are computed from that mix.

    Args:
        k: Bias exponent, at most 1. Defaults to `1.0`.
    """

    weight_size = 2

    def __init__(self, k=1.0):
        self.k = _check_k(k)

    def sample_weights(self, positions, scores):
        scores = _distribution(scores)
        outside = np.ones(len(scores), dtype=bool)
        outside[positions] = False
        summary = [len(scores), min(scores[outside].sum(), _FLOAT32_MAX)]
        return np.tile(np.asarray(summary, dtype="float32"), (len(positions), 1))

    def step_weights(self, weights, scores):
        num_candidates, outside_sum = weights[0, 0], weights[0, 1]
        scores = ops.maximum(ops.cast(scores, "float32"), 0.0)
        scale = ops.maximum(ops.max(scores), outside_sum)
        scale = ops.where(scale > 0, scale, 1.0)
        scores = scores / scale
        mean = (outside_sum / scale + ops.sum(scores)) / num_candidates
        return ops.stop_gradient(_biased_weights(scores, mean, self.k, ops))


class CorrectingReweightingPolicy(ReweightingPolicy):
    """Biased weights corrected by how wrong the predicted scores were.

    The weight of `BiasedReweightingPolicy` is multiplied by
    `clip(predicted_score / observed_score, 0, 2)`, so that items whose score
    was overestimated, and therefore sampled too often, count less.

    Args:
        k: Bias exponent, at most 1. Defaults to `1.0`.
    """

    weight_size = 2

    def __init__(self, k=1.0):
        self._biased = BiasedReweightingPolicy(k)
        self.k = self._biased.k

    def sample_weights(self, positions, scores):
        scores = _distribution(scores)
        weights = self._biased.sample_weights(positions, scores)
        predicted = np.minimum(scores[positions, None], _FLOAT32_MAX).astype("float32")
        return np.hstack([weights, predicted])

    def step_weights(self, weights, scores):
        correction = ops.clip(weights[:, 1] / ops.maximum(scores, _EPSILON), 0.0, 2.0)
        return ops.stop_gradient(weights[:, 0] * correction)


def unbiased_weights(positions, scores, xp=np):
    """`1 / (B p_i)` for the drawn items: weights of an unbiased estimate.

    `xp` is `numpy` (the default) or `keras.ops` inside a compiled step.
    """
    scores = scores / xp.max(scores)  # so that their mean stays finite
    return xp.mean(scores) / xp.take(scores, positions)


# Ready-made policies: every weight 1, and unbiased importance weights.
UNWEIGHTED = NoReweightingPolicy()
UNBIASED = BiasedReweightingPolicy(k=1.0)
