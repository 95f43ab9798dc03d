"""Import and export the CaloClouds HDF5 layout (CaloClouds, arXiv:2305.04847; CaloClouds II,
arXiv:2309.05704).

A CaloClouds file holds two datasets:

* ``events``: ``(N, 4, max_points)``, per shower the rows ``x, y, z, E`` of its points (mm and
  MeV), zero-padded: a column with ``E == 0`` is padding;
* ``energy``: ``(N, 1)`` (``(N,)`` accepted), the incident energy in GeV.

Import writes a point-cloud ShowerSet (points ``(x, y, z, E)`` mm/MeV, condition ``E_inc`` in
GeV, PDG 22: the CaloClouds showers are photons) on a :class:`PointCloudVolume` (default the
ILD-like ECAL). The original files use detector coordinates (the ILD ECAL front is some 1.8 m
from the beam): ``shift_mm`` is added to every point (after ``axes`` permutes them) to move the
showers into the volume; points that still fall outside it are counted and reported, not
dropped. Export pads every shower to the largest one (or ``max_points``). Both stream blocks
of showers and write atomically; import then export then import gives the same ShowerSet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen import __version__
from calogen.atomic import atomic_path
from calogen.data import schema as S
from calogen.data.cells import check_output, e_inc_column, outside_volume, resolve_volume
from calogen.data.errors import ShowerSetError, numeric_dataset, reading_hdf5
from calogen.data.h5probe import ensure_openable
from calogen.data.showerset import ShowerSet, ShowerSetWriter
from calogen.geometry.points import PointCloudVolume
from calogen.particles import gun_conditions

__all__ = ["BLOCK_BYTES", "ENERGY", "EVENTS", "PHOTON_PDG", "Converted", "export_caloclouds",
           "import_caloclouds", "parse_axes"]

PathLike = str | os.PathLike[str]

EVENTS = "events"
"""Dataset of the zero-padded clouds ``(N, 4, max_points)``: rows x, y, z (mm), E (MeV)."""

ENERGY = "energy"
"""Dataset of the incident energies ``(N, 1)``, GeV."""

PHOTON_PDG = 22
"""The CaloClouds datasets are photon showers."""

BLOCK_BYTES = 32 * 1024 * 1024
"""Bytes of ``events`` read or written per block."""

_LAYOUT = ("the CaloClouds layout: events (N, 4, max_points) rows x, y, z [mm], E [MeV], "
           "zero-padded, and energy (N, 1) [GeV]")


@dataclass(frozen=True)
class Converted:
    """What an import or export wrote: the file, its showers and points, and the points
    outside the volume (import) or with ``E == 0`` written as padding (export)."""

    path: Path
    n_showers: int
    n_points: int
    n_outside: int = 0
    n_zero_energy: int = 0


def parse_axes(axes: str) -> list[int]:
    """``"xyz"``-style permutation: the source axis that becomes calogen's x, y and z
    (e.g. ``"xzy"`` when the source's depth axis is y)."""
    if sorted(axes) != ["x", "y", "z"]:
        raise ValueError(f"axes must be a permutation of 'xyz', got {axes!r}")
    return ["xyz".index(a) for a in axes]


def _block_rows(row_bytes: int, block_rows: int | None) -> int:
    if block_rows is not None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        return int(block_rows)
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def _open(path: PathLike) -> tuple[Path, h5py.File, h5py.Dataset, h5py.Dataset]:
    p = Path(path)
    if not p.is_file():
        raise ShowerSetError(f"{p}: file not found (expected {_LAYOUT})", path=p)
    ensure_openable(p)
    try:
        f = h5py.File(p, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises several types on bad files
        raise ShowerSetError(f"{p}: not a readable HDF5 file ({exc}); expected {_LAYOUT}",
                             path=p) from None
    try:
        events = numeric_dataset(f, p, EVENTS, _LAYOUT)
        energy = numeric_dataset(f, p, ENERGY, _LAYOUT)
        if events.ndim != 3 or events.shape[1] != 4:
            raise ShowerSetError.bad_field(p, f"dataset {EVENTS}", "shape (N, 4, max_points) "
                                           "(rows x, y, z, E)", f"shape {events.shape}")
        n = events.shape[0]
        if energy.shape not in ((n, 1), (n,)):
            raise ShowerSetError.bad_field(p, f"dataset {ENERGY}", f"shape ({n}, 1) (one "
                                           "incident energy in GeV per shower)",
                                           f"shape {energy.shape}")
    except BaseException:
        f.close()
        raise
    return p, f, events, energy


def _check_block(path: Path, events: np.ndarray, energy: np.ndarray, lo: int) -> None:
    """Raise on the first non-finite value, negative point energy or non-positive incident
    energy, naming the dataset and the row."""
    with np.errstate(invalid="ignore"):
        bad_e = ~(np.isfinite(energy) & (energy > 0))
    if bad_e.any():
        row = int(np.argmax(bad_e))
        raise ShowerSetError.bad_field(path, f"dataset {ENERGY}",
                                       "finite positive incident energies (GeV)",
                                       f"{float(energy[row])!r} at row {lo + row}")
    finite = np.isfinite(events).all(axis=(1, 2))
    if not finite.all():
        row = int(np.argmin(finite))
        raise ShowerSetError.bad_field(path, f"dataset {EVENTS}", "finite values",
                                       f"NaN or inf at row {lo + row}")
    negative = (events[:, 3, :] < 0).any(axis=1)
    if negative.any():
        row = int(np.argmax(negative))
        raise ShowerSetError.bad_field(path, f"dataset {EVENTS}", "point energies E >= 0 "
                                       "(MeV)", f"{float(events[row, 3].min())!r} at row "
                                       f"{lo + row}")


def import_caloclouds(path: PathLike, out: PathLike, *,
                      volume: str | PathLike | PointCloudVolume | None = None,
                      shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                      axes: str = "xyz", overwrite: bool = False,
                      block_rows: int | None = None, progress: bool = False) -> Converted:
    """Import a CaloClouds HDF5 file into a point-cloud ShowerSet, streaming blocks of showers.

    Args:
        path: the CaloClouds file (``events`` (N, 4, M), ``energy`` (N, 1) GeV).
        out: the ShowerSet to write (atomically).
        volume: the point-cloud volume (see :func:`calogen.data.cells.resolve_volume`).
        shift_mm: added to (x, y, z) of every point, mm.
        axes: which source axis becomes calogen's x, y, z (see :func:`parse_axes`).
        block_rows: showers per block (default: about :data:`BLOCK_BYTES`).

    Raises:
        ShowerSetError: missing datasets, wrong shapes, NaN/inf, negative point energies or
            non-positive incident energies (naming file, dataset and row).
    """
    vol = resolve_volume(volume)
    perm = parse_axes(axes)
    shift = np.asarray(shift_mm, dtype=np.float64).reshape(-1)
    if shift.shape != (3,) or not np.isfinite(shift).all():
        raise ValueError(f"shift_mm must be three finite numbers (mm), got {shift_mm}")
    src, f, events, energy = _open(path)
    columns, units = gun_conditions("E_inc")
    outside = total = 0
    try:
        rows = _block_rows(4 * events.shape[2] * events.dtype.itemsize, block_rows)
        producer = {"name": "calogen import-caloclouds", "version": __version__,
                    "source": str(src.resolve()), "shift_mm": shift.tolist(), "axes": axes,
                    "note": f"imported from the CaloClouds file {src.name}"}
        with ShowerSetWriter(out, detector=vol.name, geometry=vol.to_dict(),
                             condition_columns=columns, condition_units=units,
                             producer=producer, overwrite=overwrite) as writer:
            n = events.shape[0]
            with tqdm(total=n, unit="shower", desc=f"importing {src.name}",
                      disable=not progress) as bar:
                for lo in range(0, n, rows):
                    hi = min(n, lo + rows)
                    with reading_hdf5(src, f"dataset {EVENTS}"):
                        block = np.asarray(events[lo:hi], dtype=np.float64)
                    with reading_hdf5(src, f"dataset {ENERGY}"):
                        e_inc = np.asarray(energy[lo:hi], dtype=np.float64).reshape(-1)
                    _check_block(src, block, e_inc, lo)
                    pts = block.transpose(0, 2, 1)
                    real = pts[:, :, 3] != 0
                    counts = real.sum(axis=1)
                    points = pts[real]
                    xyz = points[:, perm] + shift
                    points = np.column_stack([xyz, points[:, 3]])
                    outside += outside_volume(vol, points)
                    total += len(points)
                    writer.append(points.astype(np.float32), e_inc.reshape(-1, 1),
                                  np.full(hi - lo, PHOTON_PDG, dtype=np.int32), counts=counts)
                    bar.update(hi - lo)
    finally:
        f.close()
    return Converted(writer.path, writer.n_written, total, outside)


def export_caloclouds(showerset: PathLike, out: PathLike, *, max_points: int | None = None,
                      overwrite: bool = False, block_rows: int | None = None,
                      progress: bool = False) -> Converted:
    """Export a point-cloud ShowerSet (mm, MeV, condition ``E_inc`` in GeV) as a CaloClouds
    HDF5 file, padded to the largest shower or ``max_points``; streaming, written atomically.

    Points with ``E == 0`` cannot be told from padding: they are written as padding and counted
    in ``n_zero_energy``.

    Raises:
        ShowerSetError: not a point-cloud ShowerSet with ``E_inc`` in GeV, or a shower with
            more points than ``max_points`` (naming its row).
    """
    target = check_output(out, overwrite)
    with ShowerSet(showerset) as ss:
        col = e_inc_column(ss)
        counts = ss.counts()
        n = len(ss)
        longest = int(counts.max()) if n else 0
        width = longest if max_points is None else int(max_points)
        if width < 0:
            raise ValueError(f"max_points must be >= 0, got {max_points}")
        if longest > width:
            row = int(np.argmax(counts > width))
            raise ShowerSetError.bad_field(ss.path, S.POINTS, f"at most {width} points per "
                                           "shower (--max-points)",
                                           f"{int(counts[row])} points at row {row}")
        rows = _block_rows(16 * max(1, width), block_rows)
        zero = 0
        with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
            chunked = n > 0 and width > 0
            chunk = max(1, min(n, (1 << 20) // (16 * max(1, width))))
            ev = f.create_dataset(EVENTS, shape=(n, 4, width), dtype=np.float32,
                                  chunks=(chunk, 4, width) if chunked else None,
                                  **(S.COMPRESSION if chunked else {}))
            en = f.create_dataset(ENERGY, shape=(n, 1), dtype=np.float32)
            f.attrs["producer"] = f"calogen export-caloclouds {__version__}"
            f.attrs["source"] = str(ss.path.resolve())
            lo = 0
            with tqdm(total=n, unit="shower", desc=f"exporting {ss.path.name}",
                      disable=not progress) as bar:
                for batch in ss.iter_batches(rows):
                    hi = lo + len(batch)
                    padded, mask = _pad(batch.showers, batch.counts, width)
                    zero += int((mask & (padded[:, :, 3] == 0)).sum())
                    ev[lo:hi] = padded.transpose(0, 2, 1)
                    en[lo:hi] = batch.conditions[:, col:col + 1]
                    lo = hi
                    bar.update(len(batch))
    return Converted(target, n, int(counts.sum()), 0, zero)


def _pad(points: np.ndarray, counts: np.ndarray | None, width: int
         ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """``(n, width, 4)`` zero-padded clouds and the mask of real points."""
    assert counts is not None
    c = np.asarray(counts, dtype=np.int64)
    out = np.zeros((c.shape[0], width, 4), dtype=np.float32)
    mask = np.zeros((c.shape[0], width), dtype=bool)
    rows = np.repeat(np.arange(c.shape[0]), c)
    cols = np.arange(rows.shape[0]) - np.repeat(np.cumsum(c) - c, c)
    out[rows, cols] = points
    mask[rows, cols] = True
    return out, mask
