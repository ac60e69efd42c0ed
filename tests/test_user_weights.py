"""`class_weight` and `sample_weight`: a sampled item weighs its importance
weight times its user weight."""

import numpy as np
import pytest
from conftest import blobs, expected_sgd_step, sgd_classifier

from importance_sampling import signals
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.training import ImportanceTraining
from importance_sampling.utils.weights import user_sample_weights

X, LABELS = blobs(64, num_classes=3)


def test_one_fit_step_weighs_each_item_by_importance_times_user_weight():
    model = sgd_classifier()
    sample_weight = np.linspace(0.2, 3.0, len(X)).astype("float32")
    class_weight = {0: 0.5, 2: 4.0}  # class 1 keeps weight 1, as in model.fit
    user = sample_weight * np.array([0.5, 1.0, 4.0], "float32")[LABELS]
    initial = model.get_weights()
    drawn = []

    def record(payload):
        drawn.append((payload["idxs"], payload["w"][:, 0]))

    signals.sample.connect(record)
    try:
        history = ImportanceTraining(model, k=0.5, presample=48).fit(
            X, LABELS, batch_size=16, steps_per_epoch=1, verbose=0,
            class_weight=class_weight, sample_weight=sample_weight,
        )
    finally:
        signals.sample.disconnect(record)

    (idxs, importance), = drawn
    trained = model.get_weights()
    model.set_weights(initial)
    loss, expected = expected_sgd_step(model, X[idxs], LABELS[idxs],
                                       importance * user[idxs], 0.5)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    for new, want in zip(trained, expected):
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)


def test_weighted_metrics_also_carry_the_user_weights():
    model = sgd_classifier()
    x, y = X[:12], LABELS[:12]
    importance = np.linspace(0.5, 2.0, 12).astype("float32")
    user = np.where(np.arange(12) % 2 == 0, 3.0, 0.25).astype("float32")
    correct = (model.predict(x, verbose=0).argmax(axis=1) == y).astype("float64")

    _, logs, _ = OracleWrapper(model, BiasedReweightingPolicy(1.0)).train_batch(
        x, y, np.ones((12, 1)), metric_weights=importance, sample_weight=user
    )

    assert logs["accuracy"] == pytest.approx(np.average(correct, weights=importance))
    assert logs["weighted_accuracy"] == pytest.approx(
        np.average(correct, weights=importance * user))


def test_zero_user_weights_leave_the_model_unchanged():
    model = sgd_classifier()
    before = model.get_weights()
    ImportanceTraining(model, presample=48).fit(
        X, LABELS, batch_size=16, epochs=2, verbose=0,
        class_weight={0: 0.0, 1: 0.0, 2: 0.0},
    )
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_validation_split_keeps_the_weights_of_the_training_part():
    model = sgd_classifier()
    sample_weight = np.ones(len(X), "float32")
    sample_weight[:48] = 0.0  # the last quarter is held out for validation
    before = model.get_weights()
    ImportanceTraining(model, presample=32).fit(
        X, LABELS, batch_size=8, epochs=1, verbose=0, validation_split=0.25,
        sample_weight=sample_weight,
    )
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    "targets", [LABELS, LABELS[:, None], np.eye(3, dtype="float32")[LABELS]],
    ids=["sparse", "column", "one-hot"],
)
def test_class_weights_read_every_target_format(targets):
    weights = user_sample_weights(targets, class_weight={0: 2.0, 1: 3.0})
    np.testing.assert_array_equal(weights, np.array([2.0, 3.0, 1.0])[LABELS])


def test_binary_targets_get_the_weight_of_their_class():
    y = np.array([0.0, 1.0, 1.0, 0.0], "float32")
    np.testing.assert_array_equal(user_sample_weights(y, class_weight={1: 5.0}),
                                  [1.0, 5.0, 5.0, 1.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sample_weight": np.ones(10)}, r"shape \(64,\).*\(10,\)"),
        ({"sample_weight": -np.ones(64)}, "non-negative"),
        ({"sample_weight": np.full(64, np.nan)}, "finite"),
        ({"class_weight": [1.0, 2.0]}, "dict.*list"),
    ],
    ids=["length", "negative", "nan", "not-a-dict"],
)
def test_bad_weights_are_refused_before_any_step(kwargs, message):
    model = sgd_classifier()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        ImportanceTraining(model, presample=48).fit(X, LABELS, batch_size=16, verbose=0,
                                                    **kwargs)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_class_weight_with_several_outputs_is_refused():
    with pytest.raises(ValueError, match="single output.*2 outputs"):
        user_sample_weights([LABELS, LABELS], class_weight={0: 1.0})
