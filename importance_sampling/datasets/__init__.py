"""Datasets the samplers draw from.

A dataset exposes `train_data` and `test_data`, each indexable by an integer,
a slice or an integer array and returning `(x, y)`, and `shape` and
`output_size`.
"""

from importance_sampling.datasets.base import BaseDataset, DataProxy
from importance_sampling.datasets.canevet import CanevetICML2016
from importance_sampling.datasets.generator import GeneratorDataset
from importance_sampling.datasets.in_memory import InMemoryDataset

__all__ = [
    "BaseDataset",
    "CanevetICML2016",
    "DataProxy",
    "GeneratorDataset",
    "InMemoryDataset",
]
