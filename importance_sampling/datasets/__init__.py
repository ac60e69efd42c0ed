"""Datasets the samplers draw from.

A dataset exposes `train_data` and `test_data`, each indexable by an integer,
a slice or an integer array and returning `(x, y)`, and `shape` and
`output_size`.
"""

from importance_sampling.datasets.augmentation import OntheflyAugmentedImages, ZCAWhitening
from importance_sampling.datasets.base import BaseDataset, DataProxy
from importance_sampling.datasets.canevet import CanevetICML2016
from importance_sampling.datasets.generator import GeneratorDataset
from importance_sampling.datasets.in_memory import InMemoryDataset
from importance_sampling.datasets.keras_datasets import CIFAR10, CIFAR100, IMDB, MNIST, Reuters

__all__ = [
    "BaseDataset",
    "CIFAR10",
    "CIFAR100",
    "CanevetICML2016",
    "DataProxy",
    "GeneratorDataset",
    "IMDB",
    "InMemoryDataset",
    "MNIST",
    "OntheflyAugmentedImages",
    "Reuters",
    "ZCAWhitening",
]
