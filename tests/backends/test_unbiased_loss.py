"""`unbiased_loss` in the logs estimates the training loss without bias, on every backend."""

import keras
import numpy as np
import pytest
from conftest import blobs, one_hot

from importance_sampling.training import ImportanceTraining


def frozen_classifier():
    """A classifier whose weights an SGD step of rate 0 leaves as they are."""
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.0), "categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("score", ["loss", "gnorm"])
def test_unbiased_loss_estimates_the_training_loss_where_the_biased_loss_need_not(score):
    x, labels = blobs(256, num_classes=3, seed=6)
    y = one_hot(labels, 3)
    model = frozen_classifier()
    full = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    # Biased weights (k=0.5): `loss` is the weighted loss that is minimised,
    # `unbiased_loss` the estimate of the plain one.
    history = ImportanceTraining(model, k=0.5, score=score, presample=64).fit(
        x, y, batch_size=16, epochs=12, verbose=0, validation_data=(x[:32], y[:32]),
    )
    estimates = np.array(history.history["unbiased_loss"])
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - full) < 4 * standard_error
    assert "val_unbiased_loss" not in history.history
    assert "unbiased_loss" not in model.evaluate(x, y, verbose=0, return_dict=True)
