"""Save and load models: weights as safetensors, everything else as JSON. Never pickle.

A model directory holds ``model.safetensors`` and ``model.json``::

    {"format": "calogen.model", "format_version": 1, "family": ..., "hparams": {...},
     "spec": {"shape": [H, W], "detector": ..., "transforms": {...}}, "extra": {...},
     "calogen_version": ..., "training_data": {...}, "created": ...}

Directories are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from calogen import __version__
from calogen.models.base import Generator, ModelSpec, make_model

MODEL_FORMAT = "calogen.model"
MODEL_FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message names the file and the problem."""


def save_model(model: Generator, directory: str | Path, *,
               state_dict: dict[str, torch.Tensor] | None = None,
               training_data: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write ``model`` (or ``state_dict``, e.g. EMA weights, in its place) to ``directory``."""
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise ModelFileError(f"{directory}: exists; refusing to overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous()
               for k, v in (state_dict or model.state_dict()).items()}
    doc = {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
        "family": model.family, "hparams": model.hparams, "spec": model.spec.to_dict(),
        "extra": model.extra_state_dict(), "calogen_version": __version__,
        "training_data": training_data or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(weights, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """The validated ``model.json`` of a model directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: not found; expected a calogen model directory with "
                             f"{CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != MODEL_FORMAT:
        raise ModelFileError(f"{path}: field 'format' is {found!r}, expected "
                             f"{MODEL_FORMAT!r} (not a calogen model)")
    if doc.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelFileError(f"{path}: field 'format_version' is {doc.get('format_version')!r}; "
                             f"this calogen ({__version__}) reads {SUPPORTED_FORMAT_VERSIONS}")
    for key in ("family", "hparams", "spec"):
        if key not in doc:
            raise ModelFileError(f"{path}: missing field {key!r}")
    return doc


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Generator:
    """Rebuild a model from ``directory`` (safetensors weights; strict key check)."""
    directory = Path(directory)
    doc = read_model_config(directory)
    try:
        spec = ModelSpec.from_dict(doc["spec"])
        model = make_model(doc["family"], spec, **doc["hparams"])
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{directory / CONFIG_FILE}: {exc}") from None
    weights_path = directory / WEIGHTS_FILE
    try:
        weights = load_file(str(weights_path), device=str(map_location))
    except (OSError, SafetensorError) as exc:
        raise ModelFileError(f"{weights_path}: cannot read weights ({exc})") from None
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelFileError(f"{weights_path}: weights do not match a {doc['family']} model "
                             f"with these hparams ({str(exc).splitlines()[-1].strip()})") from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelFileError(
            f"{weights_path}: weights do not match a {doc['family']} model with these hparams "
            f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})")
    model.load_extra_state_dict(doc.get("extra", {}))
    return model.to(map_location)
