"""``calogen baseline``: responses from a no-training baseline, for comparison tables."""

from __future__ import annotations

from pathlib import Path

import typer

from calogen.cli.common import InputFile, fail_on_user_errors, no_validate_option, validate_inputs


def baseline(
    name: str = typer.Argument(..., help="shuffled, nearest or binned-mean."),
    train: Path = typer.Option(..., "--train", help="ShowerSet the baseline is built from."),
    conditions: Path = typer.Option(..., "--conditions",
                                    help="ShowerSet whose conditions to generate for."),
    out: Path = typer.Option(..., "--out", help="Output ShowerSet (.h5)."),
    seed: int = typer.Option(0, "--seed", min=0),
    max_train: int | None = typer.Option(None, "--max-train", min=1,
                                         help="Use at most this many training events."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    no_validate: bool = no_validate_option(),
) -> None:
    """Generate responses with a baseline that needs no training (shuffled, nearest,
    binned-mean); each is wrong in one known way, which the evaluation must expose."""
    from calogen.pipelines.baselines import run_baseline

    with fail_on_user_errors():
        validate_inputs("baseline", [
            InputFile(train, "--train", counts=True, min_events=1),
            InputFile(conditions, "--conditions", showers=False),
        ], skip=no_validate, progress=progress)
        path = run_baseline(name, train, conditions, out, seed=seed, max_train=max_train,
                            overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {path.resolve()}")


def register(app: typer.Typer) -> None:
    """Add the ``baseline`` command to ``app``."""
    app.command("baseline")(baseline)
