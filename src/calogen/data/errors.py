"""The one exception type of the data layer.

Every message names the file, the field (dataset, attribute or column) and what was expected
versus what was found, so that a user can fix the input without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike


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
