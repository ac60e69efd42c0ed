"""The TensorFlow parts of the SVRG step (see `importance_sampling.svrg`)."""

import warnings

import tensorflow as tf


def gradients(function, weights):
    """The gradients of the scalar `function(weights)` with respect to `weights`."""
    with tf.GradientTape() as tape:
        tape.watch(weights)
        value = function(weights)
    found = tape.gradient(value, weights)
    return [tf.zeros_like(w) if g is None else g for w, g in zip(weights, found)]


def copy_values(values):
    """Copies of tensors (or variables) that later updates leave unchanged."""
    return [tf.identity(tf.convert_to_tensor(v)) for v in values]


def compile_function(function):
    return tf.function(function, reduce_retracing=True)


def make_train_step(model, step):
    """Keras's `train_step` of SVRG: data are `(batch, (snapshot, mu))`."""

    def train_step(data):
        batch, (snapshot, mean_gradients) = data
        drawn = step.prepared(batch)
        # First, so that the pass at the snapshot reads the same random
        # state (dropout) and statistics as the pass at the weights.
        at_snapshot = gradients(lambda w: step.reference_loss(drawn, w), list(snapshot))
        with tf.GradientTape() as tape:
            loss, outputs = step.loss(drawn)
        variables = model.trainable_variables
        if variables:
            at_weights = tape.gradient(loss, variables)
            model.optimizer.apply_gradients(zip(
                step.combine(at_weights, at_snapshot, mean_gradients), variables
            ))
        else:
            warnings.warn("The model does not have any trainable weights.")
        return step.logs(drawn, loss, outputs)

    return train_step
