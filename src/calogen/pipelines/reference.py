"""Run the built-in reference simulator into a ShowerSet, as seeded shards.

The physics layer (:mod:`calogen.physics.simulator`) simulates one shard of
:data:`~calogen.physics.simulator.SHARD_PARTICLES` particles at a time; here each shard is a
task of :func:`calogen.pipelines.shards.run_shards` (in-process, or on Dask workers), so the
file for a seed is the same whatever the number of workers, and a stopped run can be resumed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from calogen.data.schema import ZDC_CONDITION_COLUMNS, ZDC_CONDITION_UNITS
from calogen.data.showerset import ShowerBatch
from calogen.physics.gun import GunConfig, Particles
from calogen.physics.simulator import (
    SHARD_PARTICLES,
    SimulatorConfig,
    get_simulator,
    max_shards_per_task,
    producer_info,
    simulate_shard,
)
from calogen.pipelines.shards import (
    OutputLayout,
    ShardOutput,
    ShardPlan,
    ShardSpec,
    run_shards,
)

MAX_EMPTY_SHARDS = 400
"""Give up when this many physics shards in a row keep no response (the selection is too
tight)."""

SHARDS_PER_FILE = 8
"""Physics shards (:data:`~calogen.physics.simulator.SHARD_PARTICLES` particles each) per
shard file of the runner, fewer when their responses would exceed
:data:`~calogen.physics.simulator.MAX_TASK_BYTES` (many repeats): amortises the cost of a
file. Does not change the output, only what a resumed run must match."""


def shards_per_file(config: SimulatorConfig, repeats: int) -> int:
    """Physics shards per runner shard for this detector and ``repeats``."""
    return max(1, min(SHARDS_PER_FILE, max_shards_per_task(config, repeats)))


@dataclass(frozen=True)
class SimulationReport:
    """What :func:`simulate_to_file` did."""

    path: Path
    n_written: int
    n_simulated: int
    seconds: float
    n_shards: int = 0
    """Shards merged into the file."""
    n_run: int = 0
    """Shards simulated by this call (fewer than ``n_shards`` when a run was resumed)."""

    @property
    def efficiency(self) -> float:
        """Fraction of simulated responses that passed the selection."""
        return self.n_written / self.n_simulated if self.n_simulated else 0.0


@dataclass(frozen=True)
class ReferenceEngine:
    """The parametrised simulator as a shard engine (:mod:`calogen.pipelines.shards`):
    runner shard ``k`` holds the physics shards ``k * group .. (k + 1) * group - 1``
    (:func:`~calogen.physics.simulator.simulate_shard` of ``(seed, shard)``), in order."""

    config: SimulatorConfig
    repeats: int = 1
    min_photons: int = 0
    particles: Particles | None = None
    group: int = 1

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        first = spec.index * self.group
        last = first + self.group
        if self.particles is not None:
            last = min(last, math.ceil(len(self.particles) / SHARD_PARTICLES))
        parts = [simulate_shard(self.config, spec.seed, k, repeats=self.repeats,
                                min_photons=self.min_photons, particles=self.particles)
                 for k in range(first, last)]
        return ShardOutput(
            ShowerBatch(*(np.concatenate([getattr(r, name) for r in parts])
                          for name in ("showers", "conditions", "pdg", "condition_id"))),
            sum(r.n_simulated for r in parts))


def particles_digest(particles: Particles) -> str:
    """SHA-256 of the particles' conditions and PDG codes (identifies them in a manifest)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(particles.conditions, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(particles.pdg, dtype=np.int32).tobytes())
    return h.hexdigest()


def simulate_to_file(
    out: str | Path,
    *,
    detector: str = "zn",
    n: int | None = None,
    seed: int = 0,
    workers: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    repeats: int = 1,
    particles: Particles | None = None,
    particles_file: str | None = None,
    min_photons: int | None = None,
    batch_size: int = 1024,
    gun: GunConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> SimulationReport:
    """Simulate ZDC responses and write them as a ShowerSet.

    Args:
        out: output file (written under a temporary name and renamed when complete).
        detector: ``"zn"`` or ``"zp"``.
        n: number of responses to write (after the selection). Required with the gun; with
            ``particles`` it caps the output (default: every selected response).
        seed: run seed; the same seed gives a bit-identical file whatever ``workers``,
            ``scheduler`` and ``batch_size`` are.
        workers: ``1`` simulates in this process; more start a local Dask cluster of that
            many single-threaded worker processes.
        scheduler: address of an existing Dask scheduler to run on instead.
        resume: continue the shards a stopped run of the same parameters kept (and keep
            this run's shards if it stops).
        repeats: simulate each particle this many times (identical conditions, one group id).
        particles: particles to re-simulate instead of drawing them with the gun.
        particles_file: where ``particles`` came from (recorded in the file).
        min_photons: keep responses with at least this photon sum; default: the detector's
            selection (ZN 10, ZP 1) with the gun, 0 (keep every particle) with ``particles``.
        batch_size: particles per worker task (only affects speed and memory).
        gun: particle-gun configuration replacing the detector's default.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.
    """
    config = get_simulator(detector)
    if gun is not None:
        config = replace(config, gun=gun)
    if particles is None and (n is None or n < 1):
        raise ValueError("n (number of responses) must be a positive integer when the "
                         "particle gun is used")
    if n is not None and n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if min_photons is None:
        min_photons = config.min_photons if particles is None else 0
    group = shards_per_file(config, repeats)
    if particles is None:
        plan = ShardPlan(target=n)
    else:
        total = len(particles) * repeats
        plan = ShardPlan(n_shards=math.ceil(len(particles) / (SHARD_PARTICLES * group)),
                         target=None if n is None or n >= total else n)
    producer = producer_info(config, seed=seed, repeats=repeats, min_photons=min_photons,
                             particles_file=particles_file)
    layout = OutputLayout(detector=config.grid.name, geometry=config.grid.to_dict(),
                          condition_columns=ZDC_CONDITION_COLUMNS,
                          condition_units=ZDC_CONDITION_UNITS, producer=producer,
                          shower_shape=config.grid.shape, shower_dtype="int32")
    params = {"engine": "reference", "detector": config.grid.name, "n": n,
              "repeats": repeats, "min_photons": min_photons, "config": config.to_dict(),
              "shard_particles": SHARD_PARTICLES, "shards_per_file": group,
              "particles": None if particles is None else particles_digest(particles)}
    per_task = max(1, min(math.ceil(batch_size / SHARD_PARTICLES),
                          max_shards_per_task(config, repeats)) // group)
    report = run_shards(
        ReferenceEngine(config, repeats, min_photons, particles, group), out, layout=layout,
        plan=plan, params=params, seed=seed, workers=workers, scheduler=scheduler,
        resume=resume, overwrite=overwrite, shards_per_task=per_task,
        max_empty_shards=-(-MAX_EMPTY_SHARDS // group) if particles is None else None,
        empty_message=(f"the selection min_photons={min_photons} kept nothing in "
                       f"{MAX_EMPTY_SHARDS * SHARD_PARTICLES} simulated particles; lower it"),
        progress=progress, label=f"simulate {config.grid.name}")
    return SimulationReport(report.path, report.n_written, report.n_simulated, report.seconds,
                            report.n_shards, report.n_run)
