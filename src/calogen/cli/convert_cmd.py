"""``calogen import-npz`` / ``export-npz`` (the public ALICE ZDC npz layout) and
``calogen import-calochallenge`` / ``export-calochallenge`` (CaloChallenge 2022 HDF5 files).

The npz commands handle ZDC images only (ZN ``(N, 44, 44)``, ZP ``(N, 56, 30)``); voxel and
point-cloud ShowerSets are refused by ``export-npz`` with a message naming the file. The
CaloChallenge commands convert voxel showers, streaming (dataset 3 is ~16 GB).
``calogen import-caloclouds`` / ``export-caloclouds`` (CaloClouds HDF5 point clouds),
``calogen import-edm4hep`` (SimCalorimeterHit collections of EDM4hep ROOT files) and
``calogen project`` (point clouds onto cells) handle point-cloud ShowerSets.

Thin: parses options and calls :mod:`calogen.data.alice_npz` and
:mod:`calogen.data.calochallenge`, :mod:`calogen.data.caloclouds`,
:mod:`calogen.data.edm4hep` and :mod:`calogen.data.cells`. Bad input prints one line on stderr
and exits with code 2.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from calogen.cli.common import (
    NO_VALIDATE_HELP,
    Detector,
    InputFile,
    fail_on_user_errors,
    validate_inputs,
)


def import_npz(
    responses: Annotated[Path, typer.Option("--responses", help="Responses .npz: (N, 44, 44) "
                                            "photon counts for ZN, (N, 56, 30) for ZP.")],
    particles: Annotated[Path, typer.Option("--particles", help="Particles .npz: (N, 10) = E, "
                                            "vx, vy, vz, px, py, pz, mass, charge, pdg.")],
    out: Annotated[Path, typer.Option("--out", help="ShowerSet .h5 file to write.")],
    detector: Annotated[Detector, typer.Option("--detector", case_sensitive=False,
                                               help="Detector of the responses.")] = Detector.zn,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Import a public ALICE ZDC npz pair (m-wojnar/zdc layout) into an image ShowerSet."""
    with fail_on_user_errors():
        path = _import(responses, particles, out, detector.value, overwrite)
    typer.echo(f"wrote ShowerSet: {path.resolve()}")


def _import(responses: Path, particles: Path, out: Path, detector: str, overwrite: bool) -> Path:
    from calogen.data.alice_npz import import_alice_npz

    return import_alice_npz(responses, particles, out, detector=detector.upper(),
                            overwrite=overwrite, progress=True)


def export_npz(
    showerset: Annotated[Path, typer.Argument(help="Image ShowerSet .h5 file (ZN or ZP) with "
                                              "ZDC conditions.")],
    responses: Annotated[Path, typer.Option("--responses", help="Responses .npz to write.")],
    particles: Annotated[Path, typer.Option("--particles", help="Particles .npz to write.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs."
                                            )] = False,
    no_validate: Annotated[bool, typer.Option("--no-validate", help=NO_VALIDATE_HELP)] = False,
) -> None:
    """Export a ZDC image ShowerSet as the public ALICE npz pair (key 'arr_0'); voxel and
    point-cloud files are refused."""
    from calogen.data.alice_npz import export_alice_npz

    with fail_on_user_errors():
        validate_inputs("export-npz", [InputFile(showerset)], skip=no_validate)
        r_out, p_out = export_alice_npz(showerset, responses, particles, overwrite=overwrite)
    typer.echo(f"wrote responses: {r_out.resolve()}")
    typer.echo(f"wrote particles: {p_out.resolve()}")


class CaloChallengeDataset(StrEnum):
    """The official CaloChallenge 2022 datasets (their binning XML ships with calogen)."""

    photons = "1-photons"
    pions = "1-pions"
    ds2 = "2"
    ds3 = "3"


def import_calochallenge(
    file: Annotated[Path, typer.Argument(help="CaloChallenge .hdf5 file: incident_energies "
                                         "(N, 1) and showers (N, n_voxels), MeV.")],
    out: Annotated[Path, typer.Option("--out", help="ShowerSet .h5 file to write.")],
    dataset: Annotated[CaloChallengeDataset | None, typer.Option(
        "--dataset", help="Official binning of the file.")] = None,
    binning: Annotated[Path | None, typer.Option(
        "--binning", help="Binning XML of the CaloChallenge format (instead of --dataset).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Import a CaloChallenge 2022 HDF5 file into a voxel ShowerSet (E_inc in GeV), streaming."""
    from calogen.data.calochallenge import import_calochallenge as run

    with fail_on_user_errors():
        if (dataset is None) == (binning is None):
            raise ValueError("give exactly one of --dataset (1-photons, 1-pions, 2, 3) and "
                             "--binning XML")
        written = run(file, out, dataset=None if dataset is None else dataset.value,
                      binning=binning, overwrite=overwrite, progress=True)
    typer.echo(f"wrote ShowerSet: {written.path.resolve()} ({written.n_showers} showers)")


def export_calochallenge(
    showerset: Annotated[Path, typer.Argument(help="Voxel ShowerSet .h5 file (showers in MeV, "
                                              "condition E_inc in GeV).")],
    out: Annotated[Path, typer.Option("--out", help="CaloChallenge .hdf5 file to write.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
    no_validate: Annotated[bool, typer.Option("--no-validate", help=NO_VALIDATE_HELP)] = False,
) -> None:
    """Export a voxel ShowerSet as a CaloChallenge 2022 HDF5 file (incident_energies, showers;
    MeV), streaming; files imported by import-calochallenge come back byte for byte."""
    from calogen.data.calochallenge import export_calochallenge as run

    with fail_on_user_errors():
        if no_validate:
            typer.echo(f"calogen export-calochallenge: content validation skipped "
                       f"(--no-validate): {showerset}", err=True)
        written = run(showerset, out, overwrite=overwrite, progress=True,
                      validate=not no_validate)
    typer.echo(f"wrote CaloChallenge file: {written.path.resolve()} "
               f"({written.n_showers} showers)")


VOLUME_HELP = "Point-cloud volume: 'ild' (ILD-like ECAL, 30 layers) or a JSON volume file."
SHIFT_HELP = ("Added to every point's x, y, z (mm), e.g. to move detector coordinates into the "
              "volume.")


def _warn_outside(n_outside: int, n_points: int) -> None:
    if n_outside:
        typer.echo(f"warning: {n_outside} of {n_points} points lie outside the volume's layers "
                   "or x/y extent (kept; use --shift-mm to move them in)", err=True)


def import_caloclouds(
    file: Annotated[Path, typer.Argument(help="CaloClouds .h5 file: events (N, 4, max_points) "
                                         "x, y, z [mm], E [MeV] zero-padded; energy (N, 1) "
                                         "[GeV].")],
    out: Annotated[Path, typer.Option("--out", help="Point-cloud ShowerSet .h5 to write.")],
    volume: Annotated[str, typer.Option("--volume", help=VOLUME_HELP)] = "ild",
    shift_mm: Annotated[tuple[float, float, float], typer.Option(
        "--shift-mm", help=SHIFT_HELP)] = (0.0, 0.0, 0.0),
    axes: Annotated[str, typer.Option("--axes", help="Source axes that become x, y, z "
                                      "(e.g. 'xzy' when the file's depth axis is y).")] = "xyz",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Import a CaloClouds HDF5 file into a point-cloud ShowerSet (photons, E_inc in GeV)."""
    from calogen.data.caloclouds import import_caloclouds as run

    with fail_on_user_errors():
        done = run(file, out, volume=volume, shift_mm=shift_mm, axes=axes,
                   overwrite=overwrite, progress=True)
    _warn_outside(done.n_outside, done.n_points)
    typer.echo(f"wrote ShowerSet: {done.path.resolve()} ({done.n_showers} showers, "
               f"{done.n_points} points)")


def export_caloclouds(
    showerset: Annotated[Path, typer.Argument(help="Point-cloud ShowerSet .h5 (mm, MeV, "
                                              "E_inc in GeV).")],
    out: Annotated[Path, typer.Option("--out", help="CaloClouds .h5 file to write.")],
    max_points: Annotated[int | None, typer.Option(
        "--max-points", help="Pad to this many points (default: the largest shower); a "
        "larger shower is an error.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Export a point-cloud ShowerSet as a CaloClouds HDF5 file (events, energy)."""
    from calogen.data.caloclouds import export_caloclouds as run

    with fail_on_user_errors():
        done = run(showerset, out, max_points=max_points, overwrite=overwrite, progress=True)
    if done.n_zero_energy:
        typer.echo(f"warning: {done.n_zero_energy} points with E == 0 are written as padding",
                   err=True)
    typer.echo(f"wrote CaloClouds file: {done.path.resolve()} ({done.n_showers} showers, "
               f"{done.n_points} points)")


def import_edm4hep(
    file: Annotated[Path, typer.Argument(help="EDM4hep ROOT file (tree 'events').")],
    collection: Annotated[str, typer.Option("--collection", help="SimCalorimeterHit "
                                            "collection, e.g. ECalBarrelCollection.")],
    out: Annotated[Path, typer.Option("--out", help="Point-cloud ShowerSet .h5 to write.")],
    steps: Annotated[bool, typer.Option("--steps", help="One point per contribution at its "
                                        "step position (default: one per hit).")] = False,
    volume: Annotated[str, typer.Option("--volume", help=VOLUME_HELP)] = "ild",
    shift_mm: Annotated[tuple[float, float, float], typer.Option(
        "--shift-mm", help=SHIFT_HELP)] = (0.0, 0.0, 0.0),
    pdg_from_mc: Annotated[bool, typer.Option(
        "--pdg-from-mc", help="Store the incident particle's PDG code (default 22).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Import a SimCalorimeterHit collection of an EDM4hep ROOT file (DD4hep/ddsim) into a
    point-cloud ShowerSet; E_inc from the first generator particle of MCParticles."""
    from calogen.data.edm4hep import import_edm4hep as run

    with fail_on_user_errors():
        done = run(file, out, collection=collection, steps=steps, volume=volume,
                   shift_mm=shift_mm, pdg_from_mc=pdg_from_mc, overwrite=overwrite,
                   progress=True)
    _warn_outside(done.n_outside, done.n_points)
    typer.echo(f"wrote ShowerSet: {done.path.resolve()} ({done.n_showers} showers, "
               f"{done.n_points} points)")


def project(
    showerset: Annotated[Path, typer.Argument(help="Point-cloud ShowerSet .h5.")],
    out: Annotated[Path, typer.Option("--out", help="HDF5 file of cells to write.")],
    cell_size: Annotated[tuple[float, float] | None, typer.Option(
        "--cell-size", help="Cell size in x and y, mm (default: the volume's).")] = None,
    cell_offset: Annotated[tuple[float, float] | None, typer.Option(
        "--cell-offset", help="Position of a cell corner in x and y, mm (shifts the grid)."
    )] = None,
    threshold_mev: Annotated[float, typer.Option(
        "--threshold-mev", help="Cells below this energy are 0 (half a MIP).")] = 0.1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out."
                                            )] = False,
) -> None:
    """Project point clouds onto cells: cells (N, n_layers, n_y, n_x) MeV and energy (N, 1)
    GeV."""
    from calogen.data.cells import project_file

    with fail_on_user_errors():
        done = project_file(showerset, out, cell_size_mm=cell_size,
                            cell_offset_mm=cell_offset, threshold_mev=threshold_mev,
                            overwrite=overwrite, progress=True)
    if done.n_outside:
        typer.echo(f"warning: {done.n_outside} points outside the cells were dropped",
                   err=True)
    n_layers, n_y, n_x = done.grid_shape
    typer.echo(f"wrote cells: {done.path.resolve()} ({done.n_showers} showers, {n_layers} "
               f"layers x {n_y} x {n_x} cells)")


def register(app: typer.Typer) -> None:
    """Add ``import-npz``, ``export-npz``, ``import-calochallenge``, ``export-calochallenge``,
    ``import-caloclouds``, ``export-caloclouds``, ``import-edm4hep`` and ``project`` to the
    ``calogen`` command."""
    app.command("import-npz")(import_npz)
    app.command("export-npz")(export_npz)
    app.command("import-calochallenge")(import_calochallenge)
    app.command("export-calochallenge")(export_calochallenge)
    app.command("import-caloclouds")(import_caloclouds)
    app.command("export-caloclouds")(export_caloclouds)
    app.command("import-edm4hep")(import_edm4hep)
    app.command("project")(project)
