"""Names, argument orders and defaults kept from keras-importance-sampling 0.10.

Code written for the original library's last release calls these with the
same positional arguments and keywords and gets the same defaults.
"""

import inspect

import numpy as np
import pytest

from importance_sampling import datasets, reweighting, samplers

EMPTY = inspect.Parameter.empty

# (object, the original's parameters in order, with their defaults; EMPTY
# marks a required one). The parameters must lead the signature in that order.
SAME_ORDER = [
    (samplers.UniformSampler, {"dataset": EMPTY, "reweighting": EMPTY}),
    (samplers.ModelSampler, {"dataset": EMPTY, "reweighting": EMPTY, "model": EMPTY,
                             "large_batch": 1024, "forward_batch_size": 128}),
    (samplers.LSTMSampler, {"dataset": EMPTY, "reweighting": EMPTY, "presample": 2048,
                            "history": 10, "log": False}),
    (samplers.PerClassGaussian, {"dataset": EMPTY, "reweighting": EMPTY, "alpha": 0.9,
                                 "presample": 2048}),
    (samplers.HistorySampler, {"dataset": EMPTY, "reweighting": EMPTY, "model": EMPTY,
                               "forward_batch_size": 128, "recompute": 2}),
    (samplers.AdditiveSmoothingSampler, {"sampler": EMPTY, "c": 1.0}),
    (samplers.AdaptiveAdditiveSmoothingSampler, {"sampler": EMPTY, "percentage": 0.5,
                                                 "forget": 0.9}),
    (samplers.PowerSmoothingSampler, {"sampler": EMPTY, "power": 0.5}),
    (reweighting.BiasedReweightingPolicy, {"k": 1.0}),
    (reweighting.AdjustedBiasedReweightingPolicy, {"k": 1.0}),
    (reweighting.CorrectingReweightingPolicy, {"k": 1.0}),
    (datasets.GeneratorDataset, {"train_data": EMPTY, "test_data": None,
                                 "test_data_length": None}),
    (datasets.CanevetICML2016, {"N": 8192, "test_split": 0.33, "smooth": 40}),
]


def parameters(obj):
    return {name: p.default for name, p in inspect.signature(obj).parameters.items()
            if name != "self"}


@pytest.mark.parametrize("obj, original", SAME_ORDER, ids=lambda v: getattr(v, "__name__", ""))
def test_original_parameters_lead_the_signature(obj, original):
    actual = parameters(obj)
    assert list(actual)[:len(original)] == list(original)
    assert {name: actual[name] for name in original} == original


def test_online_batch_selection_keeps_the_original_keywords():
    actual = parameters(samplers.OnlineBatchSelectionSampler)
    for name, default in {"recompute": 2, "n_epochs": 1, "forward_batch_size": 128}.items():
        assert actual[name] == default
    assert "s_e" in actual and "steps_per_epoch" in actual


def test_ready_made_policies():
    assert isinstance(reweighting.UNWEIGHTED, reweighting.NoReweightingPolicy)
    assert isinstance(reweighting.UNBIASED, reweighting.BiasedReweightingPolicy)
    assert reweighting.UNBIASED.k == 1.0


def test_default_biased_policy_gives_unbiased_weights():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    positions = np.array([0, 3])
    weights = reweighting.BiasedReweightingPolicy().sample_weights(positions, scores)[:, 0]
    np.testing.assert_allclose(weights, scores.mean() / scores[positions], rtol=1e-6)
