"""Learning-rate schedules, built from :mod:`torch.optim.lr_scheduler` pieces.

Every schedule is stepped once per optimiser step and is checkpointable through its
``state_dict`` (the lambdas are small callable objects whose attributes are plain numbers, so
the state loads with ``torch.load(..., weights_only=True)``).

* ``"constant"``: linear warm-up over ``warmup_steps``, then the base learning rate.
* ``"cosine"``: linear warm-up, then half a cosine from the base rate down to
  ``min_lr_ratio`` times it at ``total_steps`` (SGDR without restarts: Loshchilov & Hutter,
  "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017).
* ``"onecycle"``: :class:`torch.optim.lr_scheduler.OneCycleLR` (Smith & Topin, "Super-
  Convergence", 2017) with the peak at ``warmup_steps`` (30 % of the run when 0) and momentum
  cycling off, so the configured Adam betas are kept.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

SCHEDULES: tuple[str, ...] = ("constant", "cosine", "onecycle")
"""Names accepted by :func:`make_scheduler`."""


class WarmupConstant:
    """Multiplier: linear warm-up from ``1 / (warmup_steps + 1)`` to 1, then 1."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return 1.0


class WarmupCosine:
    """Multiplier: linear warm-up, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def make_scheduler(optimizer: Optimizer, name: str, *, total_steps: int | None,
                   warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> LRScheduler:
    """A scheduler ``name`` (see :data:`SCHEDULES`) over ``optimizer``'s current learning rates.

    Args:
        optimizer: the optimiser; its param groups' ``lr`` is the base (peak) rate.
        name: ``"constant"``, ``"cosine"`` or ``"onecycle"``.
        total_steps: schedule horizon in optimiser steps (required by cosine and onecycle).
        warmup_steps: linear warm-up length (steps); for onecycle, the step of the peak.
        min_lr_ratio: final rate of the cosine as a fraction of the base rate.
    """
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if name == "constant":
        return LambdaLR(optimizer, WarmupConstant(warmup_steps))
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {list(SCHEDULES)}")
    if total_steps is None or total_steps < 1:
        raise ValueError(f"schedule {name!r} needs a positive horizon (max_steps, max_epochs or "
                         f"schedule_steps), got {total_steps}")
    if name == "cosine":
        return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_lr_ratio))
    # OneCycleLR needs at least two steps and a peak strictly inside the run.
    total = max(2, int(total_steps))
    pct = warmup_steps / total if warmup_steps > 0 else 0.3
    pct = min(max(pct, 1.0 / total), 1.0 - 1.0 / total)
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct,
                      cycle_momentum=False)
