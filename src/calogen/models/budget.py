"""A memory budget for building models, whatever their family.

Hyperparameters decide how large a network is; those of a shared ``model.json`` may ask for
terabytes (``latent_dim=1e9``, ``mlp_hidden=[1e5, 1e5]``). :func:`build_budget` guards the
construction of a model in two ways, neither of which needs a table of family sizes:

* an address-space fence (Linux): for the duration of the build the process may not grow by
  more than :data:`MAX_MODEL_BYTES` (``RLIMIT_AS`` lowered, then restored), so an oversized
  request fails at once, before any page is touched, whatever allocates it (a factory, an
  indexing op, numpy);
* a count of the tensors made by factory calls (``torch.empty``, ``zeros``, ``randn``,
  ``arange``, ...) and of their bytes, refused past :data:`MAX_MODEL_TENSORS` tensors or
  :data:`MAX_MODEL_BYTES` bytes (this bounds the time of a build with absurd layer counts, and
  is the memory check where the fence is not available).

Either raises :class:`ModelTooLarge`. Building on torch's ``meta`` device instead would not
work for every family (some read tensor values while they are built). ``CALOGEN_MAX_MODEL_BYTES`` /
``CALOGEN_MAX_MODEL_TENSORS`` raise the limits for models that are really that large.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

MAX_MODEL_BYTES = 4 * 2**30
"""Most memory a model build may take (4 GiB, far above the default families)."""

MAX_MODEL_TENSORS = 5_000
"""Most tensors a model build may create with factory calls (far above the default
families)."""

_FACTORIES: frozenset[Callable[..., Any]] = frozenset({
    torch.empty, torch.empty_strided, torch.zeros, torch.ones, torch.full, torch.rand,
    torch.randn, torch.randint, torch.randperm, torch.arange, torch.linspace, torch.logspace,
    torch.eye, torch.tril_indices, torch.triu_indices, torch.tensor, torch.as_tensor,
    torch.empty_like, torch.zeros_like, torch.ones_like, torch.full_like, torch.rand_like,
    torch.randn_like, torch.randint_like,
    torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones,
    torch.Tensor.new_full, torch.Tensor.new_tensor,
    torch.clone, torch.Tensor.clone, torch.Tensor.__deepcopy__,
})
"""Tensor factories and copies: every parameter and buffer of a module starts as one of these
(``copy.deepcopy`` of a layer, as in :class:`torch.nn.TransformerEncoder`, included)."""


class ModelTooLarge(ValueError):
    """A model build that would take more memory or tensors than the budget."""


def largest_sizes(values: dict[str, Any], top: int = 3) -> str:
    """The ``top`` largest numbers in ``values`` (nested lists and dicts included) with their
    dotted names, e.g. ``"hparams.mlp_hidden[0] = 100000, spec.shape[1] = 44"``."""
    found: list[tuple[float, str]] = []

    def walk(value: Any, name: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            found.append((float(value), name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{name}.{key}" if name else str(key))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{name}[{i}]")

    walk(values, "")
    found.sort(key=lambda t: -t[0])
    return ", ".join(f"{name} = {value:.6g}" for value, name in found[:top]) or "none"


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


class _Counter(TorchFunctionMode):
    """Counts the tensors and bytes that factory calls create; refuses past the limits."""

    def __init__(self, max_bytes: int, max_tensors: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.max_tensors = max_tensors
        self.bytes = 0
        self.tensors = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if func in _FACTORIES and isinstance(result, torch.Tensor):
            self.tensors += 1
            self.bytes += result.numel() * result.element_size()
            if self.bytes > self.max_bytes:
                raise ModelTooLarge(f"building it takes more than {_gib(self.max_bytes)} of "
                                    f"tensors (the limit)")
            if self.tensors > self.max_tensors:
                raise ModelTooLarge(f"building it creates more than {self.max_tensors:,} "
                                    f"tensors (the limit)")
        return result


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def _address_space() -> int | None:
    """The process's virtual memory size in bytes (Linux), else ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


_FENCE_LOCK = threading.Lock()
"""One fence at a time per process (a build nested in a build, or one in another thread,
runs inside the first fence or with the tensor count only)."""


@contextmanager
def _fence(max_bytes: int) -> Iterator[bool]:
    """Lower the soft ``RLIMIT_AS`` to the current size plus ``max_bytes`` for the block;
    yields whether the fence is up (not where the size cannot be read, when the limit is
    already tighter, nor while another build holds the fence)."""
    if not _FENCE_LOCK.acquire(blocking=False):
        yield False
        return
    try:
        with _fence_held(max_bytes) as fenced:
            yield fenced
    finally:
        _FENCE_LOCK.release()


@contextmanager
def _fence_held(max_bytes: int) -> Iterator[bool]:
    size = _address_space()
    limits = None
    if resource is not None and size is not None:
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            fence = size + max_bytes if hard == resource.RLIM_INFINITY \
                else min(size + max_bytes, hard)
            if soft == resource.RLIM_INFINITY or soft > fence:
                resource.setrlimit(resource.RLIMIT_AS, (fence, hard))
                limits = (soft, hard)
        except (OSError, ValueError):
            limits = None
    try:
        yield limits is not None
    finally:
        if limits is not None:
            resource.setrlimit(resource.RLIMIT_AS, limits)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation that failed (torch, numpy or Python)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("alloc" in text or "out of memory" in text)


@contextmanager
def build_budget(max_bytes: int | None = None,
                 max_tensors: int | None = None) -> Iterator[_Counter]:
    """Within the block, refuse (:class:`ModelTooLarge`) to grow by more than ``max_bytes``
    (default :data:`MAX_MODEL_BYTES`) or to create more than ``max_tensors`` tensors with
    factory calls (default :data:`MAX_MODEL_TENSORS`). Yields the counter (``.bytes``,
    ``.tensors``)."""
    limit_bytes = _limit("CALOGEN_MAX_MODEL_BYTES", MAX_MODEL_BYTES) \
        if max_bytes is None else max_bytes
    limit_tensors = _limit("CALOGEN_MAX_MODEL_TENSORS", MAX_MODEL_TENSORS) \
        if max_tensors is None else max_tensors
    counter = _Counter(limit_bytes, limit_tensors)
    with _fence(limit_bytes) as fenced:
        try:
            with counter:
                yield counter
        except (MemoryError, RuntimeError) as exc:
            if fenced and _out_of_memory(exc):
                raise ModelTooLarge(f"building it needs more than {_gib(limit_bytes)} of "
                                    f"memory (the limit)") from None
            raise
