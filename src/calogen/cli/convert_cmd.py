"""``calogen import-npz`` / ``calogen export-npz``: convert the public ALICE ZDC npz layout.

Both handle ZDC images only (ZN ``(N, 44, 44)``, ZP ``(N, 56, 30)``); voxel and point-cloud
ShowerSets are refused by ``export-npz`` with a message naming the file.

Thin: parses options and calls :mod:`calogen.data.alice_npz`. Bad input prints one line on
stderr and exits with code 2.
"""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    """Add ``import-npz`` and ``export-npz`` to the ``calogen`` command."""
    app.command("import-npz")(import_npz)
    app.command("export-npz")(export_npz)
