"""How much importance sampling reduces the variance of a step's gradient.

Katharopoulos & Fleuret (2018, eq. 29) measure it, for `B` candidates of
scores `s`, with `g = s / sum(s)` and `u = 1 / B`, as

    tau = 1 / sqrt(1 - sum((g - u) ** 2) / sum(g ** 2))

which is 1 for equal scores and `sqrt(B)` when one score carries all the
mass. Importance sampling pays for scoring `B` candidates to train on `b`
once `tau` exceeds `(B + 3 b) / (3 b)`.
"""

import numpy as np


def variance_reduction(scores, xp=np):
    """`tau` of eq. 29 for the scores of a presample.

    Since `sum(g) = 1`, `sum((g - u) ** 2) = sum(g ** 2) - 1 / B`, and `tau`
    equals `sqrt(B * sum(g ** 2))`, which is how it is computed here (it
    stays finite in float32). Scores summing to 0 give `tau = 1`.

    Args:
        scores: A vector of non-negative scores.
        xp: `numpy` (the default) or `keras.ops` inside a compiled step.
    """
    scores = xp.maximum(xp.cast(scores, "float32") if xp is not np
                        else np.asarray(scores, "float64"), 0.0)
    total = xp.sum(scores)
    count = xp.sum(xp.ones_like(scores))
    safe_total = xp.where(total > 0, total, 1.0)
    g = xp.where(total > 0, scores / safe_total, xp.ones_like(scores) / count)
    return xp.sqrt(xp.maximum(count * xp.sum(g * g), 1.0))


def default_threshold(presample, batch_size):
    """The threshold `(B + 3 b) / (3 b)` of `tau` above which sampling pays."""
    return (presample + 3 * batch_size) / (3 * batch_size)
