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

A run extended to a new horizon (``calogen train --resume --steps N``) continues on the
schedule a run of the new length would have had from its start: the learning rate at the
resumed step is that schedule's value there (:func:`continue_on_horizon`). For ``constant``
nothing changes; a ``cosine`` that had decayed to its floor rises to the new curve's value at
that step and decays to the floor at the new horizon; ``onecycle`` keeps its peak at
``warmup_steps`` (or moves it to 30 % of the new horizon when ``warmup_steps`` is 0) and
anneals to the new horizon. Keep ``schedule_steps`` fixed to extend a run without changing its
schedule (a cosine then stays at its floor past the horizon; onecycle cannot step past it).
"""

from __future__ import annotations

import math
import warnings

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


def continue_on_horizon(optimizer: Optimizer, name: str, *, step: int, total_steps: int | None,
                        peak_lrs: list[float], warmup_steps: int = 0,
                        min_lr_ratio: float = 0.0) -> LRScheduler:
    """The scheduler :func:`make_scheduler` builds for ``total_steps``, moved to ``step``
    optimiser steps into the run, with its learning rates applied to ``optimizer``.

    Used when a run is extended: the optimiser state is restored, then the schedule of the new
    horizon takes over at the current step (see the module docstring for the rule).

    Args:
        optimizer: the restored optimiser (one param group per entry of ``peak_lrs``).
        name, total_steps, warmup_steps, min_lr_ratio: as for :func:`make_scheduler`.
        step: optimiser steps already taken (``>= 0``; at most ``total_steps`` for onecycle).
        peak_lrs: the base (peak) learning rate of each param group.
    """
    if len(peak_lrs) != len(optimizer.param_groups):
        raise ValueError(f"peak_lrs has {len(peak_lrs)} entries for "
                         f"{len(optimizer.param_groups)} param groups")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if name == "onecycle" and total_steps is not None and step > max(2, total_steps):
        raise ValueError(f"onecycle cannot continue at step {step} past its horizon "
                         f"{total_steps}")
    for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
        for key in ("initial_lr", "max_lr", "min_lr"):  # built afresh from the peak
            group.pop(key, None)
        group["lr"] = float(peak)
    scheduler = make_scheduler(optimizer, name, total_steps=total_steps,
                               warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
    if step > 0:
        scheduler.last_epoch = step - 1
        with warnings.catch_warnings():  # "scheduler stepped before the optimiser": intended
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    return scheduler
