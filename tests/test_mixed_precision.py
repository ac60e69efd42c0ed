"""Mixed precision: float16 compute, loss scaling through the user's optimizer."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.training import ImportanceTraining

X, LABELS = blobs(64, num_classes=3)


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def sgd_model(initial_weights=None):
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy", hidden=32)
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    if initial_weights is not None:
        model.set_weights(initial_weights)
    return model


def step_update(model):
    """The change of the weights made by one weighted importance step."""
    before = model.get_weights()
    w = np.linspace(0.5, 1.5, 16).astype("float32")[:, None]
    OracleWrapper(model, BiasedReweightingPolicy(1.0)).train_batch(X[:16], LABELS[:16], w)
    return [new - old for new, old in zip(model.get_weights(), before)]


def test_a_mixed_precision_step_matches_the_float32_step(mixed_float16):
    mixed = sgd_model()
    keras.mixed_precision.set_global_policy("float32")
    full_update = step_update(sgd_model(mixed.get_weights()))
    keras.mixed_precision.set_global_policy("mixed_float16")

    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.layers[0].compute_dtype == "float16"
    mixed_update = step_update(mixed)
    # The optimizer scales the loss by 2**15 and unscales the gradients: a
    # skipped unscaling would make the update 32768 times too large, a
    # skipped scaling would underflow small float16 gradients.
    assert float(mixed.optimizer.dynamic_scale) >= 2.0**14
    for got, want in zip(mixed_update, full_update):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=2e-2 * scale)


def test_mixed_precision_training_reduces_the_loss(mixed_float16):
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy", learning_rate=0.02)
    before = model.evaluate(X, LABELS, verbose=0)
    history = ImportanceTraining(model, presample=48).fit(X, LABELS, batch_size=16,
                                                          epochs=6, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(X, LABELS, verbose=0) < before
