"""Import and export the CaloChallenge 2022 HDF5 layout (arXiv:2410.21611).

A CaloChallenge file holds two datasets, as read by ``code/evaluate.py`` of the
CaloChallenge/homepage repository:

* ``incident_energies``: ``(N, 1)``, the energy of the incoming particle in MeV;
* ``showers``: ``(N, n_voxels)``, the energy of every voxel in MeV, voxels in the order of the
  dataset's binning XML (:mod:`calogen.geometry.calochallenge`).

Import writes a voxel ShowerSet (showers in MeV, condition ``E_inc`` in GeV, PDG code from the
binning's ``pid``); export writes the two datasets back. Both stream blocks of rows (dataset 3
is ~16 GB): memory is bounded by one block (:data:`BLOCK_BYTES`, or one HDF5 chunk of the
source when that is larger), never by the file.

Round trip: ``import`` then ``export`` gives datasets of the same dtype, shape and bytes. The
showers are stored in their original dtype; the float32 ``E_inc`` in GeV cannot hold every MeV
value exactly, so the original incident energies are also kept, as read, in the auxiliary
dataset :data:`ORIGINAL_INCIDENT_ENERGIES`, which export uses when it agrees with ``E_inc``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen import __version__
from calogen.atomic import atomic_path, remove_stale_temporaries
from calogen.data import schema as S
from calogen.data.content import ContentCheck
from calogen.data.errors import ShowerSetError, numeric_dataset, reading_hdf5
from calogen.data.h5probe import ensure_openable
from calogen.data.showerset import ShowerSet, ShowerSetWriter, e_inc_column, validate_showers
from calogen.geometry.calochallenge import (
    CALOCHALLENGE_DATASETS,
    CaloChallengeBinning,
    calochallenge_binning,
    read_binning_xml,
)
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.particles import gun_conditions

__all__ = ["BLOCK_BYTES", "INCIDENT_ENERGIES", "ORIGINAL_INCIDENT_ENERGIES", "SHOWERS",
           "Written", "export_calochallenge", "import_calochallenge", "resolve_binning"]

PathLike = str | os.PathLike[str]

INCIDENT_ENERGIES = "incident_energies"
"""Dataset of the incident energies ``(N, 1)`` in MeV."""

SHOWERS = "showers"
"""Dataset of the voxel energies ``(N, n_voxels)`` in MeV."""

ORIGINAL_INCIDENT_ENERGIES = "calochallenge/incident_energies"
"""Auxiliary ShowerSet dataset holding the imported ``incident_energies`` as read."""

MEV_PER_GEV = 1000.0

BLOCK_BYTES = 32 * 1024 * 1024
"""Showers read or written per block, bytes (dataset 3, float32: 207 showers)."""

_LAYOUT = ("the CaloChallenge layout: incident_energies (N, 1) and showers (N, n_voxels), "
           "in MeV")


class Written(NamedTuple):
    """What an import or export wrote: the file and its number of showers."""

    path: Path
    n_showers: int


def resolve_binning(dataset: str | None = None,
                    binning: PathLike | None = None) -> CaloChallengeBinning:
    """The binning of an official dataset (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"``)
    or of a user XML file of the same format; exactly one of the two must be given."""
    if (dataset is None) == (binning is None):
        raise ValueError("give exactly one of a CaloChallenge dataset (one of "
                         f"{', '.join(CALOCHALLENGE_DATASETS)}) or a binning XML file")
    if dataset is not None:
        return calochallenge_binning(dataset)
    assert binning is not None
    return read_binning_xml(binning)


def _block_rows(row_bytes: int, chunk_rows: int | None, block_rows: int | None) -> int:
    """Rows per block: ``block_rows`` if given, else :data:`BLOCK_BYTES` worth, rounded to
    whole HDF5 chunks of the source (each chunk is then decompressed once)."""
    if block_rows is not None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        return int(block_rows)
    rows = max(1, BLOCK_BYTES // max(1, row_bytes))
    if chunk_rows:
        rows = max(chunk_rows, rows // chunk_rows * chunk_rows)
    return rows


# --------------------------------------------------------------------------------------------
# Reading a CaloChallenge file
# --------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """An open CaloChallenge file whose header was checked against a binning."""

    path: Path
    file: h5py.File
    energies: h5py.Dataset
    showers: h5py.Dataset
    geometry: LayeredVoxelGeometry

    @classmethod
    def open(cls, path: PathLike, geometry: LayeredVoxelGeometry) -> _Source:
        p = Path(path)
        if not p.is_file():
            raise ShowerSetError(f"{p}: file not found (expected a CaloChallenge .hdf5 file: "
                                 f"{_LAYOUT})", path=p)
        ensure_openable(p)
        try:
            f = h5py.File(p, "r")
        except Exception as exc:  # noqa: BLE001 - h5py raises several types on bad files
            raise ShowerSetError(f"{p}: not a readable HDF5 file ({exc}); expected {_LAYOUT}",
                                 path=p) from None
        try:
            energies = numeric_dataset(f, p, INCIDENT_ENERGIES, _LAYOUT, " (MeV)")
            showers = numeric_dataset(f, p, SHOWERS, _LAYOUT, " (MeV)")
            cls._check_shapes(p, energies, showers, geometry)
        except BaseException:
            f.close()
            raise
        return cls(p, f, energies, showers, geometry)

    @staticmethod
    def _check_shapes(path: Path, energies: h5py.Dataset, showers: h5py.Dataset,
                      geometry: LayeredVoxelGeometry) -> None:
        n_voxels = geometry.n_voxels
        if showers.ndim != 2 or showers.shape[1] != n_voxels:
            raise ShowerSetError.bad_field(
                path, f"dataset {SHOWERS}", f"shape (N, {n_voxels}) (the {n_voxels} voxels of "
                f"binning {geometry.name!r})", f"shape {showers.shape}")
        n = showers.shape[0]
        if energies.shape != (n, 1):
            raise ShowerSetError.bad_field(
                path, f"dataset {INCIDENT_ENERGIES}", f"shape ({n}, 1) (one energy in MeV per "
                f"shower)", f"shape {energies.shape}")

    def __len__(self) -> int:
        return int(self.showers.shape[0])

    def block_rows(self, block_rows: int | None) -> int:
        chunks = self.showers.chunks
        return _block_rows(self.geometry.n_voxels * self.showers.dtype.itemsize,
                           chunks[0] if chunks else None, block_rows)

    def blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(offset, energies (n, 1), showers (n, n_voxels))``, checked: energies finite and
        positive, showers finite and non-negative; errors name the first bad row."""
        for lo in range(0, len(self), block_rows):
            hi = min(lo + block_rows, len(self))
            with reading_hdf5(self.path, f"dataset {INCIDENT_ENERGIES}"):
                energies = self.energies[lo:hi]
            with reading_hdf5(self.path, f"dataset {SHOWERS}"):
                showers = self.showers[lo:hi]
            _check_energies(energies, self.path, lo)
            validate_showers(showers, (self.geometry.n_voxels,), showers.dtype, path=self.path,
                             field_name=f"dataset {SHOWERS}", offset=lo)
            yield lo, energies, showers

    def close(self) -> None:
        self.file.close()


def _check_energies(energies: np.ndarray, path: Path, offset: int) -> None:
    """Raise on the first incident energy that is not finite and positive."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(energies) & (energies > 0)).reshape(-1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ShowerSetError.bad_field(path, f"dataset {INCIDENT_ENERGIES}",
                                       "finite positive energies (MeV)",
                                       f"{float(energies.reshape(-1)[row])!r} at row "
                                       f"{offset + row}")


def _to_gev(energies_mev: np.ndarray) -> NDArray[np.float32]:
    """``E_inc`` in GeV (float32, ``(n, 1)``) from incident energies in MeV."""
    return (np.asarray(energies_mev, dtype=np.float64) / MEV_PER_GEV).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def import_calochallenge(path: PathLike, out: PathLike, *, dataset: str | None = None,
                         binning: PathLike | None = None, overwrite: bool = False,
                         block_rows: int | None = None, progress: bool = False) -> Written:
    """Import a CaloChallenge HDF5 file into a voxel ShowerSet, streaming blocks of rows.

    Args:
        path: the CaloChallenge file (``incident_energies`` (N, 1), ``showers`` (N, n_voxels),
            MeV).
        out: the ShowerSet to write (atomically: nothing appears under ``out`` on error).
        dataset: official binning (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"``); or
        binning: a binning XML file of the same format (exactly one of the two).
        overwrite: replace an existing ``out``.
        block_rows: showers per block (default: about :data:`BLOCK_BYTES`).
        progress: draw a progress bar on stderr.

    Raises:
        ShowerSetError: a missing dataset, a shape that does not match the binning, a
            non-numeric dtype, NaN/inf or negative values (naming file, dataset and row).
    """
    spec = resolve_binning(dataset, binning)
    geometry = spec.geometry
    columns, units = gun_conditions("E_inc")
    source = _Source.open(path, geometry)
    try:
        rows = source.block_rows(block_rows)
        producer = {
            "name": "calogen import-calochallenge", "version": __version__,
            "source": str(source.path.resolve()),
            "binning": (f"CaloChallenge dataset {dataset}" if binning is None
                        else str(Path(binning).resolve())),
            "note": (f"imported from the CaloChallenge file {source.path.name}; the original "
                     f"incident energies (MeV, dtype {source.energies.dtype}) are kept in "
                     f"dataset {ORIGINAL_INCIDENT_ENERGIES}"),
        }
        with ShowerSetWriter(out, detector=geometry.name, geometry=geometry.to_dict(),
                             condition_columns=columns, condition_units=units,
                             producer=producer, shower_dtype=source.showers.dtype,
                             shower_units="MeV", overwrite=overwrite,
                             extra_datasets={ORIGINAL_INCIDENT_ENERGIES:
                                             ((1,), source.energies.dtype)}) as writer:
            pdg = np.int32(spec.pid)
            with tqdm(total=len(source), unit="shower", desc=f"importing {source.path.name}",
                      disable=not progress) as bar:
                for _, energies, showers in source.blocks(rows):
                    n = showers.shape[0]
                    writer.append(showers, _to_gev(energies), np.full(n, pdg),
                                  extra={ORIGINAL_INCIDENT_ENERGIES: energies})
                    bar.update(n)
    finally:
        source.close()
    return Written(writer.path, writer.n_written)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _energy_column(ss: ShowerSet) -> int:
    """Index of the ``E_inc`` column (GeV) of a voxel ShowerSet in MeV, else ShowerSetError."""
    meta = ss.meta
    if meta.kind != "voxels":
        raise ShowerSetError.bad_field(ss.path, f"attribute {S.ATTR_GEOMETRY}.kind",
                                       "'voxels' (a CaloChallenge file holds voxel showers)",
                                       repr(meta.kind))
    if meta.shower_units != "MeV":
        raise ShowerSetError.bad_field(ss.path, f"attribute {S.ATTR_SHOWER_UNITS}", "'MeV'",
                                       repr(meta.shower_units))
    return e_inc_column(ss)


def _original_energies(ss: ShowerSet) -> np.dtype | None:
    """The dtype of the kept original incident energies, or ``None`` when absent."""
    if not ss.has_extra(ORIGINAL_INCIDENT_ENERGIES):
        return None
    first = ss.read_extra(ORIGINAL_INCIDENT_ENERGIES, 0, 0)
    if first.shape[1:] != (1,):
        raise ShowerSetError.bad_field(ss.path, f"dataset {ORIGINAL_INCIDENT_ENERGIES}",
                                       "shape (N, 1)", f"shape {(len(ss), *first.shape[1:])}")
    return first.dtype


def _block_energies(ss: ShowerSet, e_inc_gev: np.ndarray, lo: int, hi: int,
                    original: bool) -> np.ndarray:
    """Incident energies in MeV of events ``lo:hi``: the kept originals (checked against
    ``E_inc``) or ``E_inc * 1000`` in float64 (exact for float32 ``E_inc``)."""
    if not original:
        return (np.asarray(e_inc_gev, dtype=np.float64) * MEV_PER_GEV).reshape(-1, 1)
    energies = ss.read_extra(ORIGINAL_INCIDENT_ENERGIES, lo, hi)
    differ = _to_gev(energies).reshape(-1) != np.asarray(e_inc_gev).reshape(-1)
    if differ.any():
        row = int(np.argmax(differ))
        raise ShowerSetError.bad_field(
            ss.path, f"dataset {ORIGINAL_INCIDENT_ENERGIES}", "the incident energies of column "
            "'E_inc' in MeV", f"{float(energies.reshape(-1)[row])!r} MeV against E_inc = "
            f"{float(np.asarray(e_inc_gev).reshape(-1)[row])!r} GeV at row {lo + row}")
    return energies


def export_calochallenge(showerset: PathLike, out: PathLike, *, overwrite: bool = False,
                         block_rows: int | None = None, progress: bool = False,
                         validate: bool = True) -> Written:
    """Export a voxel ShowerSet (showers in MeV, condition ``E_inc`` in GeV) as a CaloChallenge
    HDF5 file, streaming blocks of rows; written atomically.

    The showers keep their stored dtype. Incident energies are the originals kept by
    :func:`import_calochallenge` (same dtype and bytes) when present, else ``E_inc * 1000`` as
    float64. ``validate`` scans every block (finite, non-negative showers; finite conditions).
    """
    out = Path(out)
    if out.is_dir():
        raise ShowerSetError(f"{out}: is a directory, expected a file name", path=out)
    if not out.parent.is_dir():
        raise ShowerSetError(f"{out}: output directory {out.parent} does not exist", path=out)
    if out.exists() and not overwrite:
        raise ShowerSetError(f"{out}: file exists; refusing to overwrite it (pass "
                             "overwrite=True / --overwrite to replace it)", path=out)
    remove_stale_temporaries(out)
    with ShowerSet(showerset) as ss:
        col = _energy_column(ss)
        original = _original_energies(ss)
        n, shape, dtype = len(ss), ss.shower_shape, ss.meta.shower_dtype
        rows = _block_rows(int(np.prod(shape)) * dtype.itemsize, None, block_rows)
        chunk = S.default_chunk_events(shape, dtype.itemsize)
        check = ContentCheck(ss.path, ss.meta) if validate else None
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            e_ds = f.create_dataset(INCIDENT_ENERGIES, shape=(n, 1),
                                    dtype=original if original is not None else np.float64,
                                    chunks=(max(1, min(n, 65536)), 1) if n else None,
                                    **(S.COMPRESSION if n else {}))
            s_ds = f.create_dataset(SHOWERS, shape=(n, *shape), dtype=dtype,
                                    chunks=(max(1, min(n, chunk)), *shape) if n else None,
                                    **(S.COMPRESSION if n else {}))
            with tqdm(total=n, unit="shower", desc=f"exporting {ss.path.name}",
                      disable=not progress) as bar:
                for lo in range(0, n, rows):
                    batch = ss.read(lo, lo + rows)
                    if check is not None:
                        check.batch(batch, lo)
                    hi = lo + len(batch)
                    e_ds[lo:hi] = _block_energies(ss, batch.conditions[:, col], lo, hi,
                                                  original is not None)
                    s_ds[lo:hi] = batch.showers
                    bar.update(len(batch))
    return Written(out, n)
