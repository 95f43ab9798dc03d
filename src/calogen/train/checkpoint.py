"""Full training state on disk: atomic writes, ``weights_only`` reads, compatibility checks.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists, tuples
and dicts, so it loads with ``torch.load(..., weights_only=True)`` (never unpickling objects)::

    {"format": "calogen.checkpoint", "format_version": 1,
     "family": str, "hparams": JSON str, "config": JSON str, "config_hash": str,
     "data": JSON str (fingerprint), "model": state dict, "optimizers": {phase: state},
     "schedulers": {phase: state}, "scaler": state | None, "ema": state | None,
     "rng": [per-rank RNG state], "step": int, "epoch": int, "position": int,
     "best_metric": float | None, "best_step": int, "world_size": int, "seconds": float}

Writes go to a hidden temporary file in the same directory, are flushed to disk and renamed
over the target (:func:`os.replace`), so a killed job leaves either the previous checkpoint or
the new one, never a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from calogen.atomic import atomic_path
from calogen.train.checkpoint_document import (
    BadField,
    check_checkpoint_document,
    check_rng_state,
    short,
)

CHECKPOINT_FORMAT = "calogen.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the field."""


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON (tuples become lists) used for storage and comparison."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(value: Any) -> str:
    """sha256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# RNG state as tensors and plain types
# --------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy (legacy global) and Python ``random`` states, as tensors
    and plain numbers."""
    py_version, py_state, py_gauss = random.getstate()
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    np_key, np_keys, np_pos, np_has_gauss, np_gauss = legacy
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": str(np_key), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                  "cached_gaussian": float(np_gauss)},
        "python": {"version": int(py_version),
                   "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": None if py_gauss is None else float(py_gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`; ``ValueError`` naming the malformed field
    (:func:`~calogen.train.checkpoint_document.check_rng_state`) before any state is set."""
    check_rng_state(state)
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()),
                     p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu().to(torch.uint8) for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format header) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
           **state}
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(doc, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | Path,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its header and the
    structure of every field the trainer reads
    (:func:`~calogen.train.checkpoint_document.check_checkpoint_document`).

    Raises:
        CheckpointError: missing, truncated, corrupt or foreign file, unknown version, or a
            field of the wrong type, range or size; the message names the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        doc = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any parse failure of a crafted or damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint (truncated, corrupt or not a "
                              f"calogen checkpoint): {first}") from None
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: field 'format' is {short(found)}, expected "
                              f"{CHECKPOINT_FORMAT!r} (not a calogen checkpoint)")
    version = doc.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(f"{path}: field 'format_version' is {short(version)}, this "
                              f"calogen reads {CHECKPOINT_FORMAT_VERSION}")
    try:
        check_checkpoint_document(doc)
    except BadField as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return doc


def _diff(stored: Any, current: Any, prefix: str) -> list[str]:
    """Dotted names of the fields that differ between two JSON-like values."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in current:
                out.append(name)
            else:
                out.extend(_diff(stored[key], current[key], name))
        return out
    return [] if stored == current else [prefix]


def _lookup(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        value = value.get(part, "<absent>") if isinstance(value, dict) else "<absent>"
    return value


def check_compatible(doc: Mapping[str, Any], path: str | Path, *, family: str,
                     hparams: Mapping[str, Any], config: Mapping[str, Any],
                     data: Mapping[str, Any] | None = None,
                     may_differ: Collection[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Refuse a checkpoint made for another family, hparams, training config or data set.

    ``config`` and ``data`` hold the fields that determine the training trajectory (the
    trainer leaves out run-length and bookkeeping fields, so a run can be extended).
    ``may_differ`` names fields (dotted, e.g. ``"config.schedule_horizon"``) that may change
    between the checkpoint and the current run.

    Returns:
        ``{field: (checkpoint value, current value)}`` for the ``may_differ`` fields that
        changed (empty when none did).

    Raises:
        CheckpointError: naming ``path`` and the first differing fields, stored vs current.
    """
    if doc["family"] != family:
        raise CheckpointError(f"{path}: field 'family' is {doc['family']!r}, but the model "
                              f"being trained is {family!r}")
    sections = [("hparams", doc["hparams"], hparams), ("config", doc["config"], config)]
    if data is not None and "data" in doc:
        sections.append(("data", doc["data"], data))
    allowed = set(may_differ)
    changed: dict[str, tuple[Any, Any]] = {}
    for section, stored_json, current in sections:
        stored = json.loads(stored_json)
        now = json.loads(canonical_json(current))
        fields = _diff({section: stored}, {section: now}, "")
        for f in fields:
            if f in allowed:
                changed[f] = (_lookup({section: stored}, f), _lookup({section: now}, f))
        fields = [f for f in fields if f not in allowed]
        if fields:
            details = "; ".join(f"{f}: checkpoint {_lookup({section: stored}, f)!r}, "
                                f"now {_lookup({section: now}, f)!r}" for f in fields[:4])
            raise CheckpointError(f"{path}: field {fields[0]!r} differs from the current run "
                                  f"({details}); resume with the original settings or start "
                                  f"a new output directory")
    return changed
