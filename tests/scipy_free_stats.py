"""Quantiles of the chi-square distribution without SciPy."""

from statistics import NormalDist


def chi_square_upper_quantile(df, alpha):
    """The value a chi-square variable with `df` degrees exceeds with probability `alpha`.

    Uses the Wilson-Hilferty cube-root normal approximation, accurate to a
    few percent for `df >= 3`.
    """
    z = NormalDist().inv_cdf(1 - alpha)
    h = 2 / (9 * df)
    return df * (1 - h + z * h**0.5) ** 3
