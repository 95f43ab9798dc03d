"""The CaloClouds II evaluation of point-cloud showers (Buhmann et al., arXiv:2309.05704,
Sec. 4.1-4.3 and App. A), on the cells the clouds are projected onto.

Every observable is computed after projecting each cloud onto the volume's cell grid
(:meth:`calogen.geometry.points.PointCloudVolume.project`) and removing the cells below
:data:`HALF_MIP_MEV`:

* ``N_hits``: cells above the threshold; ``E_vis`` (MeV): their energy sum; ``E_vis/E_inc``
  (MeV / MeV) with the incident energy;
* ``m1_x``, ``m1_y``, ``m1_z`` (mm): energy-weighted centre of gravity of the cells, x and y at
  the cell centres, z at the layer middles (0 for a shower without hits);
* ``E_radial_i`` (MeV, i = 1..10): energy in rings around the shower axis with the edges of
  :data:`RADIAL_EDGES_MM` (cell-centre radius; half-open bins, the last closed, beyond it
  ignored). The paper measures the radius from the central axis of the detector; calogen's
  guns hit x = y = 0, the default ``axis_mm``;
* ``E_long_i`` (MeV): energy in the layer ranges of :data:`LONGITUDINAL_EDGES_LAYER` (layers
  counted from 1; half-open, the last closed; layers beyond 30 ignored);
* the cell-energy spectrum (every hit cell; a uniform subsample above ``max_cells``), the
  energy per layer (longitudinal profile) and per radial ring of :attr:`profile_edges_mm`
  (radial profile).

W1 scores (:func:`w1_scores`, Table 1): each observable is standardised with the reference's
mean and std; 10 batches of equal size (disjoint, random), W1 per batch, mean +- std over the
batches; E_long and E_radial average the ten bins' W1 within each batch; E_cell draws 50 000
cell hits per batch. The high-level classifier (Sec. 4.3) reads :func:`classifier_input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calogen.geometry.points import PointCloudVolume, ragged_points

FloatArray = NDArray[np.float64]

HALF_MIP_MEV = 0.1
"""Cell threshold (MeV): half the most probable MIP deposit (~0.2 MeV) in the ILD ECAL silicon
(CaloClouds II, Sec. 4.1), applied before every cell-level observable."""

RADIAL_EDGES_MM = (0.0, 6.6, 9.8, 13.0, 17.0, 23.4, 33.6, 40.1, 48.5, 68.8, 300.0)
"""Ring edges (mm) of the ten radial energies (CaloClouds II, Table 4)."""

LONGITUDINAL_EDGES_LAYER = (1, 9, 12, 14, 16, 17, 19, 20, 22, 25, 30)
"""Layer edges (counted from 1) of the ten longitudinal energies (CaloClouds II, Table 4)."""

E_CELL_HITS = 50_000
"""Cell hits per batch of the E_cell W1 score (CaloClouds II, Sec. 4.2)."""

W1_BATCHES = 10
"""Batches of the W1 scores (CaloClouds II, Table 1)."""

SCORES = ("N_hits", "E_vis/E_inc", "E_cell", "E_long", "E_radial", "m1_x", "m1_y", "m1_z")
"""The W1 scores of Table 1, in its column order."""

CLASSIFIER_FEATURES = (*(f"E_radial_{i}" for i in range(1, 11)),
                       *(f"E_long_{i}" for i in range(1, 11)),
                       "m1_x", "m1_y", "m1_z", "N_hits", "E_vis")
"""The 25 inputs of the high-level classifier (CaloClouds II, Sec. 4.3)."""

MAX_CELLS_PER_CHUNK = 1 << 22
"""Cells projected at once (32 MB of float64)."""

PROFILE_BINS = 30
"""Rings of the radial profile (equal width from 0 to the farthest cell centre)."""


def cell_centres(volume: PointCloudVolume) -> tuple[FloatArray, FloatArray, FloatArray]:
    """x (n_x,) and y (n_y,) cell centres and z layer middles (n_layers,), mm."""
    xe, ye = volume.cell_edges(0), volume.cell_edges(1)
    z = np.asarray(volume.layer_edges_mm, dtype=np.float64)
    return (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2, (z[:-1] + z[1:]) / 2


def _bin_index(values: FloatArray, edges: ArrayLike) -> NDArray[np.int64]:
    """Bin of each value for half-open bins, the last one closed; -1 outside."""
    e = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(e, values, side="right") - 1
    idx[values == e[-1]] = len(e) - 2
    return np.where((values >= e[0]) & (values <= e[-1]), idx, -1).astype(np.int64)


def _one_hot(index: NDArray[np.int64], n: int) -> FloatArray:
    out = np.zeros((len(index), n))
    inside = index >= 0
    out[np.flatnonzero(inside), index[inside]] = 1.0
    return out


@dataclass
class CloudObservables:
    """Cell-level observables of ``N`` clouds (see the module docstring; energies MeV,
    positions mm, ``e_inc`` in GeV). ``cell_energy`` holds hit-cell energies of the showers
    ``cell_row`` (all hits, or a uniform subsample of them)."""

    e_inc: FloatArray
    n_hits: FloatArray
    e_vis: FloatArray
    m1: FloatArray
    e_radial: FloatArray
    e_long: FloatArray
    layer_energy: FloatArray
    radial_profile: FloatArray
    cell_energy: FloatArray
    cell_row: NDArray[np.int64]
    profile_edges_mm: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.n_hits.shape[0])

    @property
    def e_ratio(self) -> FloatArray:
        """E_vis / E_inc (MeV / MeV; 0 where E_inc is not positive)."""
        e = self.e_inc * 1e3
        return np.divide(self.e_vis, e, out=np.zeros_like(self.e_vis), where=e > 0)

    def columns(self) -> dict[str, FloatArray]:
        """Per-shower observables by name (the scores' inputs except E_cell)."""
        out = {"N_hits": self.n_hits, "E_vis": self.e_vis, "E_vis/E_inc": self.e_ratio,
               "m1_x": self.m1[:, 0], "m1_y": self.m1[:, 1], "m1_z": self.m1[:, 2]}
        out.update({f"E_radial_{i + 1}": self.e_radial[:, i] for i in range(10)})
        out.update({f"E_long_{i + 1}": self.e_long[:, i] for i in range(10)})
        return out

    def take(self, rows: ArrayLike) -> CloudObservables:
        """The observables of a subset of showers (boolean mask or indices)."""
        r = np.asarray(rows)
        idx = np.flatnonzero(r) if r.dtype == bool else r.astype(np.int64)
        new = np.full(len(self), -1, dtype=np.int64)
        new[idx] = np.arange(len(idx))
        keep = new[self.cell_row] >= 0
        return CloudObservables(
            self.e_inc[idx], self.n_hits[idx], self.e_vis[idx], self.m1[idx],
            self.e_radial[idx], self.e_long[idx], self.layer_energy[idx],
            self.radial_profile[idx], self.cell_energy[keep], new[self.cell_row[keep]],
            self.profile_edges_mm)

    @staticmethod
    def concat(parts: Sequence[CloudObservables]) -> CloudObservables:
        """Showers of ``parts`` one after the other."""
        if not parts:
            raise ValueError("no cloud observables to concatenate")
        offsets = np.cumsum([0, *(len(p) for p in parts[:-1])])
        cat = np.concatenate
        return CloudObservables(
            cat([p.e_inc for p in parts]), cat([p.n_hits for p in parts]),
            cat([p.e_vis for p in parts]), cat([p.m1 for p in parts]),
            cat([p.e_radial for p in parts]), cat([p.e_long for p in parts]),
            cat([p.layer_energy for p in parts]), cat([p.radial_profile for p in parts]),
            cat([p.cell_energy for p in parts]),
            cat([p.cell_row + o for p, o in zip(parts, offsets, strict=True)]),
            parts[0].profile_edges_mm)


def profile_edges(volume: PointCloudVolume, axis_mm: tuple[float, float] = (0.0, 0.0)
                  ) -> FloatArray:
    """Ring edges (mm) of the radial profile: :data:`PROFILE_BINS` equal rings out to the
    farthest cell centre from the axis."""
    xc, yc, _ = cell_centres(volume)
    r_max = float(np.hypot(np.abs(xc - axis_mm[0]).max(), np.abs(yc - axis_mm[1]).max()))
    return np.linspace(0.0, r_max * (1 + 1e-9) + 1e-9, PROFILE_BINS + 1)


def cloud_observables(points: ArrayLike, counts: ArrayLike, e_inc_gev: ArrayLike,
                      volume: PointCloudVolume, *, threshold_mev: float = HALF_MIP_MEV,
                      axis_mm: tuple[float, float] = (0.0, 0.0),
                      cell_keep: float = 1.0, rng: np.random.Generator | None = None
                      ) -> CloudObservables:
    """Cell-level observables of ragged clouds (module docstring).

    Args:
        points: ``(P, 4)`` points ``(x, y, z, E)`` in mm and MeV, shower after shower.
        counts: ``(N,)`` points per shower.
        e_inc_gev: ``(N,)`` incident energies, GeV.
        volume: the volume and cell grid the clouds are projected onto.
        threshold_mev: cells below this energy are removed first (the paper: half a MIP).
        axis_mm: (x, y) of the shower axis the radii are measured from.
        cell_keep: fraction of hit cells kept in ``cell_energy`` (uniform, seeded by ``rng``).
    """
    p, n = ragged_points(points, counts)
    e_inc = np.asarray(e_inc_gev, dtype=np.float64).reshape(-1)
    if e_inc.shape[0] != len(n):
        raise ValueError(f"incident energies: expected {len(n)} values, found {e_inc.shape[0]}")
    if not (np.isfinite(threshold_mev) and threshold_mev >= 0):
        raise ValueError(f"threshold_mev: expected a finite value >= 0, found {threshold_mev}")
    xc, yc, zc = cell_centres(volume)
    n_layers, ny, nx = volume.grid_shape
    radius = np.hypot(*np.meshgrid(xc - axis_mm[0], yc - axis_mm[1], indexing="xy")).ravel()
    ring = _one_hot(_bin_index(radius, RADIAL_EDGES_MM), 10)
    edges_p = profile_edges(volume, axis_mm)
    ring_p = _one_hot(_bin_index(radius, edges_p), PROFILE_BINS)
    long_ = _one_hot(_bin_index(np.arange(1, n_layers + 1, dtype=np.float64),
                                LONGITUDINAL_EDGES_LAYER), 10)
    per_chunk = max(1, MAX_CELLS_PER_CHUNK // max(n_layers * ny * nx, 1))
    bounds = np.concatenate([[0], np.cumsum(n)])
    parts: dict[str, list[FloatArray]] = {k: [] for k in (
        "n_hits", "e_vis", "m1", "e_radial", "e_long", "layer", "profile", "cells")}
    rows: list[NDArray[np.int64]] = []
    for a in range(0, len(n), per_chunk):
        b = min(a + per_chunk, len(n))
        cells = volume.project(p[bounds[a]:bounds[b]], n[a:b], threshold_mev=threshold_mev)
        layer = cells.sum(axis=(2, 3))                      # (n, L)
        plane = cells.sum(axis=1).reshape(b - a, -1)         # (n, ny * nx)
        e_vis = layer.sum(axis=1)
        safe = np.where(e_vis > 0, e_vis, 1.0)
        m1 = np.stack([cells.sum(axis=(1, 2)) @ xc, cells.sum(axis=(1, 3)) @ yc, layer @ zc],
                      axis=1) / safe[:, None]
        parts["n_hits"].append(np.count_nonzero(cells.reshape(b - a, -1) > 0, axis=1)
                               .astype(np.float64))
        parts["e_vis"].append(e_vis)
        parts["m1"].append(m1)
        parts["e_radial"].append(plane @ ring)
        parts["e_long"].append(layer @ long_)
        parts["layer"].append(layer)
        parts["profile"].append(plane @ ring_p)
        flat = cells.reshape(b - a, -1)
        r_idx, c_idx = np.nonzero(flat > 0)
        if cell_keep < 1.0:
            gen = rng if rng is not None else np.random.default_rng(0)
            keep = gen.random(len(r_idx)) < cell_keep
            r_idx, c_idx = r_idx[keep], c_idx[keep]
        parts["cells"].append(flat[r_idx, c_idx])
        rows.append(r_idx.astype(np.int64) + a)

    def cat(key: str, width: int) -> FloatArray:
        if parts[key]:
            return np.concatenate(parts[key])
        return np.zeros((0, width)) if width else np.zeros(0)

    return CloudObservables(
        e_inc=e_inc, n_hits=cat("n_hits", 0), e_vis=cat("e_vis", 0), m1=cat("m1", 3),
        e_radial=cat("e_radial", 10), e_long=cat("e_long", 10),
        layer_energy=cat("layer", n_layers),
        radial_profile=cat("profile", PROFILE_BINS), cell_energy=cat("cells", 0),
        cell_row=np.concatenate(rows) if rows else np.zeros(0, np.int64),
        profile_edges_mm=edges_p)


class CloudAccumulator:
    """:func:`cloud_observables` batch by batch, keeping at most about ``max_cells`` hit-cell
    energies: a uniform subsample (every hit kept with the same probability, halved whenever
    the store reaches twice the limit)."""

    def __init__(self, volume: PointCloudVolume, *, threshold_mev: float = HALF_MIP_MEV,
                 axis_mm: tuple[float, float] = (0.0, 0.0), max_cells: int = 2_000_000,
                 seed: int = 0) -> None:
        self.volume, self.threshold, self.axis = volume, threshold_mev, axis_mm
        self.max_cells = max(1, int(max_cells))
        self.keep = 1.0
        self.rng = np.random.default_rng(seed)
        self.parts: list[CloudObservables] = []
        self.n_cells = 0

    def update(self, points: ArrayLike, counts: ArrayLike, e_inc_gev: ArrayLike) -> None:
        obs = cloud_observables(points, counts, e_inc_gev, self.volume,
                                threshold_mev=self.threshold, axis_mm=self.axis,
                                cell_keep=self.keep, rng=self.rng)
        self.parts.append(obs)
        self.n_cells += len(obs.cell_energy)
        while self.n_cells > 2 * self.max_cells:
            self.keep /= 2
            self.n_cells = 0
            for i, part in enumerate(self.parts):
                keep = self.rng.random(len(part.cell_energy)) < 0.5
                part.cell_energy, part.cell_row = part.cell_energy[keep], part.cell_row[keep]
                self.parts[i] = part
                self.n_cells += int(keep.sum())

    def result(self) -> CloudObservables:
        return CloudObservables.concat(self.parts)


# --------------------------------------------------------------------------------------------
# Scores


@dataclass(frozen=True)
class W1Score:
    """A W1 score of standardised observables: mean and std (ddof 0) over the batches."""

    mean: float
    std: float
    per_batch: tuple[float, ...]

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"mean": self.mean, "std": self.std, "per_batch": list(self.per_batch)}


def _standardise(ref: FloatArray, gen: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (ref - mean) / std, (gen - mean) / std


def batch_w1(ref: ArrayLike, gen: ArrayLike, n_batches: int = W1_BATCHES, *,
             rng: np.random.Generator) -> FloatArray:
    """W1 per batch and column ``(n_batches, k)`` of ``(N, k)`` standardised (by the
    reference) observables: both sets permuted and cut into ``n_batches`` disjoint batches of
    ``min(N, M) // n_batches`` rows."""
    r, g = np.asarray(ref, np.float64), np.asarray(gen, np.float64)
    r, g = (r[:, None] if r.ndim == 1 else r), (g[:, None] if g.ndim == 1 else g)
    size = min(len(r), len(g)) // n_batches
    if size < 1:
        raise ValueError(f"W1 scores: {n_batches} batches need at least {n_batches} showers per "
                         f"side, found {len(r)} reference and {len(g)} generated")
    rs, gs = _standardise(r, g)
    ri = rng.permutation(len(r))[: size * n_batches]
    gi = rng.permutation(len(g))[: size * n_batches]
    k = r.shape[1]
    rb = np.sort(rs[ri].reshape(n_batches, size, k), axis=1)
    gb = np.sort(gs[gi].reshape(n_batches, size, k), axis=1)
    return np.abs(rb - gb).mean(axis=1)


def _score(per_batch: FloatArray) -> W1Score:
    return W1Score(float(per_batch.mean()), float(per_batch.std()),
                   tuple(float(v) for v in per_batch))


def w1_scores(ref: CloudObservables, gen: CloudObservables, *, n_batches: int = W1_BATCHES,
              cell_hits: int = E_CELL_HITS, seed: int = 0) -> dict[str, W1Score]:
    """The W1 scores of Table 1 (names :data:`SCORES`), plus one per radial and longitudinal
    bin (``E_radial_i``, ``E_long_i``). E_cell: ``n_batches`` independent draws (without
    replacement within a draw) of ``min(cell_hits, hits of either side)`` hit cells per side."""
    rng = np.random.default_rng(seed)
    rc, gc = ref.columns(), gen.columns()
    names = ["N_hits", "E_vis/E_inc", "m1_x", "m1_y", "m1_z"]
    w = batch_w1(np.stack([rc[k] for k in names], 1), np.stack([gc[k] for k in names], 1),
                 n_batches, rng=rng)
    out = {k: _score(w[:, j]) for j, k in enumerate(names)}
    for group, r, g in (("E_radial", ref.e_radial, gen.e_radial),
                        ("E_long", ref.e_long, gen.e_long)):
        wb = batch_w1(r, g, n_batches, rng=rng)
        out[group] = _score(wb.mean(axis=1))
        out.update({f"{group}_{i + 1}": _score(wb[:, i]) for i in range(wb.shape[1])})
    out["E_cell"] = cell_w1(ref.cell_energy, gen.cell_energy, n_batches=n_batches,
                            cell_hits=cell_hits, rng=rng)
    return {k: out[k] for k in (*SCORES, *(k for k in out if k not in SCORES))}


def cell_w1(ref_cells: ArrayLike, gen_cells: ArrayLike, *, n_batches: int = W1_BATCHES,
            cell_hits: int = E_CELL_HITS, rng: np.random.Generator) -> W1Score:
    """W1 of standardised hit-cell energies: ``n_batches`` draws of
    ``min(cell_hits, len(ref), len(gen))`` cells per side (NaN without hits)."""
    r, g = np.asarray(ref_cells, np.float64), np.asarray(gen_cells, np.float64)
    size = min(cell_hits, len(r), len(g))
    if size < 1:
        return W1Score(float("nan"), float("nan"), ())
    rs, gs = _standardise(r, g)
    vals = [float(np.abs(np.sort(rng.choice(rs, size, replace=False))
                         - np.sort(rng.choice(gs, size, replace=False))).mean())
            for _ in range(n_batches)]
    return _score(np.asarray(vals))


def classifier_input(obs: CloudObservables) -> NDArray[np.float32]:
    """``(N, 25)`` inputs of the high-level classifier, in :data:`CLASSIFIER_FEATURES` order."""
    cols = obs.columns()
    return np.stack([cols[k] for k in CLASSIFIER_FEATURES], axis=1).astype(np.float32)
