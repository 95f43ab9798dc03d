"""Data-parallel training without DDP wrappers.

Families train through ``model.loss(batch, phase)``, not ``forward``, so instead of
:class:`torch.nn.parallel.DistributedDataParallel` the trainer

1. calls :func:`broadcast_parameters` once, so every rank starts from rank 0's weights;
2. gives each rank a disjoint, equal shard of every *global* batch (all ranks draw the same
   permutation from the same seed);
3. calls :func:`average_gradients` after each backward pass: an all-reduce of the flattened
   gradients (in buckets) divided by the world size.

With losses that are means over the batch, the averaged gradient equals the single-process
gradient of the global batch (up to float rounding), and every rank applies the same update,
so the weights stay identical across ranks.

Launch with ``torchrun --nproc-per-node N ...``; :func:`init_from_env` reads its environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and picks the
backend at run time: NCCL when CUDA is available, gloo otherwise.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024
"""Gradient bucket size for :func:`average_gradients` (PyTorch DDP's default, 25 MiB)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer "
                         f"(as set by torchrun)") from None


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def init_from_env(device: str | torch.device = "auto",
                  timeout_minutes: float = 30.0) -> DistContext:
    """Join the process group described by torchrun's environment.

    Without ``WORLD_SIZE`` (or with 1) nothing is initialised and a single-process context is
    returned. The backend is NCCL when the device is CUDA, gloo otherwise. Calling it again
    in an initialised process reuses the existing group.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    dev = resolve_device(device, local_rank)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=dev)
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} but this PyTorch build has no "
                           f"torch.distributed support")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; "
                               f"launch with torchrun")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank,
                       str(dist.get_backend()), dev)


def current_context(device: str | torch.device = "auto") -> DistContext:
    """The context of an already-initialised process group (single process otherwise)."""
    if dist.is_available() and dist.is_initialized():
        local_rank = _env_int("LOCAL_RANK", dist.get_rank())
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank,
                           str(dist.get_backend()), resolve_device(device, local_rank))
    return DistContext(device=resolve_device(device))


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _buckets(tensors: list[Tensor], bucket_bytes: int) -> Iterable[list[Tensor]]:
    """Consecutive groups of same-dtype, same-device tensors of about ``bucket_bytes``."""
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (t.dtype != bucket[0].dtype or t.device != bucket[0].device
                       or size + t.numel() * t.element_size() > bucket_bytes):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


@torch.no_grad()
def broadcast_parameters(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank."""
    if not _active():
        return
    tensors = [t for t in model.state_dict().values()]
    for bucket in _buckets(tensors, DEFAULT_BUCKET_BYTES):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        dist.broadcast(flat, src)
        offset = 0
        for t in bucket:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n


@torch.no_grad()
def average_gradients(params: Iterable[nn.Parameter],
                      bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """All-reduce the gradients of ``params`` and divide by the world size.

    A parameter without a gradient takes part as zeros (and gets a zero gradient), so every
    rank reduces the same buckets in the same order.
    """
    if not _active():
        return
    world = dist.get_world_size()
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    for bucket in _buckets(grads, bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not _active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
