"""``calogen calibrate``: re-fit a trained model's post-training calibrations."""

from __future__ import annotations

from pathlib import Path

import typer

from calogen.cli.common import fail_on_user_errors


def calibrate(
    model: Path = typer.Option(..., "--model", help="Trained model directory (e.g. RUN/best)."),
    data: Path = typer.Option(..., "--data", help="The ShowerSet the model was trained on: "
                              "its training split (grouped 0.8/0.1/0.1) is used."),
    out: Path | None = typer.Option(None, "--out", help="Write the calibrated model here "
                                    "[default: replace --model]."),
    split_seed: int = typer.Option(0, "--split-seed", min=0, help="Seed of the grouped split "
                                   "(`calogen train` uses 0)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the fit's generation."),
) -> None:
    """Fit the calibrations of a trained model (e.g. the vae's rate noise, CaloClouds II's
    number-of-points and energy calibrations) on the training split of --data."""
    from calogen.pipelines.calibrate import calibrate_model

    with fail_on_user_errors():
        logs = calibrate_model(model, data, split_seed=split_seed, seed=seed, out=out)
    for k, v in logs.items():
        typer.echo(f"{k}: {v:.4g}")
    typer.echo(f"wrote {(out or model).resolve()}")


def register(app: typer.Typer) -> None:
    """Add the ``calibrate`` command to ``app``."""
    app.command("calibrate")(calibrate)
