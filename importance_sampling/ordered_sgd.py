"""Ordered SGD (Kawaguchi & Lu, AISTATS 2020): minimise the mean of each batch's largest losses.

```python
from importance_sampling.ordered_sgd import OrderedSGDTraining

model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
OrderedSGDTraining(model, q=0.5).fit(x_train, y_train, batch_size=64, epochs=10)
```

Each step forwards its `batch_size` samples once, in training mode, ranks
them by their loss and back-propagates the mean of the `q` largest losses
only. It is a train step of importance training (`selection`) whose draw
keeps every candidate and whose loss weighs the top `q` of them by
`batch_size / q` and the others by 0, so that Keras's mean over the batch is
the mean over the top `q`.
"""

import numbers

import keras
import numpy as np
from keras import ops

from importance_sampling import keras_internals
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.samplers.uniform import UniformSampler
from importance_sampling.selection import AllCandidates, SelectionTraining
from importance_sampling.step import WeightedStep
from importance_sampling.utils import checks

SCHEDULE_ACCURACIES = (0.80, 0.90, 0.95, 0.995)
"""The training accuracies at which the authors' schedule halves `q`."""

ACCURACY_LOGS = ("accuracy", "acc", "sparse_categorical_accuracy",
                 "categorical_accuracy", "binary_accuracy")


def check_q(q):
    """Raise a `ValueError` unless `q` is a fraction in `(0, 1]` or a positive `int`."""
    expected = ("a fraction of the batch in (0, 1] (a float) or a number of samples "
                "of at least 1 (an int)")
    if isinstance(q, numbers.Integral):
        checks.check_number("q", q, low=1, integer=True, expected=expected)
    else:
        checks.check_number("q", q, low=0, high=1, low_open=True, expected=expected)


def top_count(q, batch_size):
    """The number of largest losses of a batch of `batch_size` that a step averages.

    Raises:
        ValueError: for an `int` `q` larger than `batch_size`.
    """
    if isinstance(q, (int, np.integer)):
        if q > batch_size:
            raise ValueError(
                "`q` must not exceed `batch_size`: each step averages the `q` "
                f"largest losses of its batch. Received: q={q}, batch_size={batch_size}"
            )
        return int(q)
    return max(1, int(round(q * batch_size)))


def top_loss_weights(losses, count):
    """Per-sample weights that turn the mean of `losses` into the mean of its `count` largest.

    The `count` largest losses get `n / count` (`n` the number of losses),
    the others 0; ties are broken by position. `count` may be a tensor.
    """
    size = ops.sum(ops.ones_like(losses))
    ranks = ops.argsort(ops.argsort(-losses))
    kept = ops.cast(ops.cast(ranks, "float32") < count, "float32")
    return kept * size / count


class TopCount(keras.metrics.Metric):
    """The number of largest losses that a step averages; `q` in the logs.

    A metric, so that Keras's `fit` threads it through the train step on
    every backend and the step reads the value that the host last set (the
    schedule changes it between epochs). It is not reset at an epoch's
    start; `restart()` sets it from `current()`.

    Args:
        batch_size: The number of samples of a step, over all replicas.
        current: A function returning the count of a whole step.
        name: The name of the count in the logs. Defaults to `"q"`.
    """

    def __init__(self, batch_size, current, name="q"):
        super().__init__(name=name, dtype="float32")
        self.batch_size = int(batch_size)
        self.current = current
        self.count = self.add_variable(
            shape=(), initializer=keras.initializers.Constant(float(current())),
            dtype="float32", aggregation="mean", name="count",
        )

    def local_count(self, size):
        """The count for `size` of the step's samples (a replica's share), at least 1."""
        share = self.count * ops.cast(size, "float32") / float(self.batch_size)
        return ops.maximum(ops.round(share), 1.0)

    def update_state(self, *args, **kwargs):
        """The count changes by `restart()` only."""

    def result(self):
        return ops.convert_to_tensor(self.count)

    def reset_state(self):
        """Keep the count across epochs; see `restart()`."""

    def restart(self):
        """Set the count to `current()`."""
        self.count.assign(float(self.current()))


class FixedCount:
    """The count of a step of any size: `q` of it (see `top_count`)."""

    def __init__(self, q):
        check_q(q)
        self.q = q

    def local_count(self, size):
        size = ops.cast(size, "float32")
        if isinstance(self.q, (int, np.integer)):
            return ops.minimum(float(self.q), size)
        return ops.maximum(ops.round(self.q * size), 1.0)


class TopLossStep(WeightedStep):
    """The weighted step whose loss is the mean of the batch's largest losses.

    The batch is forwarded once, in training mode; its per-sample losses
    rank the samples, and the loss is the model's `compute_loss` with the
    weights of `top_loss_weights` times the user's weights.

    Args:
        scorer: An `OracleWrapper` of the model, with `score="loss"`.
        counter: The `TopCount` of the step, or a `FixedCount`.
        return_scores: As in `WeightedStep`.
    """

    def __init__(self, scorer, counter, return_scores=False):
        super().__init__(scorer, return_scores=return_scores)
        self.counter = counter

    def loss(self, drawn):
        self.traces += 1
        y_pred, losses = self.scorer.train_outputs(drawn.x, drawn.y)
        losses = ops.stop_gradient(losses)
        count = self.counter.local_count(ops.shape(losses)[0])
        step_weights = (ops.cast(drawn.sample_weight, "float32")
                        * ops.cast(drawn.weights[:, 0], "float32")
                        * top_loss_weights(losses, count))
        loss = keras_internals.compute_loss(
            self.model, drawn.x, drawn.y, y_pred, ops.stop_gradient(step_weights)
        )
        return loss, (y_pred, losses)


class _HalvingSchedule(keras.callbacks.Callback):
    """Halve `q` at the end of the epochs whose training accuracy passes a threshold."""

    def __init__(self, training, counter):
        super().__init__()
        self.training = training
        self.counter = counter

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        names = ACCURACY_LOGS if self.training.accuracy is None else (self.training.accuracy,)
        name = next((n for n in names if n in logs), None)
        if name is None:
            raise ValueError(
                "The schedule of `OrderedSGDTraining` halves `q` by the "
                "training accuracy: compile the model with an accuracy metric "
                "(e.g. `metrics=['accuracy']`) or name its log with "
                f"`accuracy=...`. Received: training logs {sorted(logs)}"
            )
        passed = sum(float(logs[name]) >= t for t in self.training.schedule_accuracies)
        if passed > self.training.halvings:
            self.training.halvings = passed
            self.counter.restart()


class OrderedSGDTraining(SelectionTraining):
    """Ordered SGD: each step minimises the mean of the `q` largest losses of its batch.

    Kawaguchi & Lu, "Ordered SGD: A New Stochastic Optimization Framework
    for Empirical Risk Minimization", AISTATS 2020. A step draws
    `batch_size` samples (uniformly with replacement from arrays; the next
    `batch_size` samples of a stream), forwards them once in training mode
    and back-propagates the mean of the losses of the `q` samples with the
    largest losses; the others get no gradient. The samples are ranked by
    their unweighted loss; a user's `sample_weight` or `class_weight` then
    weighs each kept sample's loss.

    The authors' schedule (`schedule=True`) halves `q` each time the
    training accuracy of an epoch first reaches 80 %, 90 %, 95 % and
    99.5 % (`schedule_accuracies`), down to 1 sample; the training accuracy is
    that of all of the epoch's samples, kept or not. The number of samples
    averaged is `q` in the logs.

    Args:
        model: A compiled `keras.Model`, trained in place.
        q: The fraction of the batch averaged by a step (a `float` in
            `(0, 1]`, rounded to a number of samples, at least 1) or that
            number itself (an `int`). Defaults to `0.5`.
        schedule: Whether to halve `q` by the authors' schedule. Defaults
            to `False`.
        accuracy: The name of the training accuracy in the logs that the
            schedule reads. Defaults to `None`, the first of `"accuracy"`,
            `"acc"`, `"sparse_categorical_accuracy"`,
            `"categorical_accuracy"` and `"binary_accuracy"` in the logs.

    Attributes:
        halvings: How many times the schedule has halved `q` so far.

    Raises:
        ValueError: for a `q` that is neither a fraction in `(0, 1]` nor a
            positive `int`, or (at `fit`) an `int` `q` above `batch_size`.

    References:
        - [Kawaguchi & Lu, 2020](https://arxiv.org/abs/1907.04371)

    Example:

    ```python
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    OrderedSGDTraining(model, q=0.5, schedule=True).fit(x, y, batch_size=64, epochs=20)
    ```
    """

    schedule_accuracies = SCHEDULE_ACCURACIES

    def __init__(self, model, q=0.5, schedule=False, accuracy=None):
        check_q(q)
        if accuracy is not None and not isinstance(accuracy, str):
            raise ValueError(
                "`accuracy` must be `None` or the name of the training accuracy "
                f"in the logs (a string). Received: accuracy={accuracy!r}"
            )
        super().__init__(model, presample=1)
        self.q = q
        self.schedule = checks.check_bool("schedule", schedule)
        self.accuracy = accuracy
        self.halvings = 0

    def count(self, batch_size):
        """The number of losses averaged by a step of `batch_size` samples now."""
        return max(1, top_count(self.q, batch_size) // 2 ** self.halvings)

    def _presample_size(self, batch_size):
        # A step's candidates are its batch; the loss selects among them.
        top_count(self.q, batch_size)
        return batch_size

    def _draw_settings(self):
        return (("q", self.q),)

    def _make_draw(self, plan, rows, metric):
        return AllCandidates(rows)

    def _make_sampler(self, dataset, presample, batch_size):
        return UniformSampler(dataset, self.reweighting)

    def _step_metric(self, plan):
        batch_size = plan.batch_size
        return TopCount(batch_size, lambda: self.count(batch_size))

    def get_state(self):
        return {**super().get_state(), "halvings": self.halvings}

    def _load_state(self, state):
        super()._load_state(state)
        self.halvings = int(state["halvings"])

    def _make_step(self, plan, metric):
        return TopLossStep(self.wrapper, metric, return_scores=plan.kind == "host")

    def _run(self, plan, epochs, callbacks, fit_kwargs):
        callbacks = list(callbacks or [])
        if self.schedule:
            callbacks.append(_HalvingSchedule(self, self._built_step(plan).switch))
        return super()._run(plan, epochs, callbacks, fit_kwargs)


class OrderedSGDWrapper(OracleWrapper):
    """An `OracleWrapper` whose `train_batch` is an Ordered SGD step.

    For the loops that draw batches on the host (the experiment command):
    `train_batch(x, y, w)` minimises the mean of the `q` largest losses of
    the batch (the importance weights `w` multiply them, and are 1 for
    `NoReweightingPolicy` samplers).

    Args:
        model: A compiled `keras.Model`, trained in place.
        q: A fraction of each batch in `(0, 1]`, or a count (see
            `OrderedSGDTraining`). Defaults to `0.5`.

    References:
        - [Kawaguchi & Lu, 2020](https://arxiv.org/abs/1907.04371)
    """

    def __init__(self, model, q=0.5):
        super().__init__(model, NoReweightingPolicy(), score="loss")
        self._host_step = TopLossStep(self, FixedCount(q), return_scores=True)
        self._host_train_step = self.backend.make_train_step(model, self._host_step)
