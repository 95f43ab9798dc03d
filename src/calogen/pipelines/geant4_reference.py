"""Stream the Geant4 engine into a ShowerSet, as seeded shards (:mod:`calogen.pipelines.shards`).

Detectors (:mod:`calogen.physics.geant4.detectors`) and what they write:

- ``ds2`` / ``ds3``: the CaloChallenge datasets 2/3 detector (Par04), voxels ``(N, n_voxels)``
  in MeV with the 15.15 keV threshold; condition ``E_inc`` (GeV, the primary's kinetic energy).
  Default gun: electrons, log-uniform 1 GeV - 1 TeV (the datasets' spectrum).
- ``ild``: an ILD-like Si-W ECAL section, point clouds ``(x, y, z, E)`` in mm / MeV; condition
  ``E_inc``. Default gun: photons, uniform 10 - 90 GeV (CaloClouds II).
- ``zn``: the ALICE neutron ZDC with Cherenkov photons counted per fibre, images ``(N, 44, 44)``;
  the 9 ALICE O2 conditions of a particle entering the face centre along the axis (vertex at the
  origin, momentum along +z). Default gun: neutrons, log-uniform 100 GeV - 2.68 TeV.

Event ``k`` of the run is seeded from ``(seed, k)`` by the engine and its energy drawn from shard
``k // SHOWERS_PER_SHARD``'s generator, so a file depends on the seed alone, not on the workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from calogen.data.showerset import ShowerBatch
from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS, gun_conditions, species_of
from calogen.pipelines.reference import SimulationReport
from calogen.pipelines.shards import OutputLayout, ShardOutput, ShardPlan, ShardSpec, run_shards

Spectrum = Literal["log-uniform", "uniform"]
GEANT4_DETECTORS: tuple[str, ...] = ("ds2", "ds3", "ild", "zn")

SHOWERS_PER_SHARD = 16
"""Showers per shard (one seeded energy draw and one engine call each)."""


@dataclass(frozen=True)
class GunSpec:
    """A single-species gun: PDG code and kinetic energies in GeV drawn from a spectrum."""

    pdg: int
    e_min_gev: float
    e_max_gev: float
    spectrum: Spectrum = "log-uniform"

    def __post_init__(self) -> None:
        if not (0 < self.e_min_gev <= self.e_max_gev and math.isfinite(self.e_max_gev)):
            raise ValueError(f"energy range must satisfy 0 < min <= max, got "
                             f"{self.e_min_gev} - {self.e_max_gev} GeV")
        if self.spectrum not in ("log-uniform", "uniform"):
            raise ValueError(f"spectrum must be 'log-uniform' or 'uniform', got "
                             f"{self.spectrum!r}")

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """``n`` kinetic energies, GeV."""
        if self.spectrum == "uniform":
            return rng.uniform(self.e_min_gev, self.e_max_gev, n)
        return np.exp(rng.uniform(math.log(self.e_min_gev), math.log(self.e_max_gev), n))

    def to_dict(self) -> dict[str, Any]:
        return {"pdg": self.pdg, "e_min_gev": self.e_min_gev, "e_max_gev": self.e_max_gev,
                "spectrum": self.spectrum}


DEFAULT_GUNS: dict[str, GunSpec] = {
    "ds2": GunSpec(11, 1.0, 1000.0), "ds3": GunSpec(11, 1.0, 1000.0),
    "ild": GunSpec(22, 10.0, 90.0, "uniform"), "zn": GunSpec(2112, 100.0, 2680.0),
}
"""The gun of each detector when none is given."""


def zdc_conditions(pdg: int, kinetic_gev: NDArray[np.float64]) -> NDArray[np.float32]:
    """The 9 ALICE O2 conditions of particles from the origin along +z (the ZN face centre)."""
    s = species_of(pdg)
    mass_gev = s.mass_mev / 1e3
    total = kinetic_gev + mass_gev
    pz = np.sqrt(np.maximum(total ** 2 - mass_gev ** 2, 0.0))
    cond = np.zeros((len(kinetic_gev), len(CONDITION_COLUMNS)), dtype=np.float64)
    cond[:, 0], cond[:, 6], cond[:, 7], cond[:, 8] = total, pz, s.mass_mev, s.charge
    return cond.astype(np.float32)


@dataclass(frozen=True)
class Geant4Engine:
    """The Geant4 engine as a shard engine: shard ``k`` holds events
    ``k * per_shard .. (k + 1) * per_shard - 1``."""

    detector: str
    gun: GunSpec
    physics: str = "em"
    cut_mm: float = 0.7
    per_shard: int = SHOWERS_PER_SHARD

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        from calogen.physics import geant4

        first = spec.index * self.per_shard
        energy_gev = self.gun.draw(spec.rng(), self.per_shard)
        ids = np.arange(first, first + self.per_shard, dtype=np.int64)
        pdg = np.full(self.per_shard, self.gun.pdg, dtype=np.int32)
        counts = None
        if self.detector == "ild":
            showers, counts = geant4.run_points(self.detector, self.gun.pdg, energy_gev * 1e3,
                                                spec.seed, physics=self.physics,
                                                cut_mm=self.cut_mm, first_index=first)
        else:
            showers = geant4.run_showers(self.detector, self.gun.pdg, energy_gev * 1e3,
                                         spec.seed, physics=self.physics, cut_mm=self.cut_mm,
                                         first_index=first)
        if self.detector == "zn":
            cond = zdc_conditions(self.gun.pdg, energy_gev)
        else:
            cond = energy_gev.astype(np.float32)[:, None]
        return ShardOutput(ShowerBatch(showers, cond, pdg, ids, counts), self.per_shard)


def output_layout(detector: str, producer: dict[str, Any]) -> OutputLayout:
    """The ShowerSet layout the Geant4 engine writes for ``detector``."""
    from calogen.physics import geant4

    geometry = geant4.readout_geometry(detector)
    if detector == "zn":
        return OutputLayout(detector=geometry.name, geometry=geometry.to_dict(),
                            condition_columns=CONDITION_COLUMNS,
                            condition_units=CONDITION_UNITS, producer=producer,
                            shower_shape=geometry.shower_shape, shower_dtype="int32")
    columns, units = gun_conditions("E_inc")
    return OutputLayout(detector=geometry.name, geometry=geometry.to_dict(),
                        condition_columns=columns, condition_units=units, producer=producer,
                        shower_shape=geometry.shower_shape, shower_dtype="float32",
                        shower_units="MeV")


def simulate_geant4_to_file(out: str | Path, *, detector: str, n: int, seed: int = 0,
                            gun: GunSpec | None = None, physics: str = "em",
                            cut_mm: float = 0.7, workers: int = 1, scheduler: str | None = None,
                            resume: bool = False, overwrite: bool = False,
                            progress: bool = True) -> SimulationReport:
    """Simulate ``n`` showers of ``detector`` with the Geant4 engine into the ShowerSet ``out``.

    ``gun`` defaults to :data:`DEFAULT_GUNS`; the physics list must shoot its particle
    (``em``: e+-, gamma, mu+-; ``em+hadronic`` also hadrons). The producer attribute records
    the Geant4 version, physics list and its content, production cut and seed.
    """
    from calogen.physics import geant4

    if detector not in GEANT4_DETECTORS:
        raise ValueError(f"unknown Geant4 detector {detector!r}; expected one of "
                         f"{list(GEANT4_DETECTORS)}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    gun = gun or DEFAULT_GUNS[detector]
    config = geant4.EngineConfig(detector, physics, cut_mm)
    if gun.pdg not in geant4.PHYSICS_LISTS[physics]:
        raise ValueError(f"physics list {physics!r} cannot shoot PDG {gun.pdg}; it shoots "
                         f"{list(geant4.PHYSICS_LISTS[physics])} (hadrons need "
                         f"--physics em+hadronic)")
    species_of(gun.pdg)
    producer = {**geant4.producer_info(detector, seed, physics=physics, cut_mm=cut_mm),
                "gun": gun.to_dict(), "showers_per_shard": SHOWERS_PER_SHARD}
    layout = output_layout(detector, producer)
    params = {"engine": "geant4", "detector": detector, "n": n, "gun": gun.to_dict(),
              "physics": config.physics, "cut_mm": config.cut_mm,
              "showers_per_shard": SHOWERS_PER_SHARD,
              "geant4_version": producer["geant4_version"]}
    plan = ShardPlan(n_shards=-(-n // SHOWERS_PER_SHARD), target=n)
    report = run_shards(Geant4Engine(detector, gun, physics, cut_mm), out, layout=layout,
                        plan=plan, params=params, seed=seed, workers=workers,
                        scheduler=scheduler, resume=resume, overwrite=overwrite,
                        progress=progress, label=f"geant4 {detector}")
    return SimulationReport(report.path, report.n_written, report.n_simulated, report.seconds,
                            report.n_shards, report.n_run)
