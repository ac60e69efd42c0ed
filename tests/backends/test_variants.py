"""SVRG, constant-variance and constant-time training on every backend: the SVRG
step against its gradient computed by hand, and each class training a small model."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot, sgd_classifier, sgd_gradients

from importance_sampling import signals
from importance_sampling.constant import (
    ConstantTimeImportanceTraining,
    ConstantVarianceImportanceTraining,
)
from importance_sampling.svrg import SVRG, SVRGWrapper

from .common import BACKEND, bn_dropout_classifier

X, LABELS = blobs(64, num_classes=3)
LEARNING_RATE = 0.5


def weights_at(weights):
    """A `sgd_classifier` with `weights`, to compute gradients there by hand."""
    model = sgd_classifier(LEARNING_RATE)
    model.set_weights(weights)
    return model


def svrg_step(current, snapshot, x, y, mean_gradients, step_weights=None):
    """The weights after one SGD step on `grad(w; batch) - grad(w~; batch) + mu`."""
    step_weights = np.ones(len(x)) if step_weights is None else step_weights
    _, at_weights = sgd_gradients(weights_at(current), x, y, step_weights)
    _, at_snapshot = sgd_gradients(weights_at(snapshot), x, y, step_weights)
    return [
        (np.asarray(w, "float64") - LEARNING_RATE * (g - s + mu)).astype("float32")
        for w, g, s, mu in zip(current, at_weights, at_snapshot, mean_gradients)
    ]


def assert_weights(model, expected):
    for new, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)


def test_an_svrg_step_is_the_variance_reduced_gradient_step():
    model = sgd_classifier(LEARNING_RATE)
    snapshot = model.get_weights()
    wrapper = SVRGWrapper(model)
    # the mean over 48 samples given in unequal batches
    wrapper.update_grad([(X[:32], LABELS[:32]), (X[32:48], LABELS[32:48])])
    _, mean_gradients = sgd_gradients(model, X[:48], LABELS[:48], np.ones(48))
    for got, want in zip(wrapper.reference[1], mean_gradients):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want,
                                   rtol=1e-4, atol=1e-6)
    rng = np.random.default_rng(0)
    current = [w + 0.3 * rng.normal(size=w.shape).astype("float32") for w in snapshot]
    model.set_weights(current)
    for rows in (slice(0, 8), slice(8, 16)):
        expected = svrg_step(model.get_weights(), snapshot, X[rows], LABELS[rows],
                             mean_gradients)
        loss, _, scores = wrapper.train_batch(X[rows], LABELS[rows], np.ones((8, 1)))
        assert_weights(model, expected)
        assert np.isfinite(loss) and scores.shape == (8,)
    # the snapshot is a copy: the steps did not move it
    for kept, first in zip(wrapper.reference[0], snapshot):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(kept), first)
    if BACKEND != "torch":  # PyTorch runs eagerly: every step calls the step anew
        assert wrapper.trace_counts["train"] == 1
        assert wrapper.trace_counts["gradient"] == 2  # batches of 32 and 16


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample-weight"])
def test_svrg_fit_steps_are_variance_reduced_steps_around_the_full_gradient(weighted):
    model = sgd_classifier(LEARNING_RATE)
    initial = model.get_weights()
    sample_weight = np.linspace(0.5, 2.0, len(X)).astype("float32") if weighted else None
    user = np.ones(len(X)) if sample_weight is None else sample_weight
    drawn = []

    def record(payload):
        drawn.append(np.asarray(payload["idxs"]))

    trainer = SVRG(model, B=0, B_over_b=10)
    signals.sample.connect(record)
    try:
        history = trainer.fit(X, LABELS, batch_size=16, steps_per_epoch=3, verbose=0,
                              sample_weight=sample_weight)
    finally:
        signals.sample.disconnect(record)
    assert int(model.optimizer.iterations) == 3 and len(drawn) == 3
    # B = 0: the mean gradient over the whole training set, at the initial weights
    _, mean_gradients = sgd_gradients(weights_at(initial), X, LABELS, user)
    # the first step is at the snapshot itself: a step along the full gradient
    weights = [(np.asarray(w, "float64") - LEARNING_RATE * mu).astype("float32")
               for w, mu in zip(initial, mean_gradients)]
    for idxs in drawn[1:]:
        weights = svrg_step(weights, initial, X[idxs], LABELS[idxs], mean_gradients,
                            user[idxs])
    assert_weights(model, weights)
    assert len(np.unique(np.concatenate(drawn))) > 16  # uniform batches
    assert np.isfinite(history.history["loss"][0])
    assert trainer.gradient_samples == len(X)
    assert trainer.backward_samples == len(X) + 3 * 2 * 16


def test_svrg_recomputes_the_mean_gradient_every_b_over_b_steps():
    model = sgd_classifier(LEARNING_RATE)
    trainer = SVRG(model, B=2.0, B_rate=1.5, B_over_b=3)
    trainer.fit(X, LABELS, batch_size=8, steps_per_epoch=7, verbose=0)
    # mean gradients before steps 1, 4 and 7: over 16, 24 and 36 samples
    assert trainer.gradient_samples == 16 + 24 + 36
    assert trainer.sampler.B == pytest.approx(54.0)
    with pytest.raises(ValueError, match="B_over_b"):
        SVRG(model, B_over_b=0)
    with pytest.raises(ValueError, match="`B`"):
        SVRG(model, B=-1.0)


def easy_problem(n=512, noise=0.05, seed=0):
    """Two well separated blobs with some labels flipped: a few hard samples."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = np.stack([labels * 2 - 1, np.zeros(n)], 1) * 4 + rng.normal(size=(n, 2))
    flipped = rng.random(n) < noise
    labels[flipped] = 1 - labels[flipped]
    return x.astype("float32"), one_hot(labels, 2)


def test_svrg_trains_a_small_model_with_dropout_and_batchnorm():
    x, labels = blobs(256, num_classes=3)
    y = one_hot(labels, 3)
    model = bn_dropout_classifier()
    start = model.evaluate(x, y, verbose=0)[0]
    history = SVRG(model, B=4.0, B_over_b=8).fit(
        x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:64], y[:64])
    )
    assert int(model.optimizer.iterations) == 2 * 16
    assert np.all(np.isfinite(history.history["loss"]))
    assert "val_loss" in history.history
    assert model.evaluate(x, y, verbose=0)[0] < 0.7 * start


def test_svrg_moves_the_batchnorm_statistics_once_per_step():
    # All inputs are the same point: one training-mode pass of momentum 0.5
    # takes the moving mean from 0 half way to it and the moving variance
    # from 1 half way to 0. The passes of the mean gradient and at the
    # snapshot, also in training mode, leave them alone.
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.BatchNormalization(momentum=0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x = np.tile(np.array([[2.0, -1.0]], "float32"), (16, 1))
    SVRG(model, B=0, B_over_b=5).fit(x, np.arange(16) % 3, batch_size=4, steps_per_epoch=1,
                                     verbose=0)
    layer = model.layers[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), [1.0, -0.5],
                               rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), [0.5, 0.5],
                               rtol=1e-5)


@pytest.mark.parametrize("training", [ConstantVarianceImportanceTraining,
                                      ConstantTimeImportanceTraining],
                         ids=["constant-variance", "constant-time"])
def test_constant_training_trains_a_small_model_with_smaller_steps(training):
    x, y = easy_problem()
    model = make_classifier(2, 2, learning_rate=0.05)
    start = model.evaluate(x, y, verbose=0)[0]
    trainer = training(model)
    sizes = []

    def record(payload):
        sizes.append(len(payload["idxs"]))

    signals.sample.connect(record)
    try:
        history = trainer.fit(x, y, batch_size=32, epochs=4, verbose=0)
    finally:
        signals.sample.disconnect(record)
    assert int(model.optimizer.iterations) == len(sizes) == 4 * 16
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(x, y, verbose=0)[0] < 0.7 * start
    assert min(sizes) < 32 and set(sizes) <= {8, 16, 24, 32}
    assert trainer.backward_samples == sum(sizes) < 4 * 16 * 32
    if BACKEND != "torch":  # traced once per size at most
        assert trainer.trace_counts["train"] <= len(set(sizes))
