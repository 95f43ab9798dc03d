"""``calogen import-npz`` / ``export-npz`` (the public ALICE ZDC npz layout) and
``calogen import-calochallenge`` / ``export-calochallenge`` (CaloChallenge 2022 HDF5 files).

The npz commands handle ZDC images only (ZN ``(N, 44, 44)``, ZP ``(N, 56, 30)``); voxel and
point-cloud ShowerSets are refused by ``export-npz`` with a message naming the file. The
CaloChallenge commands convert voxel showers, streaming (dataset 3 is ~16 GB).

Thin: parses options and calls :mod:`calogen.data.alice_npz` and
:mod:`calogen.data.calochallenge`. Bad input prints one line on stderr and exits with code 2.
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


def register(app: typer.Typer) -> None:
    """Add ``import-npz``, ``export-npz``, ``import-calochallenge`` and
    ``export-calochallenge`` to the ``calogen`` command."""
    app.command("import-npz")(import_npz)
    app.command("export-npz")(export_npz)
    app.command("import-calochallenge")(import_calochallenge)
    app.command("export-calochallenge")(export_calochallenge)
