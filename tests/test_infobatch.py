"""InfoBatchTraining: it never drops a sample above the mean loss, its
rescaled loss is unbiased, it anneals to the full data, and the progress bar
and `History` count the steps it takes."""

import math
import re

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier

from importance_sampling import signals
from importance_sampling.datasets import InMemoryDataset
from importance_sampling.infobatch import InfoBatchSampler, InfoBatchTraining, infobatch_prune
from importance_sampling.reweighting import NoReweightingPolicy

X, LABELS = blobs(256, num_classes=3)


def classifier():
    return make_classifier(2, 3, loss="sparse_categorical_crossentropy", learning_rate=0.05)


def test_pruning_never_drops_a_sample_above_the_mean():
    rng = np.random.default_rng(0)
    for trial in range(50):
        scores = rng.exponential(size=101)
        seen = rng.random(101) < 0.9
        kept, weights = infobatch_prune(scores, seen, 0.5, rng)
        mean = scores[seen].mean()
        must_keep = np.flatnonzero(~seen | (scores >= mean))
        assert set(must_keep.tolist()) <= set(kept.tolist())
        dropped = np.setdiff1d(np.arange(101), kept)
        assert np.all(scores[dropped] < mean) and np.all(seen[dropped])
        below = np.isin(kept, np.flatnonzero(seen & (scores < mean)))
        np.testing.assert_allclose(weights[below], 2.0)
        np.testing.assert_allclose(weights[~below], 1.0)


@pytest.mark.parametrize("prune_ratio", [0.5, 0.3])
def test_the_rescaled_loss_is_an_unbiased_estimate_of_the_full_loss(prune_ratio):
    rng = np.random.default_rng(1)
    # 7 samples below the mean: (1 - r) * 7 kept is not a whole number
    scores = np.array([0.9, 0.8, 0.85, 0.7, 0.95, 0.75, 0.6, 5.0, 6.0, 4.5])
    seen = np.ones(len(scores), dtype=bool)
    total = scores.sum()
    estimates = []
    for _ in range(20000):
        kept, weights = infobatch_prune(scores, seen, prune_ratio, rng)
        estimates.append(np.sum(weights * scores[kept]))
    estimates = np.array(estimates)
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - total) < 4 * standard_error
    assert estimates.std() > 0


def watched_fit(training, epochs, **kwargs):
    """Fit, recording the scores at each epoch's start and each batch's items."""
    record = {"scores": [], "seen": [], "batches": []}

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            record["scores"].append(training.scores.copy())
            record["seen"].append(training._seen.copy())
            record["batches"].append([])

    def receive(event):
        record["batches"][-1].append((event["idxs"].copy(), event["w"][:, 0].copy()))

    with signals.sample.connected_to(receive):
        history = training.fit(X, LABELS, batch_size=16, epochs=epochs,
                               callbacks=[Watch()], **kwargs)
    return history, record


def test_training_drops_only_below_mean_samples_and_rescales_the_kept_ones():
    training = InfoBatchTraining(classifier(), prune_ratio=0.5, delta=0.75, seed=0)
    history, record = watched_fit(training, 4, verbose=0)
    for epoch, batches in enumerate(record["batches"]):
        scores, seen = record["scores"][epoch], record["seen"][epoch]
        trained = np.concatenate([idxs for idxs, _ in batches])
        assert len(set(trained.tolist())) == len(trained)  # one pass
        if epoch == 0 or epoch == 3:
            # nothing recorded yet; the last quarter anneals
            assert sorted(trained.tolist()) == list(range(len(X)))
            continue
        mean = scores[seen].mean()
        above = np.flatnonzero(scores >= mean)
        assert set(above.tolist()) <= set(trained.tolist())
        below = set(np.flatnonzero(scores < mean).tolist())
        assert len(below - set(trained.tolist())) > 0.3 * len(below)
        for idxs, weights in batches[:-1]:  # full batches: weights unscaled
            expected = np.where(np.isin(idxs, list(below)), 2.0, 1.0)
            np.testing.assert_allclose(weights, expected)
    steps = history.history["steps"]
    assert steps == [len(b) for b in record["batches"]]
    assert steps[0] == steps[3] == len(X) // 16 and steps[1] < steps[0]
    assert training.pruned[0] == training.pruned[3] == 0 and training.pruned[1] > 0


def test_scores_are_the_training_losses_of_the_steps():
    training = InfoBatchTraining(classifier(), seed=0)
    losses = []
    with signals.training.connected_to(lambda event: losses.append(event["scores"])):
        training.fit(X, LABELS, batch_size=16, epochs=1, verbose=0)
    assert training._seen.all()
    # the scores of the last step's samples are that step's losses
    last_batch = training.sampler.order[-16:]
    np.testing.assert_allclose(training.scores[last_batch], losses[-1], rtol=1e-6)


def test_the_progress_bar_and_history_show_the_steps_taken(capsys):
    model = classifier()
    training = InfoBatchTraining(model, prune_ratio=0.7, seed=0)
    history = training.fit(X, LABELS, batch_size=16, epochs=4, verbose=1)
    output = capsys.readouterr().out
    steps = history.history["steps"]
    assert steps[0] == 16 and min(steps) < 16
    # the last update of each epoch's bar reads `steps/steps`
    ends = []
    for line in output.split("Epoch ")[1:]:
        counts = re.findall(r"(\d+)/(\d+)", line)
        ends.append(counts[-1])
    assert ends == [(str(s), str(s)) for s in steps]
    assert int(model.optimizer.iterations) == sum(steps)
    assert history.params["epochs"] == 4


def test_runs_with_a_seed_reproduce():
    initial = classifier().get_weights()
    runs = []
    for seed in (3, 3, 4):
        model = classifier()
        model.set_weights(initial)
        training = InfoBatchTraining(model, seed=seed)
        training.fit(X, LABELS, batch_size=16, epochs=3, verbose=0)
        runs.append((training, model))
    (first, model_1), (second, model_2), (third, _) = runs
    for a, b in zip(first.kept, second.kept):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model_1.get_weights(), model_2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(first.kept, third.kept))


def test_streams_and_bad_ratios_are_refused():
    def stream():
        while True:
            yield X[:16], LABELS[:16]

    with pytest.raises(NotImplementedError, match="random access"):
        InfoBatchTraining(classifier()).fit(stream(), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="prune_ratio"):
        InfoBatchTraining(classifier(), prune_ratio=1.0)
    with pytest.raises(ValueError, match="delta"):
        InfoBatchTraining(classifier(), delta=0.0)


class LossTable:
    """Fixed per-sample losses, as the train steps would report them."""

    def __init__(self, losses):
        self.losses = losses

    def train(self, sampler, steps, batch_size):
        batches = []
        for _ in range(steps):
            batch = sampler.sample(batch_size)
            sampler.update(batch.idxs, self.losses[batch.idxs])
            batches.append(batch)
        return batches


def test_the_sampler_prunes_passes_below_the_mean_then_anneals():
    losses = np.random.default_rng(2).exponential(size=40).astype("float32")
    dataset = InMemoryDataset(np.zeros((40, 2)), np.zeros((40, 1)), np.zeros((4, 2)),
                              np.zeros((4, 1)))
    sampler = InfoBatchSampler(dataset, NoReweightingPolicy(), steps=40, seed=0)
    batches = LossTable(losses).train(sampler, 40, batch_size=8)
    assert all(len(batch.idxs) == 8 for batch in batches)
    # The first pass is the full data (no loss recorded yet), each once.
    assert sorted(np.concatenate([b.idxs for b in batches[:5]])) == list(range(40))
    mean = losses.mean()
    below = np.flatnonzero(losses < mean)
    # Every pruning pass keeps every sample above the mean, and half of those below.
    assert sampler.pruned[0] == 0 and len(sampler.pruned) > 3
    assert all(p in (len(below) // 2, -(-len(below) // 2)) for p in sampler.pruned[1:-1])
    # Steps 6 to 20 are in passes begun before step 35, which prune: the
    # kept below-mean samples weigh 1 / (1 - r).
    weights = np.concatenate([b.weights[:, 0] for b in batches[5:20]])
    chosen = np.concatenate([b.idxs for b in batches[5:20]])
    np.testing.assert_allclose(weights, np.where(np.isin(chosen, below), 2.0, 1.0))
    # Passes begun after delta * steps = 35 steps anneal: the full data, weights 1.
    assert sampler.pruned[-1] == 0
    np.testing.assert_array_equal(batches[-1].weights, 1.0)


def test_the_experiment_command_trains_with_infobatch(tmp_path):
    from test_experiment import TINY, lines, run_main

    run_main(tmp_path, "--train_for", "6", "--validate_every", "3",
             "--hyperparams", TINY + ";ib_delta=f0.5",
             names=("small_nn", "oracle-loss", "infobatch", "unweighted"))
    assert len(lines(tmp_path / "train.txt")) == 7
