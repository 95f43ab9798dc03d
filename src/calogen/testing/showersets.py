"""Tiny voxel and point-cloud ShowerSets with known content, for tests and fuzz seeds.

A toy calorimeter gun (photons, column ``E_inc`` in GeV) fires into a 3-layer voxel binning
(36 voxels) or a 3-layer point-cloud volume; energies are in MeV. Point clouds include empty
and 1-point showers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calogen.geometry import PointCloudVolume, uniform_layers
from calogen.particles import gun_conditions

TOY_VOXELS = uniform_layers("toy-voxels", 3, [0.0, 5.0, 10.0, 20.0], 4)
"""3 identical layers of 3 radial x 4 angular bins: 36 voxels."""

TOY_VOLUME = PointCloudVolume("toy-volume", (-50.0, 50.0), (-50.0, 50.0),
                              (0.0, 10.0, 20.0, 30.0))
"""A 100 x 100 mm box of 3 layers, 10 mm each."""


def toy_gun(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1)`` float32 incident energies in GeV (1..100) and ``(n,)`` PDG codes (photons)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(1.0, 100.0, size=(n, 1)).astype(np.float32),
            np.full(n, 22, dtype=np.int32))


def toy_voxels(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 36)`` float32 voxel energies (MeV), about half of them zero."""
    rng = np.random.default_rng(seed)
    x = rng.exponential(2.0, size=(n, TOY_VOXELS.n_voxels)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0.0
    return x


def toy_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ragged clouds: ``(P, 4)`` float32 points ``(x, y, z, E)`` (mm, MeV) inside
    :data:`TOY_VOLUME` and ``(n,)`` counts (0..8 per shower; the first is empty, the second
    holds one point)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, size=n)
    counts[:2] = (0, 1)[:n]
    p = int(counts.sum())
    points = np.column_stack([rng.uniform(-50, 50, size=(p, 2)), rng.uniform(0, 30, size=p),
                              rng.exponential(1.0, size=p)]).astype(np.float32)
    return points, counts


def _gun_file_args(geometry: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """``write_showerset`` arguments of a toy file of a calorimeter gun (``E_inc``)."""
    columns, units = gun_conditions("E_inc")
    return {"detector": "toy", "geometry": geometry, "producer": {"name": "calogen.testing"},
            "condition_columns": columns, "condition_units": units, **overrides}


def write_toy_voxels(path: str | os.PathLike[str], n: int = 20, seed: int = 0,
                     **kwargs: Any) -> Path:
    """Write :func:`toy_voxels` as a ShowerSet (``kwargs`` go to ``write_showerset``)."""
    from calogen.data import write_showerset

    cond, pdg = toy_gun(n, seed)
    return write_showerset(path, toy_voxels(n, seed), cond, pdg,
                           **_gun_file_args(TOY_VOXELS, kwargs))


def write_toy_points(path: str | os.PathLike[str], n: int = 20, seed: int = 0,
                     **kwargs: Any) -> Path:
    """Write :func:`toy_points` as a ShowerSet (``kwargs`` go to ``write_showerset``)."""
    from calogen.data import write_showerset

    cond, pdg = toy_gun(n, seed)
    points, counts = toy_points(n, seed)
    return write_showerset(path, points, cond, pdg, counts=counts,
                           **_gun_file_args(TOY_VOLUME, kwargs))
