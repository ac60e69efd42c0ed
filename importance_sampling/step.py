"""The importance-sampling step that Keras's own `fit` drives.

For the duration of a training class's `fit`, the model's `train_step` is an
importance-sampling step: Keras hands it a batch of candidates, and the step

1. scores the candidates with the current weights, in inference mode;
2. draws the batch from them in proportion to the scores;
3. weighs the drawn items with the reweighting policy;
4. takes one weighted optimizer step (the backend's part, see
   `importance_sampling.backend`).

Steps 1-3 are written once here, with `keras.ops` and `keras.random`.

Under `tf.distribute` every replica runs the step on its own share of the
candidates and draws its share of the batch from them, with random numbers of
its own. Under `keras.distribution` (JAX) the step sees the whole presample
and draws once.
"""

import contextlib
from typing import Any, NamedTuple

import keras
from keras import ops

from importance_sampling import keras_internals
from importance_sampling.reweighting import scores_are_usable, unbiased_weights
from importance_sampling.utils import nested
from importance_sampling.variance import variance_reduction


class Draw(NamedTuple):
    """A batch drawn inside the step (all tensors).

    Attributes:
        x: The inputs of the drawn items.
        y: Their targets.
        weights: The reweighting policy's weights, `(batch_size, weight_size)`.
        metric_weights: `1 / (B p_i)`, the weights of the logged metrics.
        sample_weight: The user's weights of the items.
        usable: Whether the scores could define the distribution; when not,
            the batch was drawn uniformly.
        importance: With a `VarianceReductionSwitch`, 1 when the batch was
            drawn by importance, 0 when drawn uniformly.
        tau: With a switch, the variance reduction of the candidates'
            scores when they were scored (0 otherwise).
    """

    x: Any
    y: Any
    weights: Any
    metric_weights: Any
    sample_weight: Any
    usable: Any
    importance: Any = None
    tau: Any = None


def proportional_positions(scores, uniform):
    """Positions drawn with probabilities proportional to `scores`.

    Inverse transform sampling, one position per uniform variate in
    `uniform`: position `i` is drawn when the variate falls in
    `[S_{i-1}, S_i)` of the cumulative sums `S`, scaled to `[0, 1)`.
    """
    cumulative = ops.cumsum(scores)
    targets = uniform * cumulative[-1]
    below = ops.cast(cumulative[None, :] <= targets[:, None], "int32")
    return ops.minimum(ops.sum(below, axis=1), ops.shape(scores)[0] - 1)


def replica_share(values, replica_id, num_replicas):
    """The `replica_id`-th of `num_replicas` equal parts of `values`."""
    size = ops.shape(values)[0] // num_replicas
    return ops.slice(values, [replica_id * size], [size])


class ImportanceDraw:
    """Score the candidates of a step and draw its batch from them.

    Args:
        scorer: An `OracleWrapper`, whose `score_batch(x, y, batch_size)`
            scores the candidates in inference mode.
        reweighting: A policy with `draw_weights(positions, scores, xp)`.
        batch_size: The number of items of a step, over all replicas.
        presample: The number of candidates of a step, over all replicas
            (fewer at the end of a stream).
        forward_batch_size: Batch size of the scoring forward passes;
            `None` for the batch size.
        smooth: Added to every score before the batch is drawn.
        seed: An integer, the seed of the draws. The draw of a step is
            seeded with `(seed, optimizer.iterations)`, so that a run resumed
            from a checkpoint draws as the uninterrupted run would.
        rows: A function turning the batch that Keras hands the step into
            the candidates `(x, y, sample_weight)`, traceable. Defaults to
            the batch itself.
        switch: A `VarianceReductionSwitch`: while it is off, the batch is
            drawn uniformly from the candidates without scoring them, with
            weights 1. Defaults to `None` (always by importance).
    """

    def __init__(self, scorer, reweighting, batch_size, presample,
                 forward_batch_size=128, smooth=0.0, seed=0, rows=None, switch=None):
        self.rows = rows
        self.switch = switch
        self.scorer = scorer
        self.reweighting = reweighting
        self.batch_size = batch_size
        self.presample = presample
        self.forward_batch_size = forward_batch_size
        self.smooth = smooth
        self.seed_generator = StepSeed(seed, scorer.model.optimizer.iterations)

    def __call__(self, data, replica_id=0, num_replicas=1):
        """Draw a batch from the candidates `data`; traceable.

        Args:
            data: The candidates, `(x, y, sample_weight)` as Keras unpacks a
                batch; the replica's own share under `tf.distribute`.
            replica_id: The replica running this call.
            num_replicas: The number of replicas in sync.

        Returns:
            A `Draw` of `batch_size / num_replicas` items.
        """
        if self.rows is not None:
            data = self.rows(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        count = ops.shape(keras.tree.flatten(x)[0])[0]
        if sample_weight is None:
            sample_weight = ops.ones([count])
        size = self.batch_size // num_replicas
        # Every replica draws the variates of all replicas from the same
        # stream and keeps its own share, so that the replicas' draws differ.
        variates = replica_share(
            keras.random.uniform([size * num_replicas], seed=self.seed_generator),
            replica_id, num_replicas,
        )
        candidates = (x, y, sample_weight)
        if self.switch is None:
            return self._by_importance(candidates, variates, num_replicas)
        return ops.cond(
            self.switch.is_on(),
            lambda: self._by_importance(candidates, variates, num_replicas),
            lambda: self._uniformly(candidates, variates, count),
        )

    def _by_importance(self, candidates, variates, num_replicas):
        x, y, sample_weight = candidates
        forward_batch_size = self.forward_batch_size or self.batch_size // num_replicas
        scores = self.scorer.score_batch(
            x, y, forward_batch_size, self.presample // num_replicas
        ) + self.smooth
        usable = scores_are_usable(scores, ops)
        scores = ops.where(usable, scores, ops.ones_like(scores))
        positions = proportional_positions(scores, variates)
        x_b, y_b, weight_b = nested.take((x, y, sample_weight), positions)
        drawn = Draw(
            x_b, y_b,
            self.reweighting.draw_weights(positions, scores, ops)[:, None],
            unbiased_weights(positions, scores, ops), weight_b,
            ops.cast(usable, "float32"),
        )
        if self.switch is None:
            return drawn
        return drawn._replace(importance=ops.ones(()), tau=variance_reduction(scores, ops))

    def _uniformly(self, candidates, variates, count):
        x, y, sample_weight = candidates
        positions = ops.minimum(
            ops.cast(ops.floor(variates * ops.cast(count, "float32")), "int32"), count - 1
        )
        x_b, y_b, weight_b = nested.take((x, y, sample_weight), positions)
        ones = ops.ones_like(variates)
        return Draw(x_b, y_b, ones[:, None], ones, weight_b, ops.ones(()),
                    ops.zeros(()), ops.zeros(()))


class StepSeed(keras.random.SeedGenerator):
    """A seed generator whose seed is `(seed, counter)`.

    With the optimizer's `iterations` as the counter, every step draws from a
    seed of its own, and the draws of a step depend only on `seed` and the
    step's number: they need no state of their own, and a run resumed from a
    checkpoint of the model and its optimizer draws as the uninterrupted run.
    """

    def __init__(self, seed, counter):
        super().__init__(seed)
        self._base = int(seed) % (2**31 - 1)
        self._counter = counter

    def next(self, ordered=True):
        counter = ops.cast(ops.convert_to_tensor(self._counter), "int32")
        base = ops.convert_to_tensor(self._base, "int32")
        return ops.cast(ops.stack([base, counter]), self.state.dtype)


def model_scope(model):
    """The context in which `fit` makes the model's variables.

    Under `tf.distribute` it is the model's strategy scope, in which the
    optimizer's and the metrics' variables are made.
    """
    strategy = getattr(model, "distribute_strategy", None)
    return contextlib.nullcontext() if strategy is None else strategy.scope()


class WeightedStep:
    """The weighted optimizer step of importance training.

    The loss is the model's own (`compute_loss`, with its regularisation
    losses and any override) with the sample weights `w ** k` times the
    user's weights; the compiled metrics are weighted by `1 / (B p_i)`, so
    that they estimate the metrics over the training set (the
    `weighted_metrics` also by the user's weights, as in `fit`), and so is
    the compiled loss of each item in `unbiased_loss`, a metric whose epoch
    mean estimates the training loss without bias (without the
    regularisation losses), when `fit` makes it one of the model's metrics.

    The backend's `train_step` calls `loss()` under its automatic
    differentiation, applies the gradients, then calls `logs()`. `traces`
    counts the calls of `loss()`: the traces of a compiled train step.

    Args:
        scorer: An `OracleWrapper` of the model.
        return_scores: When `True`, the logs also hold the scores observed
            in the step, under `SCORES`, for the samplers that learn from
            them on the host.
        switch: The `VarianceReductionSwitch` of the draws, updated with the
            variance reduction of the candidates' scores after a batch drawn
            by importance, and of the batch's own scores after a uniform
            one.
    """

    def __init__(self, scorer, return_scores=False, switch=None):
        self.scorer = scorer
        self.switch = switch
        with model_scope(scorer.model):
            self.unbiased_loss = keras.metrics.Mean(name="unbiased_loss")
        self.model = scorer.model
        self.return_scores = return_scores
        self.traces = 0

    @staticmethod
    def prepared(data):
        """The `Draw` of a batch drawn on the host.

        `data` is `(x, y, packed)`, `packed` as `model_wrappers.pack_batch`
        makes it: the policy's weights, the metric weights, the user's
        weights and a column that is 1 where the scores were usable.
        """
        x, y, packed = keras.utils.unpack_x_y_sample_weight(data)
        packed = ops.cast(packed, "float32")
        return Draw(x, y, packed[:, :-3], packed[:, -3], packed[:, -2], packed[0, -1])

    def loss(self, drawn):
        """The weighted loss of `drawn`, and what `logs()` needs."""
        self.traces += 1
        y_pred, scores = self.scorer.train_outputs(drawn.x, drawn.y)
        step_weights = drawn.sample_weight * self.scorer.reweighting.step_weights(
            drawn.weights, ops.stop_gradient(scores)
        )
        loss = keras_internals.compute_loss(
            self.model, drawn.x, drawn.y, y_pred, ops.stop_gradient(step_weights)
        )
        return loss, (y_pred, ops.stop_gradient(scores))

    def logs(self, drawn, loss, outputs):
        """Update the loss tracker and metrics; the logs of the step."""
        y_pred, scores = outputs
        count = ops.shape(keras.tree.flatten(drawn.x)[0])[0]
        keras_internals.loss_tracker(self.model).update_state(
            keras_internals.unscale_loss_for_distribution(loss), sample_weight=count
        )
        keras_internals.update_compiled_metrics(
            self.model, drawn.y, y_pred, drawn.metric_weights, drawn.sample_weight
        )
        # Loss scores are the items' losses already.
        losses = (scores if self.scorer.score_kind == "loss"
                  else self.scorer.sample_losses(drawn.y, y_pred))
        self.unbiased_loss.update_state(
            losses
            * ops.cast(drawn.metric_weights, "float32")
            * ops.cast(drawn.sample_weight, "float32")
        )
        if self.switch is not None:
            self.switch.update_state(ops.where(
                drawn.importance > 0, drawn.tau, variance_reduction(scores, ops)
            ))
        logs = dict(self.model.get_metrics_result())
        logs[USABLE] = drawn.usable
        if self.switch is not None:
            logs[IMPORTANCE] = drawn.importance
        if self.return_scores:
            logs[SCORES] = scores
        return logs


USABLE = "_importance_scores_usable"
SCORES = "_importance_scores"
IMPORTANCE = "_importance_sampled"
