"""Import EDM4hep ROOT files (DD4hep/ddsim output, key4hep) into point-cloud ShowerSets.

The EDM4hep data model (github.com/key4hep/EDM4hep, ``edm4hep.yaml``) as written by podio's
ROOT backend: a TTree ``events`` with one entry per event and, for a ``SimCalorimeterHit``
collection ``NAME``, the split branches

* ``NAME.cellID`` (uint64), ``NAME.energy`` (float, GeV), ``NAME.position.x/y/z`` (float, mm),
* ``NAME.contributions_begin`` / ``NAME.contributions_end``: the hit's range in the one-to-many
  relation ``_NAME_contributions`` (podio ObjectIDs, ``.index`` / ``.collectionID``), which
  points into the ``CaloHitContribution`` collection ``NAMEContributions`` with ``.PDG``,
  ``.energy`` (GeV), ``.time`` (ns) and ``.stepPosition.x/y/z`` (mm);

and the ``MCParticle`` collection ``MCParticles`` with ``.PDG``, ``.generatorStatus``,
``.momentum.x/y/z`` (GeV) and ``.mass`` (GeV). Older podio files name the relation branch
``NAME#0``; files written from awkward records by uproot use ``_`` instead of ``.``: both are
accepted. When the relation branch is absent the contributions are taken in file order
(ddsim writes them so).

One point per hit at its cell position, or (``steps=True``) one point per contribution at its
step position: the Geant4-step clouds CaloClouds starts from (arXiv:2305.04847). The incident
energy ``E_inc`` (GeV) is that of the first ``MCParticles`` entry with ``generatorStatus == 1``,
``E = sqrt(|p|^2 + m^2)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen import __version__
from calogen.data.cells import outside_volume, resolve_volume
from calogen.data.errors import ShowerSetError
from calogen.data.showerset import ShowerSetWriter
from calogen.geometry.points import PointCloudVolume
from calogen.particles import gun_conditions

__all__ = ["BLOCK_EVENTS", "MC_PARTICLES", "TREE", "Imported", "import_edm4hep"]

PathLike = str | os.PathLike[str]

TREE = "events"
"""The podio event tree."""

MC_PARTICLES = "MCParticles"
"""The generator and simulated particles collection."""

MEV_PER_GEV = 1000.0

BLOCK_EVENTS = 256
"""Events read per block."""

GENERATOR_STATUS_FINAL = 1
"""``generatorStatus`` of the particles the generator hands to the simulation."""


@dataclass(frozen=True)
class Imported:
    """What :func:`import_edm4hep` wrote: the file, showers, points, and points outside the
    volume (kept, reported)."""

    path: Path
    n_showers: int
    n_points: int
    n_outside: int


def _uproot() -> Any:
    try:
        import uproot
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("reading EDM4hep ROOT files needs uproot: pip install uproot") from None
    return uproot


class _Tree:
    """The ``events`` tree of an EDM4hep file, its branch names, and reads that name the file
    and the branch in their errors."""

    def __init__(self, path: Path) -> None:
        uproot = _uproot()
        if not path.is_file():
            raise ShowerSetError(f"{path}: file not found (expected an EDM4hep ROOT file)",
                                 path=path)
        try:
            self.file = uproot.open(path)
        except Exception as exc:  # noqa: BLE001 - uproot raises several types on bad files
            raise ShowerSetError(f"{path}: not a readable ROOT file ({type(exc).__name__}: "
                                 f"{exc})", path=path) from None
        try:
            self.tree = self.file[TREE]
            self.branches = dict(self.tree.items(recursive=True, full_paths=False))
            self.names = set(self.branches)
        except Exception as exc:  # noqa: BLE001
            self.file.close()
            raise ShowerSetError.bad_field(path, f"tree {TREE}", "the podio event tree",
                                           f"{type(exc).__name__}: {exc}") from None
        self.path = path
        self.n = int(self.tree.num_entries)

    def collections(self) -> list[str]:
        """Collections present (the names before the first ``.``/``_`` of their members)."""
        out = set()
        for name in self.names:
            if name.startswith("_") or (name.startswith("n") and name[1:] in self.names):
                continue  # relations, and the counters of uproot-written jagged branches
            head = name.split(".")[0]
            if head != name:
                out.add(head)
        return sorted(out)

    def find(self, collection: str, member: str, required: bool = True) -> str | None:
        """The branch of ``collection.member`` (``member`` dotted, e.g. ``position.x``),
        accepting the podio ``.`` and uproot's ``_`` separators."""
        candidates = [f"{collection}.{member}", f"{collection}_{member}",
                      f"{collection}_{member.replace('.', '_')}"]
        for name in candidates:
            if name in self.names:
                return name
        if required:
            raise ShowerSetError.bad_field(
                self.path, f"branch {candidates[0]}", f"present (tree {TREE!r}; collections "
                f"present: {', '.join(self.collections()) or 'none'})", "missing")
        return None

    def read(self, branch: str, lo: int, hi: int) -> Any:
        try:
            return self.branches[branch].array(entry_start=lo, entry_stop=hi, library="ak")
        except Exception as exc:  # noqa: BLE001
            raise ShowerSetError.bad_field(self.path, f"branch {branch}", "readable data",
                                           f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.file.close()


def _flat(tree: _Tree, branch: str, lo: int, hi: int
          ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Flattened values and per-event counts of a jagged branch."""
    import awkward as ak

    arr = tree.read(branch, lo, hi)
    try:
        counts = np.asarray(ak.num(arr, axis=1), dtype=np.int64)
        values = np.asarray(ak.flatten(arr, axis=1), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - not a jagged numeric branch
        raise ShowerSetError.bad_field(tree.path, f"branch {branch}", "a jagged numeric "
                                       "branch (one vector per event)",
                                       f"{type(exc).__name__}: {exc}") from None
    if counts.shape != (hi - lo,):
        raise ShowerSetError.bad_field(tree.path, f"branch {branch}", f"{hi - lo} entries "
                                       f"from event {lo}", f"{counts.size}")
    return values, counts


def _same_counts(tree: _Tree, branches: Sequence[str], counts: Sequence[NDArray[np.int64]],
                 lo: int) -> None:
    for name, c in zip(branches[1:], counts[1:], strict=True):
        if c.shape != counts[0].shape:
            raise ShowerSetError.bad_field(tree.path, f"branch {name}", f"{counts[0].size} "
                                           f"events from event {lo} (as {branches[0]})",
                                           f"{c.size}")
        if not np.array_equal(c, counts[0]):
            row = int(np.argmax(c != counts[0]))
            raise ShowerSetError.bad_field(tree.path, f"branch {name}", f"as many entries as "
                                           f"{branches[0]} in every event",
                                           f"{int(c[row])} vs {int(counts[0][row])} at event "
                                           f"{lo + row}")


def _check_values(tree: _Tree, branch: str, values: np.ndarray, counts: np.ndarray, lo: int,
                  non_negative: bool = False) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | ((values < 0) if non_negative else False)
    if bad.any():
        idx = int(np.argmax(bad))
        event = int(np.searchsorted(np.cumsum(counts), idx, side="right"))
        raise ShowerSetError.bad_field(tree.path, f"branch {branch}",
                                       "finite non-negative values" if non_negative
                                       else "finite values",
                                       f"{float(values[idx])!r} at event {lo + event}")


def _incident(tree: _Tree, lo: int, hi: int) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
    """``E_inc`` (GeV) and PDG code of the first generator particle of each event."""
    names = [tree.find(MC_PARTICLES, m) for m in ("generatorStatus", "PDG", "momentum.x",
                                                 "momentum.y", "momentum.z", "mass")]
    read = [_flat(tree, str(b), lo, hi) for b in names]
    _same_counts(tree, [str(b) for b in names], [c for _, c in read], lo)
    status, pdg, px, py, pz, mass = (v for v, _ in read)
    counts = read[0][1]
    starts = np.cumsum(counts) - counts
    energy = np.empty(hi - lo)
    codes = np.empty(hi - lo, dtype=np.int32)
    for i, (s, c) in enumerate(zip(starts, counts, strict=True)):
        hits = np.flatnonzero(status[s:s + c] == GENERATOR_STATUS_FINAL)
        if hits.size == 0:
            raise ShowerSetError.bad_field(tree.path, f"branch {names[0]}", "a particle with "
                                           f"generatorStatus {GENERATOR_STATUS_FINAL} (the "
                                           "incident particle) in every event",
                                           f"none in event {lo + i}")
        k = s + int(hits[0])
        energy[i] = np.sqrt(px[k] ** 2 + py[k] ** 2 + pz[k] ** 2 + mass[k] ** 2)
        codes[i] = int(pdg[k])
    bad = ~(np.isfinite(energy) & (energy > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise ShowerSetError.bad_field(tree.path, f"branch {names[2]}", "a finite positive "
                                       "incident energy", f"{energy[row]!r} GeV at event "
                                       f"{lo + row}")
    return energy, codes


def _relation(tree: _Tree, collection: str) -> str | None:
    """The ObjectID index branch of the hits' contributions relation, when present."""
    for name in (f"_{collection}_contributions.index", f"_{collection}_contributions_index",
                 f"{collection}#0.index"):
        if name in tree.names:
            return name
    return None


def _contributions_collection(tree: _Tree, collection: str) -> str:
    for name in (f"{collection}Contributions", f"{collection}_contributions_data"):
        if tree.find(name, "energy", required=False):
            return name
    raise ShowerSetError.bad_field(
        tree.path, f"branch {collection}Contributions.energy", "the CaloHitContribution "
        f"collection of {collection} (--steps; collections present: "
        f"{', '.join(tree.collections())})", "missing")


def _hit_points(tree: _Tree, collection: str, lo: int, hi: int
                ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    names = [str(tree.find(collection, m)) for m in ("position.x", "position.y", "position.z",
                                                    "energy")]
    read = [_flat(tree, b, lo, hi) for b in names]
    _same_counts(tree, names, [c for _, c in read], lo)
    counts = read[0][1]
    for b, (v, c) in zip(names, read, strict=True):
        _check_values(tree, b, v, c, lo, non_negative=b == names[3])
    points = np.column_stack([read[0][0], read[1][0], read[2][0], read[3][0] * MEV_PER_GEV])
    return points, counts


def _step_points(tree: _Tree, collection: str, lo: int, hi: int
                 ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    begin_b = str(tree.find(collection, "contributions_begin"))
    end_b = str(tree.find(collection, "contributions_end"))
    (begin_f, n_hits), (end_f, n_hits2) = (_flat(tree, begin_b, lo, hi),
                                           _flat(tree, end_b, lo, hi))
    _same_counts(tree, [begin_b, end_b], [n_hits, n_hits2], lo)
    begin, end = begin_f.astype(np.int64), end_f.astype(np.int64)
    contrib = _contributions_collection(tree, collection)
    names = [str(tree.find(contrib, m)) for m in ("stepPosition.x", "stepPosition.y",
                                                 "stepPosition.z", "energy")]
    read = [_flat(tree, b, lo, hi) for b in names]
    _same_counts(tree, names, [c for _, c in read], lo)
    for b, (v, c) in zip(names, read, strict=True):
        _check_values(tree, b, v, c, lo, non_negative=b == names[3])
    n_contrib = read[0][1]
    rel_b = _relation(tree, collection)
    if rel_b is not None:
        rel, n_rel = _flat(tree, rel_b, lo, hi)
    else:
        rel, n_rel = None, n_contrib
    event = np.repeat(np.arange(hi - lo), n_hits)
    length = end - begin
    bad = (length < 0) | (begin < 0) | (end > n_rel[event])
    if bad.any():
        h = int(np.argmax(bad))
        raise ShowerSetError.bad_field(tree.path, f"branch {begin_b}", "contribution ranges "
                                       "inside the event's relation", f"[{int(begin[h])}, "
                                       f"{int(end[h])}) of {int(n_rel[event[h]])} at event "
                                       f"{lo + int(event[h])}")
    per_step_event = np.repeat(event, length)
    rel_starts = np.cumsum(n_rel) - n_rel
    within = (np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
              + np.repeat(begin, length))
    position = rel_starts[per_step_event] + within
    if rel is not None:
        local = rel[position].astype(np.int64)
        if ((local < 0) | (local >= n_contrib[per_step_event])).any():
            k = int(np.argmax((local < 0) | (local >= n_contrib[per_step_event])))
            raise ShowerSetError.bad_field(tree.path, f"branch {rel_b}", f"indices into "
                                           f"{contrib}", f"{int(local[k])} at event "
                                           f"{lo + int(per_step_event[k])}")
        c_starts = np.cumsum(n_contrib) - n_contrib
        index = c_starts[per_step_event] + local
    else:
        index = position
    points = np.column_stack([read[0][0][index], read[1][0][index], read[2][0][index],
                              read[3][0][index] * MEV_PER_GEV])
    counts = np.bincount(per_step_event, minlength=hi - lo).astype(np.int64)
    return points, counts


def import_edm4hep(path: PathLike, out: PathLike, *, collection: str, steps: bool = False,
                   volume: str | PathLike | PointCloudVolume | None = None,
                   shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   pdg: int = 22, pdg_from_mc: bool = False, overwrite: bool = False,
                   block_events: int = BLOCK_EVENTS, progress: bool = False) -> Imported:
    """Import a ``SimCalorimeterHit`` collection of an EDM4hep ROOT file into a point-cloud
    ShowerSet (points mm/MeV, condition ``E_inc`` GeV), one shower per event, streaming.

    Args:
        collection: the hit collection (e.g. ``ECalBarrelCollection``).
        steps: one point per contribution at its step position instead of one per hit.
        volume: the point-cloud volume (see :func:`calogen.data.cells.resolve_volume`).
        shift_mm: added to every point's (x, y, z), mm; points outside the volume are kept and
            counted.
        pdg: PDG code stored for every shower; ``pdg_from_mc`` takes the incident particle's.

    Raises:
        ShowerSetError: a missing tree, collection or branch (listing the collections present),
            inconsistent branches, NaN or negative energies, an event without a generator
            particle.
    """
    if block_events < 1:
        raise ValueError(f"block_events must be positive, got {block_events}")
    vol = resolve_volume(volume)
    shift = np.asarray(shift_mm, dtype=np.float64).reshape(-1)
    if shift.shape != (3,) or not np.isfinite(shift).all():
        raise ValueError(f"shift_mm must be three finite numbers (mm), got {shift_mm}")
    src = Path(path)
    tree = _Tree(src)
    columns, units = gun_conditions("E_inc")
    outside = total = 0
    try:
        tree.find(collection, "energy")
        tree.find(MC_PARTICLES, "generatorStatus")
        producer = {"name": "calogen import-edm4hep", "version": __version__,
                    "source": str(src.resolve()), "collection": collection,
                    "points": "contributions (steps)" if steps else "hits",
                    "shift_mm": shift.tolist()}
        with ShowerSetWriter(out, detector=vol.name, geometry=vol.to_dict(),
                             condition_columns=columns, condition_units=units,
                             producer=producer, overwrite=overwrite) as writer:
            with tqdm(total=tree.n, unit="event", desc=f"importing {src.name}",
                      disable=not progress) as bar:
                for lo in range(0, tree.n, block_events):
                    hi = min(tree.n, lo + block_events)
                    e_inc, codes = _incident(tree, lo, hi)
                    points, counts = (_step_points if steps else _hit_points)(
                        tree, collection, lo, hi)
                    points[:, :3] += shift
                    outside += outside_volume(vol, points)
                    total += len(points)
                    pdgs = codes if pdg_from_mc else np.full(hi - lo, pdg, dtype=np.int32)
                    writer.append(points, e_inc.reshape(-1, 1), pdgs, counts=counts)
                    bar.update(hi - lo)
    finally:
        tree.close()
    return Imported(writer.path, writer.n_written, total, outside)
