"""The TensorFlow parts of a step."""

import contextlib
import warnings

import tensorflow as tf
from keras import ops


def _replica():
    """`(replica id, number of replicas)` of the running `tf.distribute` replica."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def make_train_step(model, step, draw=None):
    def train_step(data):
        drawn = step.prepared(data) if draw is None else draw(data, *_replica())
        with tf.GradientTape() as tape:
            loss, outputs = step.loss(drawn)
            scaled_loss = model.optimizer.scale_loss(loss)
        variables = model.trainable_variables
        if variables:
            gradients = tape.gradient(scaled_loss, variables)
            model.optimizer.apply_gradients(zip(gradients, variables))
        else:
            warnings.warn("The model does not have any trainable weights.")
        return step.logs(drawn, loss, outputs)

    return train_step


def gradient_norms(function, inputs):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = ops.sum(function(inputs))
    gradients = tape.gradient(total, inputs)
    return ops.norm(ops.reshape(gradients, (ops.shape(gradients)[0], -1)), axis=1)


def per_sample_gradient_norms(model, loss, x, y):
    variables = model.trainable_variables

    def norm_of_one(sample):
        x_i, y_i = tf.nest.map_structure(lambda t: t[None], sample)
        with tf.GradientTape() as tape:
            value = ops.sum(loss(y_i, model(x_i, training=False)))
        squares = [ops.sum(ops.square(g)) for g in tape.gradient(value, variables)
                   if g is not None]
        return ops.sqrt(ops.sum(ops.stack(squares)))

    return tf.map_fn(norm_of_one, (x, y), fn_output_signature=tf.float32)


def state_scope(model, args):
    return contextlib.nullcontext()


def one_batch(batch):
    return [batch]


def split_outputs(outputs):
    return outputs, None


def join_outputs(logs, rest):
    return logs


def next_batch(args):
    (iterator,) = args
    return next(iter(iterator))


def compile_function(function):
    return tf.function(function, reduce_retracing=True)


class ArrayCandidates:
    """Uniform candidates from arrays, drawn by a `tf.data` pipeline.

    The draws of a step run in `tf.data`'s own threads, ahead of the steps,
    as Keras reads arrays; the candidates of step `i` of epoch `e` depend on
    the seed, `e` and `i` only. The arrays stay in host memory.

    Args:
        data: `(x, y, sample_weight)` arrays.
        presample: The number of candidates of a step.
        steps: The number of steps of an epoch.
        seed: The seed of the draws.
    """

    def __init__(self, data, presample, steps, seed):
        with tf.device("CPU:0"):
            data = tf.nest.map_structure(tf.convert_to_tensor, data)
            self._epoch = tf.Variable(0, dtype="int64", trainable=False)
        count = tf.shape(tf.nest.flatten(data)[0], out_type="int64")[0]
        epoch = self._epoch

        def draw(step):
            seed_pair = tf.stack([tf.constant(seed, "int64"), epoch * steps + step])
            idxs = tf.random.stateless_uniform(
                [presample], seed_pair, maxval=count, dtype="int64"
            )
            return tf.nest.map_structure(lambda t: tf.gather(t, idxs), data)

        self.dataset = (
            tf.data.Dataset.range(steps)
            .map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    @property
    def epoch(self):
        return int(self._epoch.numpy())

    @epoch.setter
    def epoch(self, value):
        self._epoch.assign(value)


def array_candidates(data, presample, steps, seed):
    """What Keras's `fit` iterates over for candidates drawn from arrays."""
    return ArrayCandidates(data, presample, steps, seed)
