"""The JAX parts of the SVRG step (see `importance_sampling.svrg`).

As in `importance_sampling.backend.jax`, the step is pure: it reads the
model's state from its arguments through `keras.StatelessScope`s and returns
the new state.
"""

import jax

from importance_sampling.backend.jax import applied, loss_gradients


def gradients(function, weights):
    """The gradients of the scalar `function(weights)` with respect to `weights`."""
    return jax.grad(function)(list(weights))


def copy_values(values):
    """Copies of arrays that later (donated) states leave unchanged."""
    return [jax.numpy.array(v, copy=True) for v in values]


def compile_function(function):
    return jax.jit(function)


def make_train_step(model, step):
    """Keras's `train_step(state, data)` of SVRG: data are `(batch, (snapshot, mu))`."""

    def train_step(state, data):
        batch, (snapshot, mean_gradients) = data
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        drawn = step.prepared(batch)
        # Both passes read the state of the step's start (the same random
        # state for dropout); the state changes of this one are dropped.
        fixed = (list(zip(model.non_trainable_variables, non_trainable))
                 + list(zip(model.metrics_variables, metrics_variables)))
        at_snapshot = gradients(lambda w: step.reference_loss(drawn, w, fixed), snapshot)
        loss, outputs, at_weights, non_trainable, metrics_variables = loss_gradients(
            model, step, drawn, state, scale=False
        )
        return applied(
            model, step, drawn, loss, outputs,
            step.combine(at_weights, at_snapshot, mean_gradients),
            (trainable, non_trainable, optimizer_variables, metrics_variables),
        )

    return train_step
