"""Precision, recall, density and coverage (Naeem et al. 2020) without dense N x M matrices.

Naeem, Oh, Uh, Choi, Yoo, "Reliable Fidelity and Diversity Metrics for Generative Models",
ICML 2020, arXiv:2002.09797. With X the reference (N rows), Y the generated set (M rows),
NND_k(z) the distance from z to its k-th nearest neighbour within its own set (itself excluded)
and B(z, r) the closed ball {w : ||w - z|| <= r}:

    precision = 1/M sum_j 1[ exists i : Y_j in B(X_i, NND_k(X_i)) ]
    recall    = 1/N sum_i 1[ exists j : X_i in B(Y_j, NND_k(Y_j)) ]
    density   = 1/(k M) sum_j sum_i 1[ Y_j in B(X_i, NND_k(X_i)) ]
    coverage  = 1/N sum_i 1[ min_j ||X_i - Y_j|| <= NND_k(X_i) ]

(precision/recall are the k-NN manifold estimates of Kynkäänniemi et al. 2019.) For two samples
of one distribution, E[density] = 1 and E[coverage] -> 1 - 2^-k (Naeem et al., Sec. 3).
METRICS.md: use k = 5 on log10 of voxel/pixel values (empty set to a floor below threshold).

Memory: the k-NN radii come from ``sklearn.neighbors.NearestNeighbors`` (which works in chunks
bounded by sklearn's ``working_memory``); the cross terms are computed in blocks of generated
rows against all reference rows, each block at most ``_BLOCK_BYTES`` = 64 MB of float64 squared
distances, accumulating the four counts block by block. No N x M or N x N matrix is ever held.

Speed: every set is subsampled (seeded, without replacement) to at most ``max_samples`` rows
first (the cost grows as N M d; measurements in ``benchmarks/README.md``).
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
#: Default subsample size per set.
PRDC_MAX_SAMPLES: int = 10_000
#: Upper bound of one block of squared distances (bytes).
_BLOCK_BYTES: int = 64 * 2**20
#: Largest dimension for which tree-based ``NearestNeighbors`` computes the k-NN radii.
_TREE_MAX_DIM: int = 64


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


def _subsample(x: NDArray[np.float64], n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    if x.shape[0] <= n:
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


def _knn_radius2_tree(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Squared distance of each row to its k-th nearest neighbour in ``x``, itself excluded.

    ``sklearn.neighbors.NearestNeighbors`` (tree-based for low d; exact).
    """
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, _ = nn.kneighbors(x)  # column 0 is the point itself (distance 0)
    return dist[:, k].astype(np.float64) ** 2


def _knn_radius2_blocked(x: NDArray[np.floating], k: int) -> NDArray[np.float64]:
    """As :func:`_knn_radius2_tree`, by blocks of rows against all rows (<= 64 MB per block).

    Used for high d, where trees do not help and one BLAS product per block is fastest; the
    self-distance is set to exactly 0 and the (k+1)-th smallest squared distance is taken.
    """
    n = x.shape[0]
    sq = _sq_norms(x)
    out = np.empty(n, dtype=np.float64)
    step = _max_block_rows(n, x.itemsize)
    for s in range(0, n, step):
        d2 = _sq_dist_block(x[s:s + step], sq[s:s + step], x, sq)
        rows = np.arange(d2.shape[0])
        d2[rows, s + rows] = 0.0
        out[s:s + step] = np.partition(d2, k, axis=1)[:, k]
    return out


def _max_block_rows(n_cols: int, itemsize: int = 8) -> int:
    return max(1, _BLOCK_BYTES // (itemsize * max(n_cols, 1)))


def prdc(ref: ArrayLike, gen: ArrayLike, k: int = PRDC_K, *,
         max_samples: int = PRDC_MAX_SAMPLES, seed: int | np.random.Generator = 0,
         precision: Literal["auto", "float32", "float64"] = "auto") -> PRDCResult:
    """Precision, recall, density and coverage of ``gen`` against ``ref`` (Naeem et al. 2020).

    Both sets are subsampled to ``max_samples`` rows each (seeded, without replacement; the
    counts used are returned as ``n_ref``/``n_gen``). Then:

    1. k-NN radii of both sets: ``sklearn.neighbors.NearestNeighbors`` (trees, float64) for
       d <= 64; for larger d, blocks of rows against all rows with one BLAS product per block
       (faster than sklearn's brute force here), <= 64 MB per block.
    2. One pass over blocks of generated rows against all reference rows (<= 64 MB of squared
       distances per block) accumulates all four quantities: per generated row the number of
       reference balls containing it (precision, density), per reference row whether any
       generated ball contains it (recall) and its nearest generated distance (coverage).

    Balls are closed (distance <= radius); squared distances are compared with squared radii.
    ``precision="auto"`` computes distances in float32 when d > 64 (2-3x faster; squared
    distances then carry a relative error ~1e-7 of ||x||^2 + ||y||^2, which only matters for
    near-exact ties) and in float64 otherwise.

    Reference against reference (two halves): density ~ 1, coverage ~ 1 - 2^-k (0.969 at k = 5),
    precision and recall high (they drop with d even for identical sets). Mode collapse lowers
    recall and coverage; a shifted generator lowers precision and density.

    Args:
        ref: ``(N, d)`` reference features (e.g. log10 pixel values).
        gen: ``(M, d)`` generated features.
        k: neighbour count (5 in the paper).
        max_samples: rows kept per set.
        seed: integer seed or ``numpy.random.Generator`` for the subsampling.
        precision: floating-point type of the distance computations.

    Timing (2 shared CPU cores): 10k x 10k at d = 16 1.3-4 s; at d = 1936 21-32 s (float32).
    """
    r, g = _pair_2d(ref, gen)
    if k < 1:
        raise ValueError(f"prdc: expected k >= 1, found {k}")
    if max_samples < k + 1:
        raise ValueError(f"prdc: expected max_samples > k = {k}, found {max_samples}")
    if precision not in ("auto", "float32", "float64"):
        raise ValueError(f"prdc: precision must be 'auto', 'float32' or 'float64', "
                         f"found {precision!r}")
    rng = _rng(seed)
    r = _subsample(r, max_samples, rng)
    g = _subsample(g, max_samples, rng)
    n, m = r.shape[0], g.shape[0]
    if n <= k or m <= k:
        raise ValueError(f"prdc: expected more than k = {k} rows per set, found {n} reference "
                         f"and {m} generated")
    d = r.shape[1]
    high_d = d > _TREE_MAX_DIM
    use32 = precision == "float32" or (precision == "auto" and high_d)
    if use32:
        r = r.astype(np.float32)
        g = g.astype(np.float32)
    if high_d:
        r2_ref = _knn_radius2_blocked(r, k)
        r2_gen = _knn_radius2_blocked(g, k)
    else:
        r2_ref = _knn_radius2_tree(r.astype(np.float64), k)
        r2_gen = _knn_radius2_tree(g.astype(np.float64), k)
    r2_ref_c = r2_ref.astype(r.dtype)
    r2_gen_c = r2_gen.astype(r.dtype)

    sq_ref = _sq_norms(r)
    sq_gen = _sq_norms(g)
    balls_per_gen = np.empty(m, dtype=np.int64)  # reference balls containing each gen row
    ref_recalled = np.zeros(n, dtype=bool)  # reference row inside some generated ball
    nearest_gen2 = np.full(n, np.inf, dtype=r.dtype)  # squared distance to the nearest gen row
    step = _max_block_rows(n, r.itemsize)
    for s in range(0, m, step):
        d2 = _sq_dist_block(g[s:s + step], sq_gen[s:s + step], r, sq_ref)  # (b, n) block
        balls_per_gen[s:s + step] = np.count_nonzero(d2 <= r2_ref_c[None, :], axis=1)
        ref_recalled |= np.any(d2 <= r2_gen_c[s:s + step, None], axis=0)
        np.minimum(nearest_gen2, d2.min(axis=0), out=nearest_gen2)

    return PRDCResult(
        precision=float(np.mean(balls_per_gen > 0)),
        recall=float(np.mean(ref_recalled)),
        density=float(balls_per_gen.sum() / (k * m)),
        coverage=float(np.mean(nearest_gen2 <= r2_ref_c)),
        n_ref=int(n), n_gen=int(m), k=int(k),
    )
