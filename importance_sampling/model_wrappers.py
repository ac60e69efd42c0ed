"""Model wrappers: the compiled forward passes and weighted steps of a model.

A wrapper owns two `tf.function`s over the user's own model: one scores a
batch in inference mode, the other runs one weighted optimizer step with the
user's compiled loss and optimizer. Both are traced once per input signature.
Scoring a whole presample is one call: its forward batches are looped over
inside the graph. The train step is compiled with XLA when the model was
compiled with `jit_compile=True` (Keras's default on a GPU).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops, tree

from importance_sampling import signals
from importance_sampling.utils import nested
from importance_sampling.utils.losses import ModelLoss

SCORES = ("loss", "gnorm", "full_gnorm", "acc")
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
    elif len(y_true.shape) == len(y_pred.shape):
        correct = ops.equal(ops.argmax(y_pred, -1), ops.argmax(y_true, -1))
    else:
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int64")
        correct = ops.equal(ops.argmax(y_pred, -1), labels)
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
    """Announce every validation batch on `is.evaluate_batch`."""

    def on_test_batch_end(self, batch, logs=None):
        signals.evaluate_batch.send({"batch": batch, "logs": logs})


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

    Raises:
        ValueError: for an uncompiled model or an unknown `score`, or a
            score that needs one output on a model with several.
    """

    def __init__(self, model, reweighting, score="loss"):
        check_model(model)
        if score not in SCORES:
            raise ValueError(
                f"`score` must be one of {SCORES}. Received: score={score!r}"
            )
        if score in SINGLE_OUTPUT_SCORES and len(model.outputs or [None]) > 1:
            raise ValueError(
                f"`score={score!r}` needs a model with one output. Received: "
                f"model {model.name!r} with {len(model.outputs)} outputs"
            )
        self.model = model
        self.reweighting = reweighting
        self.score_kind = score
        self._loss_fn = None
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._logits_parts = None
        self._built = False
        self._score_function = tf.function(self._score_step, reduce_retracing=True)
        # XLA for the train step when the model was compiled with it.
        self._train_function = tf.function(
            self._train_step, reduce_retracing=True,
            jit_compile=bool(getattr(model, "jit_compile", False)),
        )

    # Forward computations (traced inside the tf.functions)

    def _pre_activation_parts(self):
        """The model split before its last activation, for `score="gnorm"`."""
        if self._logits_parts is None:
            last = self.model.layers[-1]
            if getattr(last, "activation", None) is None:
                raise ValueError(
                    "`score='gnorm'` needs a model whose last layer has an "
                    f"`activation`. Received: last layer {last.name!r} of type "
                    f"{type(last).__name__}"
                )
            inputs = self.model.inputs
            trunk = keras.Model(inputs[0] if len(inputs) == 1 else inputs, last.input)
            self._logits_parts = (trunk, last)
        return self._logits_parts

    def _outputs_with_logit_gradients(self, x, y, training):
        trunk, last = self._pre_activation_parts()
        features = trunk(x, training=training)
        activation = last.activation
        with tf.GradientTape() as tape:
            last.activation = keras.activations.linear
            try:
                logits = last(features, training=training)
            finally:
                last.activation = activation
            tape.watch(logits)
            y_pred = activation(logits)
            output_losses = self._loss_fn.output_losses(y, y_pred)
            total = ops.sum(self._loss_fn.total(output_losses))
        gradients = tape.gradient(total, logits)
        batch = ops.shape(gradients)[0]
        norms = ops.norm(ops.reshape(gradients, (batch, -1)), axis=1)
        return y_pred, output_losses, norms

    def _full_gradient_norms(self, x, y, training):
        weights = self.model.trainable_variables

        def norm_of_one(sample):
            x_i, y_i = nested.take(sample, None)
            with tf.GradientTape() as tape:
                loss = ops.sum(self._loss_fn(y_i, self.model(x_i, training=training)))
            gradients = tape.gradient(loss, weights)
            squares = [ops.sum(ops.square(g)) for g in gradients if g is not None]
            return ops.sqrt(ops.sum(ops.stack(squares)))

        return tf.map_fn(norm_of_one, (x, y), fn_output_signature=tf.float32)

    def _outputs(self, x, y, training):
        """Predictions, per-sample losses and per-sample scores of a batch.

        The losses are a list with the per-sample loss of each output.
        """
        if self.score_kind == "gnorm":
            return self._outputs_with_logit_gradients(x, y, training)
        y_pred = self.model(x, training=training)
        output_losses = self._loss_fn.output_losses(y, y_pred)
        if self.score_kind == "acc":
            scores = _per_sample_error(y, y_pred)
        elif self.score_kind == "full_gnorm":
            scores = self._full_gradient_norms(x, y, training)
        else:
            scores = self._loss_fn.total(output_losses)
        return y_pred, output_losses, scores

    def _score_step(self, x, y, batch_size):
        """Scores of all the samples, in forward batches of `batch_size`.

        The batches are looped over inside the graph, so that scoring a
        whole presample costs one call of the compiled function.
        """
        count = ops.shape(tree.flatten(x)[0])[0]
        starts = tf.range(0, count, batch_size)
        scores = tf.TensorArray(
            tf.float32, size=tf.size(starts), infer_shape=False, element_shape=[None]
        )
        for i in tf.range(tf.size(starts)):
            batch = slice(starts[i], starts[i] + batch_size)
            x_i, y_i = nested.take((x, y), batch)
            batch_scores = self._outputs(x_i, y_i, training=False)[2]
            scores = scores.write(i, ops.cast(batch_scores, "float32"))
        return scores.concat()

    def _train_step(self, x, y, weights, metric_weights, sample_weight):
        model = self.model
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred, output_losses, scores = self._outputs(x, y, training=True)
            step_weights = sample_weight * self.reweighting.step_weights(
                weights, ops.stop_gradient(scores)
            )
            loss = ops.mean(step_weights * self._loss_fn.total(output_losses))
            if model.losses:
                loss = loss + ops.cast(ops.sum(model.losses), loss.dtype)
            scaled_loss = model.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)
        model.optimizer.apply_gradients(zip(gradients, variables))
        self._loss_tracker.update_state(loss)
        self._update_output_losses(output_losses, step_weights)
        self._update_metrics(y, y_pred, metric_weights, sample_weight)
        logs = model.get_metrics_result()
        logs["loss"] = self._loss_tracker.result()
        return logs, scores

    def _update_output_losses(self, output_losses, step_weights):
        """The `<output>_loss` logs of a model with several outputs."""
        trackers = self.model._compile_loss.metrics
        for tracker, losses in zip(trackers, output_losses):
            tracker.update_state(step_weights * losses)

    def _update_metrics(self, y, y_pred, metric_weights, sample_weight):
        """Update the compiled metrics, weighted by the importance weights.

        Keras weights only the `weighted_metrics` of `compile`, by the user's
        sample weights. Here the importance weights `metric_weights` reach
        every metric, so that the logged values estimate the metrics over
        the training set; `weighted_metrics` are also weighted by the
        user's `sample_weight`, as in `fit`.
        """
        compiled = self.model._compile_metrics
        if compiled is None:
            return
        y_true, y_pred = compiled._flatten_y(y), compiled._flatten_y(y_pred)
        for metric_lists, weights in (
            (compiled._flat_metrics, metric_weights),
            (compiled._flat_weighted_metrics, metric_weights * sample_weight),
        ):
            for metrics, y_t, y_p in zip(metric_lists, y_true, y_pred):
                if metrics is not None:
                    metrics.update_state(y_t, y_p, sample_weight=weights)

    # Host-side API

    def _build(self, x, y):
        """Build the model, its metrics and its optimizer eagerly, once."""
        if self._built:
            return
        model = self.model
        x1, y1 = nested.take((x, y), slice(0, 1))
        y_pred = model(x1, training=False)
        model.compute_loss(x1, y1, y_pred, training=False)
        model.compute_metrics(x1, y1, y_pred)
        model.reset_metrics()
        self._loss_fn = ModelLoss(model)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if self.score_kind == "gnorm":
            self._pre_activation_parts()
        self._built = True

    def reset_metrics(self):
        """Reset the running means of the training logs (at an epoch start)."""
        self.model.reset_metrics()
        self._loss_tracker.reset_state()

    def score(self, x, y, batch_size=128):
        """Per-sample importance scores in inference mode.

        Args:
            x: Input array, or list or dict of arrays.
            y: Target array, or list or dict of arrays for several outputs.
            batch_size: Number of samples per forward pass. Defaults to `128`.

        Returns:
            A float32 NumPy array of shape `(num_samples,)`.
        """
        self._build(x, y)
        scores = self._score_function(x, y, tf.constant(batch_size, "int32"))
        return scores.numpy()

    def train_batch(self, x, y, w, metric_weights=None, sample_weight=None):
        """Run one weighted optimizer step.

        The loss minimised is the mean over the batch of each sample's loss
        times its step weight: the reweighting policy's weight times its
        `sample_weight`.

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
        self._build(x, y)
        w = np.asarray(w, dtype="float32").reshape(len(w), -1)
        ones = np.ones(len(w), dtype="float32")
        metric_weights = ones if metric_weights is None else metric_weights
        sample_weight = ones if sample_weight is None else sample_weight
        logs, scores = self._train_function(
            x, y, w, np.asarray(metric_weights, "float32"),
            np.asarray(sample_weight, "float32"),
        )
        logs, scores = announce_step(logs, scores)
        return logs["loss"], logs, scores

    def evaluate(self, x, y=None, batch_size=128, steps=None, callbacks=None):
        """Evaluate the model unweighted, in inference mode.

        Args:
            x: Inputs, or anything `keras.Model.evaluate` accepts.
            y: Targets (omit for generators and datasets).
            batch_size: Samples per batch for array inputs. Defaults to `128`.
            steps: Number of batches to draw from a generator.
            callbacks: A `keras.callbacks.CallbackList` receiving the `on_test_*`
                hooks, as during `fit`.

        Returns:
            A dict of the loss and the compiled metrics.
        """
        if callbacks is None:
            callbacks = [_EvaluationSignals()]
        logs = self.model.evaluate(
            x, y, batch_size=batch_size, steps=steps, verbose=0,
            callbacks=callbacks, return_dict=True,
        )
        signals.evaluation.send({"logs": logs})
        return logs

    def set_lr(self, lr):
        """Set the learning rate of the model's optimizer."""
        self.model.optimizer.learning_rate = lr

    @property
    def trace_counts(self):
        """Number of traces of the score and train functions."""
        return {
            "score": self._score_function.experimental_get_tracing_count(),
            "train": self._train_function.experimental_get_tracing_count(),
        }
