"""The reference ZDC simulator: a parametrised (GFlash-style) stand-in for Geant4.

It is NOT Geant4. It reproduces the features that make ZDC fast simulation hard (sparse images,
heavy tails, strong dependence on species, energy and impact point, large diversity for
identical conditions) with parametrised showers (:mod:`calogen.physics.showers`) and Poisson
photon readout (:mod:`calogen.physics.readout`), calibrated to the ALICE O2 figures of
``shared/PHYSICS.md``.

Reproducibility: work is cut into *shards* of :data:`SHARD_PARTICLES` particles. Shard ``k`` of
seed ``s`` draws all its randomness from ``SeedSequence(s, spawn_key=(k,))``, so the output does
not depend on how shards are grouped into tasks (batch size) or spread over worker processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from calogen import __version__
from calogen.geometry.zdc import ZN, ZP, FibreGrid
from calogen.particles import impact_point_cm, species_table
from calogen.physics.gun import ZN_GUN, ZP_GUN, GunConfig, ParticleGun, Particles
from calogen.physics.materials import BRASS, TUNGSTEN_ALLOY, Absorber
from calogen.physics.readout import ReadoutModel, read_out
from calogen.physics.showers import HadronShowerModel, develop_showers
from calogen.processes import worker_pool

SHARD_PARTICLES = 256
"""Particles per shard, the unit of seeding. Part of the algorithm: changing it changes files."""

MAX_TASK_BYTES = 32 * 2**20
"""Upper bound on the responses one worker task returns (bytes of int32 showers): caps the
shards per task whatever batch size is asked for, so memory stays bounded and the first
results arrive quickly (about 16 ZN shards at ``repeats=1``)."""

STAND_IN_NOTE = ("Produced by calogen's built-in parametrised reference simulator "
                 "(GFlash-style showers, Poisson photon readout): a stand-in for Geant4, "
                 "not Geant4.")


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that defines the reference simulator for one detector."""

    grid: FibreGrid
    absorber: Absorber
    readout: ReadoutModel
    hadron: HadronShowerModel = field(default_factory=HadronShowerModel)
    gun: GunConfig = ZN_GUN
    min_photons: int = 10
    """Default selection: keep responses with at least this photon sum (ALICE ZN set: 10)."""

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable description (stored as the producer of every file)."""
        return {
            "grid": self.grid.to_dict(), "absorber": self.absorber.to_dict(),
            "readout": self.readout.to_dict(), "hadron": self.hadron.to_dict(),
            "gun": self.gun.to_dict(), "min_photons": self.min_photons,
        }


ZN_HADRON_MODEL = HadronShowerModel(
    fem_e0_baryon_gev=2.6,
    subshower_delay_lambda=0.35,
    subshower_delay_exponent=0.3,
    subshower_light_factor=0.93,
    halo_radius_cm=0.2,
)
"""ZN hadron showers: Groom's E0 = 2.6 GeV for baryon-induced showers (1 GeV for mesons),
cascade depth growing as (E / GeV)^0.3 (Fabjan, Gianotti 2003: the attenuation length of the
hadronic tail), so TeV showers leak out of the back of the 8.7 lambda_int ZN. The non-EM light
is compact (radius 0.2 cm, about one fibre pitch, like the core of an EM shower): quartz fibres
see only the Cherenkov light of relativistic charged particles, and in the non-EM part of a
hadron shower these are the fast secondaries running close to the axis; the wide halo of slow
hadrons, nuclear fragments and neutrons makes no light. (Spread over the 1.5 cm profile, the
non-EM light at e/h = 5 lights many fibres with a photon each: ZN zero-pixel fraction 0.92
against O2's 0.96.) The sub-shower light factor is then fixed so that neutrons above 100 GeV
keep ~0.66 photons/GeV. With the readout's e/h below this gives charged pions ~0.66
(E > 20 GeV) / ~0.67 (E > 100 GeV) and protons ~0.60 photons/GeV (E > 20 GeV), against the
ALICE O2 0.63 / 0.69 / 0.61 (PHYSICS.md; ``benchmarks/reference_calibration.py``)."""

ZN_SIMULATOR = SimulatorConfig(
    grid=ZN, absorber=TUNGSTEN_ALLOY,
    readout=ReadoutModel(photons_per_gev=1.39, halo_relative_yield=0.20),
    hadron=ZN_HADRON_MODEL,
    gun=ZN_GUN, min_photons=10,
)
"""ALICE ZN: tungsten, 44 x 44 fibres, calibrated to ~0.66 photons/GeV for neutrons,
~1.05 photons/GeV for e/gamma, ~0.63-0.69 for charged pions and ~0.61 for protons
(PHYSICS.md). Non-EM light at e/h = 5, the value measured for quartz-fibre calorimeters
(CMS HF, N. Akchurin et al., Nucl. Instr. Meth. A 399 (1997) 202; DREAM, N. Akchurin et al.,
Nucl. Instr. Meth. A 537 (2005) 537: e/h = 4.7 for its quartz fibres)."""

ZP_SIMULATOR = SimulatorConfig(
    grid=ZP, absorber=BRASS,
    readout=ReadoutModel(photons_per_gev=1.0),
    gun=ZP_GUN, min_photons=1,
)
"""ALICE ZP: brass, 56 x 30 fibres; keeps every response with any signal (PHYSICS.md quotes
the ZP photon-sum quartiles of particles with a signal)."""

SIMULATORS: dict[str, SimulatorConfig] = {"ZN": ZN_SIMULATOR, "ZP": ZP_SIMULATOR}


def get_simulator(name: str) -> SimulatorConfig:
    """Default simulator configuration for a detector name (``zn`` or ``zp``)."""
    try:
        return SIMULATORS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; expected one of "
                         f"{sorted(k.lower() for k in SIMULATORS)}") from None


def simulate_particles(particles: Particles, config: SimulatorConfig,
                       rng: np.random.Generator) -> NDArray[np.int32]:
    """Simulate the response to each particle.

    Args:
        particles: conditions (N, 9) in O2 order/units and PDG codes.
        config: detector, absorber and model parameters.
        rng: random generator.

    Returns:
        Photon counts per fibre, shape ``(N, *config.grid.shape)``, int32.
    """
    cond = np.asarray(particles.conditions, dtype=np.float64)
    pdg = np.asarray(particles.pdg, dtype=np.int64)
    _, charge, kind, baryon = species_table(pdg)
    energy = cond[:, 0]
    mass_gev = cond[:, 7] * 1e-3
    # Energy available to a hadron shower: kinetic energy for baryons (the baryon number is
    # conserved), E + m for antibaryons (annihilation), the total energy otherwise.
    available = np.where(baryon > 0, energy - baryon * mass_gev / np.maximum(baryon, 1),
                         np.where(baryon < 0, energy + mass_gev, energy))
    available = np.maximum(available, 0.0)
    x_cm, y_cm, sx, sy = impact_point_cm(cond)
    emitters = develop_showers(
        kind=kind, pdg=pdg, energy_gev=energy, available_gev=available,
        charged=charge != 0, x_cm=x_cm, y_cm=y_cm, slope_x=sx, slope_y=sy,
        absorber=config.absorber, depth_cm=config.grid.depth_cm, model=config.hadron,
        photons_per_gev=config.readout.photons_per_gev,
        halo_relative_yield=config.readout.halo_relative_yield,
        track_photons_per_cm=config.readout.track_photons_per_cm, rng=rng,
    )
    return read_out(emitters, len(pdg), available, config.grid, config.absorber,
                    config.readout, rng)


@dataclass(frozen=True)
class ShardResult:
    """The kept responses of one shard, in particle order."""

    shard: int
    showers: NDArray[np.int32]
    conditions: NDArray[np.float32]
    pdg: NDArray[np.int32]
    condition_id: NDArray[np.int64]
    n_simulated: int


def shard_rng(seed: int, shard: int) -> np.random.Generator:
    """The random generator of shard ``shard`` for ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(shard,))))


def simulate_shard(config: SimulatorConfig, seed: int, shard: int, *, repeats: int = 1,
                   min_photons: int = 0, particles: Particles | None = None) -> ShardResult:
    """Simulate one shard.

    Args:
        config: simulator configuration.
        seed: run seed.
        shard: shard index; with ``particles`` it covers rows
            ``[shard * SHARD_PARTICLES, (shard + 1) * SHARD_PARTICLES)`` of them, otherwise the
            gun draws ``SHARD_PARTICLES`` new particles.
        repeats: simulate each particle this many times (consecutive rows, same condition id).
        min_photons: keep only responses whose photon sum is at least this.
        particles: given particles (re-simulation), or ``None`` for the gun.
    """
    rng = shard_rng(seed, shard)
    start = shard * SHARD_PARTICLES
    if particles is None:
        batch = ParticleGun(config.gun, config.grid).sample(SHARD_PARTICLES, rng)
    else:
        stop = min(start + SHARD_PARTICLES, len(particles))
        batch = Particles(particles.conditions[start:stop], particles.pdg[start:stop])
    ids = np.arange(start, start + len(batch), dtype=np.int64)
    if repeats > 1:
        batch = batch.repeat(repeats)
        ids = np.repeat(ids, repeats)
    showers = simulate_particles(batch, config, rng)
    keep = showers.reshape(len(batch), -1).sum(axis=1) >= min_photons
    return ShardResult(shard, showers[keep], batch.conditions[keep], batch.pdg[keep],
                       ids[keep], len(batch))


def max_shards_per_task(config: SimulatorConfig, repeats: int = 1) -> int:
    """The most shards one task may hold under :data:`MAX_TASK_BYTES` (at least 1)."""
    shard_bytes = SHARD_PARTICLES * repeats * config.grid.n_pixels * 4
    return max(1, MAX_TASK_BYTES // shard_bytes)


def _run_task(config: SimulatorConfig, seed: int, shards: list[int], repeats: int,
              min_photons: int, particles: Particles | None) -> list[ShardResult]:
    return [simulate_shard(config, seed, s, repeats=repeats, min_photons=min_photons,
                           particles=particles) for s in shards]


def iter_shards(config: SimulatorConfig, seed: int, *, repeats: int = 1, min_photons: int = 0,
                particles: Particles | None = None, workers: int = 1,
                shards_per_task: int = 4) -> Iterator[ShardResult]:
    """Yield shard results in shard order, forever (gun) or until ``particles`` are used up.

    Up to ``2 * workers`` tasks of ``shards_per_task`` shards (capped by
    :func:`max_shards_per_task`) are in flight at once, so memory stays bounded. The caller
    stops iterating when it has enough responses; the workers are then stopped. Worker
    processes die with this process (:func:`calogen.processes.worker_pool`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if shards_per_task < 1:
        raise ValueError(f"shards_per_task must be >= 1, got {shards_per_task}")
    shards_per_task = min(shards_per_task, max_shards_per_task(config, repeats))
    n_shards = None if particles is None else -(-len(particles) // SHARD_PARTICLES)

    def tasks() -> Iterator[list[int]]:
        k = 0
        while n_shards is None or k < n_shards:
            hi = k + shards_per_task if n_shards is None else min(k + shards_per_task, n_shards)
            yield list(range(k, hi))
            k = hi

    if workers <= 1:
        for shards in tasks():
            for k in shards:
                yield simulate_shard(config, seed, k, repeats=repeats, min_photons=min_photons,
                                     particles=particles)
        return
    # Workers compute with one thread each: numpy's own threads would oversubscribe the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with worker_pool(workers) as pool:
        pending: deque[Future[list[ShardResult]]] = deque()
        todo = tasks()
        try:
            for shards in todo:
                pending.append(pool.submit(_run_task, config, seed, shards, repeats,
                                           min_photons, particles))
                if len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def producer_info(config: SimulatorConfig, *, seed: int, repeats: int, min_photons: int,
                  particles_file: str | None = None) -> dict[str, object]:
    """The producer record written into every simulated ShowerSet."""
    return {
        "name": "calogen.physics.reference-simulator",
        "version": __version__,
        "seed": seed,
        "repeats": repeats,
        "min_photons": min_photons,
        "shard_particles": SHARD_PARTICLES,
        "particles_file": particles_file,
        "note": STAND_IN_NOTE,
        "config": config.to_dict(),
    }
