"""Stream the built-in reference simulator into a ShowerSet file.

The physics layer (:mod:`calogen.physics.simulator`) produces shards of responses; this module
selects, counts and writes them in shard order with bounded memory, atomically.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from calogen.data.schema import ZDC_CONDITION_COLUMNS, ZDC_CONDITION_UNITS
from calogen.data.showerset import ShowerSetWriter
from calogen.physics.gun import GunConfig, Particles
from calogen.physics.simulator import SHARD_PARTICLES, get_simulator, iter_shards, producer_info

MAX_EMPTY_SHARDS = 400
"""Give up when this many shards in a row keep no response (the selection is too tight)."""


@dataclass(frozen=True)
class SimulationReport:
    """What :func:`simulate_to_file` did."""

    path: Path
    n_written: int
    n_simulated: int
    seconds: float

    @property
    def efficiency(self) -> float:
        """Fraction of simulated responses that passed the selection."""
        return self.n_written / self.n_simulated if self.n_simulated else 0.0


def simulate_to_file(
    out: str | Path,
    *,
    detector: str = "zn",
    n: int | None = None,
    seed: int = 0,
    workers: int = 1,
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
        seed: run seed; the same seed gives a bit-identical file whatever ``workers`` and
            ``batch_size`` are.
        workers: worker processes.
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
    if min_photons is None:
        min_photons = config.min_photons if particles is None else 0
    target = n if particles is None else min(n or math.inf, len(particles) * repeats)
    producer = producer_info(config, seed=seed, repeats=repeats, min_photons=min_photons,
                             particles_file=particles_file)
    t0 = time.perf_counter()
    n_simulated = 0
    empty_run = 0
    with ShowerSetWriter(
        out, shower_shape=config.grid.shape, detector=config.grid.name,
        geometry=config.grid.to_dict(), condition_columns=ZDC_CONDITION_COLUMNS,
        condition_units=ZDC_CONDITION_UNITS, producer=producer, shower_dtype="int32",
        overwrite=overwrite,
    ) as writer, tqdm(total=None if math.isinf(target) else int(target), unit="resp",
                      desc=f"simulate {config.grid.name}", disable=not progress) as bar:
        for shard in iter_shards(config, seed, repeats=repeats, min_photons=min_photons,
                                 particles=particles, workers=workers,
                                 shards_per_task=max(1, math.ceil(batch_size / SHARD_PARTICLES))):
            n_simulated += shard.n_simulated
            take = int(min(len(shard.pdg), target - writer.n_written))
            if take > 0:
                writer.append(shard.showers[:take], shard.conditions[:take], shard.pdg[:take],
                              shard.condition_id[:take])
                bar.update(take)
            empty_run = 0 if len(shard.pdg) else empty_run + 1
            if particles is None and empty_run >= MAX_EMPTY_SHARDS:
                raise ValueError(
                    f"the selection min_photons={min_photons} kept nothing in "
                    f"{MAX_EMPTY_SHARDS * SHARD_PARTICLES} simulated particles; lower it")
            if writer.n_written >= target:
                break
        n_written = writer.n_written
    return SimulationReport(Path(out), n_written, n_simulated, time.perf_counter() - t0)
