"""Selective Backprop: the keep rate is `1 / (1 + beta)` on losses of a known
distribution, a loss is kept with probability (its percentile) ** beta, the
batches are full and unweighted, stale losses save forward passes, and `fit`
trains with it."""

import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.datasets import InMemoryDataset
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.selective_backprop import (
    LossPercentileSelector,
    SelectiveBackpropSampler,
    SelectiveBackpropTraining,
)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("distribution", ["exponential", "lognormal"])
def test_the_keep_rate_matches_beta_on_a_known_loss_distribution(beta, distribution):
    # A loss drawn from the distribution of the history has a uniform
    # percentile P, so it is kept with probability E[P ** beta] = 1 / (1 + beta).
    rng = np.random.default_rng(0)
    selector = LossPercentileSelector(beta, history=1024, rng=np.random.default_rng(1))
    draw = getattr(rng, distribution)
    selector.keep(draw(size=1024))  # a full history
    kept = [selector.keep(draw(size=64)) for _ in range(400)]
    rate = np.mean(np.concatenate(kept))
    assert rate == pytest.approx(1 / (1 + beta), abs=0.015)


def test_a_loss_is_kept_with_probability_its_percentile_to_the_power_beta():
    selector = LossPercentileSelector(2.0, history=8, rng=np.random.default_rng(0))
    selector.probabilities(np.arange(6.0))  # history 0..5
    # the batch joins the history first: 0..5, 2.5, 9 (8 losses)
    probabilities = selector.probabilities([2.5, 9.0])
    np.testing.assert_allclose(probabilities, [(3 / 8) ** 2, (7 / 8) ** 2])
    # the oldest losses leave the history: 2..5, 2.5, 9, 0, 0
    probabilities = selector.probabilities([0.0, 0.0, 100.0])
    assert list(selector.losses) == [3.0, 4.0, 5.0, 2.5, 9.0, 0.0, 0.0, 100.0]
    np.testing.assert_allclose(probabilities, [0.0, 0.0, (7 / 8) ** 2])


class LossOfFirstFeature:
    """A stand-in for the model whose loss of a sample is its first feature."""

    def __init__(self):
        self.forwarded = 0

    def score(self, x, y, batch_size=128):
        self.forwarded += len(x)
        return np.asarray(x[:, 0], "float64")


def a_dataset(count=200):
    x = np.stack([np.random.default_rng(0).exponential(size=count), np.arange(count)], 1)
    return InMemoryDataset(x.astype("float32"), np.zeros(count, "int64"), categorical=False)


def test_the_sampler_returns_full_unweighted_batches_of_the_kept_samples():
    dataset, model = a_dataset(), LossOfFirstFeature()
    sampler = SelectiveBackpropSampler(dataset, NoReweightingPolicy(), model, beta=1.0,
                                       history=64, seed=0)
    batches = [sampler.sample(16) for _ in range(25)]
    for batch in batches:
        assert len(batch.idxs) == len(batch.x) == 16
        np.testing.assert_array_equal(batch.weights, 1.0)
        np.testing.assert_array_equal(batch.metric_weights, 1.0)
        np.testing.assert_array_equal(batch.x[:, 1], batch.idxs)
    trained = np.concatenate([b.idxs for b in batches])
    losses = dataset.train_data[:][0][:, 0]
    # high losses are kept more often: the kept mean is well above the mean
    assert losses[trained].mean() > 1.3 * losses.mean()
    # every pass forwards every sample once (in forward batches of one
    # shape: the last of a pass is padded), about 2 candidates per kept one
    padding = 8 * sampler.passes
    assert sampler.forward_samples <= model.forwarded <= sampler.forward_samples + padding
    assert model.forwarded % 16 == 0
    assert sampler.backward_samples == 25 * 16
    assert 1.6 < sampler.forward_samples / sampler.backward_samples < 2.4
    assert sampler.passes == -(-sampler.forward_samples // 200)


@pytest.mark.parametrize("staleness", [0, 1, 2])
def test_stale_losses_are_reused_for_staleness_passes(staleness):
    dataset, model = a_dataset(100), LossOfFirstFeature()
    sampler = SelectiveBackpropSampler(dataset, NoReweightingPolicy(), model, beta=0.0,
                                       staleness=staleness, forward_batch_size=20, seed=0)
    forwarded = []
    for _ in range(6):  # beta = 0 keeps all: 5 batches of 20 are a pass
        for _ in range(5):
            sampler.sample(20)
        forwarded.append(sampler.forward_samples)
    per_pass = np.diff([0] + forwarded)
    # a pass forwards all samples, then the next `staleness` passes none
    expected = [100 if p % (staleness + 1) == 0 else 0 for p in range(6)]
    np.testing.assert_array_equal(per_pass, expected)


def test_equal_losses_complete_the_batch_with_a_warning():
    dataset = InMemoryDataset(np.ones((40, 2), "float32"), np.zeros(40, "int64"),
                              categorical=False)
    sampler = SelectiveBackpropSampler(dataset, NoReweightingPolicy(), LossOfFirstFeature(),
                                       beta=1.0, seed=0)
    with pytest.warns(RuntimeWarning, match="fewer than a batch"):
        batch = sampler.sample(8)
    assert len(batch.idxs) == 8


def test_fit_trains_on_full_batches_of_high_loss_samples():
    x, labels = blobs(256, num_classes=3)
    y = one_hot(labels, 3)
    model = make_classifier(2, 3, learning_rate=0.05)
    start = model.evaluate(x, y, verbose=0)[0]
    training = SelectiveBackpropTraining(model, beta=1.0)
    sizes = []

    def record(payload):
        sizes.append(len(payload["idxs"]))

    signals.sample.connect(record)
    try:
        history = training.fit(x, y, batch_size=16, epochs=3, verbose=0)
    finally:
        signals.sample.disconnect(record)
    assert int(model.optimizer.iterations) == 3 * 16 and set(sizes) == {16}
    assert training.backward_samples == 3 * 256
    assert training.forward_samples > 1.5 * training.backward_samples
    assert set(history.history) == {"loss", "unbiased_loss", "accuracy"}
    assert model.evaluate(x, y, verbose=0)[0] < 0.7 * start
    # a second `fit` goes on from the sampler's history and counts
    training.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert training.backward_samples == 4 * 256


def test_arguments_are_checked_and_stale_streams_refused():
    model = make_classifier(2, 3)
    for kwargs in ({"beta": -1.0}, {"history": 0}, {"history": 2.5}, {"staleness": -1},
                   {"forward_batch_size": 0}, {"beta": True}):
        with pytest.raises(ValueError, match=f"`{next(iter(kwargs))}`"):
            SelectiveBackpropTraining(model, **kwargs)

    def stream():
        yield np.zeros((8, 2), "float32"), np.zeros((8, 3), "float32")

    with pytest.raises(NotImplementedError, match="cannot train from a"):
        SelectiveBackpropTraining(model, staleness=2).fit(stream(), batch_size=4)
