"""Training logs: a CSV file (always) and TensorBoard (when ``torch.utils.tensorboard`` imports).

:class:`CSVLogger` appends one row per call and flushes, so a killed job keeps every row
written so far. The header is written once; when a later row brings new columns (e.g. the
first validation metric) the file is rewritten once with the wider header (atomically). On
resume, :meth:`CSVLogger.truncate_after` drops rows a killed run wrote after its last
checkpoint, so the log shows each step once.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calogen.atomic import atomic_path

log = logging.getLogger("calogen.train")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


class CSVLogger:
    """Append rows (dicts) to a CSV file.

    Args:
        path: the file; created with its parent directory if missing, appended to otherwise.
        first_columns: columns to put first (in this order) when the header is written.
    """

    def __init__(self, path: str | Path, first_columns: tuple[str, ...] = ("step",)) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._first = tuple(first_columns)
        self.columns: list[str] = self._read_header()

    def _read_header(self) -> list[str]:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return []
        with self.path.open(newline="") as f:
            return next(csv.reader(f), [])

    def _read_rows(self) -> list[dict[str, str]]:
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        self.columns = columns

    def log(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (missing columns stay empty; new columns widen the header)."""
        new = [k for k in row if k not in self.columns]
        if new:
            if not self.columns:
                columns = [c for c in self._first if c in row] + \
                          [k for k in row if k not in self._first]
                self._rewrite(columns, [])
            else:
                self._rewrite(self.columns + new, self._read_rows())
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(
                {k: _fmt(v) for k, v in row.items()})
            f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop rows whose ``step`` is greater than ``step`` (after a resume)."""
        if not self.columns or "step" not in self.columns:
            return
        rows = self._read_rows()
        kept = [r for r in rows if r.get("step", "") == "" or int(float(r["step"])) <= step]
        if len(kept) != len(rows):
            self._rewrite(self.columns, kept)


class TensorBoardWriter:
    """Scalars to TensorBoard when available; otherwise does nothing (says so once).

    Args:
        log_dir: the event-file directory.
        enabled: ``False`` turns it off without trying the import.
    """

    _told = False

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self._writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - missing tensorboard package raises ImportError
            if not TensorBoardWriter._told:
                log.info("tensorboard is not installed; logging to CSV only")
                TensorBoardWriter._told = True
            return
        self._writer = SummaryWriter(str(log_dir))

    @property
    def active(self) -> bool:
        return self._writer is not None

    def log(self, row: Mapping[str, Any], step: int) -> None:
        if self._writer is None:
            return
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
