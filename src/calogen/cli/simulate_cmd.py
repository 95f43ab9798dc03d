"""``calogen simulate``: run the built-in reference simulator into a ShowerSet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from calogen.cli.common import Detector, fail_on_user_errors
from calogen.processes import raise_on_sigterm

ENGINES = ("parametrised", "geant4")


def simulate(
    detector: str = typer.Argument(
        ..., help="Detector: zn (neutron ZDC), zp (proton ZDC), ds2 / ds3 (CaloChallenge "
                  "datasets 2/3 W/Si detector, voxels), ds1-photons / ds1-pions (a simplified "
                  "ATLAS-like barrel, CaloChallenge dataset-1 voxels), ild (ILD-like Si-W ECAL, "
                  "points); with --engine geant4: zn, ds2, ds3, ild."),
    out: Path = typer.Option(..., "--out", "-o", help="Output ShowerSet (.h5)."),
    n: int | None = typer.Option(None, "--n", "-n", min=1,
                                 help="Responses to write (required unless --particles)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0,
                             help="Run seed, a non-negative integer (same seed, same file)."),
    workers: int = typer.Option(min(os.cpu_count() or 1, 8), "--workers", "-w", min=1,
                                help="Worker processes: 1 runs in this process, more start a "
                                     "local Dask cluster (does not change the output)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Run on the existing Dask scheduler at this address (e.g. "
                                  "tcp://host:8786) instead of a local cluster."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue a stopped run of the same parameters (only its "
                                "missing shards run); a run with --resume keeps its finished "
                                "shards if it stops."),
    repeats: int = typer.Option(1, "--repeats", "-r", min=1,
                                help="Simulate each particle R times (identical conditions)."),
    particles: Path | None = typer.Option(
        None, "--particles", exists=False,
        help="Re-simulate these particles (ALICE npz layout (N, 10): 9 conditions + PDG)."),
    min_photons: int | None = typer.Option(
        None, "--min-photons", min=0,
        help="Keep responses with at least this photon sum [default: ZN 10, ZP 1; 0 with "
             "--particles]."),
    batch_size: int = typer.Option(
        1024, "--batch-size", min=1,
        help="Particles per worker task, capped to bound memory (does not change the output)."),
    gun_config: Path | None = typer.Option(None, "--gun-config",
                                           help="JSON particle-gun configuration (GunConfig)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    engine: str = typer.Option(
        "parametrised", "--engine",
        help="parametrised (the built-in GFlash-style simulator) or geant4 (Geant4 11.4 with "
             "data-free physics; needs the geant4 extra and a C++ compiler)."),
    physics: str = typer.Option("em", "--physics",
                                help="Geant4 physics list: em or em+hadronic."),
    cut_mm: float = typer.Option(0.7, "--cut-mm", min=1e-6, help="Geant4 production cut, mm."),
    particle: int | None = typer.Option(
        None, "--pdg", help="Geant4 gun particle (PDG code) [default: ds2/ds3 11, ild 22, "
                            "zn 2112]."),
    energy: tuple[float, float] | None = typer.Option(
        None, "--energy", help="Geant4 gun kinetic-energy range MIN MAX in GeV [default: ds2/ds3 "
                               "1 1000, ild 10 90, zn 100 2680]."),
    spectrum: str | None = typer.Option(
        None, "--spectrum", help="Geant4 gun spectrum: log-uniform or uniform [default: "
                                 "uniform for ild, log-uniform otherwise]."),
) -> None:
    """Simulate showers: the built-in parametrised engine (default) or Geant4.

    The parametrised engine is a GFlash-style stand-in for Geant4 (ZDCs calibrated to the ALICE
    O2 figures; CaloChallenge-like voxel detectors in simplified sampling stacks): not Geant4.
    ``--engine geant4`` runs Geant4 itself (physics lists and limits in the README).
    """
    if engine not in ENGINES:
        with fail_on_user_errors():
            raise ValueError(f"--engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "geant4":
        _simulate_geant4(detector, out, n, seed, workers, scheduler, resume, physics, cut_mm,
                         particle, energy, spectrum, overwrite, progress)
        return
    from calogen.physics.point_readout import POINT_DETECTORS
    from calogen.physics.voxel_readout import VOXEL_DETECTORS

    if detector in POINT_DETECTORS:
        _simulate_points(detector, out, n, seed, workers, scheduler, resume, overwrite, progress,
                         particle, energy, spectrum, particles=particles, gun_config=gun_config,
                         repeats=repeats, min_photons=min_photons)
        return
    if detector in VOXEL_DETECTORS:
        _simulate_voxels(detector, out, n, seed, workers, scheduler, resume, overwrite, progress,
                         particles=particles, gun_config=gun_config, repeats=repeats,
                         min_photons=min_photons)
        return
    with fail_on_user_errors():
        if detector not in [d.value for d in Detector]:
            raise ValueError(f"the parametrised engine simulates "
                             f"{[d.value for d in Detector] + list(VOXEL_DETECTORS)}"
                             f" + {list(POINT_DETECTORS)}, not {detector!r}")
    from calogen.data.alice_npz import read_alice_particles
    from calogen.physics.gun import GunConfig, Particles
    from calogen.pipelines.reference import simulate_to_file

    # SIGTERM raises, so the temporary files go and the Dask workers are stopped.
    with raise_on_sigterm(), fail_on_user_errors():
        parts = None
        if particles is not None:
            cond, pdg = read_alice_particles(particles)
            parts = Particles(cond, pdg)
        gun = None
        if gun_config is not None:
            try:
                gun = GunConfig.from_dict(json.loads(gun_config.read_text()))
            except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
                raise ValueError(f"{gun_config}: not a valid gun configuration: {exc}") from None
        report = simulate_to_file(
            out, detector=detector, n=n, seed=seed, workers=workers,
            scheduler=scheduler, resume=resume, repeats=repeats,
            particles=parts, particles_file=str(particles) if particles else None,
            min_photons=min_photons, batch_size=batch_size, gun=gun, overwrite=overwrite,
            progress=progress)
    resumed = report.n_shards - report.n_run
    typer.echo(f"wrote {report.n_written} {detector.upper()} responses "
               f"({report.n_simulated} simulated, {report.efficiency:.1%} kept; "
               f"{report.n_shards} shards" + (f", {resumed} resumed" if resumed > 0 else "")
               + f") in {report.seconds:.1f} s to {report.path.resolve()}")


def _simulate_voxels(detector: str, out: Path, n: int | None, seed: int, workers: int,
                     scheduler: str | None, resume: bool, overwrite: bool, progress: bool, *,
                     particles: Path | None, gun_config: Path | None, repeats: int,
                     min_photons: int | None) -> None:
    """``calogen simulate ds1-photons|ds1-pions|ds2|ds3`` with the parametrised engine."""
    from calogen.pipelines.voxel_reference import simulate_voxels_to_file

    with raise_on_sigterm(), fail_on_user_errors():
        unsupported = [name for name, given in (
            ("--particles", particles is not None), ("--gun-config", gun_config is not None),
            ("--repeats", repeats != 1), ("--min-photons", min_photons is not None)) if given]
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)} apply to the ZDC detectors, not to "
                             f"{detector!r}")
        if n is None:
            raise ValueError(f"--n is required for {detector}")
        report = simulate_voxels_to_file(out, detector=detector, n=n, seed=seed,
                                         workers=workers, scheduler=scheduler, resume=resume,
                                         overwrite=overwrite, progress=progress)
    resumed = report.n_shards - report.n_run
    typer.echo(f"wrote {report.n_written} parametrised {detector} showers ({report.n_shards} "
               f"shards" + (f", {resumed} resumed" if resumed > 0 else "")
               + f") in {report.seconds:.1f} s to {report.path.resolve()}")


def _simulate_points(detector: str, out: Path, n: int | None, seed: int, workers: int,
                     scheduler: str | None, resume: bool, overwrite: bool, progress: bool,
                     pdg: int | None, energy: tuple[float, float] | None, spectrum: str | None,
                     *, particles: Path | None, gun_config: Path | None, repeats: int,
                     min_photons: int | None) -> None:
    """``calogen simulate ild`` with the parametrised point engine (gun as --engine geant4)."""
    from dataclasses import replace

    from calogen.pipelines.geant4_reference import DEFAULT_GUNS
    from calogen.pipelines.point_reference import simulate_points_to_file

    with raise_on_sigterm(), fail_on_user_errors():
        unsupported = [name for name, given in (
            ("--particles", particles is not None), ("--gun-config", gun_config is not None),
            ("--repeats", repeats != 1), ("--min-photons", min_photons is not None)) if given]
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)} apply to the ZDC detectors, not to "
                             f"{detector!r}")
        if n is None:
            raise ValueError(f"--n is required for {detector}")
        gun = DEFAULT_GUNS[detector]
        if pdg is not None:
            gun = replace(gun, pdg=pdg)
        if energy is not None:
            gun = replace(gun, e_min_gev=energy[0], e_max_gev=energy[1])
        if spectrum is not None:
            gun = replace(gun, spectrum=spectrum)  # type: ignore[arg-type]
        report = simulate_points_to_file(out, detector=detector, n=n, seed=seed, gun=gun,
                                         workers=workers, scheduler=scheduler, resume=resume,
                                         overwrite=overwrite, progress=progress)
    resumed = report.n_shards - report.n_run
    typer.echo(f"wrote {report.n_written} parametrised {detector} point-cloud showers "
               f"({report.n_shards} shards" + (f", {resumed} resumed" if resumed > 0 else "")
               + f") in {report.seconds:.1f} s to {report.path.resolve()}")


def _simulate_geant4(detector: str, out: Path, n: int | None, seed: int, workers: int,
                     scheduler: str | None, resume: bool, physics: str, cut_mm: float,
                     pdg: int | None, energy: tuple[float, float] | None,
                     spectrum: str | None, overwrite: bool, progress: bool) -> None:
    """``calogen simulate --engine geant4``."""
    from dataclasses import replace

    from calogen.pipelines.geant4_reference import (
        DEFAULT_GUNS,
        GEANT4_DETECTORS,
        simulate_geant4_to_file,
    )

    with raise_on_sigterm(), fail_on_user_errors():
        if detector not in GEANT4_DETECTORS:
            raise ValueError(f"the Geant4 engine simulates {list(GEANT4_DETECTORS)}, not "
                             f"{detector!r}")
        if n is None:
            raise ValueError("--n is required with --engine geant4")
        gun = DEFAULT_GUNS[detector]
        if pdg is not None:
            gun = replace(gun, pdg=pdg)
        if energy is not None:
            gun = replace(gun, e_min_gev=energy[0], e_max_gev=energy[1])
        if spectrum is not None:
            gun = replace(gun, spectrum=spectrum)  # type: ignore[arg-type]
        report = simulate_geant4_to_file(
            out, detector=detector, n=n, seed=seed, gun=gun, physics=physics, cut_mm=cut_mm,
            workers=workers, scheduler=scheduler, resume=resume, overwrite=overwrite,
            progress=progress)
    typer.echo(f"wrote {report.n_written} Geant4 {detector} showers ({physics}, cut "
               f"{cut_mm} mm; {report.n_shards} shards) in {report.seconds:.1f} s to "
               f"{report.path.resolve()}")


def gun_config(
    detector: Detector = typer.Argument(..., help="Detector: zn or zp."),
) -> None:
    """Print the default particle-gun configuration as JSON (edit it, pass --gun-config)."""
    from calogen.physics.simulator import get_simulator

    typer.echo(json.dumps(get_simulator(detector.value).gun.to_dict(), indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` and ``gun-config`` commands to ``app``."""
    app.command("simulate")(simulate)
    app.command("gun-config")(gun_config)
