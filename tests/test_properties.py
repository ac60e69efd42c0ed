"""Properties of every sampler and reweighting policy, for arbitrary scores.

Scores are drawn by Hypothesis: zeros, subnormal, huge and tiny values,
NaN or infinity mixed in, all zeros. Whatever they are, a sampler draws
from a valid distribution and a policy returns finite, non-negative weights.
"""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import FirstColumnScorer
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from importance_sampling.datasets import InMemoryDataset
from importance_sampling.reweighting import (
    AdjustedBiasedReweightingPolicy,
    BiasedReweightingPolicy,
    CorrectingReweightingPolicy,
    NoReweightingPolicy,
    unbiased_weights,
)
from importance_sampling.rho_loss import ReducibleLossSampler
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    ConditionalStartSampler,
    ConstantTimeSampler,
    ConstantVarianceSampler,
    HistorySampler,
    LSTMSampler,
    ModelSampler,
    OnlineBatchSelectionSampler,
    PerClassGaussian,
    PowerSmoothingSampler,
    SamplerDecorator,
    SCSGSampler,
    UniformSampler,
    VarianceReductionCondition,
)
from importance_sampling.selective_backprop import (
    LossPercentileSelector,
    SelectiveBackpropSampler,
)

N, BATCH = 16, 4
EPS64 = np.finfo("float64").eps
EXAMPLES = settings(max_examples=60, deadline=None)
# Unusable scores warn that the batch is drawn uniformly; huge ones overflow sums.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def score_vectors(size=N):
    """Non-negative scores, some with a NaN or an infinity mixed in, or all zero.

    The finite ones are zeros, subnormals and values up to the largest
    float64, or zeros and values spanning 1e-30..1e30.
    """
    spans = st.one_of(st.just(0.0), st.floats(-30, 30).map(lambda e: 10.0**e))
    finite = st.one_of(
        arrays("float64", size, elements=st.floats(min_value=0.0, allow_infinity=False)),
        arrays("float64", size, elements=spans),
    )
    spoiled = st.tuples(finite, st.integers(0, size - 1), st.sampled_from([np.nan, np.inf]))
    return st.one_of(
        finite,
        spoiled.map(lambda args: np.where(np.arange(size) == args[1], args[2], args[0])),
        st.just(np.zeros(size)),
    )


POLICIES = {
    "none": lambda k: NoReweightingPolicy(),
    "biased": BiasedReweightingPolicy,
    "adjusted": AdjustedBiasedReweightingPolicy,
    "correcting": CorrectingReweightingPolicy,
}
# Down to very negative `k`, where `w ** k` overflows.
KS = st.one_of(st.floats(-1e30, 1.0), st.sampled_from([-1e30, -1e3, -50.0, 0.0, 1.0]))


def assert_finite_non_negative(weights):
    """Assert that an array or tensor of weights is finite and non-negative."""
    weights = keras.ops.convert_to_numpy(weights)
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0), weights


@pytest.mark.parametrize("name", sorted(POLICIES))
@EXAMPLES
@given(k=KS, scores=score_vectors(), data=st.data())
def test_policy_weights_are_finite_and_non_negative(name, k, scores, data):
    positions = data.draw(arrays("int64", st.integers(1, N), elements=st.integers(0, N - 1)))
    # The scores that the step observes: finite float32 losses.
    observed = data.draw(arrays("float32", len(positions),
                                elements=st.floats(0, np.finfo("float32").max, width=32)))
    policy = POLICIES[name](k)
    weights = policy.sample_weights(positions, scores)
    assert weights.shape == (len(positions), policy.weight_size)
    assert_finite_non_negative(weights)
    step = policy.step_weights(keras.ops.convert_to_tensor(weights),
                               keras.ops.convert_to_tensor(observed))
    assert_finite_non_negative(step)


# The weights `1 / (B p_i)` of unbiased importance sampling, by each way the
# library computes them.
UNBIASED = {
    "biased-k-1": lambda positions, scores:
        BiasedReweightingPolicy(1.0).sample_weights(positions, scores)[:, 0],
    "unbiased_weights": unbiased_weights,
}
# Positive scores at any scale whose weights `1 / (B p_i)` fit in float32.
POSITIVE = st.tuples(
    arrays("float64", N, elements=st.floats(-15, 15).map(lambda e: 10.0**e)),
    st.integers(-280, 280),
).map(lambda args: args[0] * 10.0 ** args[1])


@pytest.mark.parametrize("name", sorted(UNBIASED))
@EXAMPLES
@given(scores=POSITIVE, values=arrays("float64", N, elements=st.floats(-1e300, 1e300)),
       others=arrays("int64", st.integers(0, N), elements=st.integers(0, N - 1)))
def test_k_one_weights_make_the_proportional_draw_exactly_unbiased(name, scores, values, others):
    # The weight of each candidate when drawn with `others` in its batch.
    weights = np.array([UNBIASED[name](np.append(i, others), scores)[0] for i in range(N)])
    # With p_i = s_i / sum(s), p_i w_i = 1 / N, and a draw's weighted value
    # is the mean value in expectation.
    p = scores / scores.sum()
    expected = np.sum(p * weights * values)
    # The weights are rounded once to their dtype; the float64 sums, means and
    # products add fewer than 4 N roundings, and terms that underflow lose at
    # most the smallest subnormal each.
    tolerance = ((np.finfo(weights.dtype).eps + 4 * N * EPS64) * np.mean(np.abs(values))
                 + N * np.finfo("float64").smallest_subnormal)
    assert abs(expected - np.mean(values)) <= tolerance


class RecordingGenerator:
    """A NumPy generator that checks the probabilities of every weighted draw."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.weighted_draws = 0

    def choice(self, a, size=None, replace=True, p=None):
        if p is not None:
            assert np.all(np.isfinite(p)) and np.all(p >= 0), p
            assert abs(np.sum(p) - 1) <= len(p) * EPS64, p
            self.weighted_draws += 1
        return self.rng.choice(a, size=size, replace=replace, p=p)

    def __getattr__(self, name):
        return getattr(self.rng, name)


class FirstColumnPredictor:
    """A stand-in for the predictor of `LSTMSampler`: it predicts the first features."""

    def __init__(self, features):
        self.features = features

    def predict_on_batch(self, inputs):
        return self.features[:len(inputs[0])]

    def train_on_batch(self, inputs, targets):
        pass


def lstm_sampler(dataset, log):
    sampler = LSTMSampler(dataset, NoReweightingPolicy(), presample=N, warmup=0, log=log)
    sampler.predictor = FirstColumnPredictor(dataset.train_data[:][0])
    return sampler


def eager(sampler):
    """`sampler` with a condition that turns importance sampling on at the first update."""
    sampler.condition = VarianceReductionCondition(0.0, momentum=0.0)
    return sampler


def model_sampler(dataset, model):
    return ModelSampler(dataset, NoReweightingPolicy(), model, large_batch=N)


# Every sampler, scoring with `model` the samples of `dataset`.
SAMPLERS = {
    "uniform": lambda d, m: UniformSampler(d, NoReweightingPolicy()),
    "model": model_sampler,
    "lstm": lambda d, m: lstm_sampler(d, log=False),
    "lstm-log": lambda d, m: lstm_sampler(d, log=True),
    "per-class": lambda d, m: PerClassGaussian(d, NoReweightingPolicy(), presample=N),
    "history": lambda d, m: HistorySampler(d, NoReweightingPolicy(), m, recompute=0),
    "online-batch-selection": lambda d, m: OnlineBatchSelectionSampler(
        d, NoReweightingPolicy(), m, steps_per_epoch=1, recompute=1),
    "additive": lambda d, m: AdditiveSmoothingSampler(model_sampler(d, m)),
    "adaptive-additive": lambda d, m: AdaptiveAdditiveSmoothingSampler(model_sampler(d, m)),
    "power": lambda d, m: PowerSmoothingSampler(model_sampler(d, m)),
    "conditional-start": lambda d, m: ConditionalStartSampler(
        model_sampler(d, m), VarianceReductionCondition(0.0, momentum=0.0)),
    "constant-variance": lambda d, m: eager(ConstantVarianceSampler(d, NoReweightingPolicy(), m)),
    "constant-time": lambda d, m: eager(ConstantTimeSampler(d, NoReweightingPolicy(), m)),
    "scsg": lambda d, m: SCSGSampler(d, NoReweightingPolicy(), SimpleNamespace(update_grad=list),
                                     B=0, B_over_b=2),
    "selective-backprop": lambda d, m: SelectiveBackpropSampler(
        d, NoReweightingPolicy(), m, history=N),
    "reducible-loss": lambda d, m: ReducibleLossSampler(d, m, np.zeros(N), presample=N),
}
# The samplers that draw no batch in proportion to scores.
NOT_PROPORTIONAL = {"uniform", "scsg", "selective-backprop", "reducible-loss"}


def innermost(sampler):
    """The sampler that a chain of decorators wraps."""
    while isinstance(sampler, SamplerDecorator):
        sampler = sampler.sampler
    return sampler


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_draw_from_valid_probabilities(name):
    # The score of a sample is its first feature (for the scoring model) and
    # the score that `update()` reports for it.
    features = np.zeros((N, 1))
    dataset = InMemoryDataset(features, np.arange(N) % 3)
    sampler = SAMPLERS[name](dataset, FirstColumnScorer())
    weighted_draws = []

    @EXAMPLES
    @given(scores=score_vectors(), k=KS, policy=st.sampled_from(sorted(POLICIES)))
    def check(scores, k, policy):
        features[:, 0] = scores
        inner = innermost(sampler)
        inner.reweighting = POLICIES[policy](k)
        inner.rng = RecordingGenerator(0)
        sampler.reset()
        for _ in range(2):
            batch = sampler.sample(BATCH)
            assert np.all((batch.idxs >= 0) & (batch.idxs < N))
            assert_finite_non_negative(batch.weights)
            assert_finite_non_negative(batch.metric_weights)
            sampler.update(batch.idxs, scores[batch.idxs])
        weighted_draws.append(inner.rng.weighted_draws)

    check()
    # The probabilities were checked: some scores were usable.
    assert (sum(weighted_draws) > 0) == (name not in NOT_PROPORTIONAL)


@EXAMPLES
@given(losses=st.lists(score_vectors(BATCH), min_size=1, max_size=4),
       beta=st.floats(0, 100))
def test_selective_backprop_keeps_samples_with_probabilities(losses, beta):
    selector = LossPercentileSelector(beta, history=N, rng=np.random.default_rng(0))
    for batch in losses:
        probabilities = selector.probabilities(batch)
        assert np.all((probabilities >= 0) & (probabilities <= 1)), probabilities
