import keras
import numpy as np
import pytest

from importance_sampling.reweighting import (
    AdjustedBiasedReweightingPolicy,
    BiasedReweightingPolicy,
    CorrectingReweightingPolicy,
    NoReweightingPolicy,
    unbiased_weights,
)

B, BATCH = 256, 32


def presample(seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.lognormal(sigma=1.0, size=B)
    values = rng.normal(loc=2.0, size=B) + scores  # correlated with the scores
    return rng, scores, values


def test_k_one_weights_make_an_unbiased_estimate_of_the_presample_mean():
    rng, scores, values = presample()
    policy = BiasedReweightingPolicy(k=1.0)
    p = scores / scores.sum()
    draws = 4000
    estimates = np.empty(draws)
    for t in range(draws):
        positions = rng.choice(B, size=BATCH, p=p)
        w = policy.sample_weights(positions, scores)[:, 0]
        estimates[t] = np.mean(w * values[positions])
    standard_error = estimates.std(ddof=1) / np.sqrt(draws)
    # Four standard errors: a false alarm has probability below 1e-4.
    assert abs(estimates.mean() - values.mean()) < 4 * standard_error


def test_k_one_weight_is_one_over_b_p():
    _, scores, _ = presample()
    positions = np.array([0, 5, 5, 17])
    w = BiasedReweightingPolicy(k=1.0).sample_weights(positions, scores)[:, 0]
    p = scores / scores.sum()
    np.testing.assert_allclose(w, 1 / (B * p[positions]), rtol=1e-5)
    np.testing.assert_allclose(unbiased_weights(positions, scores), w, rtol=1e-6)


def test_k_zero_gives_equal_weights():
    _, scores, _ = presample()
    positions = np.arange(0, 64, 2)
    w = BiasedReweightingPolicy(k=0.0).sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose(w, np.full_like(w, w[0]), rtol=1e-6)


@pytest.mark.parametrize("k", [-1.0, 0.0, 0.25, 0.5, 1.0])
def test_rescaling_keeps_the_weighted_loss_of_the_batch(k):
    _, scores, _ = presample()
    positions = np.random.default_rng(1).integers(0, B, size=BATCH)
    chosen = scores[positions]
    unbiased = scores.mean() / chosen
    w = BiasedReweightingPolicy(k=k).sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose((w * chosen).sum(), (unbiased * chosen).sum(), rtol=1e-5)
    # and the shape of the weights is the unbiased one to the power k
    np.testing.assert_allclose(w / w[0], (unbiased / unbiased[0]) ** k, rtol=1e-5)


def test_k_above_one_is_refused():
    with pytest.raises(ValueError, match="Received: k=1.5"):
        BiasedReweightingPolicy(k=1.5)


def test_no_reweighting_gives_ones():
    w = NoReweightingPolicy().sample_weights(np.arange(5), np.arange(1, 10.0))
    np.testing.assert_array_equal(w, np.ones((5, 1)))


def test_adjusted_policy_matches_biased_when_step_scores_equal_presample():
    _, scores, _ = presample()
    positions = np.arange(10, 42)  # distinct items
    k = 0.5
    policy = AdjustedBiasedReweightingPolicy(k)
    summary = policy.sample_weights(positions, scores)
    np.testing.assert_allclose(summary[0], [B, np.delete(scores, positions).sum()], rtol=1e-5)
    step = np.asarray(policy.step_weights(summary, scores[positions].astype("float32")))
    expected = BiasedReweightingPolicy(k).sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose(step, expected, rtol=1e-4)


def test_correcting_policy_scales_by_clipped_ratio():
    scores = np.array([1.0, 2.0, 4.0, 8.0])
    positions = np.array([0, 1, 2, 3])
    policy = CorrectingReweightingPolicy(k=1.0)
    w = policy.sample_weights(positions, scores)
    observed = np.array([0.5, 2.0, 16.0, 8.0], dtype="float32")
    step = np.asarray(policy.step_weights(w, observed))
    biased = BiasedReweightingPolicy(1.0).sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose(step, biased * np.array([2.0, 1.0, 0.25, 1.0]), rtol=1e-5)


@pytest.mark.parametrize("k", [-2.0, 0.0, 0.5, 1.0])
def test_biased_weights_follow_the_formula(k):
    rng, scores, _ = presample(3)
    positions = rng.integers(0, B, size=BATCH)
    chosen = scores[positions]
    unbiased = scores.mean() / chosen
    biased = unbiased**k
    expected = biased * np.sum(unbiased * chosen) / np.sum(biased * chosen)
    w = BiasedReweightingPolicy(k).sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose(w, expected, rtol=1e-5)


# Score vectors that break weights computed naively.
EXTREME_SCORES = {
    "zeros": np.zeros(8),
    "span": np.logspace(-30, 30, 8),
    "zero-chosen": np.array([0.0, 1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0]),
    "one-huge": np.array([1e30] + [1e-30] * 7),
}


@pytest.mark.parametrize("k", [-50.0, -1.0, 0.0, 0.5, 1.0])
@pytest.mark.parametrize("case", sorted(EXTREME_SCORES))
def test_biased_weights_stay_finite_and_non_negative(k, case):
    scores = EXTREME_SCORES[case]
    w = BiasedReweightingPolicy(k).sample_weights(np.array([0, 1, 4, 7]), scores)
    assert w.dtype == np.float32 and np.all(np.isfinite(w)) and np.all(w >= 0)
    if case == "zeros":
        np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize("policy", [AdjustedBiasedReweightingPolicy, CorrectingReweightingPolicy])
@pytest.mark.parametrize("k", [-50.0, 0.5, 1.0])
@pytest.mark.parametrize("case", sorted(EXTREME_SCORES))
def test_step_weights_of_the_policies_stay_finite_and_non_negative(policy, k, case):
    scores = EXTREME_SCORES[case]
    positions = np.array([0, 1, 4, 7])
    reweighting = policy(k)
    weights = reweighting.sample_weights(positions, scores)
    step = keras.ops.convert_to_numpy(reweighting.step_weights(
        keras.ops.convert_to_tensor(weights), keras.ops.convert_to_tensor(scores[positions], "float32")
    ))
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(step)) and np.all(step >= 0)
