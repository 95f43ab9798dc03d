"""Toy voxel and point-cloud ShowerSets (tiny, written once per session) and a cheap
evaluation configuration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calogen.data.showerset import write_showerset
from calogen.geometry import LayeredVoxelGeometry, PointCloudVolume, VoxelLayer
from calogen.metrics.classifier import CALOCLOUDS_II, CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig
from calogen.particles import gun_conditions

TOY_VOXELS = LayeredVoxelGeometry("toy-voxels", (
    VoxelLayer(0, (0.0, 5.0, 10.0, 20.0), 4),
    VoxelLayer(1, (0.0, 10.0, 30.0), 2),
    VoxelLayer(2, (0.0, 40.0), 1),
))
N_TOY = 1000
"""Showers per toy file (pairs of repeated conditions)."""

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


def _write(path: Path, geometry: LayeredVoxelGeometry | PointCloudVolume, showers: np.ndarray,
           cond: np.ndarray, pdg: np.ndarray, cid: np.ndarray,
           counts: np.ndarray | None = None) -> Path:
    columns, units = gun_conditions("E_inc")
    return write_showerset(path, showers, cond, pdg, condition_id=cid, counts=counts,
                           detector=geometry.name, geometry=geometry,
                           producer={"name": path.stem}, condition_columns=columns,
                           condition_units=units, shower_units="MeV")


@pytest.fixture(scope="session")
def fast_config() -> EvaluationConfig:
    """A cheap evaluation (small nulls and classifier; slices only above 10 000 events)."""
    return EvaluationConfig(
        progress=False, n_null=15, n_null_fpd_kpd=3, fpd_points=4, fpd_bootstrap=4,
        kpd_batches=4, prdc_max_samples=600, low_level_max_per_class=1200,
        slice_min_events=10_000, batch_size=500,
        classifier=replace(CALOGEN_DEFAULT, hidden=(32,), max_epochs=8, n_seeds=2,
                           batch_size=128, max_samples_per_class=1200),
        caloclouds_classifier=replace(CALOCLOUDS_II, n_seeds=2))


@pytest.fixture(scope="session")
def toy_voxel_files(tmp_path_factory) -> dict[str, Path]:
    """Voxel ShowerSets: the reference, a perfect model (another draw of the same toy), one
    depositing 15% too much energy and one with deeper showers."""
    d = tmp_path_factory.mktemp("voxels", numbered=False)
    cond, pdg, cid = toy_conditions(N_TOY, 2024)  # not seed 0: the evaluation's seed
    models = {"ref": toy_voxels(cond, 1), "perfect": toy_voxels(cond, 2),
              "scaled": toy_voxels(cond, 3, scale=1.15),
              "deeper": toy_voxels(cond, 4, depth=0.8)}
    return {name: _write(d / f"{name}.h5", TOY_VOXELS, x, cond, pdg, cid)
            for name, x in models.items()}


@pytest.fixture(scope="session")
def toy_point_files(tmp_path_factory) -> dict[str, Path]:
    """Point-cloud ShowerSets: the reference, a perfect model and one with too wide showers."""
    d = tmp_path_factory.mktemp("points", numbered=False)
    cond, pdg, cid = toy_conditions(N_TOY, 2024)
    out = {}
    for name, seed, spread in (("ref", 1, 8.0), ("perfect", 2, 8.0), ("wide", 3, 11.0)):
        pts, counts = toy_points(cond, seed, spread)
        out[name] = _write(d / f"{name}.h5", TOY_VOLUME, pts, cond, pdg, cid, counts)
    return out
