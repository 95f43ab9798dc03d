"""Baselines that need no training: the first rows of every comparison table.

Each baseline is deliberately wrong in one known way, so that the evaluation can be checked
against it: a metric that does not punish a baseline's flaw is not measuring what it claims.

- :class:`ShuffledBaseline` (``"shuffled"``): training responses drawn at random, ignoring the
  conditions. Flaw: no dependence on the conditions.
- :class:`NearestConditionBaseline` (``"nearest"``): the training response of the nearest
  training condition. Flaw: no diversity (identical conditions give identical copies); it
  memorises the training set.
- :class:`BinnedMeanPoissonBaseline` (``"binned-mean"``): the mean image of a condition bin,
  sampled with independent Poisson noise per fibre. Flaw: only Poisson fluctuations, no
  shower-to-shower fluctuations of the total (the reference's are ~25-30%, PHYSICS.md), so photon
  sums and widths are too narrow at fixed conditions.

All work on numpy arrays in physical units (photon counts per fibre, conditions in ALICE O2
order and units, ``calogen.particles.CONDITION_COLUMNS``); none needs torch. The models layer
never opens data files: callers pass arrays.

The evaluation measures the flaw of ``"nearest"`` with
``calogen.metrics.zdc.condition_diversity`` (0 for copies).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from calogen.particles import CONDITION_COLUMNS, SPECIES, ShowerKind, impact_point_cm

__all__ = [
    "BASELINES", "Baseline", "BinnedMeanPoissonBaseline", "CompactShowers",
    "NearestConditionBaseline", "NotFittedError", "ShuffledBaseline", "make_baseline",
]

N_CONDITIONS = len(CONDITION_COLUMNS)
"""Number of condition columns (ALICE O2: E, vx, vy, vz, px, py, pz, mass, charge)."""

_CHUNK_ROWS = 4096
"""Rows processed at once when converting or sampling images (bounds temporary memory)."""


class NotFittedError(RuntimeError):
    """A baseline was asked to sample before :meth:`Baseline.fit` was called."""


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------

def _check_conditions(conditions: ArrayLike, n: int | None = None) -> NDArray[np.float64]:
    """Conditions as float64 ``(N, 9)``; ``ValueError`` naming the argument otherwise."""
    cond = np.asarray(conditions)
    want = f"({'N' if n is None else n}, {N_CONDITIONS})"
    cols = ", ".join(CONDITION_COLUMNS)
    if cond.ndim != 2 or cond.shape[1] != N_CONDITIONS or (n is not None and cond.shape[0] != n):
        raise ValueError(f"conditions: expected shape {want} (columns {cols}), "
                         f"found shape {cond.shape}")
    if not (np.issubdtype(cond.dtype, np.floating) or np.issubdtype(cond.dtype, np.integer)):
        raise ValueError(f"conditions: expected a real-valued array, found dtype {cond.dtype}")
    cond = cond.astype(np.float64, copy=False)
    if not np.isfinite(cond).all():
        bad = sorted({CONDITION_COLUMNS[j] for j in np.nonzero(~np.isfinite(cond))[1]})
        raise ValueError(f"conditions: non-finite values (NaN or inf) in columns {bad}")
    if cond.shape[0] and cond[:, 0].min() <= 0:
        raise ValueError(f"conditions: column E (energy, GeV) must be > 0, found minimum "
                         f"{cond[:, 0].min():g}")
    return cond


def _check_pdg(pdg: ArrayLike, n: int) -> NDArray[np.int64]:
    """PDG codes as int64 ``(n,)``; ``ValueError`` naming the argument otherwise."""
    codes = np.asarray(pdg)
    if codes.shape != (n,):
        raise ValueError(f"pdg: expected shape ({n},) (one PDG code per conditions row), "
                         f"found shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"pdg: expected integer PDG codes, found dtype {codes.dtype}")
    return codes.astype(np.int64, copy=False)


def _check_showers(showers: ArrayLike) -> np.ndarray:
    """Showers ``(N, H, W)``, N >= 1, numeric (values are checked while compacting)."""
    arr = np.asarray(showers)
    if arr.ndim != 3 or arr.shape[0] == 0 or 0 in arr.shape[1:]:
        raise ValueError(f"showers: expected shape (N, H, W) with N >= 1 photon-count images, "
                         f"found shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"showers: expected photon counts (integers), found dtype {arr.dtype}")
    return arr


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"found {type(rng).__name__}")
    return rng


def _int32_chunk(chunk: np.ndarray, start: int) -> NDArray[np.int32]:
    """One chunk of showers as int32 counts; ``ValueError`` for negative or fractional values."""
    if np.issubdtype(chunk.dtype, np.floating):
        if not np.isfinite(chunk).all():
            raise ValueError(f"showers: non-finite values in images {start}..{start + len(chunk)}")
        if (chunk != np.round(chunk)).any():
            raise ValueError("showers: expected integer photon counts, found fractional values "
                             f"in images {start}..{start + len(chunk)}")
    if chunk.size and chunk.min() < 0:
        raise ValueError(f"showers: photon counts must be >= 0, found {chunk.min()} in images "
                         f"{start}..{start + len(chunk)}")
    if chunk.size and chunk.max() > np.iinfo(np.int32).max:
        raise ValueError("showers: photon counts exceed the int32 range")
    return chunk.astype(np.int32, copy=False)


# --------------------------------------------------------------------------------------------
# Compact storage of training showers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompactShowers:
    """Photon-count images stored sparsely (CSR): ZN images are ~94-96% zeros.

    Values are ``uint16`` when every count fits (ALICE ZN pixel maxima are a few hundred,
    PHYSICS.md), else ``int32``; column indices are ``uint16`` for images up to 65,536 pixels.
    The storage is never larger than the dense int32 array.

    Attributes:
        shape: image shape ``(H, W)``.
        indptr: ``(N + 1,)`` int64 row pointers.
        indices: ``(nnz,)`` flat pixel indices of the non-zero counts.
        values: ``(nnz,)`` the non-zero counts.
    """

    shape: tuple[int, int]
    indptr: NDArray[np.int64]
    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def from_dense(cls, showers: np.ndarray) -> CompactShowers:
        """Compact ``(N, H, W)`` non-negative integer counts, chunk by chunk."""
        n, h, w = showers.shape
        k = h * w
        idx_dtype = np.uint16 if k <= np.iinfo(np.uint16).max + 1 else np.uint32
        counts, indices, values = [], [], []
        for start in range(0, n, _CHUNK_ROWS):
            chunk = _int32_chunk(showers[start:start + _CHUNK_ROWS], start).reshape(-1, k)
            flat = np.flatnonzero(chunk)
            per_row = np.count_nonzero(chunk, axis=1)
            values.append(chunk.reshape(-1)[flat])
            flat -= np.repeat(np.arange(0, chunk.size, k, dtype=np.int64), per_row)
            counts.append(per_row)
            indices.append(flat.astype(idx_dtype))
        vals = np.concatenate(values)
        if vals.size == 0 or vals.max() <= np.iinfo(np.uint16).max:
            vals = vals.astype(np.uint16)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.concatenate(counts), out=indptr[1:])
        return cls((h, w), indptr, np.concatenate(indices), vals)

    def __len__(self) -> int:
        return self.indptr.size - 1

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, bytes."""
        return self.indptr.nbytes + self.indices.nbytes + self.values.nbytes

    def photon_sums(self) -> NDArray[np.int64]:
        """Photon sum of every stored image, ``(N,)``."""
        csum = np.concatenate([[0], np.cumsum(self.values, dtype=np.int64)])
        return csum[self.indptr[1:]] - csum[self.indptr[:-1]]

    def take(self, rows: ArrayLike) -> NDArray[np.int32]:
        """Dense int32 images ``(M, H, W)`` of the stored rows ``rows`` (repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        m = rows.size
        k = self.shape[0] * self.shape[1]
        out = np.zeros(m * k, dtype=np.int32)
        for lo in range(0, m, 4 * _CHUNK_ROWS):
            sel = rows[lo:lo + 4 * _CHUNK_ROWS]
            starts = self.indptr[sel]
            lens = self.indptr[sel + 1] - starts
            total = int(lens.sum())
            if total == 0:
                continue
            # src: positions in the stored arrays; dst: flat positions in the output.
            src = np.arange(total, dtype=np.int64)
            src += np.repeat(starts - (np.cumsum(lens) - lens), lens)
            dst = np.repeat(np.arange(lo * k, (lo + sel.size) * k, k, dtype=np.int64), lens)
            dst += self.indices[src]
            out[dst] = self.values[src]
        return out.reshape(m, *self.shape)


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------

class Baseline(ABC):
    """A generator that needs no training: ``fit`` stores statistics, ``sample`` draws images.

    Subclasses implement :meth:`_fit`, :meth:`_sample` and :meth:`describe`; the public
    :meth:`fit` and :meth:`sample` validate the arrays first.
    """

    name: ClassVar[str]
    image_shape: tuple[int, int] | None = None

    def fit(self, showers: ArrayLike, conditions: ArrayLike, pdg: ArrayLike) -> Self:
        """Learn from training data.

        Args:
            showers: ``(N, H, W)`` photon counts per fibre (non-negative integers).
            conditions: ``(N, 9)`` conditions in ALICE O2 order and units.
            pdg: ``(N,)`` integer PDG codes.

        Returns:
            ``self``.
        """
        arr = _check_showers(showers)
        n = arr.shape[0]
        cond = _check_conditions(conditions, n)
        codes = _check_pdg(pdg, n)
        self._fit(arr, cond, codes)
        self.image_shape = (int(arr.shape[1]), int(arr.shape[2]))
        return self

    def sample(self, conditions: ArrayLike, pdg: ArrayLike,
               rng: np.random.Generator) -> NDArray[np.int32]:
        """Draw one response per requested condition.

        Args:
            conditions: ``(M, 9)`` conditions in ALICE O2 order and units.
            pdg: ``(M,)`` integer PDG codes.
            rng: the random generator (the only source of randomness).

        Returns:
            ``(M, H, W)`` int32 photon counts (non-negative), physical units.
        """
        if self.image_shape is None:
            raise NotFittedError(f"{type(self).__name__}.sample called before fit: call "
                                 f"fit(showers, conditions, pdg) first")
        cond = _check_conditions(conditions)
        codes = _check_pdg(pdg, cond.shape[0])
        rng = _check_rng(rng)
        if cond.shape[0] == 0:
            return np.zeros((0, *self.image_shape), dtype=np.int32)
        return self._sample(cond, codes, rng)

    @abstractmethod
    def describe(self) -> str:
        """One sentence: what the baseline does and which flaw the evaluation should expose."""

    @abstractmethod
    def _fit(self, showers: np.ndarray, conditions: NDArray[np.float64],
             pdg: NDArray[np.int64]) -> None: ...

    @abstractmethod
    def _sample(self, conditions: NDArray[np.float64], pdg: NDArray[np.int64],
                rng: np.random.Generator) -> NDArray[np.int32]: ...


# --------------------------------------------------------------------------------------------
# (a) shuffled
# --------------------------------------------------------------------------------------------

class ShuffledBaseline(Baseline):
    """Training responses drawn uniformly at random (with replacement), conditions ignored."""

    name: ClassVar[str] = "shuffled"

    def __init__(self) -> None:
        self.store: CompactShowers | None = None

    def describe(self) -> str:
        return ("Returns training responses drawn at random, ignoring the requested conditions; "
                "the evaluation should expose its missing dependence on species, energy and "
                "impact point (paired MAE per condition, per-species/energy slices, the "
                "conditioned classifier).")

    def _fit(self, showers: np.ndarray, conditions: NDArray[np.float64],
             pdg: NDArray[np.int64]) -> None:
        self.store = CompactShowers.from_dense(showers)

    def _sample(self, conditions: NDArray[np.float64], pdg: NDArray[np.int64],
                rng: np.random.Generator) -> NDArray[np.int32]:
        assert self.store is not None
        return self.store.take(rng.integers(0, len(self.store), size=conditions.shape[0]))


# --------------------------------------------------------------------------------------------
# (b) nearest condition
# --------------------------------------------------------------------------------------------

def _log_energy_and_impact(conditions: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(N, 3)``: ln E [GeV], impact point x, y on the detector face [cm]."""
    x_cm, y_cm, _, _ = impact_point_cm(conditions)
    return np.stack([np.log(conditions[:, 0]), x_cm, y_cm], axis=1)


class NearestConditionBaseline(Baseline):
    """The training response whose condition is nearest to the requested one.

    Distance: Euclidean on standardised (training mean and std) ``ln E``, impact point ``x``,
    ``y`` on the face (:func:`calogen.particles.impact_point_cm`) and any ``extra_columns``,
    searched among training rows of the same PDG code (all rows when the code is absent from
    the training set). Deterministic: ``rng`` is accepted for the protocol and not used, so
    identical requests return identical stored responses.

    Args:
        extra_columns: further condition columns to include, by name (e.g. ``("vz",)``).
    """

    name: ClassVar[str] = "nearest"

    def __init__(self, extra_columns: Sequence[str] = ()) -> None:
        unknown = [c for c in extra_columns if c not in CONDITION_COLUMNS]
        if unknown:
            raise ValueError(f"extra_columns: unknown columns {unknown}; "
                             f"known {list(CONDITION_COLUMNS)}")
        self.extra_columns = tuple(extra_columns)
        self.store: CompactShowers | None = None
        self._mean = self._std = np.zeros(0)
        self._trees: dict[int, tuple[cKDTree, NDArray[np.int64]]] = {}
        self._all: tuple[cKDTree, NDArray[np.int64]] | None = None

    def describe(self) -> str:
        return ("Returns the stored training response of the nearest training condition "
                "(same species; standardised ln E and impact point), so it has no diversity: "
                "repeated conditions give identical copies and it memorises the training set, "
                "which the per-condition diversity and memorisation checks should expose.")

    def _features(self, conditions: NDArray[np.float64]) -> NDArray[np.float64]:
        cols = [_log_energy_and_impact(conditions)]
        if self.extra_columns:
            cols.append(conditions[:, [CONDITION_COLUMNS.index(c) for c in self.extra_columns]])
        return np.concatenate(cols, axis=1)

    def _fit(self, showers: np.ndarray, conditions: NDArray[np.float64],
             pdg: NDArray[np.int64]) -> None:
        feats = self._features(conditions)
        self._mean = feats.mean(axis=0)
        std = feats.std(axis=0)
        self._std = np.where(std > 0, std, 1.0)
        z = (feats - self._mean) / self._std
        self._trees = {}
        for code in np.unique(pdg):
            rows = np.flatnonzero(pdg == code)
            self._trees[int(code)] = (cKDTree(z[rows]), rows)
        self._all = (cKDTree(z), np.arange(len(pdg), dtype=np.int64))
        self.store = CompactShowers.from_dense(showers)

    def nearest_rows(self, conditions: ArrayLike, pdg: ArrayLike) -> NDArray[np.int64]:
        """Index (into the training arrays) of the nearest training row for each request."""
        if self.store is None:
            raise NotFittedError("NearestConditionBaseline.nearest_rows called before fit")
        cond = _check_conditions(conditions)
        codes = _check_pdg(pdg, cond.shape[0])
        z = (self._features(cond) - self._mean) / self._std
        out = np.empty(len(codes), dtype=np.int64)
        for code in np.unique(codes):
            sel = np.flatnonzero(codes == code)
            tree_rows = self._trees.get(int(code), self._all)
            assert tree_rows is not None
            tree, rows = tree_rows
            _, idx = tree.query(z[sel], k=1)
            out[sel] = rows[idx]
        return out

    def _sample(self, conditions: NDArray[np.float64], pdg: NDArray[np.int64],
                rng: np.random.Generator) -> NDArray[np.int32]:
        assert self.store is not None
        return self.store.take(self.nearest_rows(conditions, pdg))


# --------------------------------------------------------------------------------------------
# (c) binned mean + Poisson
# --------------------------------------------------------------------------------------------

_KINDS = list(ShowerKind)
_OTHER_KIND = len(_KINDS)
"""Kind index for PDG codes the species table does not know."""


def _kind_index(pdg: NDArray[np.int64]) -> NDArray[np.int64]:
    """Shower kind per code (0 EM, 1 hadronic, 2 muon, 3 unknown species)."""
    uniq, inverse = np.unique(pdg, return_inverse=True)
    kinds = np.array([_KINDS.index(SPECIES[int(c)].kind) if int(c) in SPECIES else _OTHER_KIND
                      for c in uniq], dtype=np.int64)
    return kinds[inverse.reshape(-1)]


def _bin(values: NDArray[np.float64], inner_edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Bin index 0..len(inner_edges); values outside the range land in the outer bins."""
    return np.searchsorted(inner_edges, values, side="right").astype(np.int64)


@dataclass(frozen=True)
class _Level:
    """Mean images of one binning level (bins present in the training set only)."""

    components: tuple[str, ...]
    codes: NDArray[np.int64]
    """Sorted bin codes present in the training set."""
    counts: NDArray[np.int64]
    means: NDArray[np.float32]
    """``(n_bins, H * W)`` mean photon count per fibre."""


class BinnedMeanPoissonBaseline(Baseline):
    """Mean training image per condition bin, sampled with independent Poisson noise per fibre.

    Bins: species (PDG code) x ``ln E`` bin x impact-point (x, y) bin. A request whose bin holds
    fewer than ``min_count`` training responses falls back to the next coarser level of
    :attr:`LEVELS`: (species, energy, impact) -> (species, energy) -> (shower kind, energy) ->
    (energy) -> everything. Energy bins are equal in ``ln E`` between the training extremes;
    impact bins are equal in x (and y) between the training 1st and 99th percentiles; values
    outside land in the outer bins.

    Sampling is exact Poisson (the fibre-level readout statistics of the reference, PHYSICS.md)
    around the bin mean, so the photon sum has relative spread ``1/sqrt(mean)`` only, far below
    the reference's 25-30% shower-to-shower fluctuations.

    Args:
        n_energy_bins: number of ``ln E`` bins.
        n_impact_bins: number of bins along each of x and y on the face.
        min_count: a bin needs at least this many training responses to be used.
        n_threads: threads for Poisson sampling (``None``: available cores, at most 8). The
            output does not depend on it: each block of rows has its own seeded child generator.
    """

    name: ClassVar[str] = "binned-mean"
    LEVELS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("species", "energy", "x", "y"),
        ("species", "energy"),
        ("kind", "energy"),
        ("energy",),
        (),
    )

    def __init__(self, n_energy_bins: int = 16, n_impact_bins: int = 4, min_count: int = 1,
                 n_threads: int | None = None) -> None:
        for arg, value in (("n_energy_bins", n_energy_bins), ("n_impact_bins", n_impact_bins),
                           ("min_count", min_count)):
            if int(value) != value or value < 1:
                raise ValueError(f"{arg}: expected an integer >= 1, found {value!r}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads: expected None or an integer >= 1, found {n_threads!r}")
        self.n_energy_bins = int(n_energy_bins)
        self.n_impact_bins = int(n_impact_bins)
        self.min_count = int(min_count)
        self.n_threads = n_threads
        self._species = np.zeros(0, dtype=np.int64)
        self._edges: dict[str, NDArray[np.float64]] = {}
        self.levels: list[_Level] = []

    def describe(self) -> str:
        return ("Samples the mean training image of the request's (species, energy, impact "
                "point) bin with Poisson noise per fibre, so it has only Poisson fluctuations and "
                "no shower-to-shower fluctuations of the total; photon-sum and width "
                "distributions at fixed conditions are too narrow, which the diversity measure "
                "and a classifier should expose.")

    # -- binning --------------------------------------------------------------------------

    def _radix(self) -> dict[str, int]:
        return {"species": self._species.size + 1, "kind": _OTHER_KIND + 1,
                "energy": self.n_energy_bins, "x": self.n_impact_bins, "y": self.n_impact_bins}

    def _components(self, conditions: NDArray[np.float64],
                    pdg: NDArray[np.int64]) -> dict[str, NDArray[np.int64]]:
        feats = _log_energy_and_impact(conditions)
        pos = np.searchsorted(self._species, pdg).clip(0, max(self._species.size - 1, 0))
        known = self._species[pos] == pdg if self._species.size else np.zeros(len(pdg), bool)
        return {
            "species": np.where(known, pos + 1, 0),  # 0: species absent from training
            "kind": _kind_index(pdg),
            "energy": _bin(feats[:, 0], self._edges["energy"]),
            "x": _bin(feats[:, 1], self._edges["x"]),
            "y": _bin(feats[:, 2], self._edges["y"]),
        }

    def _codes(self, comps: dict[str, NDArray[np.int64]],
               level: tuple[str, ...]) -> NDArray[np.int64]:
        radix = self._radix()
        code = np.zeros(len(comps["energy"]), dtype=np.int64)
        for name in level:
            code = code * radix[name] + comps[name]
        return code

    # -- fit / sample ---------------------------------------------------------------------

    def _fit(self, showers: np.ndarray, conditions: NDArray[np.float64],
             pdg: NDArray[np.int64]) -> None:
        n, h, w = showers.shape
        k = h * w
        self._species = np.unique(pdg)
        feats = _log_energy_and_impact(conditions)
        lo, hi = feats[:, 0].min(), feats[:, 0].max()
        self._edges = {"energy": np.linspace(lo, hi, self.n_energy_bins + 1)[1:-1]}
        for j, axis in ((1, "x"), (2, "y")):
            a, b = np.percentile(feats[:, j], [1.0, 99.0])
            self._edges[axis] = np.linspace(a, b, self.n_impact_bins + 1)[1:-1]
        comps = self._components(conditions, pdg)

        # Sums of the finest level, chunk by chunk (one-hot sparse matrix times images).
        finest = self._codes(comps, self.LEVELS[0])
        fine_codes, first, fine_of_row = np.unique(finest, return_index=True,
                                                   return_inverse=True)
        fine_of_row = fine_of_row.reshape(-1)
        sums = np.zeros((fine_codes.size, k), dtype=np.float64)
        for start in range(0, n, _CHUNK_ROWS):
            chunk = _int32_chunk(showers[start:start + _CHUNK_ROWS], start).reshape(-1, k)
            rows = fine_of_row[start:start + len(chunk)]
            onehot = scipy.sparse.csr_matrix(
                (np.ones(len(chunk)), (rows, np.arange(len(chunk)))),
                shape=(fine_codes.size, len(chunk)))
            sums += onehot @ chunk.astype(np.float64)
        counts = np.bincount(fine_of_row, minlength=fine_codes.size).astype(np.int64)

        # Coarser levels aggregate the finest bins (each is a function of the finest bin).
        fine_comps = {name: c[first] for name, c in comps.items()}
        self.levels = []
        for level in self.LEVELS:
            codes, of_fine = np.unique(self._codes(fine_comps, level), return_inverse=True)
            agg = scipy.sparse.csr_matrix(
                (np.ones(fine_codes.size), (of_fine.reshape(-1), np.arange(fine_codes.size))),
                shape=(codes.size, fine_codes.size))
            level_counts = np.asarray(agg @ counts, dtype=np.int64)
            level_sums = agg @ sums
            means = (level_sums / level_counts[:, None]).astype(np.float32)
            self.levels.append(_Level(level, codes.astype(np.int64), level_counts, means))

    def resolve(self, conditions: ArrayLike, pdg: ArrayLike
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """For each request, the level index in :attr:`LEVELS` and the bin index used."""
        if not self.levels:
            raise NotFittedError("BinnedMeanPoissonBaseline.resolve called before fit")
        cond = _check_conditions(conditions)
        codes = _check_pdg(pdg, cond.shape[0])
        comps = self._components(cond, codes)
        level_of = np.full(len(codes), -1, dtype=np.int64)
        bin_of = np.zeros(len(codes), dtype=np.int64)
        for li, level in enumerate(self.levels):
            todo = np.flatnonzero(level_of < 0)
            if todo.size == 0:
                break
            req = self._codes({k: v[todo] for k, v in comps.items()}, level.components)
            pos = np.searchsorted(level.codes, req).clip(0, level.codes.size - 1)
            ok = (level.codes[pos] == req) & (level.counts[pos] >= self.min_count)
            if li == len(self.levels) - 1:
                ok[:] = True  # everything: always available
            level_of[todo[ok]] = li
            bin_of[todo[ok]] = pos[ok]
        return level_of, bin_of

    def mean_images(self, conditions: ArrayLike, pdg: ArrayLike) -> NDArray[np.float32]:
        """The Poisson means ``(M, H, W)`` the requests would be sampled around."""
        level_of, bin_of = self.resolve(conditions, pdg)
        flat = self._lambda(level_of, bin_of, 0, len(level_of))
        assert self.image_shape is not None
        return flat.reshape(-1, *self.image_shape)

    def _lambda(self, level_of: NDArray[np.int64], bin_of: NDArray[np.int64],
                lo: int, hi: int) -> NDArray[np.float32]:
        k = self.levels[0].means.shape[1]
        lam = np.empty((hi - lo, k), dtype=np.float32)
        for li in np.unique(level_of[lo:hi]):
            sel = np.flatnonzero(level_of[lo:hi] == li)
            lam[sel] = self.levels[int(li)].means[bin_of[lo + sel]]
        return lam

    def _sample(self, conditions: NDArray[np.float64], pdg: NDArray[np.int64],
                rng: np.random.Generator) -> NDArray[np.int32]:
        assert self.image_shape is not None
        level_of, bin_of = self.resolve(conditions, pdg)
        m = len(level_of)
        out = np.empty((m, self.image_shape[0] * self.image_shape[1]), dtype=np.int32)
        starts = list(range(0, m, _CHUNK_ROWS))
        seeds = rng.integers(0, 2**63 - 1, size=len(starts))

        def block(i: int) -> None:
            lo = starts[i]
            hi = min(lo + _CHUNK_ROWS, m)
            child = np.random.default_rng(int(seeds[i]))
            lam = self._lambda(level_of, bin_of, lo, hi).reshape(-1)
            lit = np.flatnonzero(lam)  # bin means are mostly zeros: draw only where lam > 0
            block_out = out[lo:hi].reshape(-1)
            block_out[:] = 0
            block_out[lit] = child.poisson(lam[lit])

        threads = self.n_threads or min(_available_cores(), 8)
        if threads <= 1 or len(starts) == 1:
            for i in range(len(starts)):
                block(i)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(block, range(len(starts))))  # numpy releases the GIL
        return out.reshape(m, *self.image_shape)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------
# Registry and diversity
# --------------------------------------------------------------------------------------------

BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (ShuffledBaseline, NearestConditionBaseline,
                              BinnedMeanPoissonBaseline)
}
"""Baselines by name: ``"shuffled"``, ``"nearest"``, ``"binned-mean"``."""


def make_baseline(name: str, **kwargs: object) -> Baseline:
    """A new, unfitted baseline by registry name; ``kwargs`` go to its constructor."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}"
                         ) from None
    return cls(**kwargs)
