"""The one exception type of the data layer.

Every message names the file, the field (dataset, attribute or column) and what was expected
versus what was found, so that a user can fix the input without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import Any


class ShowerSetError(ValueError):
    """Bad or unreadable shower data (wrong shape, NaN, negative counts, corrupt file, ...).

    Attributes:
        path: the file concerned (``None`` when the data never came from a file).
        field: the dataset, attribute or column concerned (``None`` for whole-file problems).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.field = field

    @classmethod
    def bad_field(
        cls,
        path: str | PathLike[str] | None,
        field: str,
        expected: str,
        found: str,
    ) -> ShowerSetError:
        """Build the standard message ``"<path>: field '<field>': expected ..., found ..."``."""
        where = "<in memory>" if path is None else str(path)
        return cls(f"{where}: field '{field}': expected {expected}, found {found}",
                   path=path, field=field)


@contextmanager
def reading_hdf5(path: str | PathLike[str], field: str) -> Iterator[None]:
    """Within the block, turn h5py/HDF5 failures into a :class:`ShowerSetError` naming the
    file and the dataset (a ShowerSetError passes through)."""
    try:
        yield
    except ShowerSetError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises several types on corrupt data
        raise ShowerSetError.bad_field(path, field, "readable HDF5 data",
                                       f"{type(exc).__name__}: {exc}") from None


def numeric_dataset(f: Any, path: str | PathLike[str], name: str, layout: str,
                    dtype_note: str = "") -> Any:
    """The numeric dataset ``name`` of the open h5py file ``f``; a :class:`ShowerSetError`
    naming the file and the dataset if it is missing (``layout`` says what the file should
    hold), not a dataset, or not of an integer / float dtype (``dtype_note``: e.g. the unit)."""
    import h5py

    label = f"dataset {name}"
    with reading_hdf5(path, label):
        obj = f.get(name)
        if obj is None:
            raise ShowerSetError.bad_field(path, label, f"present ({layout})",
                                           f"missing (the file holds {sorted(f.keys())})")
        if not isinstance(obj, h5py.Dataset):
            raise ShowerSetError.bad_field(path, label, "a dataset", type(obj).__name__)
        if obj.dtype.kind not in "iuf" or obj.dtype.itemsize not in (1, 2, 4, 8):
            raise ShowerSetError.bad_field(path, label, f"a numeric dtype{dtype_note}",
                                           f"dtype {obj.dtype}")
    return obj
