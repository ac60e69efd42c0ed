"""Steps drawn on the host, and the signals that announce them, on every backend."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

from .common import STREAMS, stream

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
X_VAL, LABELS_VAL = blobs(48, num_classes=3, seed=1)
Y_VAL = one_hot(LABELS_VAL, 3)

NAMES = ("sample", "score", "training", "evaluation", "evaluate_batch")


@pytest.fixture
def events():
    """Every payload sent on the library's signals while the test runs, by name."""
    received = {name: [] for name in NAMES}
    receivers = {name: (lambda event, name=name: received[name].append(event))
                 for name in NAMES}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    yield received
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


@pytest.mark.parametrize("source", ["arrays", *STREAMS])
def test_receivers_get_the_documented_payloads_of_every_step(source, events):
    model = make_classifier(2, 3)
    data = (X, Y) if source == "arrays" else (stream(source, X, Y, batch_size=16), None)
    ImportanceTraining(model, presample=64).fit(
        *data, batch_size=16, epochs=1, verbose=0, validation_data=(X_VAL, Y_VAL)
    )
    steps = int(model.optimizer.iterations)
    assert steps == (16 if source == "arrays" else len(events["score"]))
    assert steps >= 4
    assert len(events["sample"]) == len(events["score"]) == len(events["training"]) == steps
    for sample, score, training in zip(events["sample"], events["score"], events["training"]):
        assert set(sample) == {"idxs", "xy", "w", "predicted_scores"}
        assert set(score) == {"idxs", "scores"}
        assert set(training) == {"loss", "metrics", "scores"}
        # on a stream, the indices are the positions in its pass
        np.testing.assert_array_equal(sample["xy"][0], X[sample["idxs"]])
        np.testing.assert_array_equal(sample["xy"][1], Y[sample["idxs"]])
        assert np.isin(sample["idxs"], score["idxs"]).all()
        assert sample["w"].shape == (16, 1) and np.all(sample["w"] > 0)
        assert len(score["idxs"]) == len(score["scores"]) <= 64
        # the candidates are scored with the weights of the step that trains
        # on them, and the same model (no dropout) in the step scores the
        # drawn items alike
        np.testing.assert_allclose(sample["predicted_scores"], training["scores"],
                                   rtol=1e-4, atol=1e-6)
        assert set(training["metrics"]) == {"loss", "unbiased_loss", "accuracy"}
        assert training["loss"] == training["metrics"]["loss"]
    assert len(events["evaluation"]) == 1 and "loss" in events["evaluation"][0]["logs"]
    assert len(events["evaluate_batch"]) == 3  # 48 validation samples in batches of 16


def test_the_approximate_training_announces_its_warm_up_batches(events):
    model = make_classifier(2, 3)
    ApproximateImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=16, steps_per_epoch=6, verbose=0
    )
    assert int(model.optimizer.iterations) == 6
    assert len(events["sample"]) == len(events["training"]) == 6
    for sample, training in zip(events["sample"], events["training"]):
        assert set(sample) == {"idxs", "xy", "w", "predicted_scores"}
        np.testing.assert_array_equal(sample["xy"][0], X[sample["idxs"]])
        # the first batches of its loss predictor are drawn uniformly, and
        # uniform sampling predicts the same score, 1, for every item
        np.testing.assert_array_equal(sample["predicted_scores"], np.ones(16))
        np.testing.assert_array_equal(sample["w"], np.ones((16, 1)))
        assert training["scores"].shape == (16,) and np.all(training["scores"] > 0)


def test_a_receiver_connected_once_fit_started_gets_a_clear_error_not_silence():
    model = make_classifier(2, 3)
    weights = model.get_weights()
    received = []

    def receiver(event):
        received.append(event)

    class ConnectLate(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            signals.sample.connect(receiver)

    try:
        with pytest.raises(RuntimeError, match="connect the receiver before calling `fit`"):
            ImportanceTraining(model, presample=32).fit(
                X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ConnectLate()]
            )
    finally:
        signals.sample.disconnect(receiver)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)  # no step was taken
