"""Selective Backprop, Ordered SGD and RHO-LOSS on every backend: each trains a
small model, Ordered SGD's steps are top-q mean steps computed by hand (also
after its schedule halved q between epochs), and RHO-LOSS selects by the
difference of the two losses."""

import contextlib

import keras
import numpy as np
import pytest
from conftest import blobs, expected_sgd_step, one_hot, sgd_classifier

from importance_sampling.ordered_sgd import OrderedSGDTraining
from importance_sampling.rho_loss import (
    ReducibleLossDraw,
    ReducibleLossTraining,
    train_irreducible_model,
)
from importance_sampling.selective_backprop import SelectiveBackpropTraining

from .common import ArrayBatches, batches, bn_dropout_classifier, host_steps

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
LEARNING_RATE = 0.5


def losses_by_hand(weights, x, y):
    """Per-sample cross-entropy of a Dense-tanh, Dense-softmax model, with NumPy."""
    kernel_1, bias_1, kernel_2, bias_2 = (np.asarray(w, "float64") for w in weights)
    logits = np.tanh(np.asarray(x, "float64") @ kernel_1 + bias_1) @ kernel_2 + bias_2
    logits -= logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(x)), np.asarray(y).reshape(-1)]


def noisy_blobs(n=512, noise=0.05, seed=0):
    """Two well separated blobs, a share `noise` of whose labels are flipped."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = np.stack([labels * 2 - 1, np.zeros(n)], 1) * 2 + rng.normal(size=(n, 2))
    flipped = rng.random(n) < noise
    labels[flipped] = 1 - labels[flipped]
    return x.astype("float32"), one_hot(labels, 2)


X2, Y2 = noisy_blobs()


def with_weights(seed):
    """A `sgd_classifier` with weights drawn from `seed`: losses of a wide spread."""
    model = sgd_classifier(LEARNING_RATE)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


# Each class trains a small model


def fit_selective_backprop(model):
    training = SelectiveBackpropTraining(model, beta=1.0, staleness=1)
    history = training.fit(X2, Y2, batch_size=16, epochs=2, verbose=0)
    assert training.backward_samples == 2 * 512
    assert training.forward_samples > training.backward_samples
    return history


def fit_ordered_sgd(model):
    return OrderedSGDTraining(model, q=0.5).fit(
        X2, Y2, batch_size=16, epochs=2, verbose=0, validation_data=(X2[:64], Y2[:64])
    )


def fit_rho_loss(model):
    irreducible, (x_rest, y_rest) = train_irreducible_model(
        model, X2, Y2, holdout=0.25, seed=0, epochs=2, batch_size=16, verbose=0
    )
    training = ReducibleLossTraining(model, irreducible, presample=10.0)
    history = training.fit(x_rest, y_rest, batch_size=8, epochs=2, verbose=0)
    assert training.irreducible_losses.shape == (len(x_rest),)
    return history


@pytest.mark.parametrize("fit", [fit_selective_backprop, fit_ordered_sgd, fit_rho_loss],
                         ids=["selective-backprop", "ordered-sgd", "rho-loss"])
def test_each_method_trains_a_small_model_with_dropout_and_batchnorm(fit):
    model = bn_dropout_classifier(num_classes=2, learning_rate=0.02)
    # a start that is confidently wrong on one class, on every backend
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + np.array([3.0, -3.0], "float32")])
    start = model.evaluate(X2, Y2, verbose=0)[0]
    history = fit(model)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(X2, Y2, verbose=0)[0] < 0.7 * start


# Selective Backprop from a stream: full batches of kept samples


@pytest.mark.parametrize("form", ["PyDataset", "generator"])
def test_selective_backprop_from_a_stream_trains_full_batches_of_kept_samples(form):
    model = bn_dropout_classifier(num_classes=2, learning_rate=0.02)
    training = SelectiveBackpropTraining(model, beta=1.0)
    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    for epoch in range(2):
        data = ArrayBatches(X2, Y2, batch_size=32)
        if form == "generator":
            data = batches(X2, Y2, batch_size=32)
        training.fit(data, batch_size=16, epochs=1, verbose=0, callbacks=[Record()])
    # Every sample is forwarded once per epoch, in batches of 16: a step each.
    assert training.forward_samples == 2 * len(X2) and len(steps) == 2 * len(X2) // 16
    # The model is updated once per full batch of kept samples: not at every step.
    updates = int(model.optimizer.iterations)
    assert training.backward_samples == 16 * updates
    assert 0 < updates < len(steps)


def test_stale_selective_backprop_refuses_a_stream():
    training = SelectiveBackpropTraining(sgd_classifier(LEARNING_RATE), staleness=1)
    with pytest.raises(NotImplementedError, match="staleness=1"):
        training.fit(ArrayBatches(X2, Y2, batch_size=32), batch_size=16)


# Ordered SGD: the step is the gradient of the top-q mean


@pytest.mark.parametrize("where", ["in-step", "host"])
def test_ordered_sgd_steps_are_top_q_mean_steps_also_after_the_schedule_halved_q(where):
    model = sgd_classifier(LEARNING_RATE)
    x, y = X[:16], LABELS[:16]
    training = OrderedSGDTraining(model, q=8, schedule=True)
    training.schedule_accuracies = (0.0,)  # halve after the first epoch
    weights = model.get_weights()
    for count in (8, 4):
        losses = losses_by_hand(weights, x, y)
        mask = np.zeros(16)
        mask[np.argsort(-losses)[:count]] = 1.0
        reference = sgd_classifier(LEARNING_RATE)
        reference.set_weights(weights)
        _, weights = expected_sgd_step(reference, x, y, mask * 16 / count, LEARNING_RATE)
    context = host_steps() if where == "host" else contextlib.nullcontext()
    with context:
        history = training.fit(ArrayBatches(x, y, batch_size=16), batch_size=16, epochs=2,
                               verbose=0)
    assert history.history["q"] == [8, 4]
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# RHO-LOSS: the batch has the largest training loss minus irreducible loss


def test_rho_loss_draw_selects_by_the_difference_of_the_two_losses():
    model, other = with_weights(0), with_weights(11)
    x, y = X[:40], LABELS[:40]
    training_loss = losses_by_hand(model.get_weights(), x, y)
    irreducible = losses_by_hand(other.get_weights(), x, y)

    def top(values):
        return set(np.argsort(-values)[:4].tolist())

    chosen = top(training_loss - irreducible)
    assert len({frozenset(chosen), frozenset(top(training_loss)), frozenset(top(irreducible)),
                frozenset(top(-irreducible))}) == 4
    training = ReducibleLossTraining(model, other)
    training.wrapper.build(x, y)
    columns = np.stack([np.ones(40), irreducible, np.arange(40)], axis=1).astype("float32")
    drawn = ReducibleLossDraw(training.wrapper, 4, 40)((x, y, columns))
    x_b = keras.ops.convert_to_numpy(drawn.x)
    assert {int(np.flatnonzero((x == row).all(axis=1))[0]) for row in x_b} == chosen


@pytest.mark.parametrize("where", ["in-step", "host"])
def test_a_rho_loss_step_in_fit_trains_on_the_largest_difference(where):
    # 8 samples, 64 candidates: every sample is a candidate, and the batch
    # of 4 is the 4 (distinct) samples of largest difference.
    model, other = with_weights(0), with_weights(11)
    x, y = X[:8], LABELS[:8]
    reducible = (losses_by_hand(model.get_weights(), x, y)
                 - losses_by_hand(other.get_weights(), x, y))
    training = ReducibleLossTraining(model, other, presample=64)
    if where == "host":
        with host_steps() as received:
            training.fit(x, y, batch_size=4, steps_per_epoch=1, verbose=0)
        (payload,) = received
        candidates = np.asarray(payload["idxs"])
        np.testing.assert_allclose(payload["scores"], reducible[candidates], rtol=1e-4,
                                   atol=1e-5)
        return
    batch = np.sort(np.argsort(-reducible)[:4])
    _, expected = expected_sgd_step(with_weights(0), x[batch], y[batch], np.ones(4),
                                    LEARNING_RATE)
    training.fit(x, y, batch_size=4, steps_per_epoch=1, verbose=0)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
