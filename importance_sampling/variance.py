"""How much importance sampling reduces the variance of a step's gradient.

Katharopoulos & Fleuret (2018, eq. 29) measure it, for `B` candidates of
scores `s`, with `g = s / sum(s)` and `u = 1 / B`, as

    tau = 1 / sqrt(1 - sum((g - u) ** 2) / sum(g ** 2))

which is 1 for equal scores and `sqrt(B)` when one score carries all the
mass. Importance sampling pays for scoring `B` candidates to train on `b`
once `tau` exceeds `(B + 3 b) / (3 b)`.
"""

import keras
import numpy as np
from keras import ops


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


class VarianceReductionSwitch(keras.metrics.Metric):
    """A moving average of `tau` that switches importance sampling on.

    It is a Keras metric, so that its state travels with the model's other
    metrics through the train step on every backend and its value, `tau`,
    is in the logs of `fit` (the progress bar and `History`). Keras resets
    the metrics at every epoch's start; this one is reset by `restart()`
    only, at the start of a `fit`.

    Args:
        threshold: Importance sampling is on while `tau > threshold`.
        momentum: Of the moving average `tau <- m tau + (1 - m) tau_new`.
            Defaults to `0.9`.
        name: The name of `tau` in the logs. Defaults to `"tau"`.
    """

    def __init__(self, threshold, momentum=0.9, name="tau"):
        super().__init__(name=name, dtype="float32")
        self.threshold = float(threshold)
        self.momentum = float(momentum)
        self.tau = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", aggregation="mean", name="tau"
        )

    def is_on(self):
        """Whether the moving average exceeds the threshold (a boolean tensor)."""
        return ops.greater(self.tau, self.threshold)

    def update_state(self, tau_new):
        self.tau.assign(self.momentum * self.tau + (1.0 - self.momentum) * tau_new)

    def result(self):
        return ops.convert_to_tensor(self.tau)

    def reset_state(self):
        """Keep `tau` across epochs; see `restart()`."""

    def restart(self):
        """Start the moving average again from 0."""
        self.tau.assign(0.0)
