"""The two-dimensional toy problem of Canévet et al. (ICML 2016)."""

import numpy as np

from importance_sampling.datasets.in_memory import InMemoryDataset


class CanevetICML2016(InMemoryDataset):
    """Points of the unit square labelled by a wavy boundary.

    On an `N x N` grid with `t = linspace(0, 1, N)`, the point `(i, j)` has the
    features `(1 - t_j, 1 - t_i)` and the label 1 with probability
    `1 / (1 + exp(smooth * (t_j - c(t_i))))`, where
    `c(u) = sin(4 (u + 0.5)^5) / 3 + 0.5`. The points are shuffled and the
    last `test_split` of them form the test set. Targets are one-hot over the
    two classes. The data is generated, never downloaded.

    Args:
        N: Points per side of the grid (`N * N` points in all). Defaults to
            `8192`.
        test_split: Fraction of the points kept for testing. Defaults to `0.33`.
        smooth: Sharpness of the boundary; large values make it crisp.
            Defaults to `40`.
        seed: Seed of the labels and the shuffle. Defaults to `0`.

    References:
        - [Canévet et al., 2016](https://proceedings.mlr.press/v48/canevet16.html)

    Example:

    >>> dataset = CanevetICML2016(N=32)
    >>> x, y = dataset.train_data[:]
    >>> x.shape[1], y.shape[1]
    (2, 2)
    """

    def __init__(self, N=8192, test_split=0.33, smooth=40, seed=0):
        rng = np.random.default_rng(seed)
        t = np.linspace(0, 1, N, dtype="float32")
        rows, cols = np.meshgrid(t, t, indexing="ij")
        x = np.stack([1 - cols.ravel(), 1 - rows.ravel()], axis=1)
        boundary = np.sin(4 * (rows.ravel() + 0.5) ** 5) / 3 + 0.5
        # 1 / (1 + exp(a)) written with tanh, which cannot overflow.
        probability = 0.5 * (1 - np.tanh(smooth * (cols.ravel() - boundary) / 2))
        y = (rng.random(N * N) < probability).astype("int64")
        order = rng.permutation(N * N)
        x, y = x[order], y[order]
        num_train = N * N - int(N * N * test_split)
        super().__init__(x[:num_train], y[:num_train], x[num_train:], y[num_train:])
