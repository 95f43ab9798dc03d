"""Run the parametrised voxel engine (:mod:`calogen.physics.voxel_readout`) into a ShowerSet.

Detectors: ``ds2`` / ``ds3`` (the CaloChallenge 2022 datasets 2/3 W/Si detector, electrons
log-uniform 1 GeV - 1 TeV, 15.15 keV voxel threshold) and ``ds1-photons`` / ``ds1-pions`` (a
simplified ATLAS-like barrel at |eta| 0.20-0.25, the 15 dataset-1 energies 256 MeV x 2^k drawn
uniformly), binned with the official CaloChallenge binnings. Files hold voxels ``(N, n_voxels)``
in MeV and the condition ``E_inc`` (GeV).

Shard ``k`` of seed ``s`` draws its energies and showers from ``SeedSequence(s, spawn_key=(k,))``
(:mod:`calogen.pipelines.shards`), so a file depends on the seed alone, not on the workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calogen import __version__
from calogen.data.showerset import ShowerBatch
from calogen.particles import gun_conditions
from calogen.physics.voxel_readout import (
    ENGINE_SIMPLIFICATIONS,
    MAX_SPOTS_PER_CHUNK,
    VOXEL_DETECTORS,
    VoxelEngineConfig,
    VoxelGun,
    simulate_voxels,
    voxel_engine,
)
from calogen.pipelines.reference import SimulationReport
from calogen.pipelines.shards import OutputLayout, ShardOutput, ShardPlan, ShardSpec, run_shards

SHOWERS_PER_SHARD = 64
"""Showers per shard, the unit of seeding. Part of the algorithm: changing it changes files."""

STAND_IN_NOTE = ("Produced by calogen's built-in parametrised engine (GFlash-style energy spots "
                 "in a simplified sampling stack): a stand-in for Geant4, not Geant4.")


@dataclass(frozen=True)
class VoxelEngine:
    """The parametrised voxel engine as a shard engine: shard ``k`` holds showers
    ``k * per_shard .. (k + 1) * per_shard - 1``."""

    config: VoxelEngineConfig
    gun: VoxelGun
    per_shard: int = SHOWERS_PER_SHARD

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        rng = spec.rng()
        energy = self.gun.draw(rng, self.per_shard)
        pdg = np.full(self.per_shard, self.gun.pdg, dtype=np.int32)
        showers = simulate_voxels(pdg, energy, self.config, rng)
        first = spec.index * self.per_shard
        ids = np.arange(first, first + self.per_shard, dtype=np.int64)
        return ShardOutput(ShowerBatch(showers, energy.astype(np.float32)[:, None], pdg, ids),
                           self.per_shard)


def producer_info(config: VoxelEngineConfig, gun: VoxelGun, seed: int) -> dict[str, Any]:
    """The producer record: the parametrised engine, what it simplifies, its configuration."""
    return {"name": "calogen.physics.voxel-readout", "engine": "parametrised",
            "version": __version__, "seed": seed, "note": STAND_IN_NOTE,
            "simplifications": f"{config.stack.simplifications}; {ENGINE_SIMPLIFICATIONS}",
            "gun": gun.to_dict(),
            "showers_per_shard": SHOWERS_PER_SHARD, "config": config.to_dict()}


def simulate_voxels_to_file(out: str | Path, *, detector: str, n: int, seed: int = 0,
                            workers: int = 1, scheduler: str | None = None,
                            resume: bool = False, overwrite: bool = False,
                            progress: bool = True) -> SimulationReport:
    """Simulate ``n`` showers of ``detector`` (:data:`VOXEL_DETECTORS`) with the parametrised
    engine into the ShowerSet ``out`` (written atomically; same seed, same file whatever
    ``workers`` / ``scheduler``; ``resume`` continues a stopped run of the same parameters)."""
    if detector not in VOXEL_DETECTORS:
        raise ValueError(f"the parametrised voxel engine simulates {list(VOXEL_DETECTORS)}, "
                         f"not {detector!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    config, gun = voxel_engine(detector)
    geometry = config.geometry
    columns, units = gun_conditions("E_inc")
    layout = OutputLayout(detector=geometry.name, geometry=geometry.to_dict(),
                          condition_columns=columns, condition_units=units,
                          producer=producer_info(config, gun, seed),
                          shower_shape=geometry.shower_shape, shower_dtype="float32",
                          shower_units="MeV")
    params = {"engine": "parametrised-voxels", "detector": detector, "n": n,
              "gun": gun.to_dict(), "config": config.to_dict(),
              "showers_per_shard": SHOWERS_PER_SHARD, "max_spots_per_chunk": MAX_SPOTS_PER_CHUNK,
              "version": __version__}
    plan = ShardPlan(n_shards=-(-n // SHOWERS_PER_SHARD), target=n)
    report = run_shards(VoxelEngine(config, gun), out, layout=layout, plan=plan, params=params,
                        seed=seed, workers=workers, scheduler=scheduler, resume=resume,
                        overwrite=overwrite, progress=progress, label=f"simulate {detector}")
    return SimulationReport(report.path, report.n_written, report.n_simulated, report.seconds,
                            report.n_shards, report.n_run)
