"""Per-sample losses, SelectiveTraining and InfoBatchTraining on every backend:
the losses, the batches drawn from each epoch's selection, and epochs whose
steps follow the selection (in the progress bar and `History`)."""

import math

import keras
import numpy as np
from conftest import blobs, make_classifier

from importance_sampling import signals
from importance_sampling.infobatch import InfoBatchTraining
from importance_sampling.ranking import per_sample_loss, rank_by_loss, select
from importance_sampling.selective import SelectiveTraining

X, LABELS = blobs(96, num_classes=3)


def classifier():
    return make_classifier(2, 3, loss="sparse_categorical_crossentropy", learning_rate=0.05)


def test_per_sample_loss_is_keras_loss_of_each_sample():
    model = classifier()
    expected = keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(LABELS, model(X, training=False))
    )
    losses = per_sample_loss(model, X, LABELS, batch_size=40)
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-6)
    ranking = rank_by_loss(model, X, LABELS)
    assert np.all(np.diff(losses[ranking.indices]) <= 0)


class Selections(keras.callbacks.Callback):
    """The allowed set of every epoch, from the losses at its start."""

    def __init__(self, strategy, fraction):
        super().__init__()
        self.strategy, self.fraction = strategy, fraction
        self.allowed, self.batches = [], []

    def on_epoch_begin(self, epoch, logs=None):
        losses = per_sample_loss(self.model, X, LABELS)
        self.allowed.append(set(select(losses, self.strategy, self.fraction).tolist()))
        self.batches.append([])

    def receive(self, event):
        self.batches[-1].append(event["idxs"].copy())


def test_selective_training_trains_on_each_epochs_selection_only(capsys):
    for strategy, fraction in (("percentile", 0.3), ("mass", 0.5)):
        model = classifier()
        watch = Selections(strategy, fraction)
        training = SelectiveTraining(model, strategy=strategy, fraction=fraction, seed=0)
        with signals.sample.connected_to(watch.receive):
            history = training.fit(X, LABELS, batch_size=8, epochs=2, verbose=2,
                                   callbacks=[watch])
        for allowed, batches in zip(watch.allowed, watch.batches):
            assert sorted(np.concatenate(batches).tolist()) == sorted(allowed)
            assert len(batches) == math.ceil(len(allowed) / 8)
        assert history.history["steps"] == [len(b) for b in watch.batches]
        assert int(model.optimizer.iterations) == sum(history.history["steps"])
        assert np.isfinite(history.history["loss"]).all()
        assert training.evaluation["selected"] == len(training.selections[-1])
    output = capsys.readouterr().out
    assert "Epoch 2/2" in output


def test_selective_training_reproduces_with_a_seed():
    initial = classifier().get_weights()
    runs = []
    for _ in range(2):
        model = classifier()
        model.set_weights(initial)
        training = SelectiveTraining(model, strategy="mass", fraction=0.5, seed=1)
        training.fit(X, LABELS, batch_size=8, epochs=2, verbose=0)
        runs.append((training.selections, model.get_weights()))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_infobatch_prunes_below_the_mean_and_counts_its_steps(capsys):
    model = classifier()
    training = InfoBatchTraining(model, prune_ratio=0.6, delta=0.75, seed=0)
    starts = []

    class Scores(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            starts.append((training.scores.copy(), training._seen.copy()))

    history = training.fit(X, LABELS, batch_size=8, epochs=4, verbose=2,
                           callbacks=[Scores()])
    steps = history.history["steps"]
    assert steps[0] == steps[3] == len(X) // 8 and steps[1] < steps[0]
    assert int(model.optimizer.iterations) == sum(steps)
    for (scores, seen), kept in zip(starts[1:3], training.kept[1:3]):
        above = np.flatnonzero(scores >= scores[seen].mean())
        assert set(above.tolist()) <= set(kept.tolist())
    lines = [line for line in capsys.readouterr().out.splitlines() if "/step" in line]
    assert [line.split()[0] for line in lines] == [f"{s}/{s}" for s in steps]
