import warnings

import numpy as np
import pytest
from conftest import FirstColumnScorer
from scipy_free_stats import chi_square_upper_quantile

from importance_sampling.datasets import BaseDataset, InMemoryDataset
from importance_sampling.reweighting import BiasedReweightingPolicy, NoReweightingPolicy
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    BaseSampler,
    Candidates,
    HistorySampler,
    LSTMSampler,
    ModelSampler,
    OnlineBatchSelectionSampler,
    PerClassGaussian,
    PowerSmoothingSampler,
    UniformSampler,
)


class WholeDataset(BaseDataset):
    """A dataset whose every draw returns all of its samples, in order."""

    def __init__(self, x):
        self.x = x

    def _get(self, split, idxs):
        return self.x[idxs], self.x[idxs]

    def _size(self, split):
        return len(self.x) if split == "train" else 0

    def _draw(self, split, count, rng):
        idxs = np.arange(count) % len(self.x)
        return (idxs, *self._get(split, idxs))


class FixedCandidates(BaseSampler):
    def __init__(self, scores, reweighting=None):
        super().__init__(None, reweighting or NoReweightingPolicy(), seed=0)
        self.scores = np.asarray(scores, dtype="float64")

    def candidates(self, batch_size):
        idxs = np.arange(len(self.scores))
        data = self.scores[:, None]
        return Candidates(idxs, data, data, self.scores)


def test_model_sampler_frequencies_match_the_score_distribution():
    B, batch, rounds = 16, 8, 2000
    scores = np.linspace(1, 4, B).astype("float32")
    sampler = ModelSampler(
        WholeDataset(scores[:, None]), NoReweightingPolicy(), FirstColumnScorer(),
        large_batch=B, seed=3,
    )
    counts = np.zeros(B)
    for _ in range(rounds):
        np.add.at(counts, sampler.sample(batch).idxs, 1)
    expected = rounds * batch * scores / scores.sum()
    statistic = np.sum((counts - expected) ** 2 / expected)
    assert statistic < chi_square_upper_quantile(B - 1, 0.001)


def test_model_sampler_scores_in_forward_batches_and_returns_drawn_data():
    x = np.arange(1, 301, dtype="float32")[:, None]
    model = FirstColumnScorer()
    sampler = ModelSampler(WholeDataset(x), BiasedReweightingPolicy(0.5), model,
                           large_batch=300, forward_batch_size=100)
    batch = sampler.sample(10)
    assert model.calls == [(300, 100)]
    np.testing.assert_array_equal(batch.x[:, 0], x[batch.idxs, 0])
    np.testing.assert_array_equal(batch.scores, x[batch.idxs, 0])
    assert batch.weights.shape == (10, 1)
    # metric weights are the unbiased 1 / (B p_i)
    p = x[:, 0] / x[:, 0].sum()
    np.testing.assert_allclose(batch.metric_weights, 1 / (300 * p[batch.idxs]), rtol=1e-5)


def test_model_sampler_refuses_a_presample_not_larger_than_the_batch():
    sampler = ModelSampler(WholeDataset(np.ones((8, 1))), NoReweightingPolicy(),
                           FirstColumnScorer(), large_batch=8)
    with pytest.raises(ValueError, match="presample=8, batch_size=8"):
        sampler.sample(8)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 0.0])
def test_unusable_scores_fall_back_to_uniform_with_a_warning(bad):
    scores = np.full(20, bad) if bad == 0.0 else np.r_[np.ones(19), bad]
    sampler = FixedCandidates(scores, BiasedReweightingPolicy(0.5))
    with pytest.warns(RuntimeWarning, match="sampled uniformly"):
        batch = sampler.sample(500)
    assert len(np.unique(batch.idxs)) == 20  # every candidate can be drawn
    np.testing.assert_array_equal(batch.weights, np.ones((500, 1)))
    np.testing.assert_array_equal(batch.metric_weights, np.ones(500))


def test_uniform_sampler_draws_uniformly_with_unit_weights():
    x = np.arange(10, dtype="float32")[:, None]
    sampler = UniformSampler(InMemoryDataset(x, np.arange(10), categorical=False),
                             BiasedReweightingPolicy(0.5), seed=0)
    counts = np.zeros(10)
    for _ in range(500):
        batch = sampler.sample(20)
        np.testing.assert_array_equal(batch.weights, np.ones((20, 1)))
        np.testing.assert_array_equal(batch.x[:, 0], batch.idxs)
        np.add.at(counts, batch.idxs, 1)
    expected = np.full(10, 1000.0)
    assert np.sum((counts - expected) ** 2 / expected) < chi_square_upper_quantile(9, 0.001)


def test_uniform_batches_predict_a_score_of_one_for_every_item():
    from importance_sampling import signals

    x = np.arange(10, dtype="float32")[:, None]
    sampler = UniformSampler(InMemoryDataset(x, np.arange(10), categorical=False),
                             NoReweightingPolicy(), seed=0)
    sent = []

    def receive(event):
        sent.append(event)

    signals.sample.connect(receive)
    try:
        batch = sampler.sample(6)
    finally:
        signals.sample.disconnect(receive)
    np.testing.assert_array_equal(batch.scores, np.ones(6))
    (event,) = sent
    np.testing.assert_array_equal(event["predicted_scores"], np.ones(6))


def test_sampler_seed_from_global_numpy_state_is_reproducible():
    x = np.arange(50, dtype="float32")[:, None]
    dataset = InMemoryDataset(x, np.arange(50), categorical=False)
    draws = []
    for _ in range(2):
        np.random.seed(7)
        draws.append(UniformSampler(dataset, NoReweightingPolicy()).sample(10).idxs)
    np.testing.assert_array_equal(*draws)


# Smoothing decorators


def smoothed_scores(decorator, scores, rounds=1):
    sampler = decorator(FixedCandidates(scores))
    return [sampler.candidates(1).scores for _ in range(rounds)]


def test_additive_smoothing_adds_the_constant():
    scores = np.array([0.0, 1.0, 3.0])
    (result,) = smoothed_scores(lambda s: AdditiveSmoothingSampler(s, c=0.5), scores)
    np.testing.assert_allclose(result, scores + 0.5)


@pytest.mark.parametrize("percentage, forget", [(0.5, 0.9), (0.25, 0.5), (2.0, 0.0)])
def test_adaptive_smoothing_adds_a_percentage_of_the_moving_mean(percentage, forget):
    scores = np.array([1.0, 2.0, 6.0])  # mean 3
    results = smoothed_scores(
        lambda s: AdaptiveAdditiveSmoothingSampler(s, percentage=percentage, forget=forget),
        scores, 3,
    )
    mu = 1.0
    for result in results:
        mu = forget * mu + (1 - forget) * 3.0
        np.testing.assert_allclose(result, scores + percentage * mu)


def test_adaptive_smoothing_defaults_and_positional_percentage():
    sampler = AdaptiveAdditiveSmoothingSampler(FixedCandidates([1.0]))
    assert (sampler.percentage, sampler.forget, sampler.mu) == (0.5, 0.9, 1.0)
    # the training classes pass their `smooth` as the second argument
    sampler = AdaptiveAdditiveSmoothingSampler(FixedCandidates([1.0, 3.0]), 0.1)
    assert (sampler.percentage, sampler.forget) == (0.1, 0.9)
    np.testing.assert_allclose(sampler.candidates(1).scores, np.array([1.0, 3.0]) + 0.1 * 1.1)
    with pytest.raises(TypeError):
        AdaptiveAdditiveSmoothingSampler(FixedCandidates([1.0]), c=0.5)


def test_adaptive_smoothing_state_round_trips_and_resets():
    sampler = AdaptiveAdditiveSmoothingSampler(FixedCandidates([2.0, 4.0]), forget=0.5)
    sampler.candidates(1)
    assert sampler.mu == pytest.approx(2.0)
    state = sampler.get_state()
    sampler.reset()
    assert sampler.mu == 1.0
    sampler.set_state(state)
    assert sampler.mu == pytest.approx(2.0)


def test_power_smoothing_raises_to_the_power():
    scores = np.array([1.0, 4.0, 9.0])
    (result,) = smoothed_scores(lambda s: PowerSmoothingSampler(s, power=0.5), scores)
    np.testing.assert_allclose(result, [1.0, 2.0, 3.0])


def test_smoothing_arguments_are_checked():
    with pytest.raises(ValueError, match="smooth=-1"):
        AdditiveSmoothingSampler(FixedCandidates([1.0]), c=-1)
    with pytest.raises(ValueError, match="power=2"):
        PowerSmoothingSampler(FixedCandidates([1.0]), power=2)
    with pytest.raises(ValueError, match="percentage=-0.5"):
        AdaptiveAdditiveSmoothingSampler(FixedCandidates([1.0]), percentage=-0.5)
    for forget in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"forget={forget}"):
            AdaptiveAdditiveSmoothingSampler(FixedCandidates([1.0]), forget=forget)


def test_smoothing_changes_the_drawn_distribution():
    scores = np.array([1.0, 0.0])  # without smoothing item 1 is never drawn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = AdditiveSmoothingSampler(FixedCandidates(scores), c=1.0).sample(2000)
    share = np.mean(batch.idxs == 1)
    # p = 1/3; 5 standard deviations of a binomial proportion over 2000 draws
    assert abs(share - 1 / 3) < 5 * np.sqrt(2 / 9 / 2000)


# Samplers that learn from the observed scores


def labelled_dataset(n=40, num_classes=2):
    labels = np.arange(n) % num_classes
    return InMemoryDataset(np.arange(n, dtype="float32")[:, None], labels)


def test_per_class_gaussian_scores_mean_plus_std_of_each_class():
    sampler = PerClassGaussian(labelled_dataset(), NoReweightingPolicy(), alpha=0.5,
                               presample=64, seed=0)
    # means start at log(num_classes), second moments at 1
    np.testing.assert_allclose(sampler.means, [np.log(2)] * 2)
    np.testing.assert_allclose(sampler.second_moments, [1.0, 1.0])
    start = np.log(2) + np.sqrt(1 - np.log(2) ** 2)
    np.testing.assert_allclose(sampler.class_scores(), [start, start])
    sampler.update(np.array([0, 2, 1]), np.array([2.0, 4.0, 1.0]))
    # one update per observed loss, in order: class 0 sees 2 then 4
    mean0 = 0.5 * (0.5 * np.log(2) + 0.5 * 2.0) + 0.5 * 4.0
    second0 = 0.5 * (0.5 * 1.0 + 0.5 * 4.0) + 0.5 * 16.0
    mean1 = 0.5 * np.log(2) + 0.5 * 1.0
    second1 = 0.5 * 1.0 + 0.5 * 1.0
    np.testing.assert_allclose(sampler.means, [mean0, mean1])
    np.testing.assert_allclose(sampler.second_moments, [second0, second1])
    expected = [mean0 + np.sqrt(second0 - mean0**2), mean1 + np.sqrt(second1 - mean1**2)]
    np.testing.assert_allclose(sampler.class_scores(), expected)
    candidates = sampler.candidates(8)
    np.testing.assert_allclose(candidates.scores, np.array(expected)[candidates.idxs % 2])


def test_history_sampler_fills_unseen_samples_with_the_mean_score():
    sampler = HistorySampler(labelled_dataset(10), NoReweightingPolicy(),
                             FirstColumnScorer(), recompute=0)
    sampler.update(np.array([1, 3]), np.array([2.0, 4.0]))
    scores = sampler.candidates(4).scores
    np.testing.assert_allclose(scores[[1, 3]], [2.0, 4.0])
    np.testing.assert_allclose(np.delete(scores, [1, 3]), 3.0)


def test_history_sampler_rescores_the_dataset_every_recompute_batches():
    model = FirstColumnScorer()
    sampler = HistorySampler(labelled_dataset(10), NoReweightingPolicy(), model,
                             forward_batch_size=4, recompute=3)
    for _ in range(6):
        batch = sampler.sample(2)
        sampler.update(batch.idxs, np.zeros(2))
    assert model.calls == [(10, 4), (10, 4)]


def test_online_batch_selection_probabilities_decay_with_rank():
    sampler = OnlineBatchSelectionSampler(
        labelled_dataset(100), NoReweightingPolicy(), FirstColumnScorer(),
        steps_per_epoch=10, s_e=(100.0, 100.0),
    )
    scores = sampler.candidates(4).scores  # rescored: loss of i is i
    p = scores / scores.sum()
    assert p[99] == p.max() and p[0] == p.min()
    np.testing.assert_allclose(p[99] / p[0], 100.0 ** (99 / 100), rtol=1e-6)


def test_online_batch_selection_interpolates_the_pressure():
    sampler = OnlineBatchSelectionSampler(
        labelled_dataset(20), NoReweightingPolicy(), FirstColumnScorer(),
        steps_per_epoch=10, s_e=(100.0, 1.0), n_epochs=3,
    )
    assert sampler.selection_pressure() == pytest.approx(100.0)
    sampler.steps = 10
    assert sampler.selection_pressure() == pytest.approx(10.0)
    sampler.steps = 20
    assert sampler.selection_pressure() == pytest.approx(1.0)


def test_lstm_sampler_is_uniform_during_warmup_then_predicts():
    dataset = labelled_dataset(64, num_classes=4)
    sampler = LSTMSampler(dataset, BiasedReweightingPolicy(0.5), presample=32, warmup=2, seed=0)
    np.testing.assert_allclose(sampler.losses, np.log(4))
    for step in range(2):
        assert sampler.candidates(8).scores is None
        batch = sampler.sample(8)
        sampler.update(batch.idxs, np.full(8, 0.5))
    candidates = sampler.candidates(8)
    assert len(candidates.idxs) == 32 and np.all(candidates.scores >= 0)
    seen = batch.idxs[0]
    assert sampler.losses[seen, -1] == pytest.approx(0.5) and sampler.counts[seen] >= 1


def test_lstm_sampler_regresses_log_losses_with_log():
    dataset = labelled_dataset(64, num_classes=4)
    sampler = LSTMSampler(dataset, NoReweightingPolicy(), presample=32, log=True,
                          warmup=1, seed=0)
    np.testing.assert_allclose(sampler.losses, np.log(np.log(4)), rtol=1e-6)
    batch = sampler.sample(8)
    sampler.update(batch.idxs, np.full(8, 0.5))
    assert sampler.losses[batch.idxs[0], -1] == pytest.approx(np.log(0.5))
    candidates = sampler.candidates(8)
    # predictions of log-losses are exponentiated: positive scores
    assert np.all(candidates.scores > 0)
    assert not LSTMSampler(dataset, NoReweightingPolicy(), presample=32).log


def test_lstm_sampler_refuses_streams_and_non_class_targets():
    from importance_sampling.datasets import GeneratorDataset

    stream = GeneratorDataset(iter([(np.zeros((4, 1)), np.zeros(4))]))
    with pytest.raises(ValueError, match="random access"):
        LSTMSampler(stream, NoReweightingPolicy())
    regression = InMemoryDataset(np.zeros((4, 1)), np.array([0.5, 1.5, 2.0, 3.0]))
    with pytest.raises(ValueError, match="class targets"):
        LSTMSampler(regression, NoReweightingPolicy())


