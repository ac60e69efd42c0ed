"""The JAX parts of a step.

Keras's JAX `fit` threads the model's state through a pure train step,
`train_step(state, data)`. The step reads the variables inside
`keras.StatelessScope`s that map them to that state, and returns the new
state.
"""

import contextlib
import warnings

import jax
import keras
from keras import ops

from importance_sampling import candidates


def _mapping(model, state):
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    return (
        list(zip(model.trainable_variables, trainable))
        + list(zip(model.non_trainable_variables, non_trainable))
        + list(zip(model.optimizer.variables, optimizer_variables))
        + list(zip(model.metrics_variables, metrics_variables))
    )


def _current(scope, variables, values):
    """The values of `variables` after `scope`, `values` where unchanged."""
    updated = [scope.get_current_value(v) for v in variables]
    return [v if new is None else new for v, new in zip(values, updated)]


def loss_gradients(model, step, drawn, state, scale=True):
    """The gradients of `step.loss(drawn)` with respect to the trainable state.

    Returns:
        `(loss, outputs, gradients, non_trainable, metrics_variables)`, the
        last two the state that the loss's forward pass left.
    """
    _, non_trainable, optimizer_variables, metrics_variables = state

    def loss_function(trainable, non_trainable, metrics_variables):
        mapping = _mapping(
            model, (trainable, non_trainable, optimizer_variables, metrics_variables)
        )
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            loss, outputs = step.loss(drawn)
            minimised = model.optimizer.scale_loss(loss) if scale else loss
        return minimised, (
            loss, outputs,
            _current(scope, model.non_trainable_variables, non_trainable),
            _current(scope, model.metrics_variables, metrics_variables),
        )

    gradient_function = jax.grad(loss_function, has_aux=True)
    gradients, aux = gradient_function(state[0], non_trainable, metrics_variables)
    loss, outputs, non_trainable, metrics_variables = aux
    return loss, outputs, gradients, non_trainable, metrics_variables


def applied(model, step, drawn, loss, outputs, gradients, state):
    """The logs and the new state of a step that applies `gradients`."""
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    if model.trainable_variables:
        trainable, optimizer_variables = model.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable
        )
    else:
        warnings.warn("The model does not have any trainable weights.")
    mapping = list(zip(model.metrics_variables, metrics_variables))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step.logs(drawn, loss, outputs)
    metrics_variables = _current(scope, model.metrics_variables, metrics_variables)
    return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


def make_train_step(model, step, draw=None):
    def train_step(state, data):
        trainable, _, optimizer_variables, _ = state
        if draw is None:
            drawn = step.prepared(data)
        else:
            with keras.StatelessScope(state_mapping=_mapping(model, state)):
                drawn = draw(data)
        loss, outputs, gradients, non_trainable, metrics_variables = loss_gradients(
            model, step, drawn, state
        )
        return applied(model, step, drawn, loss, outputs, gradients,
                       (trainable, non_trainable, optimizer_variables, metrics_variables))

    return train_step


def gradient_norms(function, inputs):
    gradients = jax.grad(lambda z: ops.sum(function(z)))(inputs)
    return ops.norm(ops.reshape(gradients, (gradients.shape[0], -1)), axis=1)


def per_sample_gradient_norms(model, loss, x, y):
    variables = model.trainable_variables
    # Read in the enclosing scope, which maps the variables to the state.
    fixed = [(v, v.value) for v in model.non_trainable_variables]

    def loss_of_one(values, x_i, y_i):
        mapping = list(zip(variables, values)) + fixed
        x_i, y_i = jax.tree.map(lambda t: t[None], (x_i, y_i))
        with keras.StatelessScope(state_mapping=mapping):
            return ops.sum(loss(y_i, model(x_i, training=False)))

    gradients = jax.vmap(jax.grad(loss_of_one), in_axes=(None, 0, 0))(
        [v.value for v in variables], x, y
    )
    squares = sum(ops.sum(ops.reshape(ops.square(g), (g.shape[0], -1)), axis=1)
                  for g in gradients)
    return ops.sqrt(squares)


def state_scope(model, state):
    if not state:
        return contextlib.nullcontext()
    return keras.StatelessScope(state_mapping=_mapping(model, state[0]))


def compile_function(function):
    return function


def one_batch(batch):
    return iter([batch])


def split_outputs(outputs):
    return outputs


def join_outputs(logs, rest):
    return logs, rest


def unchanged_outputs(logs, args):
    state, _ = args
    return logs, state


def next_batch(args):
    _, iterator = args
    return next(iterator)


def shards(model):
    """The number of devices that a batch is split over (on the batch axis)."""
    distribution = keras.distribution.distribution()
    if distribution is None or distribution.batch_dim_name is None:
        return 1
    mesh = distribution.device_mesh
    return dict(zip(mesh.axis_names, mesh.shape))[distribution.batch_dim_name]


def processes():
    """The number of processes that each feed their share of a batch."""
    return 1 if keras.distribution.distribution() is None else jax.process_count()


class ProcessArraySource(candidates.HostArraySource):
    """`HostArraySource` for one of the processes of a `keras.distribution`.

    Keras joins the batches that the processes feed into one global batch.
    Each process therefore feeds its share, `presample / num_processes`, of
    the step's candidates, drawn from the arrays it was given (all of them
    or its own shard) with a random stream of its own, so that the step
    draws `batch_size` items from `presample` candidates in all.
    """

    def load(self, data, presample, steps, seed):
        count = processes()
        return super().load(data, presample // count, steps,
                            seed * count + jax.process_index())


def array_source():
    return ProcessArraySource()
