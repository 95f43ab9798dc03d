"""The structure of a checkpoint document, checked before any of it is used.

``torch.load(weights_only=True)`` guarantees a checkpoint holds only tensors, numbers,
strings and containers, not that they are the ones the trainer expects: a ``step`` of
``"abc"``, ``hparams`` of ``123`` or a 3-byte RNG state would otherwise surface as tracebacks
deep in the trainer. :func:`check_checkpoint_document` checks every field the trainer reads
(types, ranges, tensor sizes of the RNG states) and raises :class:`BadField` naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch


class BadField(ValueError):
    """A field of a checkpoint that is not what the trainer expects."""

    def __init__(self, field: str, expected: str, found: Any) -> None:
        self.field, self.expected = field, expected
        self.found = _describe(found)
        super().__init__(f"field '{field}': expected {expected}, found {self.found}")


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return short(value)


def _int(value: Any, field: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
            or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise BadField(field, f"an integer {bound}", value)
    return value


def _number(value: Any, field: str, *, optional: bool = False, finite: bool = True) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (finite and not math.isfinite(value)):
        what = "a finite number" if finite else "a number"
        raise BadField(field, what + (" or None" if optional else ""), value)


def _dict(value: Any, field: str, what: str = "a dict") -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise BadField(field, what, value)
    return value


def _json_object(value: Any, field: str) -> None:
    """A JSON string encoding an object (how hparams and configs are stored)."""
    if not isinstance(value, str):
        raise BadField(field, "a JSON string of an object", value)
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        raise BadField(field, "a JSON string of an object", value) from None
    if not isinstance(parsed, dict):
        raise BadField(field, "a JSON string of an object", value)


def _tensor(value: Any, field: str, numel: int | None = None,
            dtype: torch.dtype | None = None, lo: int | None = None,
            hi: int | None = None) -> torch.Tensor:
    what = "a 1-D " + (str(dtype).removeprefix("torch.") + " " if dtype else "") + "tensor" \
        + (f" of {numel} elements" if numel is not None else "")
    if not isinstance(value, torch.Tensor) or value.dim() != 1 \
            or (numel is not None and value.numel() != numel) \
            or (dtype is not None and value.dtype != dtype):
        raise BadField(field, what, value)
    if lo is not None and hi is not None and value.numel() \
            and (int(value.min()) < lo or int(value.max()) > hi):
        raise BadField(field, f"{what} with values in {lo}..{hi}", value)
    return value


# --------------------------------------------------------------------------------------------
# RNG states
# --------------------------------------------------------------------------------------------

_MT_WORDS = 624
"""Words of a Mersenne Twister state (numpy's legacy generator and Python's ``random``)."""


def check_rng_state(state: Any, field: str = "rng") -> None:
    """Check one rank's RNG state as written by ``capture_rng_state`` (torch CPU state of the
    size this torch uses, numpy MT19937 and Python ``random`` states, optional CUDA states);
    :class:`BadField` naming the field otherwise."""
    state = _dict(state, field, "an RNG state (a dict)")
    torch_size = torch.get_rng_state().numel()
    _tensor(state.get("torch"), f"{field}.torch", torch_size, torch.uint8)
    n = _dict(state.get("numpy"), f"{field}.numpy")
    if n.get("key") != "MT19937":
        raise BadField(f"{field}.numpy.key", "'MT19937'", n.get("key"))
    _tensor(n.get("keys"), f"{field}.numpy.keys", _MT_WORDS, torch.int64, 0, 2**32 - 1)
    _int(n.get("pos"), f"{field}.numpy.pos", 0, _MT_WORDS)
    _int(n.get("has_gauss"), f"{field}.numpy.has_gauss", 0, 1)
    _number(n.get("cached_gaussian"), f"{field}.numpy.cached_gaussian", finite=False)
    p = _dict(state.get("python"), f"{field}.python")
    _int(p.get("version"), f"{field}.python.version", 3, 3)
    words = _tensor(p.get("state"), f"{field}.python.state", _MT_WORDS + 1, torch.int64)
    _tensor(words[:-1], f"{field}.python.state", _MT_WORDS, torch.int64, 0, 2**32 - 1)
    _int(int(words[-1]), f"{field}.python.state[{_MT_WORDS}]", 0, _MT_WORDS)
    _number(p.get("gauss"), f"{field}.python.gauss", optional=True, finite=False)
    if "cuda" in state:
        cuda = state["cuda"]
        if not isinstance(cuda, list):
            raise BadField(f"{field}.cuda", "a list of uint8 tensors", cuda)
        for i, s in enumerate(cuda):
            _tensor(s, f"{field}.cuda[{i}]", dtype=torch.uint8)


# --------------------------------------------------------------------------------------------
# The whole document
# --------------------------------------------------------------------------------------------


def _state_dict(value: Any, field: str) -> None:
    for key, tensor in _dict(value, field, "a state dict (names to tensors)").items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise BadField(f"{field}.{key}", "a tensor", tensor)


def _plain(value: Any, field: str, depth: int = 0) -> None:
    """Tensors, numbers, strings, None and containers of them (optimiser states)."""
    if depth > 6:
        raise BadField(field, "at most 6 levels of nesting", "deeper nesting")
    if isinstance(value, dict):
        for key, item in value.items():
            _plain(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{field}[{i}]", depth + 1)
    elif not (value is None or isinstance(value, (torch.Tensor, bool, int, float, str))):
        raise BadField(field, "tensors, numbers and strings", value)


def _optimizer(value: Any, field: str) -> None:
    state = _dict(value, field, "an optimiser state (a dict)")
    for key, per_param in _dict(state.get("state"), f"{field}.state").items():
        _int(key, f"{field}.state key")
        for name, item in _dict(per_param, f"{field}.state.{key}").items():
            if not (item is None or isinstance(item, (torch.Tensor, int, float))):
                raise BadField(f"{field}.state.{key}.{name}", "a tensor or a number", item)
    groups = state.get("param_groups")
    if not isinstance(groups, list):
        raise BadField(f"{field}.param_groups", "a list", groups)
    for i, group in enumerate(groups):
        group = _dict(group, f"{field}.param_groups[{i}]")
        params = group.get("params")
        if not isinstance(params, list):
            raise BadField(f"{field}.param_groups[{i}].params", "a list of integers", params)
        for j, p in enumerate(params):
            _int(p, f"{field}.param_groups[{i}].params[{j}]")
        _plain(group, f"{field}.param_groups[{i}]")


_SCHEDULER_NUMBERS = ("last_epoch", "_step_count")
_SCHEDULER_LISTS = ("base_lrs", "_last_lr")


def _scheduler(value: Any, field: str) -> None:
    state = _dict(value, field, "a scheduler state (a dict)")
    for key in _SCHEDULER_NUMBERS:
        if key in state:
            _int(state[key], f"{field}.{key}", minimum=-1)
    for key in _SCHEDULER_LISTS:
        if key in state:
            if not isinstance(state[key], list):
                raise BadField(f"{field}.{key}", "a list of numbers", state[key])
            for i, v in enumerate(state[key]):
                _number(v, f"{field}.{key}[{i}]")
    _plain(state, field)


def _per_phase(value: Any, field: str, check: Callable[[Any, str], None]) -> None:
    for phase, item in _dict(value, field, "a dict by phase").items():
        if not isinstance(phase, str):
            raise BadField(f"{field} key", "a phase name (a string)", phase)
        check(item, f"{field}.{phase}")


def _ema(value: Any, field: str) -> None:
    if value is None:
        return
    state = _dict(value, field, "an EMA state (a dict) or None")
    _state_dict(state.get("shadow"), f"{field}.shadow")
    _number(state.get("decay"), f"{field}.decay")
    if not isinstance(state.get("warmup"), (bool, int)):
        raise BadField(f"{field}.warmup", "a boolean", state.get("warmup"))
    _int(state.get("num_updates"), f"{field}.num_updates")


def check_checkpoint_document(doc: Mapping[str, Any]) -> None:
    """Check the fields of a checkpoint (format header already checked): required ones
    present, every field the trainer reads of the expected type and range; :class:`BadField`
    naming the first wrong field."""
    for key in ("family", "hparams", "config", "model", "optimizers", "schedulers", "step"):
        if key not in doc:
            raise BadField(key, "a value (the field is required)", "nothing")
    if not isinstance(doc["family"], str) or not doc["family"]:
        raise BadField("family", "a family name (a string)", doc["family"])
    for key in ("hparams", "config"):
        _json_object(doc[key], key)
    for key in ("data", "train_config", "model_extra"):
        if key in doc:
            _json_object(doc[key], key)
    if "config_hash" in doc and not isinstance(doc["config_hash"], str):
        raise BadField("config_hash", "a string", doc["config_hash"])
    _state_dict(doc["model"], "model")
    _per_phase(doc["optimizers"], "optimizers", _optimizer)
    _per_phase(doc["schedulers"], "schedulers", _scheduler)
    if doc.get("scalers") is not None:
        _per_phase(doc["scalers"], "scalers", _plain)
    _ema(doc.get("ema"), "ema")
    _int(doc["step"], "step")
    for key in ("epoch", "position"):
        if key in doc:
            _int(doc[key], key)
    for key in ("steps_per_epoch", "world_size"):
        if key in doc:
            _int(doc[key], key, minimum=1)
    if doc.get("best_step") is not None:
        _int(doc["best_step"], "best_step")
    _number(doc.get("best_metric"), "best_metric", optional=True, finite=False)
    if "seconds" in doc:
        _number(doc["seconds"], "seconds")
    if doc.get("val_key") is not None and not isinstance(doc["val_key"], str):
        raise BadField("val_key", "a string", doc["val_key"])
    rng = doc.get("rng")
    if rng is not None:
        if not isinstance(rng, list):
            raise BadField("rng", "a list of per-rank RNG states", rng)
        for rank, state in enumerate(rng):
            check_rng_state(state, f"rng[{rank}]")
