"""Run the parametrised point engine (:mod:`calogen.physics.point_readout`) into a ShowerSet.

Detector ``ild`` (the Geant4 engine's ILD-like Si-W ECAL section): point clouds ``(x, y, z, E)``
in mm / MeV, condition ``E_inc`` (GeV). Default gun: photons, uniform 10 - 90 GeV at normal
incidence (CaloClouds II), the Geant4 engine's ``ild`` gun.

Shard ``k`` of seed ``s`` draws its energies, then its showers, from
``SeedSequence(s, spawn_key=(k,))`` (:mod:`calogen.pipelines.shards`), so a file depends on the
seed alone, not on the workers. With the Geant4 engine's shard size, a parametrised file and a
Geant4 file of the same seed and gun hold the same incident energies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calogen import __version__
from calogen.data.showerset import ShowerBatch
from calogen.particles import gun_conditions
from calogen.physics.point_readout import (
    MAX_SPOTS_PER_CHUNK,
    POINT_DETECTORS,
    POINT_ENGINE_SIMPLIFICATIONS,
    PointEngineConfig,
    point_engine,
    simulate_points,
)
from calogen.pipelines.geant4_reference import DEFAULT_GUNS, GunSpec
from calogen.pipelines.geant4_reference import SHOWERS_PER_SHARD as GEANT4_SHOWERS_PER_SHARD
from calogen.pipelines.reference import SimulationReport
from calogen.pipelines.shards import OutputLayout, ShardOutput, ShardPlan, ShardSpec, run_shards

SHOWERS_PER_SHARD = GEANT4_SHOWERS_PER_SHARD
"""Showers per shard, the unit of seeding (the Geant4 engine's, so energies agree). Part of
the algorithm: changing it changes files."""

STAND_IN_NOTE = ("Produced by calogen's built-in parametrised engine (GFlash-style energy spots "
                 "in a simplified Si-W stack, clustered as the Geant4 engine clusters its "
                 "steps): a stand-in for Geant4, not Geant4.")


@dataclass(frozen=True)
class PointEngine:
    """The parametrised point engine as a shard engine: shard ``k`` holds showers
    ``k * per_shard .. (k + 1) * per_shard - 1``."""

    config: PointEngineConfig
    gun: GunSpec
    per_shard: int = SHOWERS_PER_SHARD

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        rng = spec.rng()
        energy = self.gun.draw(rng, self.per_shard)
        pdg = np.full(self.per_shard, self.gun.pdg, dtype=np.int32)
        points, counts = simulate_points(pdg, energy, self.config, rng)
        first = spec.index * self.per_shard
        ids = np.arange(first, first + self.per_shard, dtype=np.int64)
        batch = ShowerBatch(points, energy.astype(np.float32)[:, None], pdg, ids, counts)
        return ShardOutput(batch, self.per_shard)


def producer_info(config: PointEngineConfig, gun: GunSpec, seed: int) -> dict[str, Any]:
    """The producer record: the parametrised engine, what it simplifies, its configuration."""
    return {"name": "calogen.physics.point-readout", "engine": "parametrised",
            "version": __version__, "seed": seed, "note": STAND_IN_NOTE,
            "simplifications": f"{config.stack.simplifications}; {POINT_ENGINE_SIMPLIFICATIONS}",
            "gun": gun.to_dict(), "showers_per_shard": SHOWERS_PER_SHARD,
            "config": config.to_dict()}


def simulate_points_to_file(out: str | Path, *, detector: str = "ild", n: int, seed: int = 0,
                            gun: GunSpec | None = None, workers: int = 1,
                            scheduler: str | None = None, resume: bool = False,
                            overwrite: bool = False, progress: bool = True) -> SimulationReport:
    """Simulate ``n`` showers of ``detector`` (:data:`POINT_DETECTORS`) with the parametrised
    point engine into the ShowerSet ``out`` (written atomically; same seed, same file whatever
    ``workers`` / ``scheduler``; ``resume`` continues a stopped run of the same parameters).
    ``gun`` defaults to the Geant4 engine's gun of the detector; e+- and photons only."""
    if detector not in POINT_DETECTORS:
        raise ValueError(f"the parametrised point engine simulates {list(POINT_DETECTORS)}, "
                         f"not {detector!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    gun = gun or DEFAULT_GUNS[detector]
    if abs(gun.pdg) != 11 and gun.pdg != 22:
        raise ValueError(f"the parametrised point engine shoots e+- and photons (PDG 11, -11, "
                         f"22), not PDG {gun.pdg}; use --engine geant4")
    config = point_engine(detector)
    volume = config.volume
    columns, units = gun_conditions("E_inc")
    layout = OutputLayout(detector=volume.name, geometry=volume.to_dict(),
                          condition_columns=columns, condition_units=units,
                          producer=producer_info(config, gun, seed),
                          shower_shape=volume.shower_shape, shower_dtype="float32",
                          shower_units="MeV")
    params = {"engine": "parametrised-points", "detector": detector, "n": n,
              "gun": gun.to_dict(), "config": config.to_dict(),
              "showers_per_shard": SHOWERS_PER_SHARD, "max_spots_per_chunk": MAX_SPOTS_PER_CHUNK,
              "version": __version__}
    plan = ShardPlan(n_shards=-(-n // SHOWERS_PER_SHARD), target=n)
    report = run_shards(PointEngine(config, gun), out, layout=layout, plan=plan, params=params,
                        seed=seed, workers=workers, scheduler=scheduler, resume=resume,
                        overwrite=overwrite, progress=progress, label=f"simulate {detector}")
    return SimulationReport(report.path, report.n_written, report.n_simulated, report.seconds,
                            report.n_shards, report.n_run)
