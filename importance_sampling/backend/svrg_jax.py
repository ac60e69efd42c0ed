"""The JAX parts of the SVRG step (see `importance_sampling.svrg`).

As in `importance_sampling.backend.jax`, the step is pure: it reads the
model's state from its arguments through `keras.StatelessScope`s and returns
the new state.
"""

import warnings

import jax
import keras

from importance_sampling.backend.jax import _current, _mapping


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

        def loss_function(trainable, non_trainable, metrics_variables):
            mapping = _mapping(
                model, (trainable, non_trainable, optimizer_variables, metrics_variables)
            )
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                loss, outputs = step.loss(drawn)
            return loss, (
                outputs,
                _current(scope, model.non_trainable_variables, non_trainable),
                _current(scope, model.metrics_variables, metrics_variables),
            )

        gradient_function = jax.value_and_grad(loss_function, has_aux=True)
        (loss, aux), at_weights = gradient_function(trainable, non_trainable, metrics_variables)
        outputs, non_trainable, metrics_variables = aux
        if model.trainable_variables:
            trainable, optimizer_variables = model.optimizer.stateless_apply(
                optimizer_variables, step.combine(at_weights, at_snapshot, mean_gradients),
                trainable,
            )
        else:
            warnings.warn("The model does not have any trainable weights.")
        mapping = list(zip(model.metrics_variables, metrics_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = step.logs(drawn, loss, outputs)
        metrics_variables = _current(scope, model.metrics_variables, metrics_variables)
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)

    return train_step
