"""The training loop shared by every generative family.

:class:`Trainer` trains any :class:`~calogen.models.generator.Generator` through its phases: per
step, for each phase in ``model.phases``, it computes ``model.loss(batch, phase)``, back-
propagates, averages gradients across ranks (data parallel, see
:mod:`calogen.train.distributed`), clips, and steps that phase's AdamW optimiser and learning-
rate schedule; then it updates the EMA of the weights. Every ``val_every`` steps rank 0 scores
the (EMA) model on a fixed validation subset with a metric passed in by the caller and keeps
the best model; every ``checkpoint_every`` steps the full training state is written
atomically, so ``resume=True`` continues *exactly* (bitwise on CPU) where the run stopped.

Files in ``out_dir``::

    checkpoint.pt   full training state (torch.save, read back with weights_only=True)
    best/           best model so far (save_model: safetensors + JSON), EMA weights if enabled
    last/           model at the end of fit()
    log.csv         step, epoch, seconds, lr and loss per phase, the schedule horizon,
                    validation metrics
    config.json     the TrainConfig of the latest run

A run continues (``resume=True``) with the same settings, or is extended with a longer budget
(``max_steps``/``max_epochs``/``max_minutes``): the schedule then takes the new horizon, by the
rule of :mod:`calogen.train.schedules`, and says so on the terminal. Before writing, the trainer
removes the temporaries that killed runs left in ``out_dir``. SIGTERM stops ``fit()`` cleanly:
at the end of the current step (or at once, outside a step) a checkpoint is written, so the run
can be resumed, and :class:`TrainingTerminated` (exit status 143) is raised.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from calogen.atomic import remove_stale_temporaries, write_text_atomic
from calogen.models.generator import CalibrationData, Generator, TrainBatch
from calogen.models.io import load_model, save_model
from calogen.train import distributed as D
from calogen.train.checkpoint import (
    CheckpointError,
    canonical_json,
    capture_rng_state,
    check_compatible,
    config_hash,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from calogen.train.data import ShowerTensors, TrainingData
from calogen.train.ema import EMA
from calogen.train.logs import CSVLogger, TensorBoardWriter
from calogen.train.schedules import SCHEDULES, continue_on_horizon, make_scheduler

log = logging.getLogger("calogen.train")

ValMetric = Callable[[Generator, ShowerTensors], dict[str, float]]
"""``(model, validation subset) -> {name: value}``; evaluated on rank 0 with EMA weights."""

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
CONFIG_FILE = "config.json"
BEST_DIR = "best"
LAST_DIR = "last"
TENSORBOARD_DIR = "tensorboard"
OUTPUTS = (CHECKPOINT_FILE, LOG_FILE, CONFIG_FILE, BEST_DIR, LAST_DIR, TENSORBOARD_DIR)
"""Everything the trainer writes in its output folder."""

HORIZON_FIELD = "config.schedule_horizon"
"""The trajectory field that may change on resume (the run is extended or shortened)."""

# Fields of TrainConfig that do not change the sequence of weights (they may differ on resume).
_NON_TRAJECTORY = ("max_steps", "max_epochs", "max_minutes", "checkpoint_every", "val_every",
                   "val_events", "log_every", "device", "num_threads", "deterministic",
                   "tensorboard", "schedule_steps")


@dataclass
class TrainConfig:
    """Training settings (JSON-serialisable with :meth:`to_dict` / :meth:`from_dict`).

    Attributes:
        lr: peak learning rate of every phase (override per phase with ``phase_lr``).
        weight_decay: AdamW decoupled weight decay (Loshchilov & Hutter, ICLR 2019).
        betas: AdamW betas.
        schedule: ``"cosine"``, ``"onecycle"`` or ``"constant"`` (see
            :mod:`calogen.train.schedules`).
        warmup_steps: linear warm-up steps (onecycle: step of the peak).
        schedule_steps: horizon of cosine/onecycle; ``None``: the run length from
            ``max_steps``/``max_epochs``, so a run resumed with a larger budget continues on
            the schedule of the new length (:mod:`calogen.train.schedules`). Set it to extend
            a run later without changing its schedule.
        min_lr_ratio: final cosine rate as a fraction of the peak.
        batch_size: global batch (split evenly across ranks).
        max_steps, max_epochs, max_minutes: stop at the first reached (at least one needed);
            ``max_minutes`` counts the wall time of this ``fit()`` call.
        grad_clip: max global gradient norm per phase (``None``: off).
        ema_decay: EMA decay (``None``: no EMA); ``ema_warmup`` enables the decay warm-up.
        checkpoint_every: steps between checkpoints (0: only at the end).
        val_every: steps between validations (0: only at the end).
        val_events: size of the fixed validation subset.
        log_every: steps between CSV rows (losses averaged over the interval).
        seed: seed of the global RNGs and of the data order.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"off"``; autocast on CUDA only (``auto``:
            bf16 when supported, else fp16 with loss scaling); always off on CPU.
        num_threads: torch intra-op threads (``None``: leave as is).
        phase_lr: learning rate per phase name, e.g. ``{"discriminator": 4e-4}``.
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)`` during fit.
        tensorboard: also write TensorBoard scalars when the package is installed.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_steps: int = 0
    schedule_steps: int | None = None
    min_lr_ratio: float = 0.0
    batch_size: int = 256
    max_steps: int | None = None
    max_epochs: int | None = None
    max_minutes: float | None = None
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    ema_warmup: bool = True
    checkpoint_every: int = 1000
    val_every: int = 1000
    val_events: int = 2000
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    num_threads: int | None = None
    phase_lr: dict[str, float] = field(default_factory=dict)
    deterministic: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self.phase_lr = {str(k): float(v) for k, v in dict(self.phase_lr).items()}
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} (known: {list(SCHEDULES)})")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            problems.append(f"amp {self.amp!r} (expected auto, bf16, fp16 or off)")
        if self.batch_size < 1:
            problems.append(f"batch_size {self.batch_size} (expected >= 1)")
        if self.lr <= 0 or not math.isfinite(self.lr):
            problems.append(f"lr {self.lr} (expected > 0)")
        for name in ("max_steps", "max_epochs", "max_minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"{name} {value} (expected > 0 or None)")
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            problems.append("no stopping rule (set max_steps, max_epochs or max_minutes)")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay {self.ema_decay} (expected in [0, 1) or None)")
        for name in ("checkpoint_every", "val_every", "warmup_steps", "val_events"):
            if getattr(self, name) < 0:
                problems.append(f"{name} {getattr(self, name)} (expected >= 0)")
        if self.log_every < 1:
            problems.append(f"log_every {self.log_every} (expected >= 1)")
        if problems:
            raise ValueError("TrainConfig: bad " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did and where it wrote it."""

    steps: int
    epochs: float
    seconds: float
    best_metric: float | None
    best_step: int | None
    val_key: str
    last_metrics: dict[str, float]
    paths: dict[str, Path]


def validation_loss(model: Generator, data: ShowerTensors, batch_size: int = 1024
                    ) -> dict[str, float]:
    """Default validation metric: mean loss per phase (``val_loss`` is their sum)."""
    device = next(model.parameters()).device
    out: dict[str, float] = {}
    with torch.no_grad():
        for phase in model.phases:
            total, n = 0.0, 0
            for start in range(0, len(data), batch_size):
                idx = np.arange(start, min(start + batch_size, len(data)))
                loss, _ = model.loss(data.batch(idx).to(device), phase)
                total += float(loss) * idx.size
                n += idx.size
            out[f"val_loss_{phase}"] = total / max(n, 1)
    out["val_loss"] = sum(out.values())
    return out


@contextmanager
def _preserved_rng() -> Iterator[None]:
    """Run a block without changing any global RNG state (validation must not perturb
    training)."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


class TrainingTerminated(SystemExit):
    """``fit()`` stopped on SIGTERM; ``message`` says where the run can be resumed from. The
    exit status is 143 (128 + SIGTERM), as for a process the signal had killed."""

    def __init__(self, message: str, at_boundary: bool = False) -> None:
        super().__init__(128 + signal.SIGTERM)
        self.message = message
        self.at_boundary = at_boundary

    def __str__(self) -> str:
        return self.message


def seed_global_rngs(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's legacy global RNG and Python's ``random``."""
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def init_seed(seed: int) -> int:
    """The seed of a model's initial weights for a run seeded ``seed`` (a stream apart from
    the one the training steps draw from)."""
    return int(np.random.SeedSequence([int(seed) % 2**63, 0x1417]).generate_state(
        1, np.uint64)[0] >> 1)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x5EED]).generate_state(
        1, np.uint64)[0] >> 1)


class Trainer:
    """Train ``model`` on ``data`` (see the module docstring).

    Args:
        model: the generative family instance (built from ``data.spec``). Its initial weights
            are the caller's: seed the global RNGs before building it
            (:func:`seed_global_rngs` with :func:`init_seed`, as
            :func:`calogen.train.run.train_model` does) for a reproducible run.
        data: the splits from :func:`calogen.train.data.load_training_data`.
        config: the :class:`TrainConfig`.
        out_dir: where checkpoint, models and logs go.
        val_metric: ``(model, val subset) -> {name: value}``; ``None`` uses
            :func:`validation_loss` and the key ``"val_loss"``.
        val_key: the metric that selects the best model.
        val_mode: ``"min"`` (lower is better) or ``"max"``.
        resume: continue from ``out_dir/checkpoint.pt`` (which must exist), with the same
            settings or a new budget (see the module docstring).
        overwrite: start afresh even though ``out_dir`` holds a checkpoint.
        progress: draw a progress bar and print where results go (rank 0).

    In a ``torchrun`` job the process group is joined from the environment
    (:func:`calogen.train.distributed.init_from_env`) if the caller has not done so.
    """

    def __init__(self, model: Generator, data: TrainingData, config: TrainConfig,
                 out_dir: str | Path, *, val_metric: ValMetric | None = None,
                 val_key: str = "channel_w1", val_mode: Literal["min", "max"] = "min",
                 resume: bool = False, overwrite: bool = False, progress: bool = True) -> None:
        if val_mode not in ("min", "max"):
            raise ValueError(f"val_mode must be 'min' or 'max', got {val_mode!r}")
        self.model = model
        self.data = data
        self.config = config
        self.out_dir = Path(out_dir)
        if val_metric is None:
            self.val_metric: ValMetric = lambda m, d: validation_loss(m, d, config.batch_size)
            self.val_key = "val_loss"
        else:
            self.val_metric = val_metric
            self.val_key = val_key
        self.val_mode = val_mode
        self.resume = resume
        self.overwrite = overwrite
        self.progress = progress

        self.ctx = D.init_from_env(config.device)
        self.device = self.ctx.device
        self.model.to(self.device)

        n_train = len(data.train)
        if n_train == 0:
            raise ValueError("Trainer: the training split is empty")
        self.global_batch = min(config.batch_size, n_train)
        if self.global_batch % self.ctx.world_size:
            raise ValueError(f"Trainer: global batch {self.global_batch} is not divisible by "
                             f"the world size {self.ctx.world_size}")
        self.local_batch = self.global_batch // self.ctx.world_size
        self.steps_per_epoch = n_train // self.global_batch
        limits = [s for s in (config.max_steps,
                              None if config.max_epochs is None
                              else config.max_epochs * self.steps_per_epoch) if s is not None]
        self.target_steps: int | None = min(limits) if limits else None
        self.horizon = config.schedule_steps if config.schedule_steps is not None \
            else self.target_steps

        self.schedule = config.schedule
        if self.horizon is None and config.schedule != "constant":
            # only max_minutes given: the length of the run is unknown, so no decay
            self.schedule = "constant"
            log.warning("schedule %r needs a horizon (max_steps, max_epochs or schedule_steps);"
                        " with only max_minutes the learning rate stays constant after warm-up",
                        config.schedule)
        if self.schedule == "onecycle" and self.horizon is not None and \
                self.target_steps is not None and self.target_steps > max(2, self.horizon):
            raise ValueError(f"Trainer: schedule 'onecycle' cannot run past its horizon "
                             f"(schedule_steps {self.horizon} < {self.target_steps} steps)")
        self.amp_dtype = self._amp_dtype()
        self.phase_params: dict[str, list[nn.Parameter]] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        for phase in model.phases:
            params = list(model.phase_parameters(phase))
            if not params:
                raise ValueError(f"{model.family}: phase {phase!r} has no trainable parameters")
            opt = torch.optim.AdamW(params, lr=config.phase_lr.get(phase, config.lr),
                                    betas=config.betas, weight_decay=config.weight_decay)
            self.phase_params[phase] = params
            self.optimizers[phase] = opt
            self.schedulers[phase] = self._make_scheduler(phase)
            if self.amp_dtype == torch.float16:
                self.scalers[phase] = torch.amp.GradScaler("cuda")
        self.ema: EMA | None = None

        # progress of the run (restored on resume)
        self.step = 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.last_metrics: dict[str, float] = {}
        self._seconds_before = 0.0
        self._validated_at: int | None = None
        self._checkpointed_at: int | None = None
        self._val_subset: ShowerTensors | None = None
        # SIGTERM: deferred to the end of a step inside _deferred_signals(), else raised
        self._defer_depth = 0
        self._stop_requested = False
        self._consistent = True
        self._ready = False  # set up (restored) and able to write a consistent checkpoint

    # -- paths ------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_FILE

    # -- set-up helpers ---------------------------------------------------------------------

    def _amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.config.amp == "off":
            return None
        if self.config.amp == "bf16" or (self.config.amp == "auto"
                                          and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float16

    def trajectory_config(self) -> dict[str, Any]:
        """The config fields that determine the weights (compared on resume)."""
        d = {k: v for k, v in self.config.to_dict().items() if k not in _NON_TRAJECTORY}
        d["schedule_horizon"] = None if self.config.schedule == "constant" else self.horizon
        d["global_batch"] = self.global_batch
        return d

    def data_identity(self) -> dict[str, Any]:
        """The parts of the data fingerprint that must not change on resume."""
        fp = self.data.fingerprint
        return {k: fp.get(k) for k in ("sha256", "n_events", "max_events", "seed", "fractions",
                                       "n_train")}

    def _say(self, message: str) -> None:
        if not self.ctx.is_main:
            return
        log.info(message)
        if self.progress:
            tqdm.write(message, file=sys.stderr)

    def _announce(self, message: str) -> None:
        """Like :meth:`_say`, but on the terminal even without a progress bar."""
        if not self.ctx.is_main:
            return
        log.info(message)
        tqdm.write(message, file=sys.stderr)

    def _peak_lr(self, phase: str) -> float:
        return self.config.phase_lr.get(phase, self.config.lr)

    def _make_scheduler(self, phase: str, step: int | None = None
                        ) -> torch.optim.lr_scheduler.LRScheduler:
        """The schedule of ``phase`` at the current horizon (moved to ``step`` if given)."""
        opt, cfg = self.optimizers[phase], self.config
        if step is None:
            return make_scheduler(opt, self.schedule, total_steps=self.horizon,
                                  warmup_steps=cfg.warmup_steps, min_lr_ratio=cfg.min_lr_ratio)
        return continue_on_horizon(opt, self.schedule, step=step, total_steps=self.horizon,
                                   peak_lrs=[self._peak_lr(phase)] * len(opt.param_groups),
                                   warmup_steps=cfg.warmup_steps,
                                   min_lr_ratio=cfg.min_lr_ratio)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(_epoch_seed(self.config.seed, epoch))
        return torch.randperm(len(self.data.train), generator=g)

    def _val_data(self) -> ShowerTensors:
        if self._val_subset is None:
            n = len(self.data.val)
            if self.config.val_events and self.config.val_events < n:
                rng = np.random.default_rng(self.config.seed)
                rows = np.sort(rng.permutation(n)[:self.config.val_events])
                self._val_subset = self.data.val.subset(rows)
            else:
                self._val_subset = self.data.val
        return self._val_subset

    # -- checkpoints ------------------------------------------------------------------------

    def _state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        epoch, position = divmod(self.step, self.steps_per_epoch)
        return {
            "family": self.model.family,
            "hparams": canonical_json(self.model.hparams),
            "config": canonical_json(self.trajectory_config()),
            "config_hash": config_hash(self.trajectory_config()),
            "train_config": canonical_json(self.config.to_dict()),
            "data": canonical_json(self.data_identity()),
            "model": self.model.state_dict(),
            "model_extra": canonical_json(self.model.extra_state_dict()),
            "optimizers": {p: o.state_dict() for p, o in self.optimizers.items()},
            "schedulers": {p: s.state_dict() for p, s in self.schedulers.items()},
            "scalers": {p: s.state_dict() for p, s in self.scalers.items()},
            "ema": None if self.ema is None else self.ema.state_dict(),
            "rng": rng,
            "step": int(self.step), "epoch": int(epoch), "position": int(position),
            "steps_per_epoch": int(self.steps_per_epoch),
            "best_metric": self.best_metric, "best_step": self.best_step,
            "val_key": self.val_key, "world_size": int(self.ctx.world_size),
            "seconds": float(self._seconds()),
        }

    def save_checkpoint(self) -> Path:
        """Write the full training state to ``out_dir/checkpoint.pt`` (collective call)."""
        rng = D.all_gather_object(capture_rng_state())
        if self.ctx.is_main:
            save_checkpoint(self._state(rng), self.checkpoint_path)
        D.barrier()
        self._checkpointed_at = self.step
        return self.checkpoint_path

    def _restore(self) -> None:
        path = self.checkpoint_path
        doc = load_checkpoint(path, map_location="cpu")
        changed = check_compatible(doc, path, family=self.model.family,
                                   hparams=self.model.hparams, config=self.trajectory_config(),
                                   data=self.data_identity(), may_differ=(HORIZON_FIELD,))
        at = int(doc["step"])
        if self.target_steps is not None and self.target_steps < at:
            raise CheckpointError(
                f"{path}: the run is at step {at}, beyond this run's budget of "
                f"{self.target_steps} steps ({self._budget()}); to continue it, give a budget "
                f"above step {at} (max_steps / calogen train --steps), or start afresh")
        old_horizon, new_horizon = changed.get(HORIZON_FIELD, (None, None))
        if HORIZON_FIELD in changed and new_horizon is None:
            # only a time budget now: keep the horizon (and schedule) the run had
            self.horizon, self.schedule = int(old_horizon), self.config.schedule
            for phase in self.model.phases:
                self.schedulers[phase] = self._make_scheduler(phase)
            self._announce(f"resuming with a time budget only: the {self.schedule} schedule "
                           f"keeps its horizon of {self.horizon} steps")
            changed = {}
        lrs: dict[str, tuple[float, float]] = {}
        try:
            self.model.load_state_dict(doc["model"], strict=True)
            self.model.load_extra_state_dict(json.loads(doc.get("model_extra", "{}")))
            for phase in self.model.phases:
                self.optimizers[phase].load_state_dict(doc["optimizers"][phase])
                self.schedulers[phase].load_state_dict(doc["schedulers"][phase])
                if changed:  # a new horizon: its schedule takes over at this step
                    groups = self.optimizers[phase].param_groups
                    before = float(groups[0]["lr"])
                    self.schedulers[phase] = self._make_scheduler(phase, step=at)
                    lrs[phase] = (before, float(groups[0]["lr"]))
                if phase in self.scalers and phase in doc.get("scalers", {}):
                    self.scalers[phase].load_state_dict(doc["scalers"][phase])
            if (doc.get("ema") is None) != (self.ema is None):
                raise CheckpointError(f"{path}: field 'ema' is "
                                      f"{'absent' if doc.get('ema') is None else 'present'} "
                                      f"but ema_decay is {self.config.ema_decay}")
            if self.ema is not None:
                self.ema.load_state_dict(doc["ema"])
        except (KeyError, RuntimeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{path}: training state does not fit this model/config "
                                  f"({str(exc).splitlines()[0]})") from None
        if changed:
            rates = ", ".join(f"{p} {a:.4g} -> {b:.4g}" if len(lrs) > 1 else f"{a:.4g} -> {b:.4g}"
                              for p, (a, b) in lrs.items())
            self._announce(f"run extended at step {at}: {self.schedule} schedule horizon "
                           f"{old_horizon} -> {new_horizon} steps; learning rate {rates} "
                           f"(continuing on the schedule of a {new_horizon}-step run)")
        self.step = at
        if int(doc.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise CheckpointError(f"{path}: field 'steps_per_epoch' is "
                                  f"{doc['steps_per_epoch']}, now {self.steps_per_epoch}")
        self.best_metric = doc.get("best_metric")
        self.best_step = doc.get("best_step")
        self._seconds_before = float(doc.get("seconds", 0.0))
        self._checkpointed_at = self.step
        rng = doc.get("rng") or []
        if len(rng) == self.ctx.world_size:
            restore_rng_state(rng[self.ctx.rank])
        else:
            self._say(f"checkpoint {path} was written by {len(rng)} rank(s), this run has "
                      f"{self.ctx.world_size}: RNG streams re-seeded (not bitwise-exact)")
            self._seed_globals(self.config.seed + 7919 * self.step)

    def _seed_globals(self, seed: int) -> None:
        seed_global_rngs(seed + self.ctx.rank)

    def _budget(self) -> str:
        rules = [f"{k} {getattr(self.config, k)}" for k in ("max_steps", "max_epochs")
                 if getattr(self.config, k) is not None]
        return ", ".join(rules)

    # -- one step ---------------------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _train_step(self, batch: TrainBatch) -> dict[str, float]:
        logs: dict[str, float] = {}
        for phase in self.model.phases:
            opt = self.optimizers[phase]
            params = self.phase_params[phase]
            scaler = self.scalers.get(phase)
            self.model.zero_grad(set_to_none=True)
            with self._autocast():
                loss, extra = self.model.loss(batch, phase)
            value = float(loss.detach())
            if D.any_rank(not math.isfinite(value), self.device):
                raise FloatingPointError(f"{self.model.family}: loss of phase {phase!r} is not "
                                         f"finite ({value}) at step {self.step + 1}")
            (scaler.scale(loss) if scaler else loss).backward()
            if self.ctx.distributed:
                D.average_gradients(params)
            if scaler:
                scaler.unscale_(opt)
            if self.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            logs[f"lr_{phase}"] = float(opt.param_groups[0]["lr"])
            self.schedulers[phase].step()
            logs[f"loss_{phase}"] = value
            for key, v in extra.items():
                logs[f"{phase}/{key}"] = float(v)
        if self.ema is not None:
            self.ema.update(self.model)
        return logs

    # -- validation -------------------------------------------------------------------------

    def _better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_metric is None:
            return True
        return value < self.best_metric if self.val_mode == "min" else value > self.best_metric

    def _model_doc(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.data.fingerprint, "train_config": self.config.to_dict(),
                "step": int(self.step), **(extra or {})}

    def validate(self) -> dict[str, float] | None:
        """Score the (EMA) model on the validation subset (rank 0); keep the best model."""
        self._validated_at = self.step
        if not self.ctx.is_main:
            return None
        val = self._val_data()
        if len(val) == 0:
            return None
        was_training = self.model.training
        ema_ctx = self.ema.average_parameters(self.model) if self.ema else nullcontext()
        with _preserved_rng(), ema_ctx:
            self.model.eval()
            try:
                metrics = {k: float(v) for k, v in self.val_metric(self.model, val).items()}
                if self.val_key not in metrics:
                    raise KeyError(f"validation metric returned {sorted(metrics)}, without the "
                                   f"selection key {self.val_key!r} (pass val_key=...)")
                value = metrics[self.val_key]
                if self._better(value):
                    save_model(self.model, self.out_dir / BEST_DIR, training_data=self._model_doc(
                        {"val_key": self.val_key, "val_metric": value}))
                    self.best_metric, self.best_step = value, self.step
            finally:
                self.model.train(was_training)
        self.last_metrics = metrics
        return metrics

    def _calibrate(self, model: Generator | None = None) -> None:
        """Let ``model`` (default: the one training) fit its post-training calibrations
        (:meth:`Generator.calibrate`) on the training split, with a generator seeded from the
        run's seed and step. Families without calibrations (most) cost nothing: the split is
        not converted."""
        model = self.model if model is None else model
        if type(model).calibrate is Generator.calibrate:
            return
        train = self.data.train
        data = CalibrationData(train.showers(), None if train.counts is None
                               else train.counts.numpy(), train.conditions, train.pdg)
        gen = torch.Generator(device=self.device).manual_seed(
            _epoch_seed(self.config.seed, self.step))
        was_training = model.training
        model.eval()
        try:
            logs = model.calibrate(data, gen)
        finally:
            model.train(was_training)
        if logs:
            self._say("calibrated: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))

    def _calibrate_best(self) -> None:
        """Calibrate the saved best model once, at the end of training (calibrating at every
        improvement would cost a generation run per validation)."""
        if type(self.model).calibrate is Generator.calibrate:
            return
        best = load_model(self.out_dir / BEST_DIR, map_location=self.device)
        with _preserved_rng():
            self._calibrate(best)
        save_model(best, self.out_dir / BEST_DIR, training_data=self._model_doc(
            {"val_key": self.val_key, "val_metric": self.best_metric,
             "step": int(self.best_step or 0)}))

    # -- the loop ---------------------------------------------------------------------------

    def _seconds(self) -> float:
        return self._seconds_before + (time.monotonic() - self._t0)

    def _remove_debris(self) -> None:
        """Delete the temporaries killed runs left beside the outputs (rank 0)."""
        if not self.ctx.is_main:
            return
        removed = [p for name in OUTPUTS
                   for p in remove_stale_temporaries(self.out_dir / name)]
        if removed:
            self._say(f"removed {len(removed)} temporar{'y' if len(removed) == 1 else 'ies'} "
                      f"left by killed runs in {self.out_dir}: "
                      + ", ".join(p.name for p in removed))

    def _prepare(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._remove_debris()
        if self.config.ema_decay is not None:
            self.ema = EMA(self.model, self.config.ema_decay, self.config.ema_warmup)
        if self.resume:
            if not self.checkpoint_path.is_file():
                raise CheckpointError(f"{self.checkpoint_path}: checkpoint not found; cannot "
                                      f"resume (run without resume to start afresh)")
            self._restore()
            self._say(f"resumed from {self.checkpoint_path} at step {self.step}")
        else:
            if self.checkpoint_path.exists() and not self.overwrite:
                raise CheckpointError(f"{self.checkpoint_path}: exists; pass resume=True to "
                                      f"continue that run or overwrite=True to start afresh")
            if self.ctx.is_main:  # leftovers of an earlier run in the same directory
                self.log_path.unlink(missing_ok=True)
                shutil.rmtree(self.out_dir / BEST_DIR, ignore_errors=True)
            D.barrier()
            self._seed_globals(self.config.seed)
            D.broadcast_parameters(self.model)
            if self.config.ema_decay is not None:  # start from the broadcast weights
                self.ema = EMA(self.model, self.config.ema_decay, self.config.ema_warmup)
        if self.ctx.is_main:
            write_text_atomic(self.out_dir / CONFIG_FILE, self.config.to_json())
        self._ready = True

    def _finished(self, started: float) -> bool:
        done = self.target_steps is not None and self.step >= self.target_steps
        if self.config.max_minutes is not None:
            done = done or (time.monotonic() - started) >= 60.0 * self.config.max_minutes
            return D.any_rank(done, self.device)
        return done

    def fit(self) -> TrainResult:
        """Train until a stopping rule is met; returns what was done and the paths written."""
        cfg = self.config
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        prev_threads = torch.get_num_threads()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self._t0 = time.monotonic()
        try:
            with self._sigterm_stops():
                try:
                    return self._fit()
                except TrainingTerminated as exc:
                    raise self._stopped(exc) from None
        finally:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
            torch.set_num_threads(prev_threads)

    # -- SIGTERM ----------------------------------------------------------------------------

    @contextmanager
    def _sigterm_stops(self) -> Iterator[None]:
        """Within the block SIGTERM raises :class:`TrainingTerminated` (deferred to the end of
        a step inside :meth:`_deferred_signals`; a second signal does not wait). Installed
        only in the main thread and when nobody else handles SIGTERM."""
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            yield
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            if self._defer_depth and not self._stop_requested:
                self._stop_requested = True
                return
            self._consistent = self._consistent and not self._defer_depth
            raise TrainingTerminated(f"stopped by SIGTERM at step {self.step}")

        self._stop_requested = False
        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    @contextmanager
    def _deferred_signals(self) -> Iterator[None]:
        """A block that changes the training state: SIGTERM waits for its end."""
        self._defer_depth += 1
        try:
            yield
        finally:
            self._defer_depth -= 1

    def _check_stop(self) -> None:
        """At a step boundary: stop if SIGTERM arrived on any rank (collective call)."""
        if D.any_rank(self._stop_requested, self.device):
            raise TrainingTerminated(f"stopped by SIGTERM at step {self.step}", at_boundary=True)

    def _stopped(self, exc: TrainingTerminated) -> TrainingTerminated:
        """Write a checkpoint at the current step when the state allows (set up, the whole
        step done; in a multi-process run only at a boundary all ranks agreed on) and say how
        to go on."""
        saved = self._checkpointed_at == self.step
        if not saved and self._ready and self._consistent and \
                (exc.at_boundary or not self.ctx.distributed):
            with self._deferred_signals():
                self.save_checkpoint()
            saved = True
        if saved:
            exc.message += (f"; checkpoint {self.checkpoint_path} is at step {self.step}: "
                            f"resume to continue (calogen train ... --resume)")
        elif self._checkpointed_at is not None:
            exc.message += (f"; the last checkpoint {self.checkpoint_path} is at step "
                            f"{self._checkpointed_at}: resume to continue from there")
        if self.ctx.is_main:
            log.warning(exc.message)
            tqdm.write(exc.message, file=sys.stderr)
        return exc

    def _validate_row(self) -> dict[str, float]:
        metrics = self.validate()
        return {f"val/{k}": v for k, v in (metrics or {}).items()}

    def _log_row(self, csv: CSVLogger, tb: TensorBoardWriter, row: dict[str, Any]) -> None:
        row = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
               "seconds": round(self._seconds(), 3), **row}
        if self.schedule != "constant":
            row["schedule_horizon"] = self.horizon
        csv.log(row)
        tb.log(row, self.step)

    def _fit(self) -> TrainResult:
        cfg = self.config
        started = time.monotonic()
        self._prepare()
        main = self.ctx.is_main
        csv = CSVLogger(self.log_path, ("step", "epoch", "seconds")) if main else None
        if csv is not None and self.resume:
            csv.truncate_after(self.step)
        tb = TensorBoardWriter(self.out_dir / TENSORBOARD_DIR, cfg.tensorboard and main)
        self._say(f"training {self.model.family} on {self.device} (world size "
                  f"{self.ctx.world_size}): {len(self.data.train)} train events, global batch "
                  f"{self.global_batch}, {self.steps_per_epoch} steps/epoch; writing to "
                  f"{self.out_dir}")
        self.model.train()
        bar = tqdm(total=self.target_steps, initial=self.step, unit="step", desc="train",
                   disable=not (self.progress and main), dynamic_ncols=True)
        sums: dict[str, float] = {}
        count = 0
        perm_epoch, perm = -1, torch.empty(0, dtype=torch.int64)
        try:
            done = self._finished(started)
            while not done:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                if epoch != perm_epoch:
                    perm_epoch, perm = epoch, self._permutation(epoch)
                lo = position * self.global_batch + self.ctx.rank * self.local_batch
                batch = self.data.train.batch(perm[lo:lo + self.local_batch]).to(self.device)
                with self._deferred_signals():
                    logs = self._train_step(batch)
                    self.step += 1
                done = self._finished(started)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                row: dict[str, Any] = {}
                if self.step % cfg.log_every == 0 or done:
                    row.update({k: v / count for k, v in sums.items()})
                    sums, count = {}, 0
                if done or (cfg.val_every and self.step % cfg.val_every == 0):
                    # several ranks: the others wait in the next step, so stop together
                    with self._deferred_signals() if self.ctx.distributed else nullcontext():
                        row.update(self._validate_row())
                if row and csv is not None:
                    self._log_row(csv, tb, row)
                if done or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                    with self._deferred_signals():
                        self.save_checkpoint()
                self._check_stop()
                bar.update(1)
                post = {k[5:]: f"{v:.4g}" for k, v in logs.items() if k.startswith("loss_")}
                if self.val_key in self.last_metrics:
                    post[self.val_key] = f"{self.last_metrics[self.val_key]:.4g}"
                bar.set_postfix(post, refresh=False)
            if self._validated_at != self.step:  # nothing left to train (resumed at the end)
                row = self._validate_row()
                if row and csv is not None:
                    self._log_row(csv, tb, row)
            if self._checkpointed_at != self.step:
                with self._deferred_signals():
                    self.save_checkpoint()
            self._check_stop()
        finally:
            bar.close()
            tb.close()
        paths = {"out_dir": self.out_dir, "checkpoint": self.checkpoint_path,
                 "log": self.log_path, "config": self.out_dir / CONFIG_FILE}
        if main:
            ema_ctx = self.ema.average_parameters(self.model) if self.ema else nullcontext()
            with _preserved_rng(), ema_ctx:
                self._calibrate()
                paths["last"] = save_model(self.model, self.out_dir / LAST_DIR,
                                           training_data=self._model_doc())
            if (self.out_dir / BEST_DIR).is_dir():
                paths["best"] = self.out_dir / BEST_DIR
                self._calibrate_best()
        D.barrier()
        seconds = self._seconds()
        best = "" if self.best_metric is None else \
            f"; best {self.val_key} {self.best_metric:.5g} at step {self.best_step}"
        self._say(f"trained {self.step} steps in {seconds:.1f} s{best}; wrote "
                  + ", ".join(f"{k} {v}" for k, v in paths.items() if k != "out_dir"))
        return TrainResult(self.step, self.step / self.steps_per_epoch, seconds,
                           self.best_metric, self.best_step, self.val_key,
                           dict(self.last_metrics), paths)
