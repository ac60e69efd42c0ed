"""SelectiveTraining: every batch from the epoch's selection, epochs as long
as the selection, reproducible runs and the evaluation of the left-out
instances."""

import math

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier

from importance_sampling import signals
from importance_sampling.ranking import per_sample_loss
from importance_sampling.selective import SelectiveTraining

X, LABELS = blobs(200, num_classes=3)
TEST = blobs(60, num_classes=3, seed=1)


def classifier():
    return make_classifier(2, 3, loss="sparse_categorical_crossentropy", learning_rate=0.05)


def allowed_set(losses, strategy, fraction, from_top):
    """The selection, computed anew by sorting and summing in plain Python."""
    order = sorted(range(len(losses)), key=lambda i: (-losses[i], i) if from_top
                   else (losses[i], i))
    if strategy == "percentile":
        return set(order[:math.ceil(fraction * len(losses))])
    total, carried, chosen = float(np.sum(losses, dtype="float64")), 0.0, set()
    for i in order:
        chosen.add(i)
        carried += float(losses[i])
        if carried >= fraction * total * (1 - 1e-12):
            return chosen
    return chosen


class Watch(keras.callbacks.Callback):
    """At every epoch's start, the allowed set from losses computed here."""

    def __init__(self, strategy, fraction, from_top):
        super().__init__()
        self.args = (strategy, fraction, from_top)
        self.allowed, self.batches = [], []

    def on_epoch_begin(self, epoch, logs=None):
        losses = per_sample_loss(self.model, X, LABELS)
        self.allowed.append(allowed_set(losses, *self.args))
        self.batches.append([])

    def receive(self, event):
        self.batches[-1].append(np.asarray(event["idxs"]))


@pytest.mark.parametrize("strategy, fraction", [("percentile", 0.3), ("mass", 0.5)])
@pytest.mark.parametrize("from_top", [True, False])
def test_every_batch_is_from_the_allowed_set(strategy, fraction, from_top):
    model = classifier()
    training = SelectiveTraining(model, strategy=strategy, fraction=fraction,
                                 from_top=from_top, seed=0)
    watch = Watch(strategy, fraction, from_top)
    with signals.sample.connected_to(watch.receive):
        history = training.fit(X, LABELS, batch_size=16, epochs=3, verbose=0,
                               callbacks=[watch])
    assert len(watch.allowed) == 3
    for allowed, batches, selected in zip(watch.allowed, watch.batches, training.selections):
        assert set(selected.tolist()) == allowed
        for idxs in batches:
            assert set(idxs.tolist()) <= allowed
        # one pass: every allowed instance once
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == sorted(allowed)
        assert len(batches) == math.ceil(len(allowed) / 16)
    assert history.history["steps"] == [len(b) for b in watch.batches]
    assert int(model.optimizer.iterations) == sum(history.history["steps"])


def test_the_mass_selection_changes_the_length_of_the_epochs():
    model = classifier()
    training = SelectiveTraining(model, strategy="mass", fraction=0.6, seed=0)
    history = training.fit(X, LABELS, batch_size=8, epochs=4, verbose=0)
    sizes = [len(s) for s in training.selections]
    assert history.history["steps"] == [math.ceil(n / 8) for n in sizes]
    assert len(set(sizes)) > 1


def test_the_progress_bar_counts_each_epochs_steps(capsys):
    model = classifier()
    training = SelectiveTraining(model, strategy="mass", fraction=0.6, seed=0)
    history = training.fit(X, LABELS, batch_size=8, epochs=3, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "step" in line]
    assert [line.split()[0] for line in lines] == [f"{s}/{s}" for s in history.history["steps"]]


def run(seed, shuffle=True, weights=None):
    keras.utils.set_random_seed(99)
    model = classifier()
    if weights is not None:
        model.set_weights(weights)
    training = SelectiveTraining(model, strategy="percentile", fraction=0.4, seed=seed)
    order = []
    with signals.sample.connected_to(lambda event: order.append(event["idxs"].copy())):
        training.fit(X, LABELS, batch_size=16, epochs=3, verbose=0, shuffle=shuffle)
    return training, model, order


def test_runs_with_a_seed_reproduce():
    initial = classifier().get_weights()
    first, model_1, order_1 = run(5, weights=initial)
    second, model_2, order_2 = run(5, weights=initial)
    for a, b in zip(first.selections, second.selections):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(order_1, order_2):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model_1.get_weights(), model_2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    _, _, order_3 = run(6, weights=initial)
    assert any(not np.array_equal(a, b) for a, b in zip(order_1, order_3))


def test_without_shuffling_the_instances_come_in_the_order_of_the_data():
    training, _, order = run(5, shuffle=False)
    steps = math.ceil(len(training.selections[0]) / 16)
    first_epoch = np.concatenate(order[:steps])
    np.testing.assert_array_equal(first_epoch, np.sort(training.selections[0]))


def test_the_evaluation_compares_trained_on_left_out_and_test_losses():
    model = classifier()
    training = SelectiveTraining(model, fraction=0.3, seed=0, evaluate_every_epoch=True)
    history = training.fit(X, LABELS, batch_size=16, epochs=2, verbose=0,
                           validation_data=TEST)
    losses = per_sample_loss(model, X, LABELS)
    last = np.zeros(len(X), dtype=bool)
    last[training.selections[-1]] = True
    result = training.evaluation
    assert result["selected_loss"] == pytest.approx(losses[last].mean(), rel=1e-5)
    assert result["left_out_loss"] == pytest.approx(losses[~last].mean(), rel=1e-5)
    assert result["test_loss"] == pytest.approx(per_sample_loss(model, *TEST).mean(), rel=1e-5)
    assert result["selected"] == 60 and 60 <= result["ever_selected"] <= 120
    for name in ("selected_loss", "left_out_loss", "test_loss"):
        assert len(history.history[name]) == 2
    assert history.history["test_loss"][-1] == pytest.approx(result["test_loss"], rel=1e-5)
    assert [e["epoch"] for e in training.epoch_evaluations] == [0, 1]


def test_callbacks_see_one_training_and_early_stopping_ends_it():
    class Count(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_train_begin(self, logs=None):
            self.events.append("begin")

        def on_train_end(self, logs=None):
            self.events.append("end")

        def on_epoch_end(self, epoch, logs=None):
            self.events.append(epoch)
            if epoch == 2:
                self.model.stop_training = True

    count = Count()
    training = SelectiveTraining(classifier(), fraction=0.3, seed=0)
    history = training.fit(X, LABELS, batch_size=16, epochs=6, verbose=0, callbacks=[count])
    assert count.events == ["begin", 0, 1, 2, "end"]
    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3


def test_streams_are_refused():
    training = SelectiveTraining(classifier())

    def stream():
        while True:
            yield X[:16], LABELS[:16]

    with pytest.raises(NotImplementedError, match="random access"):
        training.fit(stream(), batch_size=16, epochs=1, verbose=0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        SelectiveTraining(classifier(), strategy="top")
    with pytest.raises(ValueError, match="fraction"):
        SelectiveTraining(classifier(), fraction=1.5)
