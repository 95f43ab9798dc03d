"""Read, write, stream and validate ShowerSet files (HDF5 via h5py): images, voxels and
ragged point clouds.

The layout is described in :mod:`calogen.data.schema`. Point clouds are handed out as
``(P, 4)`` points plus ``(n,)`` counts per shower (:class:`ShowerBatch`). Datasets are chunked
along the event axis (``chunk_events`` events per chunk, by default about 2 MiB of showers: 256
ZN events; points in chunks of about 2 MiB), resizable, and compressed with byte shuffle + gzip
level 1 (the measured choice is documented at :data:`calogen.data.schema.COMPRESSION`).

Writes are atomic: :class:`ShowerSetWriter` writes to a hidden temporary file in the target
directory and renames it to the final name only when closed without error, so a killed or failed
job never leaves a file that looks whole under the final name.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import h5py
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from calogen.atomic import remove_stale_temporaries, temp_sibling
from calogen.data import schema as S
from calogen.data.content import ContentCheck
from calogen.data.errors import ShowerSetError
from calogen.data.h5probe import USERBLOCK_BYTES, ensure_openable, seal
from calogen.geometry import (
    POINT_FEATURES,
    POINT_UNITS,
    SHAPE_KINDS,
    Geometry,
    ShapeKind,
    geometry_from_dict,
)

PathLike = str | os.PathLike[str]

# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowerBatch:
    """A block of ``n`` events held in memory.

    Attributes:
        showers: image ``(n, H, W)`` or voxel ``(n, n_voxels)`` responses (units:
            ``ShowerSetMeta.shower_units``); for point clouds ``(P, 4)`` float32: the points
            ``(x, y, z, E)`` (mm, mm, mm, MeV) of the ``n`` showers one after the other.
        conditions: ``(n, k)`` float32 particle conditions (columns and units in the meta).
        pdg: ``(n,)`` int32 PDG codes.
        condition_id: ``(n,)`` int64 group ids (equal for repeated responses of one particle).
        counts: ``(n,)`` int64 points per shower (0 allowed) for point clouds, else ``None``.
    """

    showers: np.ndarray
    conditions: np.ndarray
    pdg: np.ndarray
    condition_id: np.ndarray
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.pdg.shape[0])

    def _point_counts(self) -> NDArray[np.int64]:
        if self.counts is None:
            raise ValueError("this batch holds images or voxels, not point clouds (no counts)")
        return np.asarray(self.counts, dtype=np.int64)

    def shower_index(self) -> NDArray[np.int64]:
        """``(P,)`` index (``0 .. n-1``) of the shower each point belongs to."""
        counts = self._point_counts()
        return np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)

    def padded(self, max_points: int | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """The point clouds as ``(n, max_points, 4)`` float32, zero after each shower's points,
        and the ``(n, max_points)`` mask of real points.

        ``max_points`` defaults to the largest shower of the batch; a smaller value than that
        raises ``ValueError`` (points are never dropped silently).
        """
        counts = self._point_counts()
        longest = int(counts.max()) if counts.size else 0
        width = longest if max_points is None else int(max_points)
        if width < longest:
            raise ValueError(f"max_points={max_points} is smaller than the largest shower of "
                             f"the batch ({longest} points)")
        n = counts.shape[0]
        out = np.zeros((n, width, 4), dtype=np.float32)
        mask = np.zeros((n, width), dtype=bool)
        rows = self.shower_index()
        starts = np.cumsum(counts) - counts
        cols = np.arange(rows.shape[0], dtype=np.int64) - np.repeat(starts, counts)
        out[rows, cols] = self.showers
        mask[rows, cols] = True
        return out, mask


@dataclass(frozen=True)
class ShowerSetMeta:
    """Header of a ShowerSet file.

    Attributes:
        detector: detector name, e.g. ``"ZN"``.
        geometry: JSON-decoded geometry description (the geometry's ``to_dict()``).
        shower_shape: shape of one shower, e.g. ``(44, 44)`` or ``(n_voxels,)``; ``(4,)`` (one
            point) for point clouds.
        shower_dtype: numpy dtype of the ``showers`` (or ``points``) dataset.
        shower_units: unit of a shower value, e.g. ``"photons"``; of ``E`` for point clouds.
        condition_columns: names of the ``conditions`` columns.
        condition_units: unit of each condition column.
        producer: JSON-decoded description of what made the file (name, version, seed, note).
        created: creation time, ISO-8601 UTC.
        schema_version: ShowerSet schema version of the file.
        n_events: number of events.
        kind: ``"image"``, ``"voxels"`` or ``"points"``.
        n_points: total number of points (point clouds; 0 otherwise).
    """

    detector: str
    geometry: dict[str, Any]
    shower_shape: tuple[int, ...]
    shower_dtype: np.dtype
    shower_units: str
    condition_columns: tuple[str, ...]
    condition_units: tuple[str, ...]
    producer: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    schema_version: int = S.SCHEMA_VERSION
    n_events: int = 0
    kind: ShapeKind = "image"
    n_points: int = 0

    def geometry_object(self) -> Geometry:
        """The geometry rebuilt from :attr:`geometry` (``ValueError`` naming the malformed field
        when it does not describe one, e.g. a hand-written image geometry without a pitch)."""
        return geometry_from_dict(self.geometry)


# --------------------------------------------------------------------------------------------
# Batch validation (shared by the writer and by importers)
# --------------------------------------------------------------------------------------------


def _first_bad_row(bad: NDArray[np.bool_]) -> int:
    """Index of the first event (axis 0) with any ``True`` in ``bad``."""
    per_row = bad.reshape(bad.shape[0], -1).any(axis=1)
    return int(np.argmax(per_row))


def _check_numeric(arr: np.ndarray, path: PathLike | None, name: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise ShowerSetError.bad_field(path, name, "a numeric array", f"dtype {arr.dtype}")


def _check_finite(arr: np.ndarray, path: PathLike | None, name: str, offset: int) -> None:
    """Raise on NaN/inf, naming the first bad row (``offset`` + row within ``arr``)."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        row = _first_bad_row(bad)
        raise ShowerSetError.bad_field(
            path, name, "finite values", f"NaN or inf at row {offset + row}")


def _check_integral(arr: np.ndarray, path: PathLike | None, name: str, offset: int) -> None:
    """Raise if a float array holds non-integer values (assumes it is finite)."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    bad = arr != np.round(arr)
    if bad.any():
        row = _first_bad_row(bad)
        raise ShowerSetError.bad_field(
            path, name, "integer values", f"a non-integer value at row {offset + row}")


def _check_range(arr: np.ndarray, target: np.dtype, path: PathLike | None, name: str,
                 offset: int) -> None:
    """Raise if an integral array does not fit the integer ``target`` dtype."""
    if target.kind not in "iu" or arr.size == 0:
        return
    info = np.iinfo(target)
    bad = (arr < info.min) | (arr > info.max)
    if bad.any():
        row = _first_bad_row(bad)
        raise ShowerSetError.bad_field(
            path, name, f"values within {target} range [{info.min}, {info.max}]",
            f"an out-of-range value at row {offset + row}")


def _cast_integral(arr: np.ndarray, target: np.dtype, path: PathLike | None, name: str,
                   offset: int) -> np.ndarray:
    """Validate that ``arr`` holds finite integers that fit ``target`` and cast it."""
    _check_numeric(arr, path, name)
    _check_finite(arr, path, name, offset)
    _check_integral(arr, path, name, offset)
    _check_range(arr, target, path, name, offset)
    return arr.astype(target, copy=False)


def validate_showers(showers: ArrayLike, shower_shape: tuple[int, ...], dtype: DTypeLike, *,
                     path: PathLike | None = None, field_name: str = S.SHOWERS,
                     offset: int = 0) -> np.ndarray:
    """Check a block of showers and return it cast to ``dtype``.

    Requirements: shape ``(n, *shower_shape)``, numeric, finite, ``>= 0``; for an integer
    ``dtype`` the values must be integral and fit the type.

    Args:
        showers: the block.
        shower_shape: expected shape of one shower.
        dtype: target dtype (e.g. ``np.int32`` for photon counts).
        path: file named in error messages.
        field_name: field named in error messages.
        offset: event index of the block's first row (for error messages).

    Raises:
        ShowerSetError: naming ``field_name``, the expectation and the first bad row.
    """
    arr = np.asarray(showers)
    target = np.dtype(dtype)
    if arr.ndim != 1 + len(shower_shape) or tuple(arr.shape[1:]) != tuple(shower_shape):
        raise ShowerSetError.bad_field(
            path, field_name, f"shape (n, {', '.join(map(str, shower_shape))})",
            f"shape {tuple(arr.shape)}")
    _check_numeric(arr, path, field_name)
    _check_finite(arr, path, field_name, offset)
    if arr.size and arr.dtype.kind != "u":
        neg = arr < 0
        if neg.any():
            raise ShowerSetError.bad_field(
                path, field_name, "non-negative values",
                f"a negative value at row {offset + _first_bad_row(neg)}")
    if target.kind in "iu":
        return _cast_integral(arr, target, path, field_name, offset)
    out = arr.astype(target, copy=False)
    _check_finite(out, path, field_name, offset)  # float64 -> float32 overflow
    return out


def validate_conditions(conditions: ArrayLike, n_columns: int, *, path: PathLike | None = None,
                        field_name: str = S.CONDITIONS, offset: int = 0) -> NDArray[np.float32]:
    """Check a ``(n, n_columns)`` block of finite conditions and return it as float32."""
    arr = np.asarray(conditions)
    if arr.ndim != 2 or arr.shape[1] != n_columns:
        raise ShowerSetError.bad_field(
            path, field_name, f"shape (n, {n_columns}) (one column per condition name)",
            f"shape {tuple(arr.shape)}")
    _check_numeric(arr, path, field_name)
    _check_finite(arr, path, field_name, offset)
    out = arr.astype(np.float32, copy=False)
    _check_finite(out, path, field_name, offset)
    return out


def validate_pdg(pdg: ArrayLike, n: int, *, path: PathLike | None = None,
                 field_name: str = S.PDG, offset: int = 0) -> NDArray[np.int32]:
    """Check ``n`` integral PDG codes and return them as int32."""
    arr = np.asarray(pdg)
    if arr.shape != (n,):
        raise ShowerSetError.bad_field(path, field_name, f"shape ({n},)", f"shape {arr.shape}")
    return _cast_integral(arr, np.dtype(np.int32), path, field_name, offset)


def validate_counts(counts: ArrayLike, n_points: int, *, path: PathLike | None = None,
                    field_name: str = "counts", offset: int = 0) -> NDArray[np.int64]:
    """Check ``(n,)`` non-negative integral points per shower summing to ``n_points``; return
    them as int64."""
    arr = np.asarray(counts)
    if arr.ndim != 1:
        raise ShowerSetError.bad_field(path, field_name, "shape (n,) (points per shower)",
                                       f"shape {arr.shape}")
    out = _cast_integral(arr, np.dtype(np.int64), path, field_name, offset)
    if out.size and out.min() < 0:
        row = int(np.argmax(out < 0))
        raise ShowerSetError.bad_field(path, field_name, "non-negative points per shower",
                                       f"{int(out[row])} at row {offset + row}")
    total = int(out.sum(dtype=np.int64))
    if total != n_points:
        raise ShowerSetError.bad_field(path, field_name, f"points per shower summing to "
                                       f"{n_points} (the rows of the points given)", f"{total}")
    return out


def validate_points(points: ArrayLike, counts: ArrayLike, *, path: PathLike | None = None,
                    offset: int = 0) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Check a block of ragged point clouds and return ``(points float32, counts int64)``.

    Requirements: points ``(P, 4)`` numeric ``(x, y, z, E)``, finite, ``E >= 0``; counts
    ``(n,)`` non-negative integers summing to ``P``. Errors name the first bad shower
    (``offset`` + row in the block), the point within it and the feature.
    """
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != len(POINT_FEATURES):
        raise ShowerSetError.bad_field(path, S.POINTS, f"shape (P, {len(POINT_FEATURES)}) "
                                       f"({', '.join(POINT_FEATURES)} per point)",
                                       f"shape {tuple(arr.shape)}")
    _check_numeric(arr, path, S.POINTS)
    n_per = validate_counts(counts, arr.shape[0], path=path, offset=offset)
    check = ContentCheck(path, None)
    check.points(arr, n_per, offset)
    out = arr.astype(np.float32, copy=False)
    check.points(out, n_per, offset)  # float64 -> float32 overflow
    return out, n_per


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _utc_now() -> str:
    """Creation time, ISO-8601 UTC. Honours ``SOURCE_DATE_EPOCH`` (reproducible-builds.org)
    so that a seeded run can produce a byte-identical file."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


def _as_dict(value: object, path: PathLike, name: str) -> dict[str, Any]:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ShowerSetError.bad_field(path, name, "a dict", type(value).__name__)
    return dict(value)


def _to_json(value: Mapping[str, Any], path: PathLike, name: str) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ShowerSetError.bad_field(path, name, "a JSON-serialisable dict", str(exc)) from None


def _kind_of(geometry: Mapping[str, Any], path: PathLike, label: str) -> ShapeKind:
    """The shape kind a geometry description declares (``"image"`` without ``kind``); voxel
    and point-cloud descriptions must rebuild into their geometry type."""
    kind = geometry.get("kind", "image")
    if kind not in SHAPE_KINDS:
        raise ShowerSetError.bad_field(path, f"{label}.kind", f"one of {list(SHAPE_KINDS)}",
                                       f"{kind!r:.40}")
    if kind != "image":
        try:
            geometry_from_dict(geometry)
        except Exception as exc:  # noqa: BLE001 - a file's JSON may hold anything
            raise ShowerSetError.bad_field(path, label, f"a valid {kind} geometry",
                                           f"{type(exc).__name__}: {exc}"[:300]) from None
    return kind


def _discard(h5file: h5py.File | None, tmp: Path) -> None:
    """Close (if open) and delete a temporary file; never raises."""
    try:
        if h5file is not None and h5file.id.valid:
            h5file.close()
    except Exception:  # noqa: BLE001 - best-effort cleanup
        pass
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


class ShowerSetWriter:
    """Stream events into a new ShowerSet file, atomically.

    Use as a context manager; on normal exit the file appears under ``path``, on an exception
    (or :meth:`abort`) nothing appears and the temporary file is removed. Memory use is bounded
    by the batch being appended. A batch that fails validation raises :class:`ShowerSetError`
    and writes nothing (the writer stays usable; inside ``with`` the exception aborts it).

    The geometry's ``kind`` chooses the layout (see :mod:`calogen.data.schema`): images
    ``(n, H, W)``; voxels ``(n, n_voxels)`` with ``n_voxels`` fixed by the binning; point clouds
    as ``(P, 4)`` points plus ``(n,)`` counts per shower (:meth:`append`'s ``counts``), stored
    ragged.

    Args:
        path: final file name.
        shower_shape: shape of one shower, e.g. ``(44, 44)``; ``None`` takes it from a voxel
            or point-cloud geometry (``(n_voxels,)``, ``(4,)``).
        detector: detector name, e.g. ``"ZN"``.
        geometry: the geometry's ``to_dict()`` (or the geometry itself); a description without
            ``kind`` is an image.
        condition_columns: names of the condition columns (e.g. ``ZDC_CONDITION_COLUMNS``).
        condition_units: unit of each column (e.g. ``ZDC_CONDITION_UNITS``).
        producer: JSON-serialisable dict: what made the file (name, version, seed, note).
        shower_dtype: dtype of the stored showers; ``None``: int32 for images (photon
            counts), float32 for voxels and points (points must be float).
        shower_units: unit of a shower value; ``None``: ``"photons"`` for images, ``"MeV"``
            otherwise (the unit of ``E`` for points).
        chunk_events: events per HDF5 chunk; ``None`` picks the largest power of two (at most
            1024) whose showers fit about 2 MiB (256 for ZN int32 images), see
            :func:`calogen.data.schema.default_chunk_events`.
        chunk_points: points per chunk of a point-cloud file; ``None``:
            :func:`calogen.data.schema.default_chunk_points`.
        overwrite: replace an existing file at ``path`` (on successful close only).
        extra_datasets: auxiliary per-event datasets outside the schema, ``name -> (shape of
            one row, dtype)``, stored as given (e.g. an importer's original values, which the
            schema's float32 conditions cannot hold exactly); filled through :meth:`append`'s
            ``extra`` and read back with :meth:`ShowerSet.read_extra`. Names may hold ``/``
            (HDF5 groups) and must differ from the schema's datasets.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        shower_shape: tuple[int, ...] | None = None,
        detector: str,
        geometry: Mapping[str, Any] | Geometry,
        condition_columns: Sequence[str],
        condition_units: Sequence[str],
        producer: Mapping[str, Any],
        shower_dtype: DTypeLike | None = None,
        shower_units: str | None = None,
        chunk_events: int | None = None,
        chunk_points: int | None = None,
        overwrite: bool = False,
        extra_datasets: Mapping[str, tuple[tuple[int, ...], DTypeLike]] | None = None,
    ) -> None:
        self._path = Path(path)
        self._overwrite = overwrite
        self._extra = self._extra_layout(extra_datasets or {})
        geometry_dict = _as_dict(geometry, self._path, S.ATTR_GEOMETRY)
        self._kind = _kind_of(geometry_dict, self._path, S.ATTR_GEOMETRY)
        self._geometry = geometry_dict
        self._shape = self._shower_shape(shower_shape)
        default_dtype = np.int32 if self._kind == "image" else np.float32
        self._dtype = np.dtype(default_dtype if shower_dtype is None else shower_dtype)
        self._columns = tuple(str(c) for c in condition_columns)
        self._units = tuple(str(u) for u in condition_units)
        if chunk_events is None:
            chunk_events = (S.MAX_CHUNK_EVENTS if self._kind == "points"
                            else S.default_chunk_events(self._shape, self._dtype.itemsize))
        if chunk_points is None:
            chunk_points = S.default_chunk_points()
        self._check_arguments(detector, chunk_events, chunk_points)
        geometry_json = _to_json(geometry_dict, self._path, S.ATTR_GEOMETRY)
        producer_json = _to_json(_as_dict(producer, self._path, S.ATTR_PRODUCER), self._path,
                                 S.ATTR_PRODUCER)
        if shower_units is None:
            shower_units = "photons" if self._kind == "image" else "MeV"
        self._check_target()
        remove_stale_temporaries(self._path)  # left beside it by killed writers
        self._n = 0
        self._n_points = 0
        self._next_id = 0
        self._closed = False
        self._aborted = False
        self._tmp = temp_sibling(self._path)
        try:
            self._file = h5py.File(self._tmp, "x", rdcc_nbytes=S.WRITE_CACHE_BYTES,
                                   rdcc_nslots=10007, userblock_size=USERBLOCK_BYTES)
        except OSError as exc:
            raise ShowerSetError(f"{self._path}: cannot create temporary file {self._tmp.name} "
                                 f"in {self._path.parent}: {exc}", path=self._path) from None
        self._finalizer = weakref.finalize(self, _discard, self._file, self._tmp)
        try:
            self._create_layout(detector, geometry_json, producer_json, shower_units,
                                chunk_events, chunk_points)
        except BaseException:
            self.abort()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _shower_shape(self, given: tuple[int, ...] | None) -> tuple[int, ...]:
        """The shape of one shower, checked against a voxel or point-cloud geometry."""
        p = self._path
        expected = None if self._kind == "image" else geometry_from_dict(
            self._geometry).shower_shape
        if given is None:
            if expected is None:
                raise ShowerSetError.bad_field(p, "shower_shape", "the shape of one image "
                                               "(rows, cols)", "none given")
            return tuple(expected)
        try:
            shape = tuple(int(d) for d in given)
        except (TypeError, ValueError):
            raise ShowerSetError.bad_field(p, "shower_shape", "a tuple of integers",
                                           repr(given)[:80]) from None
        if expected is not None and shape != tuple(expected):
            if self._kind == "voxels":
                what = (f"({expected[0]},): the {expected[0]} voxels of the binning of geometry "
                        f"{self._geometry.get('name')!r}")
            else:
                what = f"{tuple(expected)}: one point ({', '.join(POINT_FEATURES)})"
            raise ShowerSetError.bad_field(p, "shower_shape", what, str(shape))
        return shape

    def _extra_layout(self, given: Mapping[str, tuple[tuple[int, ...], DTypeLike]]
                      ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The auxiliary datasets, checked: names outside the schema, numeric dtypes."""
        out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        reserved = set(S.DATASETS) | {S.POINTS, S.OFFSETS}
        for name, (tail, dtype) in given.items():
            if not isinstance(name, str) or not name.strip("/") or name.split("/")[0] in reserved:
                raise ShowerSetError.bad_field(self._path, "extra_datasets", "names other than "
                                               f"the schema's {sorted(reserved)}", repr(name))
            dt = np.dtype(dtype)
            if dt.kind not in "biuf":
                raise ShowerSetError.bad_field(self._path, f"extra_datasets[{name!r}]",
                                               "a numeric dtype", str(dt))
            out[name] = (tuple(int(d) for d in tail), dt)
        return out

    def _check_arguments(self, detector: str, chunk_events: int, chunk_points: int) -> None:
        p = self._path
        if not self._shape or any(d < 1 for d in self._shape):
            raise ShowerSetError.bad_field(p, "shower_shape", "positive dimensions",
                                           str(self._shape))
        if self._dtype.kind not in "iuf":
            raise ShowerSetError.bad_field(p, S.SHOWERS, "an integer or float dtype",
                                           str(self._dtype))
        if self._kind == "points" and self._dtype.kind != "f":
            raise ShowerSetError.bad_field(p, S.POINTS, "a float dtype (x, y, z in mm)",
                                           str(self._dtype))
        if len(self._columns) != len(self._units):
            raise ShowerSetError.bad_field(
                p, "conditions.units", f"{len(self._columns)} units (one per column)",
                f"{len(self._units)}")
        if len(set(self._columns)) != len(self._columns):
            raise ShowerSetError.bad_field(p, "conditions.columns", "unique names",
                                           str(self._columns))
        if not isinstance(detector, str) or not detector:
            raise ShowerSetError.bad_field(p, S.ATTR_DETECTOR, "a non-empty name", repr(detector))
        if chunk_events < 1:
            raise ShowerSetError.bad_field(p, "chunk_events", "a positive number",
                                           str(chunk_events))
        if chunk_points < 1:
            raise ShowerSetError.bad_field(p, "chunk_points", "a positive number",
                                           str(chunk_points))

    def _check_target(self) -> None:
        p = self._path
        if not p.parent.is_dir():
            raise ShowerSetError(f"{p}: output directory {p.parent} does not exist", path=p)
        if p.is_dir():
            raise ShowerSetError(f"{p}: is a directory, expected a file name", path=p)
        if p.exists() and not self._overwrite:
            raise ShowerSetError(f"{p}: file exists; refusing to overwrite it "
                                 f"(pass overwrite=True / --overwrite to replace it)", path=p)

    def _create_layout(self, detector: str, geometry_json: str, producer_json: str,
                       shower_units: str, chunk_events: int, chunk_points: int) -> None:
        f = self._file
        k = len(self._columns)

        def make(name: str, tail: tuple[int, ...], dtype: DTypeLike,
                 chunk: int = chunk_events) -> h5py.Dataset:
            return f.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail),
                                    chunks=(chunk, *tail), dtype=dtype,
                                    track_times=False, **S.COMPRESSION)

        cond = make(S.CONDITIONS, (k,), np.float32)
        cond.attrs[S.ATTR_COLUMNS] = list(self._columns)
        cond.attrs[S.ATTR_UNITS] = list(self._units)
        # Keep the handles open while writing: HDF5 flushes (compresses) a dataset's chunk
        # cache whenever its last handle closes, so re-opening per append would compress and
        # re-read every partial chunk (measured: 0.2 ms instead of 0.01 ms per ZN event).
        self._datasets = {S.CONDITIONS: cond, S.PDG: make(S.PDG, (), np.int32),
                          S.CONDITION_ID: make(S.CONDITION_ID, (), np.int64)}
        if self._kind == "points":
            points = make(S.POINTS, (len(POINT_FEATURES),), self._dtype, chunk_points)
            points.attrs[S.ATTR_COLUMNS] = list(POINT_FEATURES)
            points.attrs[S.ATTR_UNITS] = list(POINT_UNITS)
            offsets = make(S.OFFSETS, (), np.int64)
            offsets.resize(1, axis=0)
            offsets[0] = 0
            self._datasets.update({S.POINTS: points, S.OFFSETS: offsets})
        else:
            self._datasets[S.SHOWERS] = make(S.SHOWERS, self._shape, self._dtype)
        for name, (tail, dtype) in self._extra.items():
            self._datasets[name] = make(name, tail, dtype)
        f.attrs[S.ATTR_SCHEMA] = S.SCHEMA_NAME
        f.attrs[S.ATTR_SCHEMA_VERSION] = np.int64(S.SCHEMA_VERSION)
        f.attrs[S.ATTR_DETECTOR] = detector
        f.attrs[S.ATTR_GEOMETRY] = geometry_json
        f.attrs[S.ATTR_SHOWER_UNITS] = str(shower_units)
        f.attrs[S.ATTR_PRODUCER] = producer_json
        f.attrs[S.ATTR_CREATED] = _utc_now()
        f.attrs[S.ATTR_N_EVENTS] = np.int64(0)

    # -- public API -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Final file name (exists only after a successful :meth:`close`)."""
        return self._path

    @property
    def kind(self) -> ShapeKind:
        """``"image"``, ``"voxels"`` or ``"points"`` (from the geometry)."""
        return self._kind

    @property
    def n_written(self) -> int:
        """Events appended so far."""
        return self._n

    @property
    def shower_shape(self) -> tuple[int, ...]:
        """Shape of one shower (``(4,)``, one point, for point clouds)."""
        return self._shape

    @property
    def condition_columns(self) -> tuple[str, ...]:
        """Names of the condition columns."""
        return self._columns

    def append(self, showers: ArrayLike, conditions: ArrayLike, pdg: ArrayLike,
               condition_id: ArrayLike | None = None, counts: ArrayLike | None = None,
               extra: Mapping[str, ArrayLike] | None = None) -> None:
        """Validate and append a batch of ``n`` events.

        Args:
            showers: ``(n, *shower_shape)``, finite, ``>= 0`` (integral if stored as integers);
                for point clouds ``(P, 4)`` points ``(x, y, z, E)`` in mm and MeV, finite,
                ``E >= 0``, the ``n`` showers one after the other.
            conditions: ``(n, k)`` finite values, in the units given at construction.
            pdg: ``(n,)`` integral PDG codes.
            condition_id: ``(n,)`` integer group ids; ``None`` gives each event a new id.
            counts: ``(n,)`` points per shower (0 allowed): required for point clouds,
                refused otherwise.
            extra: ``(n, *row shape)`` rows of every auxiliary dataset declared at
                construction, of a dtype that casts to the declared one without loss.

        Raises:
            ShowerSetError: naming the bad field; nothing is written.
        """
        if self._closed:
            raise ShowerSetError(f"{self._path}: writer is closed", path=self._path)
        batch = self._validate(showers, conditions, pdg, condition_id, counts)
        n = len(batch)
        extras = self._validate_extra(extra or {}, n)
        if n == 0:
            return
        stop = self._n + n
        try:
            for name, values in ((S.CONDITIONS, batch.conditions), (S.PDG, batch.pdg),
                                 (S.CONDITION_ID, batch.condition_id)):
                self._put(name, self._n, values)
            if batch.counts is not None:
                self._put(S.POINTS, self._n_points, batch.showers)
                ends = self._n_points + np.cumsum(batch.counts, dtype=np.int64)
                self._put(S.OFFSETS, self._n + 1, ends)
                self._n_points = int(ends[-1])
            else:
                self._put(S.SHOWERS, self._n, batch.showers)
            for name, values in extras.items():
                self._put(name, self._n, values)
        except BaseException:  # an I/O failure leaves datasets of unequal length: give up
            self.abort()
            raise
        self._n = stop
        self._next_id = max(self._next_id, int(batch.condition_id.max()) + 1)

    def _validate_extra(self, extra: Mapping[str, ArrayLike], n: int) -> dict[str, np.ndarray]:
        """The rows of the auxiliary datasets, checked against their declaration."""
        if set(extra) != set(self._extra):
            raise ShowerSetError.bad_field(self._path, "extra", f"rows for exactly "
                                           f"{sorted(self._extra)}", str(sorted(extra)))
        out = {}
        for name, (tail, dtype) in self._extra.items():
            arr = np.asarray(extra[name])
            if arr.shape != (n, *tail):
                raise ShowerSetError.bad_field(self._path, name, f"shape {(n, *tail)}",
                                               f"shape {arr.shape}")
            if not np.can_cast(arr.dtype, dtype, casting="safe"):
                raise ShowerSetError.bad_field(self._path, name, f"a dtype that casts to "
                                               f"{dtype} without loss", str(arr.dtype))
            out[name] = arr.astype(dtype, copy=False)
        return out

    def _put(self, name: str, start: int, values: np.ndarray) -> None:
        ds = self._datasets[name]
        stop = start + values.shape[0]
        ds.resize(stop, axis=0)
        ds[start:stop] = values

    def _validate(self, showers: ArrayLike, conditions: ArrayLike, pdg: ArrayLike,
                  condition_id: ArrayLike | None, counts: ArrayLike | None) -> ShowerBatch:
        p, off = self._path, self._n
        n_per: NDArray[np.int64] | None = None
        if self._kind == "points":
            if counts is None:
                raise ShowerSetError.bad_field(p, "counts", "points per shower (n,) for a "
                                               "point-cloud file", "none given")
            sh, n_per = validate_points(showers, counts, path=p, offset=off)
            n = n_per.shape[0]
        else:
            if counts is not None:
                raise ShowerSetError.bad_field(p, "counts", f"none for a {self._kind} file "
                                               "(counts are for point clouds)", "counts given")
            sh = validate_showers(showers, self._shape, self._dtype, path=p, offset=off)
            n = sh.shape[0]
        cond = np.asarray(conditions)
        if cond.ndim >= 1 and cond.shape[0] != n:
            raise ShowerSetError.bad_field(p, S.CONDITIONS, f"{n} rows (as many as showers)",
                                           f"{cond.shape[0]}")
        cond = validate_conditions(cond, len(self._columns), path=p, offset=off)
        codes = validate_pdg(pdg, n, path=p, offset=off)
        if condition_id is None:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            ids = np.asarray(condition_id)
            if ids.shape != (n,):
                raise ShowerSetError.bad_field(p, S.CONDITION_ID, f"shape ({n},)",
                                               f"shape {ids.shape}")
            ids = _cast_integral(ids, np.dtype(np.int64), p, S.CONDITION_ID, off)
        # The writer never makes a file that the reader's content check would refuse.
        check = ContentCheck(p, self)
        check.pdg(codes, off)
        check.condition_id(ids, off)
        return ShowerBatch(sh, cond, codes, ids, n_per)

    def close(self) -> Path:
        """Finish the file and rename it to its final name. Returns the final path."""
        if self._aborted:
            raise ShowerSetError(f"{self._path}: writer was aborted; nothing was written",
                                 path=self._path)
        if self._closed:
            return self._path
        try:
            self._file.attrs[S.ATTR_N_EVENTS] = np.int64(self._n)
            self._file.flush()
            self._file.close()
            seal(self._tmp)
            self._check_target()
            os.replace(self._tmp, self._path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._finalizer.detach()
        return self._path

    def abort(self) -> None:
        """Discard everything written; no file appears under the final name."""
        self._closed = True
        self._aborted = True
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"ShowerSetWriter({str(self._path)!r}, n_written={self._n}, {state})"


def write_showerset(
    path: PathLike,
    showers: ArrayLike,
    conditions: ArrayLike,
    pdg: ArrayLike,
    *,
    condition_id: ArrayLike | None = None,
    counts: ArrayLike | None = None,
    detector: str,
    geometry: Mapping[str, Any] | Geometry,
    producer: Mapping[str, Any],
    condition_columns: Sequence[str] = S.ZDC_CONDITION_COLUMNS,
    condition_units: Sequence[str] = S.ZDC_CONDITION_UNITS,
    shower_dtype: DTypeLike | None = None,
    shower_units: str | None = None,
    chunk_events: int | None = None,
    chunk_points: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write in-memory arrays as one ShowerSet file (atomically) and return its path.

    ``showers`` is ``(n, *shower_shape)`` for images and voxels, ``(P, 4)`` points with
    ``counts`` ``(n,)`` for point clouds (the geometry's ``kind`` decides). ``shower_dtype``
    defaults to int32 for integer image or voxel input (photon counts), float32 otherwise.
    Condition columns default to the ZDC ones (``E, vx, vy, vz, px, py, pz, mass, charge`` in
    GeV, m, m, m, GeV, GeV, GeV, MeV, e); a calorimeter gun passes
    :func:`calogen.particles.gun_conditions`.
    """
    sh = np.asarray(showers)
    if sh.ndim < 2:
        raise ShowerSetError.bad_field(path, S.SHOWERS, "shape (n, *shower_shape)",
                                       f"shape {sh.shape}")
    kind = _kind_of(_as_dict(geometry, path, S.ATTR_GEOMETRY), path, S.ATTR_GEOMETRY)
    if shower_dtype is None:
        shower_dtype = np.int32 if sh.dtype.kind in "biu" and kind != "points" else np.float32
    with ShowerSetWriter(path, shower_shape=tuple(sh.shape[1:]), detector=detector,
                         geometry=geometry, condition_columns=condition_columns,
                         condition_units=condition_units, producer=producer,
                         shower_dtype=shower_dtype, shower_units=shower_units,
                         chunk_events=chunk_events, chunk_points=chunk_points,
                         overwrite=overwrite) as writer:
        writer.append(sh, conditions, pdg, condition_id, counts)
    return writer.path


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


MAX_INFLATION = 1100
"""Upper bound on uncompressed / stored bytes of a dataset (deflate cannot exceed ~1032)."""

MIN_SIZE_ALLOWANCE = 64 * 1024 * 1024
"""Logical dataset bytes allowed whatever the file size (fill values of unwritten chunks)."""


def _as_str(value: object) -> str | None:
    """A string attribute value (``str``, UTF-8 ``bytes`` or a 0-d array of them), else None."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _describe(value: object) -> str:
    """Short description of an unexpected attribute value for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, bytes):
        return f"bytes that are not UTF-8 ({value[:40]!r})"
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


@contextmanager
def _hdf5_errors(path: Path, field: str) -> Iterator[None]:
    """Turn any exception but ShowerSetError raised by h5py/HDF5 into a ShowerSetError.

    h5py answers corrupt metadata with OSError, RuntimeError, KeyError, ValueError, TypeError
    and others depending on where the bytes are bad; callers only ever see ShowerSetError.
    """
    try:
        yield
    except ShowerSetError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise ShowerSetError.bad_field(
            path, field, "readable HDF5 data", f"{type(exc).__name__}: {exc} (file truncated or "
            "corrupt?)") from None


@contextmanager
def _progress_bar(enabled: bool, total: int, label: str) -> Iterator[Any]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when ``enabled``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class ShowerSet:
    """Read a ShowerSet file in batches, by slice or by index, without loading it whole.

    The header is validated on open (schema, version, datasets, lengths, dtypes, columns);
    :meth:`validate_content` scans the values. Use as a context manager or call :meth:`close`.

    Args:
        path: the ``.h5`` file.

    Raises:
        ShowerSetError: missing, unreadable, truncated or corrupt file, or a bad header.
    """

    def __init__(self, path: PathLike) -> None:
        self._path = Path(path)
        self._file = self._open_file()
        self._offsets: NDArray[np.int64] | None = None
        try:
            self._meta = self._read_meta()
        except BaseException:
            self._file.close()
            raise

    @classmethod
    def open(cls, path: PathLike) -> ShowerSet:
        """Open and validate ``path`` (same as ``ShowerSet(path)``)."""
        return cls(path)

    # -- header validation ------------------------------------------------------------------

    def _open_file(self) -> h5py.File:
        p = self._path
        if not p.exists():
            raise ShowerSetError(f"{p}: file not found (expected a ShowerSet .h5 file)", path=p)
        if not p.is_file():
            raise ShowerSetError(f"{p}: not a regular file (expected a ShowerSet .h5 file)",
                                 path=p)
        ensure_openable(p)
        try:
            return h5py.File(p, "r", rdcc_nbytes=S.READ_CACHE_BYTES, rdcc_nslots=10007)
        except Exception as exc:  # noqa: BLE001 - h5py raises several types on corrupt files
            raise ShowerSetError(
                f"{p}: not a readable HDF5 file (truncated, corrupt or another format): "
                f"{exc}", path=p) from None

    def _fail(self, name: str, expected: str, found: str) -> ShowerSetError:
        return ShowerSetError.bad_field(self._path, name, expected, found)

    def _raw_attr(self, obj: h5py.HLObject, name: str, label: str) -> Any:
        with _hdf5_errors(self._path, label):
            if name not in obj.attrs:
                raise self._fail(label, "present", "missing")
            return obj.attrs[name]

    def _attr(self, name: str) -> Any:
        return self._raw_attr(self._file, name, f"attribute {name}")

    def _str_attr(self, name: str) -> str:
        value = self._attr(name)
        text = _as_str(value)
        if text is None:
            raise self._fail(f"attribute {name}", "a UTF-8 string", _describe(value))
        return text

    def _int_attr(self, name: str) -> int | None:
        """An integer scalar attribute, or None when it is of another type or shape."""
        value = self._attr(name)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            return int(value)
        return None

    def _json_attr(self, name: str) -> dict[str, Any]:
        text = self._str_attr(name)
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise self._fail(f"attribute {name}", "a JSON object", f"invalid JSON ({exc})"
                             ) from None
        if not isinstance(value, dict):
            raise self._fail(f"attribute {name}", "a JSON object", type(value).__name__)
        return value

    def _dataset(self, name: str, ndim_min: int, kinds: str, kind_text: str) -> h5py.Dataset:
        label = f"dataset {name}"
        with _hdf5_errors(self._path, label):
            obj = self._file.get(name)
            if obj is None:
                raise self._fail(label, "present", "missing")
            if not isinstance(obj, h5py.Dataset):
                raise self._fail(label, "a dataset", type(obj).__name__)
            if obj.ndim < ndim_min:
                raise self._fail(label, f"at least {ndim_min} dimension(s)",
                                 f"shape {obj.shape}")
            if obj.dtype.kind not in kinds or obj.dtype.itemsize not in (1, 2, 4, 8):
                raise self._fail(label, kind_text, f"dtype {obj.dtype}")
            if obj.chunks is not None and (len(obj.chunks) != obj.ndim or obj.chunks[0] < 1):
                raise self._fail(label, "chunks along the event axis", f"chunks {obj.chunks}")
            self._check_size(obj, label)
        return obj

    def _check_size(self, ds: h5py.Dataset, label: str) -> None:
        """Refuse a header whose shape promises far more data than the file can hold."""
        logical = ds.dtype.itemsize
        for dim in ds.shape:
            logical *= int(dim)
        limit = max(MIN_SIZE_ALLOWANCE, MAX_INFLATION * self._path.stat().st_size)
        if logical > limit:
            raise self._fail(label, f"at most {limit} bytes of data for a file of "
                             f"{self._path.stat().st_size} bytes",
                             f"shape {ds.shape} ({logical} bytes)")

    def _string_list_attr(self, ds: h5py.Dataset, ds_name: str, name: str, k: int
                          ) -> tuple[str, ...]:
        label = f"{ds_name}.{name}"
        expected = f"{k} entries (UTF-8 names, one per conditions column)"
        value = self._raw_attr(ds, name, label)
        if isinstance(value, np.ndarray) and value.ndim > 1:
            raise self._fail(label, expected, _describe(value))
        items = list(np.atleast_1d(value)) if isinstance(value, np.ndarray | list | tuple | str
                                                          | bytes) else [value]
        values = tuple(_as_str(v) for v in items)
        if len(values) != k:
            raise self._fail(label, expected, f"{len(values)} entries: {list(values)[:20]}")
        for v, raw in zip(values, items, strict=True):
            if v is None:
                raise self._fail(label, expected, f"an entry that is {_describe(raw)}")
        return tuple(v for v in values if v is not None)

    def _read_meta(self) -> ShowerSetMeta:
        schema_name = self._str_attr(S.ATTR_SCHEMA)
        if schema_name != S.SCHEMA_NAME:
            raise self._fail(f"attribute {S.ATTR_SCHEMA}", repr(S.SCHEMA_NAME), repr(schema_name))
        version = self._int_attr(S.ATTR_SCHEMA_VERSION)
        if version is None or version not in S.SUPPORTED_SCHEMA_VERSIONS:
            raise self._fail(f"attribute {S.ATTR_SCHEMA_VERSION}",
                             f"one of the supported versions {list(S.SUPPORTED_SCHEMA_VERSIONS)}"
                             " (a newer calogen may read it)",
                             str(version) if version is not None
                             else _describe(self._attr(S.ATTR_SCHEMA_VERSION)))
        geometry = self._json_attr(S.ATTR_GEOMETRY)
        kind = _kind_of(geometry, self._path, f"attribute {S.ATTR_GEOMETRY}")
        if version < 2 and kind != "image":
            raise self._fail(f"attribute {S.ATTR_GEOMETRY}.kind", "'image' (schema version 1 "
                             "holds images only)", repr(kind))
        conditions = self._dataset(S.CONDITIONS, 2, "f", "a float dtype")
        pdg = self._dataset(S.PDG, 1, "iu", "an integer dtype")
        ids = self._dataset(S.CONDITION_ID, 1, "iu", "an integer dtype")
        if kind == "points":
            n = conditions.shape[0]
            showers = self._points_layout(n)
            first = "conditions"
        else:
            showers = self._dataset(S.SHOWERS, 2, "iuf", "an integer or float dtype")
            n = showers.shape[0]
            first = "showers"
            if kind == "voxels":
                n_voxels = geometry_from_dict(geometry).shower_shape[0]
                if showers.shape[1:] != (n_voxels,):
                    raise self._fail(f"dataset {S.SHOWERS}", f"shape (N, {n_voxels}) (the "
                                     f"voxels of the geometry's binning)",
                                     f"shape {showers.shape}")
        for name, ds in ((S.CONDITIONS, conditions), (S.PDG, pdg), (S.CONDITION_ID, ids)):
            if ds.shape[0] != n:
                raise self._fail(f"dataset {name}", f"{n} events (as many as {first})",
                                 f"{ds.shape[0]}")
        for name, ds in ((S.PDG, pdg), (S.CONDITION_ID, ids)):
            if ds.ndim != 1:
                raise self._fail(f"dataset {name}", "shape (N,)", f"shape {ds.shape}")
        if conditions.ndim != 2:
            raise self._fail("dataset conditions", "shape (N, k)", f"shape {conditions.shape}")
        k = conditions.shape[1]
        n_events = self._int_attr(S.ATTR_N_EVENTS)
        if n_events != n:
            raise self._fail(f"attribute {S.ATTR_N_EVENTS}", f"{n} (the length of {first})",
                             _describe(self._attr(S.ATTR_N_EVENTS)))
        if kind == "points":
            self._offsets = self._read_offsets(n, showers.shape[0])
        return ShowerSetMeta(
            detector=self._str_attr(S.ATTR_DETECTOR),
            geometry=geometry,
            shower_shape=tuple(int(d) for d in showers.shape[1:]),
            shower_dtype=showers.dtype,
            shower_units=self._str_attr(S.ATTR_SHOWER_UNITS),
            condition_columns=self._string_list_attr(conditions, S.CONDITIONS, S.ATTR_COLUMNS,
                                                     k),
            condition_units=self._string_list_attr(conditions, S.CONDITIONS, S.ATTR_UNITS, k),
            producer=self._json_attr(S.ATTR_PRODUCER),
            created=self._str_attr(S.ATTR_CREATED),
            schema_version=version,
            n_events=n,
            kind=kind,
            n_points=int(showers.shape[0]) if kind == "points" else 0,
        )

    def _points_layout(self, n: int) -> h5py.Dataset:
        """Check the datasets of a point-cloud file; return ``points``."""
        with _hdf5_errors(self._path, f"dataset {S.SHOWERS}"):
            if S.SHOWERS in self._file:
                raise self._fail(f"dataset {S.SHOWERS}", "absent in a point-cloud file (points "
                                 "and offsets hold the showers)", "present")
        points = self._dataset(S.POINTS, 2, "f", "a float dtype")
        width = len(POINT_FEATURES)
        if points.ndim != 2 or points.shape[1] != width:
            raise self._fail(f"dataset {S.POINTS}", f"shape (P, {width}) "
                             f"({', '.join(POINT_FEATURES)})", f"shape {points.shape}")
        for name, want in ((S.ATTR_COLUMNS, POINT_FEATURES), (S.ATTR_UNITS, POINT_UNITS)):
            label = f"{S.POINTS}.{name}"
            found = self._string_list_attr(points, S.POINTS, name, width)
            if found != want:
                raise self._fail(label, str(list(want)), str(list(found)))
        offsets = self._dataset(S.OFFSETS, 1, "iu", "an integer dtype")
        if offsets.ndim != 1 or offsets.shape[0] != n + 1:
            raise self._fail(f"dataset {S.OFFSETS}", f"shape ({n + 1},) (one more than the "
                             f"{n} events)", f"shape {offsets.shape}")
        return points

    def _read_offsets(self, n: int, n_points: int) -> NDArray[np.int64]:
        """The ``(N + 1,)`` offsets, checked: start at 0, non-decreasing, end at ``P``."""
        label = f"dataset {S.OFFSETS}"
        raw = self._get(S.OFFSETS, ())
        if raw.dtype.kind == "u" and raw.size and raw.max() > np.iinfo(np.int64).max:
            raise self._fail(label, f"values in [0, {n_points}]", f"{int(raw.max())}")
        offsets = raw.astype(np.int64)
        if offsets[0] != 0:
            raise self._fail(label, "offsets[0] = 0", f"{int(offsets[0])}")
        steps = np.diff(offsets)
        if steps.size and steps.min() < 0:
            row = int(np.argmax(steps < 0))
            raise self._fail(label, "non-decreasing offsets (points per shower >= 0)",
                             f"offsets[{row + 1}] = {int(offsets[row + 1])} < offsets[{row}] = "
                             f"{int(offsets[row])}")
        if offsets[-1] != n_points:
            raise self._fail(label, f"offsets[{n}] = {n_points} (the rows of dataset "
                             f"{S.POINTS})", f"{int(offsets[-1])}")
        return offsets

    # -- properties -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    @property
    def meta(self) -> ShowerSetMeta:
        """The validated header."""
        return self._meta

    @property
    def shower_shape(self) -> tuple[int, ...]:
        """Shape of one shower, e.g. ``(44, 44)``."""
        return self._meta.shower_shape

    def __len__(self) -> int:
        return self._meta.n_events

    # -- reading ----------------------------------------------------------------------------

    def _get(self, name: str, selection: Any) -> np.ndarray:
        """Read ``dataset[selection]``, turning HDF5 errors into ShowerSetError."""
        try:
            return self._file[name][selection]
        except Exception as exc:  # noqa: BLE001 - h5py raises several types on corrupt chunks
            raise ShowerSetError(f"{self._path}: field 'dataset {name}': read failed (file "
                                 f"truncated or corrupt?): {type(exc).__name__}: {exc}",
                                 path=self._path, field=name) from None

    def read(self, start: int = 0, stop: int | None = None) -> ShowerBatch:
        """Events ``start:stop`` (Python slice semantics, step 1)."""
        lo, hi, _ = slice(start, stop).indices(len(self))
        hi = max(lo, hi)
        sel = slice(lo, hi)
        if self._offsets is None:
            return ShowerBatch(*(self._get(name, sel) for name in S.DATASETS))
        o = self._offsets
        points = self._get(S.POINTS, slice(int(o[lo]), int(o[hi])))
        cond, pdg, ids = (self._get(name, sel) for name in S.EVENT_DATASETS)
        return ShowerBatch(points, cond, pdg, ids, np.diff(o[lo:hi + 1]))

    def _normalise_indices(self, indices: ArrayLike) -> NDArray[np.int64]:
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.empty(0, dtype=np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise IndexError(f"{self._path}: indices must be a 1-D integer array, "
                             f"got shape {idx.shape} dtype {idx.dtype}")
        n = len(self)
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        if idx.min() < 0 or idx.max() >= n:
            raise IndexError(f"{self._path}: index out of range for {n} events")
        return idx

    def _read_sorted(self, name: str, rows: NDArray[np.int64]) -> np.ndarray:
        """Rows ``rows`` (sorted, unique) of one dataset, decompressing each chunk once."""
        with _hdf5_errors(self._path, f"dataset {name}"):
            ds = self._file[name]
            out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
            chunk = ds.chunks[0] if ds.chunks else max(1, len(self))
        if rows.size == 0:
            return out
        cuts = np.flatnonzero(np.diff(rows // chunk)) + 1
        start = 0
        for group in np.split(rows, cuts):
            lo, hi = int(group[0]), int(group[-1]) + 1
            block = self._get(name, slice(lo, hi))
            out[start:start + group.size] = block if hi - lo == group.size else block[group - lo]
            start += group.size
        return out

    def _read_point_rows(self, rows: NDArray[np.int64]
                         ) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
        """Points and counts of showers ``rows`` (sorted, unique), decompressing each chunk of
        ``points`` once: showers whose points start in the chunk where the previous ones end
        are read as one slice."""
        assert self._offsets is not None
        starts, stops = self._offsets[rows], self._offsets[rows + 1]
        counts = stops - starts
        with _hdf5_errors(self._path, f"dataset {S.POINTS}"):
            ds = self._file[S.POINTS]
            chunk = ds.chunks[0] if ds.chunks else max(1, int(self._offsets[-1]))
            out = np.empty((int(counts.sum()), ds.shape[1]), dtype=ds.dtype)
        if rows.size == 0 or out.shape[0] == 0:
            return out, counts
        keep = counts > 0
        s_nz, e_nz, c_nz = starts[keep], stops[keep], counts[keep]
        # a new group starts where a shower's first chunk is past the previous shower's last
        cuts = np.flatnonzero(s_nz[1:] // chunk > (e_nz[:-1] - 1) // chunk) + 1
        pos = 0
        for lo_i, hi_i in zip(np.r_[0, cuts], np.r_[cuts, s_nz.size], strict=True):
            lo, hi = int(s_nz[lo_i]), int(e_nz[hi_i - 1])
            block = self._get(S.POINTS, slice(lo, hi))
            c = c_nz[lo_i:hi_i]
            n = int(c.sum())
            if hi - lo == n:
                out[pos:pos + n] = block
            else:
                first = np.repeat(s_nz[lo_i:hi_i] - lo - (np.cumsum(c) - c), c)
                out[pos:pos + n] = block[first + np.arange(n)]
            pos += n
        return out, counts

    def _take_normalised(self, idx: NDArray[np.int64]) -> ShowerBatch:
        uniq, inverse = np.unique(idx, return_inverse=True)
        inverse = inverse.reshape(-1)
        if self._offsets is None:
            return ShowerBatch(*(self._read_sorted(name, uniq)[inverse] for name in S.DATASETS))
        points, counts = self._read_point_rows(uniq)
        ends = np.cumsum(counts)
        want = counts[inverse]
        gather = np.repeat(ends[inverse] - want - (np.cumsum(want) - want), want)
        gather += np.arange(gather.size, dtype=np.int64)
        cond, pdg, ids = (self._read_sorted(name, uniq)[inverse] for name in S.EVENT_DATASETS)
        return ShowerBatch(points[gather], cond, pdg, ids, want)

    def take(self, indices: ArrayLike) -> ShowerBatch:
        """Events at ``indices``, in that order (duplicates and negative indices allowed).

        Reads each touched chunk once, in file order, then restores the requested order.
        """
        return self._take_normalised(self._normalise_indices(indices))

    def iter_batches(self, batch_size: int = 4096, indices: ArrayLike | None = None,
                     progress: bool = False) -> Iterator[ShowerBatch]:
        """Stream the file (or the rows ``indices``, in that order) in batches.

        Args:
            batch_size: events per batch (the last one may be shorter).
            indices: rows to read; ``None`` reads every event in file order.
            progress: draw a progress bar on stderr.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        idx = None if indices is None else self._normalise_indices(indices)
        total = len(self) if idx is None else idx.size
        with _progress_bar(progress, total, f"reading {self._path.name}") as advance:
            for start in range(0, total, batch_size):
                stop = min(start + batch_size, total)
                batch = (self.read(start, stop) if idx is None
                         else self._take_normalised(idx[start:stop]))
                yield batch
                advance(len(batch))

    def has_extra(self, name: str) -> bool:
        """Whether the file holds the auxiliary per-event dataset ``name`` (see
        :class:`ShowerSetWriter`'s ``extra_datasets``)."""
        with _hdf5_errors(self._path, f"dataset {name}"):
            return isinstance(self._file.get(name), h5py.Dataset)

    def read_extra(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the auxiliary per-event dataset ``name``, as stored.

        Raises:
            ShowerSetError: the dataset is missing, not numeric or not one row per event.
        """
        if name.split("/")[0] in set(S.DATASETS) | {S.POINTS, S.OFFSETS}:
            raise ValueError(f"{name!r} is a schema dataset, not an auxiliary one")
        ds = self._dataset(name, 1, "biuf", "a numeric dtype")
        if ds.shape[0] != len(self):
            raise self._fail(f"dataset {name}", f"{len(self)} rows (one per event)",
                             f"shape {ds.shape}")
        lo, hi, _ = slice(start, stop).indices(len(self))
        return self._get(name, slice(lo, max(lo, hi)))

    def conditions(self) -> NDArray[np.float32]:
        """All conditions, ``(N, k)`` (columns and units in :attr:`meta`)."""
        return self._get(S.CONDITIONS, ())

    def pdg(self) -> NDArray[np.int32]:
        """All PDG codes, ``(N,)``."""
        return self._get(S.PDG, ())

    def condition_ids(self) -> NDArray[np.int64]:
        """All condition group ids, ``(N,)``."""
        return self._get(S.CONDITION_ID, ())

    @property
    def kind(self) -> ShapeKind:
        """``"image"``, ``"voxels"`` or ``"points"``."""
        return self._meta.kind

    def offsets(self) -> NDArray[np.int64]:
        """``(N + 1,)`` offsets of the showers in ``points`` (point clouds only)."""
        if self._offsets is None:
            raise ValueError(f"{self._path}: offsets exist for point clouds only; this file "
                             f"holds {self._meta.kind}")
        return self._offsets.copy()

    def counts(self) -> NDArray[np.int64]:
        """``(N,)`` points per shower (point clouds only)."""
        return np.diff(self.offsets())

    def validate_content(self, batch_size: int = 16384, progress: bool = False, *,
                         counts: bool = False, role: str | None = None) -> None:
        """Scan every value in batches of ``batch_size`` events by the rules of
        :class:`~calogen.data.content.ContentCheck` (showers finite and ``>= 0``, integral when
        ``counts``; conditions finite; PDG codes non-zero; group ids ``>= 0``); ``role`` (how
        the file was given, e.g. ``"--reference"``) is appended to errors.

        Raises:
            ShowerSetError: naming the dataset and the first bad row index.
        """
        check = ContentCheck(self._path, self._meta, counts=counts, role=role)
        offset = 0
        for batch in self.iter_batches(batch_size, progress=progress):
            check.batch(batch, offset)
            offset += len(batch)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self._meta
        shape = (f"n_points={m.n_points}" if m.kind == "points"
                 else f"shower_shape={m.shower_shape}")
        return (f"ShowerSet({str(self._path)!r}, detector={m.detector!r}, kind={m.kind!r}, "
                f"n_events={m.n_events}, {shape})")


def e_inc_column(ss: ShowerSet) -> int:
    """Index of the incident-energy condition column ``E_inc`` of ``ss``, checked to be in
    GeV; a :class:`ShowerSetError` naming the file and the field otherwise."""
    meta = ss.meta
    if "E_inc" not in meta.condition_columns:
        raise ShowerSetError.bad_field(ss.path, f"{S.CONDITIONS}.{S.ATTR_COLUMNS}",
                                       "a column 'E_inc' (incident energy, GeV)",
                                       str(list(meta.condition_columns)))
    col = meta.condition_columns.index("E_inc")
    if meta.condition_units[col] != "GeV":
        raise ShowerSetError.bad_field(ss.path, f"{S.CONDITIONS}.{S.ATTR_UNITS}",
                                       "'GeV' for column 'E_inc'",
                                       repr(meta.condition_units[col]))
    return col
