"""The fused step draws, weighs and trains as the host path does."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, expected_sgd_step, make_classifier, one_hot, sgd_classifier
from scipy_free_stats import chi_square_upper_quantile

from importance_sampling import signals
from importance_sampling.fused_step import FusedSampling, FusedStep, _proportional_positions
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy, unbiased_weights
from importance_sampling.training import ImportanceTraining

X, LABELS = blobs(512, num_classes=3)
Y = one_hot(LABELS, 3)


def test_positions_are_drawn_in_proportion_to_the_scores():
    scores = tf.constant([0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 0.5])
    draws = 70000
    uniform = tf.random.Generator.from_seed(3).uniform([draws])
    positions = _proportional_positions(scores, uniform).numpy()
    counts = np.bincount(positions, minlength=len(scores))
    probabilities = scores.numpy() / scores.numpy().sum()
    assert counts[probabilities == 0].sum() == 0
    expected = draws * probabilities[probabilities > 0]
    statistic = np.sum((counts[probabilities > 0] - expected) ** 2 / expected)
    assert statistic < chi_square_upper_quantile(len(expected) - 1, 0.001)


def fused_step(model, presample=64, k=0.5, smooth=0.0):
    """A `FusedStep` of `ImportanceTraining`'s sampling."""
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(k))
    return FusedStep(wrapper, FusedSampling(presample, 16, smooth))


DATA = (tf.constant(X), tf.constant(LABELS))


def test_a_draw_applies_the_host_formulas_to_the_scored_candidates():
    model = sgd_classifier()
    user = np.linspace(0.5, 2.0, len(X)).astype("float32")
    step = fused_step(model, k=0.5, smooth=0.25)
    step.start(DATA, user, seed=5)
    losses = keras.losses.sparse_categorical_crossentropy(
        LABELS, model.predict(X, verbose=0)).numpy()

    drawn = step.draw(*DATA, tf.constant(user), 32)

    candidates, positions = drawn.candidates.numpy(), drawn.positions.numpy()
    scores = drawn.scores.numpy()
    assert candidates.shape == (64,) and bool(drawn.usable)
    np.testing.assert_allclose(scores, losses[candidates] + 0.25, rtol=1e-5)
    idxs = drawn.idxs.numpy()
    np.testing.assert_array_equal(idxs, candidates[positions])
    np.testing.assert_array_equal(drawn.x.numpy(), X[idxs])
    np.testing.assert_array_equal(drawn.y.numpy(), LABELS[idxs])
    np.testing.assert_array_equal(drawn.sample_weight.numpy(), user[idxs])
    np.testing.assert_allclose(
        drawn.weights.numpy(),
        BiasedReweightingPolicy(0.5).sample_weights(positions, scores)[:, 0], rtol=1e-5)
    np.testing.assert_allclose(
        drawn.metric_weights.numpy(), unbiased_weights(positions, scores), rtol=1e-5)


def test_one_fused_step_is_the_weighted_sgd_step_of_its_draw():
    model = sgd_classifier()
    user = np.where(LABELS == 2, 3.0, 0.5).astype("float32")
    step = fused_step(model)
    step.start(DATA, user, seed=11)
    drawn = step.draw(*DATA, tf.constant(user), 16)
    initial = model.get_weights()
    loss, expected = expected_sgd_step(
        model, drawn.x, drawn.y, drawn.weights * drawn.sample_weight, 0.5)

    take_step = step.start(DATA, user, seed=11)  # the same draw again
    logs = take_step(16)

    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    for new, before, want in zip(model.get_weights(), initial, expected):
        assert not np.allclose(new, before)
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)


def simulated_accuracy_logs(losses, correct, steps, presample, batch_size,
                            repetitions, rng, positions="proportional",
                            weights="unbiased"):
    """The accuracy logged over `steps` steps, simulated `repetitions` times.

    Each step draws a uniform presample, then `batch_size` of its positions
    (in proportion to the losses, or uniformly), and weighs the drawn
    items by `mean(s) / s_i` (or by 1); the log is the weighted mean.
    """
    logs = []
    for _ in range(repetitions):
        candidates = rng.integers(0, len(losses), size=(steps, presample))
        scores = losses[candidates]
        if positions == "proportional":
            cumulative = np.cumsum(scores, axis=1)
            targets = rng.random((steps, batch_size)) * cumulative[:, -1:]
            chosen = (cumulative[:, None, :] <= targets[:, :, None]).sum(axis=2)
        else:
            chosen = rng.integers(0, presample, size=(steps, batch_size))
        drawn = np.take_along_axis(scores, chosen, axis=1)
        items = np.take_along_axis(candidates, chosen, axis=1)
        if weights == "unbiased":
            w = scores.mean(axis=1, keepdims=True) / drawn
        else:
            w = np.ones_like(drawn)
        logs.append(np.sum(w * correct[items]) / np.sum(w))
    return np.asarray(logs)


def test_logged_accuracy_estimates_the_training_set_accuracy():
    model = make_classifier(2, 3, hidden=4)
    model.fit(X, Y, epochs=2, verbose=0)  # partly trained: skewed losses
    model.optimizer.learning_rate = 0.0   # frozen: the true accuracy stays fixed
    predictions = model.predict(X, verbose=0)
    truth = np.mean(predictions.argmax(axis=1) == LABELS)
    losses = -np.log(predictions[np.arange(len(X)), LABELS])
    correct = (predictions.argmax(axis=1) == LABELS).astype("float64")

    trainer = ImportanceTraining(model, k=1.0, presample=256)
    history = trainer.fit(X, Y, batch_size=32, epochs=1, steps_per_epoch=200, verbose=0)
    assert trainer.trace_counts["fused"] == 1

    # The spread of the logged value, and where drawing uniformly or not
    # weighting would put it, from simulations of the same procedure.
    rng = np.random.default_rng(0)
    simulate = lambda **kind: simulated_accuracy_logs(  # noqa: E731
        losses, correct, 200, 256, 32, 200, rng, **kind)
    spread = simulate().std()
    assert abs(history.history["accuracy"][0] - truth) < 4 * spread
    for wrong in ({"positions": "uniform"}, {"weights": "ones"}):
        assert abs(simulate(**wrong).mean() - truth) > 8 * spread


@pytest.mark.parametrize("case", ["adaptive smoothing", "generator", "listener"])
def test_steps_stay_on_the_host_when_they_cannot_be_fused(case):
    trainer = ImportanceTraining(make_classifier(2, 3), presample=64,
                                 smooth=0.5, adaptive_smoothing=case == "adaptive smoothing")
    listener = lambda event: None  # noqa: E731
    if case == "listener":
        signals.sample.connect(listener)
    try:
        if case == "generator":
            endless = ((X[i:i + 32], Y[i:i + 32]) for _ in iter(int, 1)
                       for i in range(0, len(X), 32))
            trainer.fit_generator(endless, steps_per_epoch=4, batch_size=32, verbose=0)
        else:
            trainer.fit(X, Y, batch_size=32, steps_per_epoch=4, verbose=0)
    finally:
        signals.sample.disconnect(listener)
    assert trainer.trace_counts == {"fused": 0, "score": 1, "train": 1}


def test_fused_training_is_reproducible_with_a_keras_seed():
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        model = make_classifier(2, 3)
        ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, verbose=0)
        weights.append(model.get_weights())
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
