"""Amplification: how many true events a generated sample is worth for one observable.

Butter, Diefenbacher, Kasieczka, Nachman, Plehn, "GANplifying event samples",
SciPost Phys. 10, 139 (2021), arXiv:2008.06545. The support of an observable is cut into
quantile bins of a high-statistics truth sample; a sample's error is the mean squared
deviation of its bin fractions from the truth's. For ``n`` independent true draws this error
falls as ``a / n``; the effective sample size of a generated sample is the ``n`` whose expected
error equals the generated sample's error, and the amplification factor is that size over the
number ``N`` of training events the generator saw.

Here each bin's squared deviation is divided by the bin's truth probability (a Pearson
chi-square per bin), so bins of unequal probability (discrete observables: photon counts, lit
fibres) are weighted consistently; for equal-probability bins this is the paper's MSE times
the number of bins squared. The expectation for ``n`` independent true draws compared with a
truth of ``T`` draws is then ``a (1/n + 1/T)`` with ``a = (K - 1) / K`` for ``K`` bins
(multinomial variances), so no resampling is needed. A single error value fluctuates by about
``sqrt(2 / (K - 1))`` relative (chi-square with ``K - 1`` degrees of freedom): with the
default 50 bins an effective size is known to ~20 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_BINS = 50
"""Quantile bins of the truth (arXiv:2008.06545 uses tens of quantiles); ~20 % relative
precision of one error value."""


def _values(values: ArrayLike, name: str, *, min_size: int = 1) -> NDArray[np.float64]:
    """``values`` as a finite 1-D float64 array of at least ``min_size`` entries."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of one observable, got shape {v.shape}")
    if v.size < min_size:
        raise ValueError(f"{name}: expected at least {min_size} values, got {v.size}")
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v)).sum())
        raise ValueError(f"{name}: expected finite values, found {bad} NaN or infinite")
    return v


@dataclass(frozen=True)
class QuantileBins:
    """Bins of one observable holding (about) equal truth probability.

    ``edges`` are the interior edges (bin ``k`` is ``[edges[k-1], edges[k])``, the first and last
    open-ended); ``probabilities`` the truth's fraction in each bin; ``n_truth`` its size.
    """

    edges: NDArray[np.float64]
    probabilities: NDArray[np.float64]
    n_truth: int

    @classmethod
    def from_truth(cls, truth: ArrayLike, n_bins: int = DEFAULT_BINS) -> QuantileBins:
        """Cut at the truth's ``1/K, ..., (K-1)/K`` quantiles; ties (discrete observables)
        merge bins, so fewer than ``n_bins`` bins may remain (at least 2 are required)."""
        if n_bins < 2:
            raise ValueError(f"n_bins: expected at least 2, got {n_bins}")
        t = _values(truth, "truth", min_size=2 * n_bins)
        levels = np.arange(1, n_bins) / n_bins
        edges = np.unique(np.quantile(t, levels, method="inverted_cdf"))
        # Each interior bin [e_k, e_k+1) holds the truth value e_k; only the first can be empty.
        if edges.size and edges[0] <= t.min():
            edges = edges[1:]
        if edges.size == 0:
            raise ValueError("truth: expected an observable taking at least two values, "
                             f"found the single value {t[0]:g}")
        counts = np.bincount(np.searchsorted(edges, t, side="right"), minlength=edges.size + 1)
        return cls(edges=edges, probabilities=counts / t.size, n_truth=int(t.size))

    @property
    def n_bins(self) -> int:
        return int(self.probabilities.size)

    @property
    def coefficient(self) -> float:
        """``a`` of the expected error ``a / n`` of ``n`` independent draws: ``(K - 1) / K``."""
        return (self.n_bins - 1) / self.n_bins

    def fractions(self, values: ArrayLike, name: str = "values") -> NDArray[np.float64]:
        """Fraction of ``values`` in each bin."""
        v = _values(values, name)
        counts = np.bincount(np.searchsorted(self.edges, v, side="right"),
                             minlength=self.n_bins)
        return counts / v.size

    def error(self, values: ArrayLike, name: str = "values") -> float:
        """Mean over bins of ``(f_k - p_k)^2 / p_k``: the sample's bin fractions ``f`` against
        the truth's ``p`` (dimensionless)."""
        f = self.fractions(values, name)
        p = self.probabilities
        return float(np.mean((f - p) ** 2 / p))

    def expected_error(self, n: float) -> float:
        """Expected :meth:`error` of ``n`` independent true draws: ``a (1/n + 1/T)``."""
        if not n > 0:
            raise ValueError(f"n: expected a positive sample size, got {n}")
        return self.coefficient * (1.0 / n + 1.0 / self.n_truth)

    def effective_size(self, error: float) -> float:
        """The ``n`` of true draws whose expected error equals ``error``: ``1 / (error/a - 1/T)``.

        ``math.inf`` when ``error`` is at or below the truth's own resolution ``a / T``:
        sizes comparable to the truth's are not resolved (use a truth much larger than the
        samples measured)."""
        if not error >= 0:
            raise ValueError(f"error: expected a non-negative number, got {error}")
        excess = error / self.coefficient - 1.0 / self.n_truth
        return math.inf if excess <= 0 else 1.0 / excess


@dataclass(frozen=True)
class Amplification:
    """Errors and effective sizes of the training and the generated sample of one observable.

    ``amplification = n_eff / n_train`` (arXiv:2008.06545); ``n_eff_train`` is the training
    sample's own effective size, ``~ n_train`` up to the error's fluctuation (a check of the
    estimator). Effective sizes near ``n_truth`` or ``inf`` are beyond the truth's resolution.
    """

    n_train: int
    n_generated: int
    n_truth: int
    n_bins: int
    error_train: float
    error_generated: float
    n_eff_train: float
    n_eff: float

    @property
    def amplification(self) -> float:
        return self.n_eff / self.n_train

    @property
    def resolved(self) -> bool:
        """Whether ``n_eff`` is well below the truth's size (at most a tenth of it)."""
        return self.n_eff <= 0.1 * self.n_truth


def amplification(truth: ArrayLike, train: ArrayLike, generated: ArrayLike, *,
                  n_bins: int = DEFAULT_BINS) -> Amplification:
    """Amplification of one observable (arXiv:2008.06545).

    Args:
        truth: a large independent sample of the true distribution (e.g. 10^6 simulated
            responses); defines the quantile bins and their probabilities.
        train: the ``N`` values the generator was trained on.
        generated: ``M`` values drawn from the generator (independent of ``truth``).
        n_bins: quantile bins of the truth (fewer remain where the truth has ties).
    """
    bins = QuantileBins.from_truth(truth, n_bins)
    tr = _values(train, "train")
    gen = _values(generated, "generated")
    e_train = bins.error(tr, "train")
    e_gen = bins.error(gen, "generated")
    return Amplification(n_train=int(tr.size), n_generated=int(gen.size),
                         n_truth=bins.n_truth, n_bins=bins.n_bins,
                         error_train=e_train, error_generated=e_gen,
                         n_eff_train=bins.effective_size(e_train),
                         n_eff=bins.effective_size(e_gen))
