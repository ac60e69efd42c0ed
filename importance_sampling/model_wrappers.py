"""Model wrappers: scoring and weighted steps of a model, on any backend.

`OracleWrapper` computes a model's per-sample scores (in inference mode for
sampling, in training mode inside the weighted step) with `keras.ops`, so
that the same code runs inside the train step on every Keras backend. Its
host methods (`score`, `train_batch`) serve the samplers and the experiment
command, which draw their batches on the host.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from importance_sampling import backend, signals
from importance_sampling.gnorm import PreActivationGradientNorm
from importance_sampling.step import SCORES, USABLE, WeightedStep, model_scope
from importance_sampling.utils.losses import ModelLoss

SCORES_KINDS = ("loss", "gnorm", "full_gnorm", "acc")
SINGLE_OUTPUT_SCORES = ("gnorm", "acc")


def check_model(model):
    """Raise a `ValueError` unless `model` can be trained by importance sampling."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Importance training needs a `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "The model must be compiled with an optimizer and a loss before "
            "importance training, e.g. `model.compile('adam', "
            "'categorical_crossentropy')`. Received: an uncompiled model "
            f"{model.name!r}"
        )


def _per_sample_error(y_true, y_pred):
    """1 for a misclassified sample, 0 for a correct one (float32)."""
    y_pred = ops.cast(y_pred, "float32")
    if y_pred.shape[-1] == 1:
        y_true = ops.reshape(ops.cast(y_true, "float32"), ops.shape(y_pred))
        correct = ops.equal(ops.cast(y_pred > 0.5, "float32"), y_true)
    elif len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] != 1:
        # One-hot (or probability) targets; a last axis of 1 holds labels.
        correct = ops.equal(ops.argmax(y_pred, -1), ops.argmax(y_true, -1))
    else:
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        correct = ops.equal(ops.cast(ops.argmax(y_pred, -1), "int32"), labels)
    errors = 1.0 - ops.cast(correct, "float32")
    if len(errors.shape) > 1:
        errors = ops.mean(errors, axis=tuple(range(1, len(errors.shape))))
    return errors


def announce_step(logs, scores):
    """Send a train step's outputs on `is.training`, as host values.

    Returns:
        A tuple `(logs, scores)`: a dict of floats and a NumPy array.
    """
    logs = {name: float(value) for name, value in logs.items()}
    scores = np.asarray(scores)
    signals.training.send({"loss": logs["loss"], "metrics": logs, "scores": scores})
    return logs, scores


class _EvaluationSignals(keras.callbacks.Callback):
    """Announce every validation batch on `is.evaluate_batch`, and each pass."""

    def on_test_batch_end(self, batch, logs=None):
        signals.evaluate_batch.send({"batch": batch, "logs": logs})

    def on_test_end(self, logs=None):
        signals.evaluation.send({"logs": dict(logs or {})})


@contextlib.contextmanager
def installed_train_step(model, train_step, train_function=None):
    """Give `model` another `train_step` for the duration of the context.

    Keras's `fit` and `train_on_batch` build the model's train function from
    `model.train_step`; inside the context they build it from `train_step`
    (or use `train_function`, one built before). However the context ends,
    the model's own `train_step` and train function are put back.

    Yields:
        A callable returning the train function in use (after a build).
    """
    saved_function = model.train_function
    had_own_step = "train_step" in vars(model)
    saved_step = vars(model).get("train_step")
    model.train_step = train_step
    model.train_function = train_function
    try:
        yield lambda: model.train_function
    finally:
        if had_own_step:
            model.train_step = saved_step
        else:
            del model.train_step
        model.train_function = saved_function


def pack_batch(batch_weights, metric_weights, sample_weight):
    """The weights of a host-drawn batch as one `(b, weight_size + 3)` array.

    It travels to the train step as the batch's `sample_weight`, which is
    how Keras's `train_on_batch` and train functions carry per-sample values.
    """
    batch_weights = np.asarray(batch_weights, "float32").reshape(len(batch_weights), -1)
    count = len(batch_weights)
    usable = np.ones((count, 1), "float32")
    return np.hstack([
        batch_weights,
        np.asarray(metric_weights, "float32").reshape(count, 1),
        np.asarray(sample_weight, "float32").reshape(count, 1),
        usable,
    ])


class OracleWrapper:
    """Score samples with the model itself and train it with weighted steps.

    Args:
        model: A compiled `keras.Model`. It is trained in place: its weights
            and its optimizer state are the ones updated. With several
            outputs, a sample's loss is the `loss_weights`-weighted sum of the
            compiled losses of the outputs.
        reweighting: A `ReweightingPolicy` turning the sampled items' weights
            and the step's scores into the weights of the step.
        score: What measures a sample's importance: `"loss"` (its loss),
            `"gnorm"` (the norm of the loss gradient with respect to the last
            layer's pre-activation output), `"full_gnorm"` (the norm of the
            loss gradient with respect to all trainable weights, slow) or
            `"acc"` (1 for a misclassified sample, 0 otherwise). `"gnorm"`
            and `"acc"` need a model with one output. Defaults to `"loss"`.
        layer: For `score="gnorm"`, the layer (or its name) at whose
            pre-activation output the gradient is taken; see
            `importance_sampling.gnorm`. Defaults to the last layer.

    Raises:
        ValueError: for an uncompiled model or an unknown `score`, or a
            score that needs one output on a model with several.
    """

    def __init__(self, model, reweighting, score="loss", layer=None):
        check_model(model)
        if score not in SCORES_KINDS:
            raise ValueError(
                f"`score` must be one of {SCORES_KINDS}. Received: score={score!r}"
            )
        # Subclassed and not yet built models have no `outputs`.
        outputs = getattr(model, "outputs", None) or [None]
        if score in SINGLE_OUTPUT_SCORES and len(outputs) > 1:
            raise ValueError(
                f"`score={score!r}` needs a model with one output. Received: "
                f"model {model.name!r} with {len(outputs)} outputs"
            )
        if score == "gnorm" and getattr(model, "inputs", None) is None:
            raise ValueError(
                "`score='gnorm'` needs a functional or Sequential model with "
                "an `Input`, which it splits before its last activation. "
                f"Received: model {model.name!r} of type {type(model).__name__} "
                "without inputs"
            )
        self.model = model
        self.reweighting = reweighting
        self.score_kind = score
        self.backend = backend.get()
        self._model_loss = None
        if layer is not None and score != "gnorm":
            raise ValueError(
                "`layer` chooses where `score='gnorm'` takes its gradient. "
                f"Received: layer={layer!r} with score={score!r}"
            )
        self._gnorm = None
        if score == "gnorm":
            self._gnorm = PreActivationGradientNorm(model, layer)
        self._built = False
        self._score_function = None
        self.score_traces = 0
        self._host_step = None
        self._host_train_step = None
        self._host_train_function = None
        self.fit_state = None

    # Forward computations (traceable, with keras.ops)

    @property
    def _loss_fn(self):
        """The per-sample compiled loss; the compiled loss must be built."""
        if self._model_loss is None:
            self._model_loss = ModelLoss(self.model)
        return self._model_loss

    def outputs(self, x, y, training):
        """Predictions and per-sample scores of a batch.

        The scores are the per-sample losses for `score="loss"` and the
        scores of the chosen kind otherwise.
        """
        if self.score_kind == "gnorm":
            return self._gnorm.outputs(
                x, y, training, self._loss_fn, self.backend.gradient_norms
            )
        y_pred = self.model(x, training=training)
        if self.score_kind == "acc":
            scores = _per_sample_error(y, y_pred)
        elif self.score_kind == "full_gnorm":
            scores = self.backend.per_sample_gradient_norms(self.model, self._loss_fn, x, y)
        else:
            scores = self._loss_fn(y, y_pred)
        return y_pred, ops.cast(scores, "float32")

    def sample_losses(self, y, y_pred):
        """The compiled loss of each sample of a batch, from its predictions."""
        return ops.cast(self._loss_fn(y, y_pred), "float32")

    def train_outputs(self, x, y):
        """`outputs()` in training mode, inside the weighted step."""
        return self.outputs(x, y, training=True)

    def score_batch(self, x, y, batch_size, max_count=None):
        """Scores of all the samples, in inference mode; traceable.

        The samples are scored in forward batches of `batch_size`, of which
        there are as many as `max_count` (the most samples there can be,
        when their number is not known while tracing) calls for.
        """
        count = keras.tree.flatten(x)[0].shape[0] or max_count
        if count is None or count <= batch_size:
            return self.outputs(x, y, training=False)[1]
        parts = []
        for start in range(0, count, batch_size):
            x_i, y_i = keras.tree.map_structure(
                lambda t, s=start: t[s:s + batch_size], (x, y)
            )
            parts.append(self.outputs(x_i, y_i, training=False)[1])
        return ops.concatenate(parts, axis=0)

    # Host-side API

    def build(self, x, y):
        """Build the model, its metrics and its optimizer eagerly, once."""
        if self._built:
            return
        model = self.model
        x1, y1 = keras.tree.map_structure(lambda t: t[:1], (x, y))
        with model_scope(model):
            y_pred = model(x1, training=False)
            model.compute_loss(x1, y1, y_pred, training=False)
            model.compute_metrics(x1, y1, y_pred)
            model.reset_metrics()
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self._built = True

    def reset_metrics(self):
        """Reset the running means of the training logs (at an epoch start)."""
        self.model.reset_metrics()

    def score(self, x, y, batch_size=128):
        """Per-sample importance scores in inference mode.

        Args:
            x: Input array, or list or dict of arrays.
            y: Target array, or list or dict of arrays for several outputs.
            batch_size: Number of samples per forward pass. Defaults to `128`.

        Returns:
            A float32 NumPy array of shape `(num_samples,)`.
        """
        if self._score_function is None:
            def score_batch(x, y, batch_size):
                self.score_traces += 1
                return self.score_batch(x, y, batch_size)

            self._score_function = self.backend.compile_function(score_batch)
        with self.backend.state_scope(self.model, self.fit_state):
            # Inside JAX's `fit`, the variables have values in this scope only
            # (a stream's first batch reaches the host sampler there).
            self.build(x, y)
            scores = self._score_function(x, y, batch_size)
        return np.asarray(keras.ops.convert_to_numpy(scores))

    def train_batch(self, x, y, w, metric_weights=None, sample_weight=None):
        """Run one weighted optimizer step.

        The loss minimised is the model's compiled loss with each sample
        weighted by its step weight: the reweighting policy's weight times
        its `sample_weight`.

        Args:
            x: Input batch.
            y: Target batch.
            w: Weights from the reweighting policy, of shape
                `(batch_size, weight_size)`.
            metric_weights: Per-sample weights of the compiled metrics (the
                `weighted_metrics` are also weighted by `sample_weight`).
                Defaults to ones.
            sample_weight: The user's per-sample weights. Defaults to ones.

        Returns:
            A tuple `(loss, logs, scores)`: the weighted loss that was
            minimised, the running means of the training logs of the epoch
            (Keras names: `loss` and the compiled metrics) and the per-sample
            scores observed in the step.
        """
        self.build(x, y)
        ones = np.ones(len(w), dtype="float32")
        packed = pack_batch(
            w,
            ones if metric_weights is None else metric_weights,
            ones if sample_weight is None else sample_weight,
        )
        if self._host_train_step is None:
            self._host_step = WeightedStep(self, return_scores=True)
            self._host_train_step = self.backend.make_train_step(self.model, self._host_step)
        with installed_train_step(
            self.model, self._host_train_step, self._host_train_function
        ) as current:
            logs = self.model.train_on_batch(x, y, sample_weight=packed, return_dict=True)
            self._host_train_function = current()
        logs = dict(logs)
        logs.pop(USABLE)
        logs, scores = announce_step(logs, logs.pop(SCORES))
        return logs["loss"], logs, scores

    def evaluate(self, x, y=None, batch_size=128, steps=None, callbacks=None):
        """Evaluate the model unweighted, in inference mode.

        Args:
            x: Inputs, or anything `keras.Model.evaluate` accepts.
            y: Targets (omit for generators and datasets).
            batch_size: Samples per batch for array inputs. Defaults to `128`.
            steps: Number of batches to draw from a generator.
            callbacks: Callbacks receiving the `on_test_*` hooks.

        Returns:
            A dict of the loss and the compiled metrics.
        """
        callbacks = list(callbacks or []) + [_EvaluationSignals()]
        return self.model.evaluate(
            x, y, batch_size=batch_size, steps=steps, verbose=0,
            callbacks=callbacks, return_dict=True,
        )

    def set_lr(self, lr):
        """Set the learning rate of the model's optimizer."""
        self.model.optimizer.learning_rate = lr

    @property
    def trace_counts(self):
        """Number of traces of the host `score` and `train_batch` functions."""
        return {
            "score": self.score_traces,
            "train": 0 if self._host_step is None else self._host_step.traces,
        }
