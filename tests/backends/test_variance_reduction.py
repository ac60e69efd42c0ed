"""The variance-reduction switch of the 2018 method (`tau_th`), on every backend."""

import keras
import numpy as np
import pytest
from conftest import blobs, one_hot

from importance_sampling import signals
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.step import ImportanceDraw
from importance_sampling.training import ImportanceTraining, UnbiasedImportanceTraining
from importance_sampling.variance import (
    VarianceReductionSwitch,
    default_threshold,
    variance_reduction,
)


def eq_29(scores):
    """`tau` as eq. 29 of Katharopoulos & Fleuret (2018) writes it."""
    g = np.asarray(scores, "float64") / np.sum(scores)
    u = 1.0 / len(scores)
    return 1.0 / np.sqrt(1.0 - np.sum((g - u) ** 2) / np.sum(g**2))


SCORES = np.array([0.1, 2.0, 0.5, 0.5, 3.0, 0.0, 1.2, 0.7])


@pytest.mark.parametrize("xp", ["numpy", "keras.ops"])
def test_tau_matches_the_formula_of_the_paper(xp):
    namespace = np if xp == "numpy" else keras.ops

    def tau(scores):
        value = variance_reduction(np.asarray(scores, "float32"), namespace)
        return float(keras.ops.convert_to_numpy(value))

    assert tau(SCORES) == pytest.approx(eq_29(SCORES), rel=1e-5)
    assert tau(np.full(8, 0.3)) == pytest.approx(1.0)
    assert tau(one_hot(np.array([3]), 8)[0]) == pytest.approx(np.sqrt(8), rel=1e-6)
    assert tau(np.zeros(8)) == pytest.approx(1.0)  # no scores: uniform


def test_auto_threshold_is_b_plus_3b_over_3b():
    assert default_threshold(96, 32) == pytest.approx(2.0)
    assert default_threshold(256, 128) == pytest.approx((256 + 384) / 384)


def test_the_switch_is_a_moving_average_that_survives_epoch_resets():
    switch = VarianceReductionSwitch(threshold=1.5)
    taus = [2.0, 2.0, 1.0, 3.0]
    expected = 0.0
    for tau in taus:
        switch.update_state(tau)
        expected = 0.9 * expected + 0.1 * tau
        switch.reset_state()  # what Keras does at an epoch's start
        assert float(switch.result()) == pytest.approx(expected, rel=1e-6)
    assert bool(switch.is_on()) == (expected > 1.5)
    switch.restart()
    assert float(switch.result()) == 0.0 and not bool(switch.is_on())


def plain_model(num_classes=3, learning_rate=0.1):
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(learning_rate), "categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class BatchTaus(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.taus = []

    def on_train_batch_end(self, batch, logs=None):
        self.taus.append(float(logs["tau"]))


def test_equal_scores_never_switch_importance_sampling_on():
    # Identical samples have identical scores at every step: tau_new = 1.
    x = np.ones((64, 2), "float32")
    y = one_hot(np.zeros(64, int), 3)
    training = ImportanceTraining(plain_model(), tau_th=1.0, presample=32)
    taus = BatchTaus()
    history = training.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[taus])
    assert training.importance_steps == 0
    steps = np.arange(1, len(taus.taus) + 1)
    np.testing.assert_allclose(taus.taus, 1 - 0.9**steps, rtol=1e-5)
    assert history.history["tau"] == pytest.approx([taus.taus[7], taus.taus[15]])


def count_samples(event):
    count_samples.events += 1


@pytest.mark.parametrize("drawn", ["in the step", "on the host"])
@pytest.mark.parametrize("training_class", ["ImportanceTraining", "UnbiasedImportanceTraining"])
def test_importance_sampling_is_on_exactly_after_the_steps_where_tau_exceeded_the_threshold(
        training_class, drawn):
    # Three separated clusters with 5 % of the labels flipped: the flipped
    # samples keep large scores, the others get small ones.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 512)
    x = (np.array([[5, 0], [-5, 0], [0, 5]])[labels] + rng.normal(size=(512, 2)))
    x = x.astype("float32")
    labels[::20] = (labels[::20] + 1) % 3
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.3), "categorical_crossentropy")
    if training_class == "ImportanceTraining":
        training = ImportanceTraining(model, k=1.0, score="gnorm", presample=64, tau_th=1.3)
        threshold = 1.3
    else:
        training = UnbiasedImportanceTraining(model, presample=2.0)
        threshold = default_threshold(32, 16)
    taus = BatchTaus()
    count_samples.events = 0
    if drawn == "on the host":  # a receiver of `is.sample` needs host draws
        signals.sample.connect(count_samples)
    try:
        training.fit(x, one_hot(labels, 3), batch_size=16, epochs=3, verbose=0,
                     callbacks=[taus])
    finally:
        signals.sample.disconnect(count_samples)
    assert count_samples.events == (len(taus.taus) if drawn == "on the host" else 0)
    before_each_step = np.concatenate([[0.0], taus.taus[:-1]])
    expected = int(np.sum(before_each_step > threshold))
    assert 0 < expected < len(taus.taus)  # it starts uniform, then switches on
    assert training.importance_steps == expected


def test_with_k_1_the_weighted_gradient_is_unbiased(seeded):
    # The gradient of the loss at the last bias is p - y per sample: its
    # weighted batch mean must average to the mean over the candidates.
    x, labels = blobs(48, num_classes=3, seed=5)
    y = one_hot(labels, 3)
    model = plain_model()
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(1.0), score="gnorm")
    wrapper.build(x, y)
    switch = VarianceReductionSwitch(threshold=1.0)
    switch.tau.assign(5.0)  # on
    draw = ImportanceDraw(wrapper, BiasedReweightingPolicy(1.0), batch_size=6,
                          presample=48, switch=switch, seed=3)

    def bias_gradients(inputs, targets):
        return keras.ops.convert_to_numpy(model(inputs)) - targets

    candidates = keras.tree.map_structure(keras.ops.convert_to_tensor, (x, y))
    repeats = 200
    estimates = []
    for step in range(repeats):
        model.optimizer.iterations.assign(step)
        drawn = draw(candidates)
        weights = keras.ops.convert_to_numpy(drawn.weights)[:, 0]
        gradients = bias_gradients(drawn.x, keras.ops.convert_to_numpy(drawn.y))
        estimates.append((weights[:, None] * gradients).mean(axis=0))
    estimates = np.array(estimates)
    full = bias_gradients(x, y).mean(axis=0)
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(repeats)
    # A draw is a multinomial over 48 candidates: its mean is near normal.
    assert np.all(np.abs(estimates.mean(axis=0) - full) < 4 * standard_error)
    # And the draws were by importance, not uniform: the weights vary.
    assert estimates.std(axis=0).min() > 0


def test_tau_th_is_checked_before_training():
    model = plain_model()
    for bad in (0.5, "always", True, -1):
        with pytest.raises(ValueError, match=f"Received: tau_th={bad!r}"):
            ImportanceTraining(model, tau_th=bad)
