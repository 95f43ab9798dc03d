"""Content validation of ShowerSet files: one streaming pass, the first bad row named.

The header of a ShowerSet is checked when it is opened (:class:`~calogen.data.showerset.
ShowerSet`); this module scans the *values* of a file, batch by batch (memory bounded by one
batch of about :data:`BATCH_BYTES` of showers), by the rules of
:class:`~calogen.data.content.ContentCheck`.

When must showers be counts? Integer-dtype showers are counts by construction (only their
sign is checked). Float showers are legal and may be non-integral: a generative model's mean
readout, or an energy deposit. Integrality is therefore a requirement of the *consumer*, not
of the file: commands that learn or score photon counts pass ``counts=True`` (``train``, the
training file of ``baseline``, whose showers come back as int32 counts, and ``loglik``, whose
flows dequantise integer counts); every other command accepts non-integral float showers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from calogen.data import schema as S
from calogen.data.content import ContentCheck
from calogen.data.showerset import ShowerSet, ShowerSetMeta

PathLike = str | os.PathLike[str]

BATCH_BYTES = 32 * 1024 * 1024
"""Uncompressed shower bytes read per batch by :func:`validate_showerset` (4332 ZN events)."""

__all__ = ["BATCH_BYTES", "ContentCheck", "validate_particles", "validate_showerset"]


def batch_events(meta: ShowerSetMeta, batch_bytes: int = BATCH_BYTES) -> int:
    """Events per batch so that one batch of showers holds about ``batch_bytes`` (for point
    clouds: of the file's mean number of points per shower)."""
    row = int(np.prod(meta.shower_shape)) * meta.shower_dtype.itemsize
    if meta.kind == "points" and meta.n_events:
        row *= max(1, -(-meta.n_points // meta.n_events))
    return max(1, batch_bytes // max(1, row))


def validate_showerset(source: PathLike | ShowerSet, *, counts: bool = False,
                       showers: bool = True, min_events: int = 0, role: str | None = None,
                       batch_bytes: int = BATCH_BYTES, progress: bool = False) -> int:
    """Scan a ShowerSet's values in one streaming pass; return its number of events.

    Args:
        source: the file, or an open :class:`ShowerSet`.
        counts: float showers must be integral (see the module docstring).
        showers: scan the showers; ``False`` checks conditions, PDG codes and ids only (for a
            file used for its conditions; these are read whole: 36 bytes an event for ZDC).
        min_events: refuse a file with fewer events.
        role: how the file was given (e.g. ``"--reference"``), appended to errors.
        batch_bytes: shower bytes per batch read.
        progress: draw a progress bar on stderr.

    Raises:
        ShowerSetError: naming the file, the field and the first bad row.
    """
    if not isinstance(source, ShowerSet):
        with ShowerSet.open(source) as ss:
            return validate_showerset(ss, counts=counts, showers=showers,
                                      min_events=min_events, role=role,
                                      batch_bytes=batch_bytes, progress=progress)
    ss = source
    check = ContentCheck(ss.path, ss.meta, counts=counts, role=role)
    n = len(ss)
    if n < min_events:
        raise check._error(S.ATTR_N_EVENTS, f"at least {min_events} event(s)", f"{n}")
    if not showers:
        check.conditions(ss.conditions(), 0)
        check.pdg(ss.pdg(), 0)
        check.condition_id(ss.condition_ids(), 0)
        return n
    ss.validate_content(batch_events(ss.meta, batch_bytes), progress=progress, counts=counts,
                        role=role)
    return n


def validate_particles(conditions: np.ndarray, pdg: np.ndarray, *, path: PathLike,
                       columns: Sequence[str] = S.ZDC_CONDITION_COLUMNS,
                       role: str | None = None) -> None:
    """Check particles held in memory (e.g. read from an ALICE npz): finite conditions and
    non-zero PDG codes, with the same messages as :func:`validate_showerset`."""
    meta = ShowerSetMeta(detector="", geometry={}, shower_shape=(1,),
                         shower_dtype=np.dtype(np.int32), shower_units="",
                         condition_columns=tuple(columns), condition_units=())
    check = ContentCheck(path, meta, role=role)
    check.conditions(conditions, 0)
    check.pdg(pdg, 0)
