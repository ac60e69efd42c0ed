"""Samplers: choose the batch of each step and its weights.

`BaseSampler.sample()` is the one place a batch is drawn: a sampler's
`candidates()` proposes items with scores, decorators (`SamplerDecorator`)
transform the scores, and the reweighting policy weights the drawn items.
"""

from importance_sampling.samplers.base import BaseSampler, Candidates, SampledBatch
from importance_sampling.samplers.conditional import (
    Condition,
    ConditionalStartSampler,
    ExpCondition,
    TotalVariationCondition,
    VarianceReductionCondition,
    WarmupCondition,
)
from importance_sampling.samplers.constant import ConstantTimeSampler, ConstantVarianceSampler
from importance_sampling.samplers.history import HistorySampler, OnlineBatchSelectionSampler
from importance_sampling.samplers.lstm import LSTMSampler
from importance_sampling.samplers.model import ModelSampler
from importance_sampling.samplers.per_class import PerClassGaussian
from importance_sampling.samplers.scsg import SCSGSampler
from importance_sampling.samplers.smoothing import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    PowerSmoothingSampler,
    SamplerDecorator,
)
from importance_sampling.samplers.uniform import UniformSampler

__all__ = [
    "AdaptiveAdditiveSmoothingSampler",
    "AdditiveSmoothingSampler",
    "BaseSampler",
    "Candidates",
    "Condition",
    "ConditionalStartSampler",
    "ConstantTimeSampler",
    "ConstantVarianceSampler",
    "ExpCondition",
    "HistorySampler",
    "LSTMSampler",
    "ModelSampler",
    "OnlineBatchSelectionSampler",
    "PerClassGaussian",
    "PowerSmoothingSampler",
    "SCSGSampler",
    "SampledBatch",
    "SamplerDecorator",
    "TotalVariationCondition",
    "UniformSampler",
    "VarianceReductionCondition",
    "WarmupCondition",
]
