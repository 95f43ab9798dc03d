"""Save and load models: weights as safetensors, everything else as JSON. Never pickle.

A model directory holds ``model.safetensors`` and ``model.json``::

    {"format": "calogen.model", "format_version": 1, "family": ..., "hparams": {...},
     "spec": {"shape": [H, W], "detector": ..., "transforms": {...}}, "extra": {...},
     "calogen_version": ..., "training_data": {...}, "created": ...}

``model.json`` is validated against :data:`calogen.models.document.MODEL_SCHEMA` (types and
bounds) before anything is built, and the network is built within an allocation budget
(:mod:`calogen.models.budget`), so a shared model cannot ask for terabytes. Directories are
written under a temporary name and swapped in when complete (the old one is never absent).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from calogen import __version__
from calogen.atomic import atomic_directory
from calogen.models.budget import ModelTooLarge
from calogen.models.document import ModelFileError, check_model_document, short
from calogen.models.generator import Generator, ModelSpec
from calogen.models.registry import FAMILIES, family_class, make_model

__all__ = ["CONFIG_FILE", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "WEIGHTS_FILE",
           "ModelFileError", "hparams_on_top_of", "load_frozen_base", "load_model",
           "read_model_config", "save_model"]

MODEL_FORMAT = "calogen.model"
MODEL_FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


def save_model(model: Generator, directory: str | Path, *,
               state_dict: dict[str, torch.Tensor] | None = None,
               training_data: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write ``model`` (or ``state_dict``, e.g. EMA weights, in its place) to ``directory``.

    The files are written to a temporary folder beside it (``.<name>.tmp-<pid>-<hex>``, which
    :func:`calogen.atomic.remove_stale_temporaries` clears after a kill) that then replaces
    ``directory`` in one step (:func:`calogen.atomic.atomic_directory`): ``directory`` holds
    either the old model or the new one at every moment. Permissions follow the umask.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise ModelFileError(f"{directory}: exists; refusing to overwrite it", path=directory)
    weights = {k: v.detach().cpu().contiguous()
               for k, v in (state_dict or model.state_dict()).items()}
    doc = {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
        "family": model.family, "hparams": model.hparams, "spec": model.spec.to_dict(),
        "extra": model.extra_state_dict(), "calogen_version": __version__,
        "training_data": training_data or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_directory(directory) as tmp:
        save_file(weights, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
    return directory


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """The validated ``model.json`` of a model directory (:func:`check_model_document`)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: not found; expected a calogen model directory with "
                             f"{CONFIG_FILE} and {WEIGHTS_FILE}", path=path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})", path=path) from None
    except RecursionError:
        raise ModelFileError(f"{path}: not valid JSON (nested too deeply)", path=path) from None
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != MODEL_FORMAT:
        raise ModelFileError(f"{path}: field 'format' is {short(found)}, expected "
                             f"{MODEL_FORMAT!r} (not a calogen model)", path=path, field="format")
    version = doc.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise ModelFileError(f"{path}: field 'format_version' is {short(version)}; this calogen "
                             f"({__version__}) reads {SUPPORTED_FORMAT_VERSIONS}", path=path,
                             field="format_version")
    check_model_document(doc, path)
    return doc


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Generator:
    """Rebuild a model from ``directory`` (safetensors weights; strict key check).

    Raises:
        ModelFileError: naming the file and the field for anything wrong with the directory:
            a document outside the schema, hyperparameters the family refuses or that ask for
            more memory than :mod:`calogen.models.budget` allows, unreadable or mismatched
            weights.
    """
    directory = Path(directory)
    config = directory / CONFIG_FILE
    doc = read_model_config(directory)
    try:
        spec = ModelSpec.from_dict(doc["spec"])
    except ValueError as exc:
        raise ModelFileError(f"{config}: {exc}", path=config, field="spec") from None
    family = doc["family"]
    try:
        family_class(family)
    except ValueError as exc:
        raise ModelFileError(f"{config}: field 'family': {exc}", path=config,
                             field="family") from None
    try:
        model = make_model(family, spec, **saved_hparams(family, doc["hparams"]))
    except ModelTooLarge as exc:
        raise ModelFileError(f"{config}: fields 'hparams'/'spec' describe a model too large to "
                             f"build ({exc})", path=config, field="hparams") from None
    except Exception as exc:  # any refusal of the family's constructor is the file's fault
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = text if isinstance(exc, (ValueError, TypeError)) and text \
            else f"{type(exc).__name__}: {text}"
        raise ModelFileError(f"{config}: field 'hparams': these hyperparameters do not build a "
                             f"{family} model ({text})", path=config, field="hparams") from None
    weights_path = directory / WEIGHTS_FILE
    try:
        weights = load_file(str(weights_path), device=str(map_location))
    except (OSError, SafetensorError) as exc:
        raise ModelFileError(f"{weights_path}: cannot read weights ({exc})",
                             path=weights_path) from None
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelFileError(f"{weights_path}: weights do not match a {doc['family']} model "
                             f"with these hparams ({str(exc).splitlines()[-1].strip()})",
                             path=weights_path) from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelFileError(
            f"{weights_path}: weights do not match a {doc['family']} model with these hparams "
            f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})",
            path=weights_path)
    try:
        model.load_extra_state_dict(doc.get("extra", {}))
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError.bad_field(config, "extra", f"the extra state of a "
                                       f"{doc['family']} model", f"{short(doc.get('extra'))} "
                                       f"({exc})") from None
    return model.to(map_location)


LEGACY_HPARAMS: dict[str, Any] = {"condition_features": "raw", "recentre": False}
"""Hparams added after models were first saved, with the value that rebuilds those models:
a saved model that lacks one was built without it (its key is filled in when loading)."""


def saved_hparams(family: str, hparams: Any) -> Any:
    """``hparams`` of a saved ``family`` model with :data:`LEGACY_HPARAMS` filled in where the
    family now has the key but the file does not; also inside a stored autoencoder's
    ``ae_hparams`` (family ``ae_family``)."""
    if not isinstance(hparams, dict):
        return hparams
    out = dict(hparams)
    defaults = getattr(family_class(family), "defaults", {})
    for key, value in LEGACY_HPARAMS.items():
        if key in defaults:
            out.setdefault(key, value)
    if isinstance(out.get("ae_hparams"), dict) and isinstance(out.get("ae_family"), str):
        try:
            out["ae_hparams"] = saved_hparams(out["ae_family"], out["ae_hparams"])
        except ValueError:
            pass  # an unknown family is reported when the model is built
    return out


def hparams_on_top_of(family: str, base_dir: str | Path,
                      overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hparams of a ``family`` model built on the trained model in ``base_dir``
    (:meth:`Generator.hparams_from_base` of the family's class). ``ValueError`` if ``family``
    is not trained on top of another model (listing those that are) or the base does not fit;
    :class:`ModelFileError` for an unreadable base."""
    cls = family_class(family)
    if cls.built_on is None:
        takers = sorted(n for n, c in FAMILIES.items() if c.built_on is not None)
        raise ValueError(f"{family!r} is not trained on top of another model; families that "
                         f"are: {takers}")
    return cls.hparams_from_base(read_model_config(base_dir), base_dir, overrides)


def load_frozen_base(path: str, family: str | tuple[str, ...], hparams: dict[str, Any],
                     shared_keys: tuple[str, ...], device: torch.device | str,
                     builder: str = "calogen.models.io.hparams_on_top_of") -> Generator:
    """The trained ``family`` model at ``path`` that a model with ``hparams`` is built on,
    frozen and in eval mode. ``ValueError`` for another family or when the ``shared_keys``
    hparams differ (the model should be built with ``builder``). Building it does not draw
    from the global RNG: a resumed run loads its base at a later step than an uninterrupted
    one and would otherwise diverge from it."""
    with torch.random.fork_rng(devices=[]):
        base = load_model(path, map_location=device)
    families = (family,) if isinstance(family, str) else family
    if base.family not in families:
        raise ValueError(f"{path}: must be a {' or '.join(map(repr, families))} model, got "
                         f"{base.family!r}")
    mismatch = [k for k in shared_keys if base.hparams.get(k) != hparams.get(k)]
    if mismatch:
        raise ValueError(f"{path}: differs from the model built on it in {mismatch}; build "
                         f"the model with {builder}()")
    base.eval().requires_grad_(False)
    return base


def load_teacher(student: Generator, family: str, shared_keys: tuple[str, ...],
                 device: torch.device | str) -> Generator:
    """The trained teacher of a distilled ``student`` (its hparam ``teacher``): frozen, as
    :func:`load_frozen_base`. ``ValueError`` when the hparam is empty or the teacher was never
    trained (its ``initialised`` buffer is 0)."""
    path = str(student.hparams.get("teacher", ""))
    if not path:
        raise ValueError(f"{student.family}: training needs a teacher (hparam 'teacher', or "
                         f"`calogen train --model {student.family} --teacher DIR`)")
    teacher = load_frozen_base(path, family, student.hparams, shared_keys, device)
    initialised = getattr(teacher, "initialised", None)
    if isinstance(initialised, torch.Tensor) and int(initialised) == 0:
        raise ValueError(f"{path}: the teacher has not been trained")
    return teacher
