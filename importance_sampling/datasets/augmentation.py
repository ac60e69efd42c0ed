"""Image datasets transformed from another dataset: augmentation and whitening."""

import keras
import numpy as np

from importance_sampling.datasets.base import BaseDataset
from importance_sampling.datasets.in_memory import InMemoryDataset

AUGMENTATIONS = ("width_shift_range", "height_shift_range", "horizontal_flip")


def _check_images(dataset, name):
    if len(dataset.shape) != 3:
        raise ValueError(
            f"{name} needs a dataset of images of shape (height, width, "
            f"channels). Received: a dataset of samples of shape {dataset.shape}"
        )


class OntheflyAugmentedImages(BaseDataset):
    """Randomly shifted and flipped training images, drawn anew at every access.

    The transformations are Keras preprocessing layers
    (`keras.layers.RandomTranslation`, filling with the nearest pixel, and
    `keras.layers.RandomFlip`) applied to the training images each time they
    are read, so the same index gives a different image every time. The
    test images are returned unchanged.

    Args:
        dataset: A `BaseDataset` of images, channels last.
        augmentation_params: A dict with any of the keys of `AUGMENTATIONS`
            (named as in the original `ImageDataGenerator`):
            `width_shift_range` and `height_shift_range`, the largest shift
            as a fraction of the image side, and `horizontal_flip`, a bool.
        seed: Seed of the random transformations. Defaults to `None`.

    Raises:
        ValueError: for a dataset that does not hold images or an unknown
            augmentation parameter.

    Example:

    >>> import numpy as np
    >>> images = InMemoryDataset(np.zeros((4, 8, 8, 3)), np.array([0, 1, 0, 1]))
    >>> augmented = OntheflyAugmentedImages(images, {"horizontal_flip": True})
    >>> augmented.train_data[:2][0].shape
    (2, 8, 8, 3)
    """

    def __init__(self, dataset, augmentation_params, seed=None):
        _check_images(dataset, "OntheflyAugmentedImages")
        unknown = sorted(set(augmentation_params) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(
                f"`augmentation_params` accepts the keys {AUGMENTATIONS}. "
                f"Received unknown keys: {unknown}"
            )
        self.dataset = dataset
        self.random_access = dataset.random_access
        transforms = []
        height = augmentation_params.get("height_shift_range", 0.0)
        width = augmentation_params.get("width_shift_range", 0.0)
        if height or width:
            transforms.append(keras.layers.RandomTranslation(
                height, width, fill_mode="nearest", seed=seed
            ))
        if augmentation_params.get("horizontal_flip", False):
            transforms.append(keras.layers.RandomFlip("horizontal", seed=seed))
        self.augment = keras.Sequential(transforms)

    def _augmented(self, x):
        single = x.ndim == 3
        x = x[None] if single else x
        x = keras.ops.convert_to_numpy(self.augment(x, training=True))
        return x[0] if single else x

    def _get(self, split, idxs):
        x, y = self.dataset._get(split, idxs)
        return (self._augmented(x), y) if split == "train" else (x, y)

    def _draw(self, split, count, rng):
        idxs, x, y = self.dataset._draw(split, count, rng)
        return (idxs, self._augmented(x), y) if split == "train" else (idxs, x, y)

    def _size(self, split):
        return self.dataset._size(split)

    @property
    def shape(self):
        return self.dataset.shape

    @property
    def output_size(self):
        return self.dataset.output_size


class ZCAWhitening(InMemoryDataset):
    """An in-memory copy of an image dataset with ZCA-whitened images.

    The mean `m` and the covariance `C = U S U^T` of the flattened training
    images define `W = U (S + epsilon)^(-1/2) U^T`; every training and test
    image `x` becomes `W (x - m)`, reshaped to an image.

    Args:
        dataset: A `BaseDataset` of images with random access.
        epsilon: Added to the eigenvalues before the inverse square root.
            Defaults to `1e-6`, as in `ImageDataGenerator(zca_whitening=True)`.

    Raises:
        ValueError: for a dataset that does not hold images.
    """

    def __init__(self, dataset, epsilon=1e-6):
        _check_images(dataset, "ZCAWhitening")
        x_train, y_train = dataset.train_data[:]
        x_test, y_test = dataset.test_data[:] if len(dataset.test_data) else (None, None)
        flat = x_train.reshape(len(x_train), -1).astype("float64")
        self.mean = flat.mean(axis=0)
        flat -= self.mean
        u, s, _ = np.linalg.svd(flat.T @ flat / len(flat))
        self.whitening = (u / np.sqrt(s + epsilon)) @ u.T
        x_test = None if x_test is None else self.whiten(x_test)
        super().__init__(self.whiten(x_train), y_train, x_test, y_test, categorical=False)

    def whiten(self, x):
        """Whiten images with the statistics of the training images."""
        flat = x.reshape(len(x), -1) - self.mean
        return (flat @ self.whitening).reshape(x.shape).astype("float32")
