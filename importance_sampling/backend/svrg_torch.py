"""The PyTorch parts of the SVRG step (see `importance_sampling.svrg`)."""

import warnings

import torch


def gradients(function, weights):
    """The gradients of the scalar `function(weights)` with respect to `weights`."""
    weights = [w.detach().requires_grad_(True) for w in weights]
    with torch.enable_grad():
        value = function(weights)
        found = torch.autograd.grad(value, weights, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, found)]


def copy_values(values):
    """Copies of tensors (or parameters) that later updates leave unchanged."""
    return [torch.as_tensor(v).detach().clone() for v in values]


def compile_function(function):
    return function


def make_train_step(model, step):
    """Keras's `train_step` of SVRG: data are `(batch, (snapshot, mu))`."""

    def train_step(data):
        batch, (snapshot, mean_gradients) = data
        drawn = step.prepared(batch)
        # First, so that the pass at the snapshot reads the same random
        # state (dropout) and statistics as the pass at the weights.
        at_snapshot = gradients(lambda w: step.reference_loss(drawn, w), list(snapshot))
        model.zero_grad()
        loss, outputs = step.loss(drawn)
        if model.trainable_weights:
            loss.backward()
            variables = model.trainable_weights[:]
            at_weights = [v.value.grad for v in variables]
            with torch.no_grad():
                model.optimizer.apply(
                    step.combine(at_weights, at_snapshot, mean_gradients), variables
                )
        else:
            warnings.warn("The model does not have any trainable weights.")
        return step.logs(drawn, loss, outputs)

    return train_step
