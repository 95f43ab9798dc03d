"""Resampled null distributions and p-values for two-sample statistics.

Grossi, Letizia, Torre et al., "Refereeing the referees: evaluating two-sample tests for
validating generators in precision sciences", arXiv:2409.16336: a metric value alone cannot
say whether a generator is compatible with the reference; calibrate the statistic's null
distribution by evaluating it on reference-vs-reference samples of the same sizes, then report
a p-value beside the value. Every statistic in :mod:`calogen.metrics` (W1, separation power,
FPD, KPD, ...) can be wrapped into a ``Callable[[ndarray, ndarray], float]`` and used here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calogen.metrics.distances import _rng, _ToDict

__all__ = ["TwoSampleTest", "p_value", "resampled_null", "two_sample_test"]

Statistic = Callable[[np.ndarray, np.ndarray], float]


def _as_samples(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D (N,) or 2-D (N, k) array, found shape "
                         f"{arr.shape}")
    return arr


def resampled_null(statistic: Statistic, reference: ArrayLike, n_a: int, n_b: int, *,
                   n_resamples: int = 20,
                   seed: int | np.random.Generator = 0) -> NDArray[np.float64]:
    """Null distribution of a two-sample statistic from disjoint reference subsets.

    For each of ``n_resamples`` repetitions, the reference rows are randomly permuted (seeded)
    and the statistic is evaluated on the first ``n_a`` rows against the next ``n_b`` rows --
    two disjoint subsets of one distribution (arXiv:2409.16336). If ``n_a + n_b`` exceeds the
    reference size, two halves (``len // 2`` rows each) are used instead, and the null then
    belongs to that smaller sample size: compare it with an observed value at the same size
    (see :func:`two_sample_test`).

    Args:
        statistic: ``f(a, b) -> float``; rows of ``a`` and ``b`` are samples.
        reference: ``(N,)`` or ``(N, k)`` reference sample.
        n_a, n_b: subset sizes (>= 1).
        n_resamples: number of null draws.
        seed: integer seed or ``numpy.random.Generator``.

    Returns:
        ``(n_resamples,)`` float64 null values.
    """
    ref = _as_samples(reference, "reference")
    n = ref.shape[0]
    if n_a < 1 or n_b < 1:
        raise ValueError(f"resampled_null: expected n_a, n_b >= 1, found {n_a}, {n_b}")
    if n_a + n_b > n:
        n_a = n_b = n // 2
    if n_a < 1:
        raise ValueError(f"resampled_null: reference has {n} rows, need at least 2")
    if n_resamples < 1:
        raise ValueError(f"resampled_null: expected n_resamples >= 1, found {n_resamples}")
    rng = _rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    for i in range(n_resamples):
        perm = rng.permutation(n)
        out[i] = float(statistic(ref[perm[:n_a]], ref[perm[n_a:n_a + n_b]]))
    return out


def p_value(observed: float, null: ArrayLike, *, larger_is_worse: bool = True) -> float:
    """Empirical p-value of ``observed`` against resampled ``null`` values.

    p = (1 + #{null >= observed}) / (1 + n_null) when larger values mean less compatible
    (distances); with ``larger_is_worse=False``, #{null <= observed} instead. The +1 counts the
    observation itself (Davison & Hinkley 1997; North et al. 2002), so p is never 0 and
    1 / (1 + n_null) is the smallest attainable value.
    """
    nul = np.asarray(null, dtype=np.float64).ravel()
    if nul.size == 0:
        raise ValueError("p_value: the null distribution is empty")
    obs = float(observed)
    extreme = nul >= obs if larger_is_worse else nul <= obs
    return float((1 + np.count_nonzero(extreme)) / (1 + nul.size))


@dataclass(frozen=True)
class TwoSampleTest(_ToDict):
    """Observed statistic, its p-value, and the summary of the reference-vs-reference null."""

    value: float
    p_value: float
    null_mean: float
    null_std: float
    null: np.ndarray
    n_a: int
    n_b: int


def two_sample_test(statistic: Statistic, reference: ArrayLike, generated: ArrayLike, *,
                    n_resamples: int = 20, larger_is_worse: bool = True,
                    seed: int | np.random.Generator = 0) -> TwoSampleTest:
    """A statistic with its resampled null and p-value, at matched sample sizes.

    The null needs two *disjoint* reference subsets, so sizes are matched to what the reference
    allows: n_a = min(N_ref // 2, N_gen) reference rows against n_b = n_a generated rows. The
    observed value is ``statistic(reference subset, generated subset)`` (random subsets drawn with
    the same seed), the null is :func:`resampled_null` at (n_a, n_b), and the p-value is
    :func:`p_value`. ``null_mean`` is the reference-vs-reference floor at that size.
    """
    ref = _as_samples(reference, "reference")
    gen = _as_samples(generated, "generated")
    n = min(ref.shape[0] // 2, gen.shape[0])
    if n < 1:
        raise ValueError(f"two_sample_test: need >= 2 reference and >= 1 generated rows, found "
                         f"{ref.shape[0]} and {gen.shape[0]}")
    rng = _rng(seed)
    a = ref[rng.permutation(ref.shape[0])[:n]]
    b = gen[rng.permutation(gen.shape[0])[:n]]
    observed = float(statistic(a, b))
    null = resampled_null(statistic, ref, n, n, n_resamples=n_resamples, seed=rng)
    return TwoSampleTest(value=observed,
                         p_value=p_value(observed, null, larger_is_worse=larger_is_worse),
                         null_mean=float(null.mean()), null_std=float(null.std(ddof=0)),
                         null=null, n_a=int(n), n_b=int(n))
