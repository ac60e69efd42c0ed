"""Training classes that select the items of a step from its candidates by a rule.

Importance sampling draws a step's batch from its candidates in proportion
to their scores and reweights it. The data-selection methods of
`ordered_sgd` and `rho_loss` instead keep the candidates that rank highest
by a per-sample value, deterministically, with weight 1. They share the
rest of importance training: `BaseImportanceTraining.fit` and its plans, the
candidates that Keras's `fit` hands the train step, `step.WeightedStep` (the
model's own `compute_loss` with per-sample weights) and each backend's train
step. What differs is the object that turns the candidates into the batch
of the step, which has the interface of `step.ImportanceDraw` (called with
the candidates and the replica, it returns a `step.Draw`), and, for some
methods, the step's loss and a metric that the step reads.

The subclasses build on the hooks of `BaseImportanceTraining`:
`_make_draw(plan, rows, metric)` builds the draw, `_make_step(plan, metric)`
the weighted step, and `_step_metric(plan)` a `keras.metrics.Metric` (or
`None`) that Keras's `fit` threads through the train step on every backend,
so that the step can read values that the host changes between epochs.
"""

import keras
from keras import ops

from importance_sampling.fitting import BaseImportanceTraining
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.step import Draw
from importance_sampling.utils import nested


def unpack_candidates(data, rows=None):
    """`(x, y, sample_weight)` of the candidates that Keras handed the step.

    `rows` turns the batch into the candidates (for candidates gathered in
    the step from arrays); `sample_weight` is ones when the batch has none.
    """
    if rows is not None:
        data = rows(data)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is None:
        count = ops.shape(keras.tree.flatten(x)[0])[0]
        sample_weight = ops.ones([count])
    return x, y, sample_weight


def selected(x, y, sample_weight, positions=None):
    """The `Draw` of the candidates at `positions` (all of them for `None`), weight 1."""
    if positions is not None:
        x, y, sample_weight = nested.take((x, y, sample_weight), positions)
    ones = ops.ones_like(ops.cast(sample_weight, "float32"))
    return Draw(x, y, ones[:, None], ones, sample_weight, ops.ones(()))


class AllCandidates:
    """A draw that keeps every candidate of the step, with weight 1.

    Args:
        rows: A function turning the batch that Keras hands the step into
            the candidates, or `None` for the batch itself.
    """

    def __init__(self, rows=None):
        self.rows = rows

    def __call__(self, data, replica_id=0, num_replicas=1):
        return selected(*unpack_candidates(data, self.rows))


class SelectionTraining(BaseImportanceTraining):
    """The `fit` of the training classes that select their batches by a rule.

    The steps are unweighted (`NoReweightingPolicy`): a selected item enters
    the loss with its user weight only.

    Subclasses implement `_make_draw(plan, rows, metric)` for steps drawn in
    the train step and `_make_sampler(dataset, presample, batch_size)` for
    steps drawn on the host, and may implement `_make_step(plan, metric)` and
    `_step_metric(plan)`.

    Args:
        model: A compiled `keras.Model`, trained in place.
        presample: The `presample` of `BaseImportanceTraining`.
    """

    def __init__(self, model, presample):
        super().__init__(model, 1.0, 0.0, False, presample, score="loss")
        self.reweighting = NoReweightingPolicy()
        self.wrapper.reweighting = self.reweighting

    def _make_draw(self, plan, rows, metric):
        raise NotImplementedError
