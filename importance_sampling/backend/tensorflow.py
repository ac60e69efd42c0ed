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


def shards(model):
    return model.distribute_strategy.num_replicas_in_sync


def processes():
    return 1


def state_scope(model, args):
    return contextlib.nullcontext()


def one_batch(batch):
    return [batch]


def split_outputs(outputs):
    return outputs, None


def join_outputs(logs, rest):
    return logs


def unchanged_outputs(logs, args):
    return logs


def next_batch(args):
    (iterator,) = args
    return next(iter(iterator))


def compile_function(function):
    # Traced per input shape: relaxed, unknown ranks would defeat the loss's
    # alignment of the ranks of targets and predictions.
    return tf.function(function)


class ResidentArraySource:
    """Candidates gathered inside the train step from arrays kept in memory.

    `fit` iterates over the candidates' indices, drawn uniformly with
    replacement by a `tf.data` pipeline (those of a step depend only on the
    seed and the step's number, `optimizer.iterations`); the step gathers
    their rows from variables that hold the arrays in host memory, as
    `keras.Model.fit` keeps arrays. The variables keep their place in the
    compiled step from one `fit` to the next; `release()` empties them.
    """

    def __init__(self):
        self._variables = None
        with tf.device("CPU:0"):
            self._first_step = tf.Variable(0, dtype="int64", trainable=False)

    def load(self, data, presample, steps, seed):
        with tf.device("CPU:0"):
            if self._variables is None:
                self._variables = tf.nest.map_structure(
                    lambda a: tf.Variable(a, shape=[None, *a.shape[1:]], trainable=False),
                    data,
                )
            else:
                tf.nest.map_structure(lambda v, a: v.assign(a), self._variables, data)
        count = len(tf.nest.flatten(data)[0])
        first_step = self._first_step

        def indices(step):
            seed_pair = tf.stack([tf.constant(seed, "int64"), first_step + step])
            return tf.random.stateless_uniform(
                [presample], seed_pair, maxval=count, dtype="int64"
            )

        return tf.data.Dataset.range(steps).map(indices).prefetch(tf.data.AUTOTUNE)

    def set_first_step(self, step):
        self._first_step.assign(step)

    def rows(self, idxs):
        with tf.device("CPU:0"):
            return tf.nest.map_structure(lambda v: tf.gather(v, idxs), self._variables)

    def release(self):
        tf.nest.map_structure(
            lambda v: v.assign(tf.zeros([0, *v.shape[1:]], v.dtype)), self._variables
        )


def array_source():
    """A new source of candidates from arrays."""
    return ResidentArraySource()
