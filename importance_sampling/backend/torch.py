"""The PyTorch parts of a step."""

import contextlib
import warnings

import torch
from keras import ops, tree

from importance_sampling import candidates


def make_train_step(model, step, draw=None):
    def train_step(data):
        if draw is None:
            drawn = step.prepared(data)
        else:
            with torch.no_grad():
                drawn = draw(data)
        model.zero_grad()
        loss, outputs = step.loss(drawn)
        scaled_loss = model.optimizer.scale_loss(loss)
        if model.trainable_weights:
            scaled_loss.backward()
            variables = model.trainable_weights[:]
            gradients = [v.value.grad for v in variables]
            with torch.no_grad():
                model.optimizer.apply(gradients, variables)
        else:
            warnings.warn("The model does not have any trainable weights.")
        return step.logs(drawn, loss, outputs)

    return train_step


def gradient_norms(function, inputs):
    with torch.enable_grad():
        inputs = inputs.detach().requires_grad_(True)
        (gradients,) = torch.autograd.grad(ops.sum(function(inputs)), inputs)
    return ops.norm(ops.reshape(gradients, (gradients.shape[0], -1)), axis=1)


def per_sample_gradient_norms(model, loss, x, y):
    weights = [v.value for v in model.trainable_variables]
    norms = []
    count = tree.flatten(x)[0].shape[0]
    with torch.enable_grad():
        for i in range(count):
            x_i, y_i = tree.map_structure(lambda t, i=i: t[i:i + 1], (x, y))
            value = ops.sum(loss(y_i, model(x_i, training=False)))
            gradients = torch.autograd.grad(value, weights, allow_unused=True)
            norms.append(torch.sqrt(sum(
                torch.sum(g * g) for g in gradients if g is not None
            )))
    return torch.stack(norms)


def state_scope(model, state):
    return contextlib.nullcontext()


def compile_function(function):
    return function


def one_batch(batch):
    return [tree.map_structure(ops.convert_to_tensor, batch)]


def split_outputs(outputs):
    return outputs, None


def join_outputs(logs, rest):
    return logs


def unchanged_outputs(logs, args):
    return logs


def next_batch(args):
    (data,) = args
    return data[0]


def shards(model):
    return 1


def processes():
    return 1


def array_source():
    return candidates.HostArraySource()
