"""Precision, recall, density and coverage (Naeem et al. 2020) without dense N x M matrices.

Naeem, Oh, Uh, Choi, Yoo, "Reliable Fidelity and Diversity Metrics for Generative Models",
ICML 2020, arXiv:2002.09797. With X the reference (N rows), Y the generated set (M rows),
NND_k(z) the distance from z to its k-th nearest neighbour within its own set (itself excluded)
and B(z, r) the open ball {w : ||w - z|| < r}:

    precision = 1/M sum_j 1[ exists i : Y_j in B(X_i, NND_k(X_i)) ]
    recall    = 1/N sum_i 1[ exists j : X_i in B(Y_j, NND_k(Y_j)) ]
    density   = 1/(k M) sum_j sum_i 1[ Y_j in B(X_i, NND_k(X_i)) ]
    coverage  = 1/N sum_i 1[ exists j : Y_j in B(X_i, NND_k(X_i)) ]

Open balls and float64 distances, as the authors' ``prdc`` package (0.2, ``compute_prdc``), so
exact distance ties (frequent on integer counts) are counted as it counts them. For two samples
of one distribution E[density] = 1 and E[coverage] -> 1 - 2^-k (Naeem et al., Sec. 3).

Memory: k-NN radii from ``sklearn.neighbors.NearestNeighbors`` (d <= 64) or blocks of rows; the
cross terms in blocks of generated rows against all reference rows, each block at most
``_BLOCK_BYTES`` = 64 MB of squared distances. No N x M or N x N matrix is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.neighbors import NearestNeighbors

from calogen.metrics.distances import _pair_2d, _rng, _ToDict

__all__ = ["PRDCResult", "prdc"]

#: Neighbour count of Naeem et al. 2020 (and METRICS.md).
PRDC_K: int = 5
#: Default subsample size per set (``None`` in :func:`prdc` uses all rows).
PRDC_MAX_SAMPLES: int = 10_000
#: Upper bound of one block of squared distances (bytes).
_BLOCK_BYTES: int = 64 * 2**20
#: Largest dimension for which tree-based ``NearestNeighbors`` computes the k-NN radii.
_TREE_MAX_DIM: int = 64
#: Extra neighbour candidates whose distances are recomputed exactly for the k-NN radius.
_EXTRA_CANDIDATES: int = 3
#: Relative band around a radius inside which a BLAS-expanded distance is recomputed directly.
_TIE_RTOL: float = 1e-10
#: Widening of that band for float32 products (to a relative 1e-5).
_FLOAT32_BAND: float = 1e5


@dataclass(frozen=True)
class PRDCResult(_ToDict):
    """Precision, recall, density, coverage and the number of rows actually used per set."""

    precision: float
    recall: float
    density: float
    coverage: float
    n_ref: int
    n_gen: int
    k: int


def _subsample(x: NDArray[np.float64], n: int | None, rng: np.random.Generator
               ) -> NDArray[np.float64]:
    if n is None or x.shape[0] <= n:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=n, replace=False))]


def _sq_norms(x: NDArray[np.floating]) -> NDArray[np.floating]:
    return np.einsum("ij,ij->i", x, x)


def _sq_dist_block(a: NDArray[np.floating], sq_a: NDArray[np.floating],
                   b: NDArray[np.floating], sq_b: NDArray[np.floating]) -> NDArray[np.floating]:
    """Squared Euclidean distances of a block of rows ``a`` to all rows ``b`` (clipped at 0)."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += sq_a[:, None]
    d2 += sq_b[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def _direct_sq(a: NDArray[np.floating], ia: NDArray[np.intp], b: NDArray[np.floating],
               ib: NDArray[np.intp]) -> NDArray[np.float64]:
    """``sum((a[ia] - b[ib])^2)`` per pair, from the differences (no cancellation), in chunks of
    at most ``_BLOCK_BYTES`` of gathered rows."""
    out = np.empty(ia.size, dtype=np.float64)
    step = _max_block_rows(a.shape[1])
    for s in range(0, ia.size, step):
        diff = a[ia[s:s + step]].astype(np.float64) - b[ib[s:s + step]]
        out[s:s + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def _exact_kth(rows: NDArray[np.float64], pool: NDArray[np.float64], cand: NDArray[np.int64],
               k: int) -> NDArray[np.float64]:
    """Per row, the k-th smallest (0-based, itself included at 0) exact squared distance to its
    candidate neighbours ``pool[cand]``."""
    b, c = cand.shape
    d2 = _direct_sq(rows, np.repeat(np.arange(b), c), pool, cand.reshape(-1)).reshape(b, c)
    return np.partition(d2, k, axis=1)[:, k]


def _knn_radius2_tree(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Squared distance of each row to its k-th nearest neighbour in ``x``, itself excluded.

    Candidates from ``sklearn.neighbors.NearestNeighbors`` (trees for low d); their distances
    are recomputed from the differences so that ties are exact.
    """
    c = min(k + 1 + _EXTRA_CANDIDATES, x.shape[0])
    _, idx = NearestNeighbors(n_neighbors=c).fit(x).kneighbors(x)
    return _exact_kth(x, x, idx.astype(np.int64), k)


def _knn_radius2_blocked(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """As :func:`_knn_radius2_tree`, by blocks of rows against all rows (<= 64 MB per block).

    Used for high d, where trees do not help and one BLAS product per block is fastest.
    """
    n = x.shape[0]
    c = min(k + 1 + _EXTRA_CANDIDATES, n)
    sq = _sq_norms(x)
    out = np.empty(n, dtype=np.float64)
    step = _max_block_rows(n)
    for s in range(0, n, step):
        d2 = _sq_dist_block(x[s:s + step], sq[s:s + step], x, sq)
        rows = np.arange(d2.shape[0])
        d2[rows, s + rows] = -1.0  # self first among the candidates
        cand = np.argpartition(d2, c - 1, axis=1)[:, :c].astype(np.int64)
        out[s:s + step] = _exact_kth(x[s:s + step], x, cand, k)
    return out


def _max_block_rows(n_cols: int, itemsize: int = 8) -> int:
    return max(1, _BLOCK_BYTES // (itemsize * max(n_cols, 1)))


def _strictly_inside(d2: NDArray[np.floating], radius2: NDArray[np.float64],
                     tol: NDArray[np.float64], a: NDArray[np.float64],
                     b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``d2 < radius2``, recomputing from the differences the entries within ``tol`` of it.

    ``d2`` (rows of ``a`` against rows of ``b``) comes from the BLAS expansion, whose round-off
    is below ``tol``; ``radius2`` and ``tol`` broadcast against it (a row or a column).
    """
    inside = d2 < (radius2 - tol).astype(d2.dtype)
    near = d2 < (radius2 + tol).astype(d2.dtype)
    near ^= inside  # inside implies near: what remains is the band
    if near.any():
        i, j = np.nonzero(near)
        inside[i, j] = _direct_sq(a, i, b, j) < np.broadcast_to(radius2, d2.shape)[i, j]
    return inside


def prdc(ref: ArrayLike, gen: ArrayLike, k: int = PRDC_K, *,
         max_samples: int | None = PRDC_MAX_SAMPLES, seed: int | np.random.Generator = 0,
         precision: Literal["float64", "float32"] = "float64") -> PRDCResult:
    """Precision, recall, density and coverage of ``gen`` against ``ref`` (Naeem et al. 2020).

    Each set is subsampled to ``max_samples`` rows (seeded, without replacement; ``None`` keeps
    every row, as the official CaloChallenge protocol does; the counts used are returned as
    ``n_ref``/``n_gen``). Balls are open (distance < radius) as in the ``prdc`` package. The
    BLAS-expanded squared distances of the blocked passes are recomputed from the differences
    wherever they lie within round-off of a radius, so exact ties agree with a direct
    computation. ``precision="float32"`` runs the BLAS products in float32 (2-3x faster at high
    d; the recomputed band is widened to 1e-5, beyond which float32 round-off is not expected).

    Reference against reference (two halves): density ~ 1, coverage ~ 1 - 2^-k (0.969 at k = 5).
    Mode collapse lowers recall and coverage; a shifted generator lowers precision and density.

    Args:
        ref: ``(N, d)`` reference features (e.g. log10 pixel values).
        gen: ``(M, d)`` generated features.
        k: neighbour count (5 in the paper).
        max_samples: rows kept per set, or ``None`` for all.
        seed: integer seed or ``numpy.random.Generator`` for the subsampling.
        precision: floating-point type of the BLAS distance products.

    Timing (2 shared CPU cores, measurements in ``benchmarks/README.md``): 10k x 10k at d = 16
    a few seconds; the cost grows as N M d.
    """
    r, g = _pair_2d(ref, gen)
    if k < 1:
        raise ValueError(f"prdc: expected k >= 1, found {k}")
    if max_samples is not None and max_samples < k + 1:
        raise ValueError(f"prdc: expected max_samples > k = {k} or None, found {max_samples}")
    if precision not in ("float64", "float32"):
        raise ValueError(f"prdc: precision must be 'float64' or 'float32', found {precision!r}")
    rng = _rng(seed)
    r = _subsample(r, max_samples, rng).astype(np.float64, copy=False)
    g = _subsample(g, max_samples, rng).astype(np.float64, copy=False)
    n, m = r.shape[0], g.shape[0]
    if n <= k or m <= k:
        raise ValueError(f"prdc: expected more than k = {k} rows per set, found {n} reference "
                         f"and {m} generated")
    if r.shape[1] > _TREE_MAX_DIM:
        r2_ref, r2_gen = _knn_radius2_blocked(r, k), _knn_radius2_blocked(g, k)
    else:
        r2_ref, r2_gen = _knn_radius2_tree(r, k), _knn_radius2_tree(g, k)

    dtype = np.float32 if precision == "float32" else np.float64
    rc: NDArray[np.floating] = r.astype(dtype)
    gc: NDArray[np.floating] = g.astype(dtype)
    sq_ref, sq_gen = _sq_norms(r), _sq_norms(g)
    sq_ref_c: NDArray[np.floating] = sq_ref.astype(dtype)
    sq_gen_c: NDArray[np.floating] = sq_gen.astype(dtype)
    balls_per_gen = np.empty(m, dtype=np.int64)  # reference balls containing each gen row
    ref_recalled = np.zeros(n, dtype=bool)  # reference row inside some generated ball
    ref_covered = np.zeros(n, dtype=bool)  # reference ball containing some generated row
    step = _max_block_rows(n, rc.itemsize)
    rtol = _TIE_RTOL * (_FLOAT32_BAND if precision == "float32" else 1.0)
    for s in range(0, m, step):
        e = min(s + step, m)
        d2 = _sq_dist_block(gc[s:e], sq_gen_c[s:e], rc, sq_ref_c)
        # round-off of the expansion ~ eps (||a||^2 + ||b||^2): a band per column / row
        tol_ref = rtol * (sq_gen[s:e].max() + sq_ref)
        tol_gen = rtol * (sq_gen[s:e] + sq_ref.max())
        in_ref_ball = _strictly_inside(d2, r2_ref[None, :], tol_ref[None, :], g[s:e], r)
        balls_per_gen[s:e] = np.count_nonzero(in_ref_ball, axis=1)
        ref_covered |= in_ref_ball.any(axis=0)
        del in_ref_ball
        ref_recalled |= _strictly_inside(d2, r2_gen[s:e, None], tol_gen[:, None], g[s:e],
                                         r).any(axis=0)

    return PRDCResult(
        precision=float(np.mean(balls_per_gen > 0)),
        recall=float(np.mean(ref_recalled)),
        density=float(balls_per_gen.sum() / (k * m)),
        coverage=float(np.mean(ref_covered)),
        n_ref=int(n), n_gen=int(m), k=int(k),
    )
