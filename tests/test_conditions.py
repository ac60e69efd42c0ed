"""The conditions of `ConditionalStartSampler`, on score sequences computed by hand."""

import numpy as np
import pytest

from importance_sampling.datasets import InMemoryDataset
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.samplers import (
    BaseSampler,
    Candidates,
    Condition,
    ConditionalStartSampler,
    ExpCondition,
    TotalVariationCondition,
    VarianceReductionCondition,
    WarmupCondition,
)

# One score of four carries all the mass: its distribution p = (1, 0, 0, 0).
PEAKED = np.array([1.0, 0.0, 0.0, 0.0])


def switch_moment(condition, scores, most=100):
    """The number of updates with `scores` after which `condition` is first satisfied."""
    for updates in range(most):
        if condition.satisfied:
            return updates
        condition.update(scores)
    raise AssertionError("never satisfied")


# When each condition switches on


def test_warmup_is_uniform_for_exactly_warmup_updates():
    condition = WarmupCondition(warmup=3)
    assert switch_moment(condition, PEAKED) == 3
    assert WarmupCondition().warmup == 100
    assert WarmupCondition(warmup=0).satisfied


def test_exp_condition_switches_when_the_average_rate_exceeds_the_threshold():
    # mean(s) = 0.25: a rate of 4. After k updates the average is
    # 4 (1 - 0.9^k): 1.874 after 6 (0.9^6 = 0.5314), 2.087 after 7 (0.9^7 = 0.4783).
    condition = ExpCondition()
    assert switch_moment(condition, np.full(8, 0.25)) == 7
    assert condition.lambda_ == pytest.approx(4 * (1 - 0.9**7))
    # momentum 0.5, threshold 2: 2.0 after one update (not above), 3.0 after two
    condition = ExpCondition(lambda_th=2.0, momentum=0.5)
    assert switch_moment(condition, np.full(3, 0.25)) == 2
    assert condition.lambda_ == pytest.approx(3.0)


def test_total_variation_condition_switches_when_the_average_distance_exceeds_the_threshold():
    # TV(p, u) = 0.5 (|1 - 1/4| + 3 |0 - 1/4|) = 0.75. After k updates the average is
    # 0.75 (1 - 0.9^k): 0.4886 after 10 (0.9^10 = 0.3487), 0.5146 after 11.
    condition = TotalVariationCondition()
    assert switch_moment(condition, PEAKED) == 11
    assert condition.total_variation == pytest.approx(0.75 * (1 - 0.9**11))


def test_variance_reduction_condition_switches_when_the_average_tau_exceeds_the_threshold():
    # g = (1, 0, 0, 0), u = 1/4: tau = 1 / sqrt(1 - 0.75 / 1) = 2. After k updates
    # the average is 2 (1 - 0.9^k): 1.139 after 8 (0.9^8 = 0.4305), 1.225 after 9.
    condition = VarianceReductionCondition()
    assert condition.variance_reduction == 0.0
    assert switch_moment(condition, PEAKED) == 9
    assert condition.variance_reduction == pytest.approx(2 * (1 - 0.9**9))


def test_the_moving_averages_follow_a_mixed_sequence():
    sequence = [np.array([1.0, 1.0, 1.0, 1.0]), np.array([3.0, 1.0, 0.0, 0.0])]
    # equal scores: tau 1, distance 0, rate 1. (3, 1, 0, 0): g = (0.75, 0.25, 0, 0),
    # sum(g^2) = 0.625, tau = sqrt(4 * 0.625) = sqrt(2.5); distance
    # 0.5 (0.5 + 0 + 0.25 + 0.25) = 0.5; mean 1, rate 1.
    vr, tv, exp = (VarianceReductionCondition(momentum=0.5),
                   TotalVariationCondition(momentum=0.5), ExpCondition(momentum=0.5))
    for scores in sequence:
        for condition in (vr, tv, exp):
            condition.update(scores)
    assert vr.variance_reduction == pytest.approx(0.5 * 0.5 * 1 + 0.5 * np.sqrt(2.5))
    assert tv.total_variation == pytest.approx(0.5 * 0.5 * 0 + 0.5 * 0.5)
    assert exp.lambda_ == pytest.approx(0.5 * 0.5 * 1 + 0.5 * 1)


def test_scores_summing_to_zero():
    zeros = np.zeros(5)
    vr, tv = VarianceReductionCondition(), TotalVariationCondition()
    vr.update(zeros)
    tv.update(zeros)
    assert vr.variance_reduction == pytest.approx(0.1)  # tau = 1, as for equal scores
    assert tv.total_variation == 0.0
    exp = ExpCondition()
    exp.update(zeros)  # an infinite rate
    assert exp.satisfied


def test_reading_satisfied_changes_nothing_and_state_round_trips():
    condition = VarianceReductionCondition()
    condition.update(PEAKED)
    for _ in range(5):
        assert not condition.satisfied
    assert condition.variance_reduction == pytest.approx(0.2)
    other = VarianceReductionCondition()
    other.set_state(condition.get_state())
    assert other.variance_reduction == condition.variance_reduction
    condition.reset()
    assert condition.variance_reduction == 0.0


@pytest.mark.parametrize("make", [
    lambda: WarmupCondition(-1), lambda: WarmupCondition(2.5),
    lambda: ExpCondition(momentum=1.0), lambda: VarianceReductionCondition(momentum=-0.1),
])
def test_arguments_are_checked(make):
    with pytest.raises(ValueError):
        make()


# ConditionalStartSampler


class RecordingCondition(Condition):
    """On after `on_after` updates; keeps every vector of scores it is given."""

    def __init__(self, on_after):
        self.on_after = on_after
        self.seen = []

    @property
    def satisfied(self):
        return len(self.seen) >= self.on_after

    def update(self, scores):
        self.seen.append(np.asarray(scores).copy())


class AllItemsSampler(BaseSampler):
    """Every item of the dataset is a candidate, scored by its first feature."""

    def __init__(self, dataset):
        super().__init__(dataset, BiasedReweightingPolicy(1.0), seed=0)
        self.updates = 0

    def candidates(self, batch_size):
        x, y = self.dataset.train_data[:]
        return Candidates(np.arange(len(x)), x, y, x[:, 0].astype("float64"))

    def update(self, idxs, scores):
        self.updates += 1


def conditional_sampler(condition):
    # Item 7 is the only one with a non-zero score: importance sampling
    # draws it, and only it, with a weight of mean(s) / s_7.
    x = np.zeros((20, 2), "float32")
    x[:, 1] = np.arange(20)
    x[7, 0] = 1.0
    inner = AllItemsSampler(InMemoryDataset(x, np.arange(20) % 2, categorical=False))
    return ConditionalStartSampler(inner, condition), inner


def test_conditional_start_draws_uniformly_then_by_importance():
    condition = RecordingCondition(on_after=3)
    sampler, inner = conditional_sampler(condition)
    uniform_idxs = []
    for step in range(3):
        batch = sampler.sample(10)
        uniform_idxs.extend(batch.idxs)
        np.testing.assert_array_equal(batch.weights, np.ones((10, 1)))
        np.testing.assert_array_equal(batch.metric_weights, np.ones(10))
        np.testing.assert_array_equal(batch.x[:, 1], batch.idxs)
        # the uniform batch's scores, as the train step observed them
        observed = np.full(10, float(step + 1))
        sampler.update(batch.idxs, observed)
        np.testing.assert_array_equal(condition.seen[-1], observed)
    assert len(set(uniform_idxs)) > 5  # not the importance draw of item 7
    assert len(condition.seen) == 3 and condition.satisfied
    for _ in range(2):
        batch = sampler.sample(10)
        np.testing.assert_array_equal(batch.idxs, np.full(10, 7))
        # unbiased weights: mean(s) / s_7 = (1 / 20) / 1
        np.testing.assert_allclose(batch.weights[:, 0], np.full(10, 1 / 20))
        sampler.update(batch.idxs, np.full(10, 99.0))
    # once on, the condition saw the presamples' scores, not the steps'
    assert len(condition.seen) == 5
    for seen in condition.seen[3:]:
        np.testing.assert_array_equal(seen, np.eye(20)[7])
    assert inner.updates == 5  # the wrapped sampler receives every update


def test_conditional_start_with_the_variance_reduction_condition():
    # Uniform batches whose observed scores peak on one item of 10:
    # tau = sqrt(10) = 3.162; the average 3.162 (1 - 0.9^k) exceeds 1.2
    # after 5 updates (1.295; 1.088 after 4).
    condition = VarianceReductionCondition()
    sampler, _ = conditional_sampler(condition)
    peaked = np.eye(10)[0]
    for _ in range(5):
        batch = sampler.sample(10)
        assert len(set(batch.idxs)) > 1
        sampler.update(batch.idxs, peaked)
    assert condition.variance_reduction == pytest.approx(np.sqrt(10) * (1 - 0.9**5))
    batch = sampler.sample(10)
    np.testing.assert_array_equal(batch.idxs, np.full(10, 7))
    # the presample: 20 scores, one of them 1: tau = sqrt(20)
    assert condition.variance_reduction == pytest.approx(
        0.9 * np.sqrt(10) * (1 - 0.9**5) + 0.1 * np.sqrt(20)
    )


def test_conditional_start_resets_its_condition_and_keeps_its_state():
    condition = WarmupCondition(2)
    sampler, _ = conditional_sampler(condition)
    for _ in range(2):
        batch = sampler.sample(4)
        sampler.update(batch.idxs, np.ones(4))
    state = sampler.get_state()
    assert state["condition"] == {"updates": 2}
    sampler.reset()
    assert not condition.satisfied
    sampler.set_state(state)
    assert condition.satisfied
