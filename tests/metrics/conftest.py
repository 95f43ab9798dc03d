"""Toy voxel and point-cloud showers, and an in-memory stand-in for a ShowerSet v2 (the data
layer's contract: ``showers`` (n, n_voxels) or all points (P, 4) plus ``counts`` (n,))."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calogen.geometry import LayeredVoxelGeometry, PointCloudVolume, VoxelLayer

TOY_VOXELS = LayeredVoxelGeometry("toy-voxels", (
    VoxelLayer(0, (0.0, 5.0, 10.0, 20.0), 4),
    VoxelLayer(1, (0.0, 10.0, 30.0), 2),
    VoxelLayer(2, (0.0, 40.0), 1),
))
TOY_VOLUME = PointCloudVolume("toy-volume", (-50.0, 50.0), (-50.0, 50.0),
                              (0.0, 10.0, 20.0, 30.0, 40.0), cell_size_mm=(10.0, 10.0))


def toy_conditions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Incident energies (GeV, one column E_inc), photons (pdg 22) and group ids (pairs)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n // 2), 2)[:n]
    e = rng.uniform(1.0, 10.0, n // 2 + 1)[groups]
    return e[:, None].astype(np.float32), np.full(n, 22, np.int32), groups.astype(np.int64)


def toy_voxels(e_inc_gev: np.ndarray, seed: int, scale: float = 1.0,
               depth: float = 0.0) -> np.ndarray:
    """Voxel energies (MeV): ~70% of E_inc deposited, layer shares shifted deeper by ``depth``,
    voxel energies gamma-distributed with many zeros."""
    rng = np.random.default_rng(seed)
    n = len(e_inc_gev)
    share = rng.dirichlet([4.0 - depth * 3, 3.0, 1.0 + depth * 3], n)
    out = np.zeros((n, TOY_VOXELS.n_voxels), np.float32)
    for k, s in enumerate(TOY_VOXELS.layer_slices()):
        w = rng.gamma(0.7, 1.0, (n, s.stop - s.start)) * (rng.random((n, s.stop - s.start)) > 0.3)
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        out[:, s] = (700.0 * scale * e_inc_gev[:, 0:1] * share[:, k:k + 1] * w).astype(np.float32)
    return out


def toy_points(e_inc_gev: np.ndarray, seed: int, spread_mm: float = 8.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y, z, E) in mm and MeV, Poisson(3 E_inc / GeV) of them per shower (empty
    showers occur), and the counts."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3.0 * e_inc_gev[:, 0]).astype(np.int64)
    p = int(counts.sum())
    pts = np.column_stack([rng.normal(0.0, spread_mm, p), rng.normal(0.0, spread_mm, p),
                           rng.exponential(12.0, p), rng.exponential(2.0, p)])
    return pts.astype(np.float32), counts


@dataclass(frozen=True)
class MemBatch:
    showers: np.ndarray
    conditions: np.ndarray
    pdg: np.ndarray
    condition_id: np.ndarray
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.pdg.shape[0])


@dataclass(frozen=True)
class MemMeta:
    detector: str
    geometry: dict[str, Any]
    kind: str
    condition_columns: tuple[str, ...] = ("E_inc",)
    condition_units: tuple[str, ...] = ("GeV",)
    producer: dict[str, Any] = field(default_factory=dict)


class MemShowerSet:
    """The reading side of a ShowerSet v2, in memory (same methods, same batch contents)."""

    def __init__(self, name: str, geometry: LayeredVoxelGeometry | PointCloudVolume,
                 showers: np.ndarray, conditions: np.ndarray, pdg: np.ndarray,
                 condition_id: np.ndarray, counts: np.ndarray | None = None) -> None:
        self.path = Path(f"/memory/{name}.h5")
        self.meta = MemMeta(geometry.name, geometry.to_dict(), geometry.kind,
                            producer={"name": name})
        self.shower_shape = geometry.shower_shape
        self._showers, self._cond, self._pdg, self._cid = showers, conditions, pdg, condition_id
        self._counts = counts
        self._offsets = None if counts is None else np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return len(self._pdg)

    def take(self, indices: Any) -> MemBatch:
        idx = np.asarray(indices, dtype=np.int64)
        if self._counts is None:
            showers, counts = self._showers[idx], None
        else:
            o = self._offsets
            parts = [self._showers[o[i]:o[i + 1]] for i in idx]
            showers = np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)
            counts = self._counts[idx]
        return MemBatch(showers, self._cond[idx], self._pdg[idx], self._cid[idx], counts)

    def iter_batches(self, batch_size: int = 4096, indices: Any = None):
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        for start in range(0, len(idx), batch_size):
            yield self.take(idx[start:start + batch_size])

    def conditions(self) -> np.ndarray:
        return self._cond

    def pdg(self) -> np.ndarray:
        return self._pdg

    def condition_ids(self) -> np.ndarray:
        return self._cid


@pytest.fixture(scope="session")
def toy_voxel_sets():
    """Reference, a perfect model (another draw), a shifted model and a deeper-shower model."""
    cond, pdg, cid = toy_conditions(1200, 2024)  # not 0: the evaluation seed
    make = lambda name, x: MemShowerSet(name, TOY_VOXELS, x, cond, pdg, cid)  # noqa: E731
    return {"ref": make("ref", toy_voxels(cond, 1)),
            "perfect": make("perfect", toy_voxels(cond, 2)),
            "scaled": make("scaled", toy_voxels(cond, 3, scale=1.15)),
            "deeper": make("deeper", toy_voxels(cond, 4, depth=0.8))}


@pytest.fixture(scope="session")
def toy_point_sets():
    """Reference, a perfect model (another draw) and a model with too wide showers."""
    cond, pdg, cid = toy_conditions(1200, 2024)  # not 0: the evaluation seed

    def make(name, seed, spread=8.0):
        pts, counts = toy_points(cond, seed, spread)
        return MemShowerSet(name, TOY_VOLUME, pts, cond, pdg, cid, counts)

    return {"ref": make("ref", 1), "perfect": make("perfect", 2),
            "wide": make("wide", 3, spread=11.0)}
