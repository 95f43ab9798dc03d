"""Point-cloud volumes by name, and projection of point-cloud ShowerSets onto cells.

:func:`project_file` streams a point-cloud ShowerSet through
:meth:`calogen.geometry.points.PointCloudVolume.project` (on the volume's grid, or on a grid of
another cell size or offset) and writes an HDF5 file of cells:

* ``cells``: ``(N, n_layers, n_y, n_x)`` float32 cell energies in MeV, cells below the threshold
  set to 0 (CaloClouds II, Buhmann et al. 2023, arXiv:2309.05704: half a MIP, 0.1 MeV,
  before any cell-level observable);
* ``energy``: ``(N, 1)`` float32 incident energy in GeV (condition ``E_inc``);
* attributes ``volume`` (JSON of the volume with the grid used), ``cell_size_mm``,
  ``cell_offset_mm``, ``threshold_mev``, ``source``, ``producer``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen import __version__
from calogen.atomic import atomic_path, remove_stale_temporaries
from calogen.data import schema as S
from calogen.data.errors import ShowerSetError
from calogen.data.showerset import ShowerSet
from calogen.data.showerset import e_inc_column as gev_e_inc_column
from calogen.geometry.points import PointCloudVolume, ild_like_ecal

__all__ = ["CELLS", "ENERGY", "HALF_MIP_MEV", "VOLUMES", "Projected", "check_output",
           "e_inc_column", "outside_volume", "project_file", "resolve_volume"]

PathLike = str | os.PathLike[str]

CELLS = "cells"
"""Dataset of the projected cell energies ``(N, n_layers, n_y, n_x)``, MeV."""

ENERGY = "energy"
"""Dataset of the incident energies ``(N, 1)``, GeV."""

HALF_MIP_MEV = 0.1
"""Cell threshold of CaloClouds II (arXiv:2309.05704): half the ~0.2 MeV MIP peak."""

VOLUMES = {"ild": ild_like_ecal}
"""Named point-cloud volumes (``--volume``)."""

BLOCK_SHOWERS = 256
"""Showers projected per block."""


def resolve_volume(volume: str | PathLike | PointCloudVolume | None) -> PointCloudVolume:
    """A volume: ``None`` (the ILD-like ECAL), a name of :data:`VOLUMES`, a JSON file holding a
    :meth:`PointCloudVolume.to_dict`, or the volume itself."""
    if volume is None:
        return ild_like_ecal()
    if isinstance(volume, PointCloudVolume):
        return volume
    name = str(volume)
    if name in VOLUMES:
        return VOLUMES[name]()
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"volume {name!r}: expected one of {sorted(VOLUMES)} or a JSON file "
                         "of a point-cloud volume")
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON volume ({exc})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a JSON object of a point-cloud volume")
    try:
        return PointCloudVolume.from_dict(spec)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def outside_volume(volume: PointCloudVolume, points: NDArray[np.floating]) -> int:
    """Number of points ``(P, >=3)`` (mm) outside the volume's layers or x/y extent."""
    p = np.asarray(points)
    if p.shape[0] == 0:
        return 0
    inside = ((volume.layer_of(p[:, 2]) >= 0)
              & (p[:, 0] >= volume.x_range_mm[0]) & (p[:, 0] < volume.x_range_mm[1])
              & (p[:, 1] >= volume.y_range_mm[0]) & (p[:, 1] < volume.y_range_mm[1]))
    return int((~inside).sum())


def check_output(out: PathLike, overwrite: bool) -> Path:
    """The output path, checked (not a folder, its folder exists, not there unless
    ``overwrite``); stale temporaries of killed runs beside it are removed."""
    p = Path(out)
    if p.is_dir():
        raise ShowerSetError(f"{p}: is a directory, expected a file name", path=p)
    if not p.parent.is_dir():
        raise ShowerSetError(f"{p}: output directory {p.parent} does not exist", path=p)
    if p.exists() and not overwrite:
        raise ShowerSetError(f"{p}: file exists; refusing to overwrite it (pass "
                             "overwrite=True / --overwrite to replace it)", path=p)
    remove_stale_temporaries(p)
    return p


def e_inc_column(ss: ShowerSet) -> int:
    """Index of the ``E_inc`` (GeV) column of a point-cloud ShowerSet, else ShowerSetError."""
    meta = ss.meta
    if meta.kind != "points":
        raise ShowerSetError.bad_field(ss.path, f"attribute {S.ATTR_GEOMETRY}.kind",
                                       "'points' (a point-cloud ShowerSet)", repr(meta.kind))
    return gev_e_inc_column(ss)


@dataclass(frozen=True)
class Projected:
    """What :func:`project_file` wrote: the file, showers, grid ``(n_layers, n_y, n_x)`` and
    the points that fell outside the cells (dropped by the projection)."""

    path: Path
    n_showers: int
    grid_shape: tuple[int, int, int]
    n_outside: int


def project_file(showerset: PathLike, out: PathLike, *,
                 cell_size_mm: tuple[float, float] | None = None,
                 cell_offset_mm: tuple[float, float] | None = None,
                 threshold_mev: float = HALF_MIP_MEV, overwrite: bool = False,
                 block_showers: int = BLOCK_SHOWERS, progress: bool = False) -> Projected:
    """Project a point-cloud ShowerSet onto cells and write ``cells`` + ``energy`` (see the
    module docstring), streaming blocks of ``block_showers``; written atomically.

    Args:
        showerset: point-cloud ShowerSet (mm, MeV; condition ``E_inc`` in GeV).
        out: HDF5 file to write.
        cell_size_mm, cell_offset_mm: the cell grid in (x, y); ``None`` keeps the volume's.
        threshold_mev: cells below this energy are 0 (default half a MIP, 0.1 MeV).
    """
    if not np.isfinite(threshold_mev) or threshold_mev < 0:
        raise ValueError(f"threshold_mev must be finite and >= 0, got {threshold_mev}")
    if block_showers < 1:
        raise ValueError(f"block_showers must be positive, got {block_showers}")
    target = check_output(out, overwrite)
    with ShowerSet(showerset) as ss:
        col = e_inc_column(ss)
        base = ss.meta.geometry_object()
        if not isinstance(base, PointCloudVolume):
            raise ShowerSetError.bad_field(ss.path, S.ATTR_GEOMETRY, "a point-cloud volume",
                                           type(base).__name__)
        try:
            volume = base.with_cells(
                None if cell_size_mm is None else (float(cell_size_mm[0]),
                                                   float(cell_size_mm[1])),
                None if cell_offset_mm is None else (float(cell_offset_mm[0]),
                                                     float(cell_offset_mm[1])))
        except ValueError as exc:
            raise ValueError(f"cell grid: {exc}") from None
        grid = volume.grid_shape
        n = len(ss)
        cell_bytes = int(np.prod(grid)) * 4
        chunk = max(1, min(n, (2 << 20) // max(1, cell_bytes)))
        outside = 0
        with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
            cells_ds = f.create_dataset(CELLS, shape=(n, *grid), dtype=np.float32,
                                        chunks=(chunk, *grid) if n else None,
                                        **(S.COMPRESSION if n else {}))
            energy_ds = f.create_dataset(ENERGY, shape=(n, 1), dtype=np.float32)
            f.attrs["volume"] = json.dumps(volume.to_dict())
            f.attrs["cell_size_mm"] = np.asarray(volume.cell_size_mm, dtype=np.float64)
            f.attrs["cell_offset_mm"] = np.asarray(volume.cell_offset_mm, dtype=np.float64)
            f.attrs["threshold_mev"] = float(threshold_mev)
            f.attrs["source"] = str(ss.path.resolve())
            f.attrs["producer"] = json.dumps({"name": "calogen project",
                                              "version": __version__})
            lo = 0
            with tqdm(total=n, unit="shower", desc=f"projecting {ss.path.name}",
                      disable=not progress) as bar:
                for batch in ss.iter_batches(block_showers):
                    assert batch.counts is not None
                    hi = lo + len(batch)
                    cells_ds[lo:hi] = volume.project(batch.showers, batch.counts,
                                                     threshold_mev=threshold_mev)
                    energy_ds[lo:hi] = batch.conditions[:, col:col + 1]
                    outside += outside_volume(volume, batch.showers)
                    lo = hi
                    bar.update(len(batch))
    return Projected(target, n, grid, outside)

