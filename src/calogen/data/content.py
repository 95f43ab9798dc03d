"""The content rules of a ShowerSet, applied to blocks held in memory (no file access).

* ``showers`` (images, voxels): finite and ``>= 0``; integral when counts are expected;
* ``points`` (point clouds): every feature ``(x, y, z, E)`` finite, ``E >= 0``;
* ``conditions``: finite;
* ``pdg``: non-zero (0 is not a PDG Monte Carlo code; unknown species are allowed);
* ``condition_id``: ``>= 0``.

:class:`ContentCheck` raises a :class:`~calogen.data.errors.ShowerSetError` naming the file,
the field, the first bad row, the pixel, voxel, point or column and the value found. The reader
(:meth:`calogen.data.showerset.ShowerSet.validate_content`) and the writer apply it;
:mod:`calogen.data.validation` says when each command requires counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from calogen.data import schema as S
from calogen.data.errors import ShowerSetError
from calogen.geometry import POINT_FEATURES

PathLike = str | os.PathLike[str]


class ShowerHeader(Protocol):
    """What the checks need to know of a file: one shower's shape and the condition names."""

    @property
    def shower_shape(self) -> tuple[int, ...]: ...

    @property
    def condition_columns(self) -> tuple[str, ...]: ...


class ShowerBlock(Protocol):
    """A block of events (e.g. :class:`~calogen.data.showerset.ShowerBatch`)."""

    @property
    def showers(self) -> np.ndarray: ...

    @property
    def conditions(self) -> np.ndarray: ...

    @property
    def pdg(self) -> np.ndarray: ...

    @property
    def condition_id(self) -> np.ndarray: ...

    @property
    def counts(self) -> np.ndarray | None: ...


def _describe(value: object) -> str:
    x = float(value)  # type: ignore[arg-type]
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}" if not x.is_integer() else str(int(x))


def _first_bad(bad: NDArray[np.bool_]) -> tuple[int, int]:
    """(row, flat position within the row) of the first ``True`` of a ``(n, ...)`` mask."""
    flat = bad.reshape(bad.shape[0], -1)
    row = int(np.argmax(flat.any(axis=1)))
    return row, int(np.argmax(flat[row]))


class ContentCheck:
    """Checks the batches of one ShowerSet (see the module docstring for the rules).

    Args:
        path: the file, named in errors (``None``: data held in memory).
        meta: its header (shower shape, condition columns); ``None`` when only
            :meth:`points` is used.
        counts: float showers must be integral (photon counts).
        role: how the file was given (e.g. ``"--reference"``), appended to errors.
    """

    def __init__(self, path: PathLike | None, meta: ShowerHeader | None, *,
                 counts: bool = False, role: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.meta = meta
        self.counts = counts
        self.role = role

    def _error(self, field: str, expected: str, found: str) -> ShowerSetError:
        err = ShowerSetError.bad_field(self.path, field, expected, found)
        if self.role:
            err = ShowerSetError(f"{err} (given as {self.role})", path=self.path, field=field)
        return err

    def _pixel(self, flat: int) -> str:
        if self.meta is None:
            return f"position {flat}"
        shape = self.meta.shower_shape
        if getattr(self.meta, "kind", None) == "voxels":
            return f"voxel {flat}"
        pos = tuple(int(i) for i in np.unravel_index(flat, shape))
        return f"pixel {pos}" if len(shape) > 1 else f"position {pos[0]}"

    def showers(self, showers: np.ndarray, offset: int) -> None:
        """Raise on the first row (``offset`` + row in the block) with a bad shower value."""
        arr = np.asarray(showers)
        if arr.size == 0 or arr.dtype.kind in "ub":
            return
        lo = arr.min()  # NaN propagates: one pass finds NaN, -inf and negatives
        if arr.dtype.kind == "f":
            # With counts, the integrality pass also catches +inf (inf - rint(inf) is NaN).
            if not (lo >= 0 and (self._integral(arr) if self.counts
                                 else arr.max() <= np.finfo(arr.dtype).max)):
                self._bad_float(arr, offset)
                row, pix = _first_bad(arr != np.round(arr))
                raise self._error(S.SHOWERS, "integer photon counts (this command learns or "
                                  "scores counts)", f"{_describe(arr[row].flat[pix])} at row "
                                  f"{offset + row}, {self._pixel(pix)}")
        elif lo < 0:
            row, pix = _first_bad(arr < 0)
            what = "photon counts" if self.counts or getattr(self.meta, "kind",
                                                             "image") == "image" else "energies"
            raise self._error(S.SHOWERS, f"non-negative values ({what})",
                              f"{_describe(arr[row].flat[pix])} at row {offset + row}, "
                              f"{self._pixel(pix)}")

    @staticmethod
    def _integral(arr: np.ndarray) -> bool:
        """Whether every value is an integer, in cache-sized row blocks (about 1 MiB)."""
        step = max(1, (1 << 20) // max(1, arr[0].nbytes))
        buf = np.empty((min(step, arr.shape[0]), *arr.shape[1:]), dtype=arr.dtype)
        for s in range(0, arr.shape[0], step):
            block = arr[s:s + step]
            out = buf[:block.shape[0]]
            np.rint(block, out=out)
            with np.errstate(invalid="ignore"):  # inf - inf
                np.subtract(block, out, out=out)
            if out.any():
                return False
        return True

    def _bad_float(self, arr: np.ndarray, offset: int) -> None:
        """Raise on the first NaN, infinite or negative value, if any."""
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr < 0)
        if not bad.any():
            return
        row, pix = _first_bad(bad)
        value = arr[row].flat[pix]
        where = f"at row {offset + row}, {self._pixel(pix)}"
        if np.isfinite(value):
            raise self._error(S.SHOWERS, "non-negative values", f"{_describe(value)} {where}")
        raise self._error(S.SHOWERS, "finite values", f"{_describe(value)} {where}")

    def conditions(self, conditions: np.ndarray, offset: int) -> None:
        """Raise on the first row with a NaN or infinite condition, naming its column."""
        arr = np.asarray(conditions)
        if arr.size == 0 or arr.dtype.kind != "f" or np.isfinite(arr.sum(dtype=np.float64)):
            return
        bad = ~np.isfinite(arr)
        if not bad.any():  # the sum overflowed, the values are finite
            return
        row, col = _first_bad(bad)
        cols = self.meta.condition_columns if self.meta is not None else ()
        name = cols[col] if col < len(cols) else str(col)
        raise self._error(S.CONDITIONS, "finite values",
                          f"{_describe(arr[row, col])} at row {offset + row}, column {name!r}")

    def pdg(self, pdg: np.ndarray, offset: int) -> None:
        """Raise on the first PDG code 0."""
        arr = np.asarray(pdg)
        if arr.size and not arr.all():
            row = int(np.argmin(arr != 0))
            raise self._error(S.PDG, "non-zero PDG codes", f"0 at row {offset + row}")

    def condition_id(self, ids: np.ndarray, offset: int) -> None:
        """Raise on the first negative condition group id."""
        arr = np.asarray(ids)
        if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
            row = int(np.argmax(arr < 0))
            raise self._error(S.CONDITION_ID, "non-negative group ids",
                              f"{int(arr[row])} at row {offset + row}")

    def points(self, points: np.ndarray, counts: np.ndarray, offset: int) -> None:
        """Raise on the first point (of the showers ``offset`` + row, ``counts`` points each)
        with a NaN or infinite feature or a negative energy ``E``."""
        arr = np.asarray(points)
        if arr.size == 0:
            return
        energy = arr[:, 3]
        if arr.dtype.kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                if np.isfinite(arr.sum(dtype=np.float64)) and energy.min() >= 0:
                    return
                bad = ~np.isfinite(arr)
        elif energy.min() >= 0:
            return
        else:
            bad = np.zeros(arr.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            bad[:, 3] |= energy < 0
        if not bad.any():  # the sum overflowed, the values are finite
            return
        point = int(np.argmax(bad.any(axis=1)))
        feature = int(np.argmax(bad[point]))
        n = np.asarray(counts, dtype=np.int64)
        ends = np.cumsum(n)
        row = int(np.searchsorted(ends, point, side="right"))
        within = point - int(ends[row] - n[row])
        value = arr[point, feature]
        where = (f"{_describe(value)} at row {offset + row}, point {within}, "
                 f"feature {POINT_FEATURES[feature]!r}")
        if np.isfinite(value):
            raise self._error(S.POINTS, "non-negative energies E", where)
        raise self._error(S.POINTS, "finite values", where)

    def batch(self, batch: ShowerBlock, offset: int, *, showers: bool = True) -> None:
        """Check every field of a batch whose first row is row ``offset`` of the file."""
        if showers and batch.counts is not None:
            self.points(batch.showers, batch.counts, offset)
        elif showers:
            self.showers(batch.showers, offset)
        self.conditions(batch.conditions, offset)
        self.pdg(batch.pdg, offset)
        self.condition_id(batch.condition_id, offset)
