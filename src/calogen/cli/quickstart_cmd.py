"""``calogen quickstart``: simulate, train, generate, evaluate — on the built-in default."""

from __future__ import annotations

from pathlib import Path

import typer

from calogen.cli.common import fail_on_user_errors, parse_hparams
from calogen.models.families import family_names

DEFAULT_MODEL = "vae"  # = calogen.pipelines.quickstart.DEFAULT_MODEL (kept import-light)
DEFAULT_STEPS = 5000  # = calogen.pipelines.quickstart.DEFAULT_STEPS


def quickstart(
    out: Path = typer.Option(Path("quickstart"), "--out", help="Output directory."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=f"Family to train: "
                              f"{', '.join(family_names())}; a family built on another model "
                              f"trains its base first (latent-flow-matching: a VAE, then "
                              f"flow matching in its latent space)."),
    hparam: list[str] = typer.Option([], "--hparam", help="Model hyper-parameter key=value "
                                     "(repeatable) [default: backbone=mlp]."),
    n: int = typer.Option(30_000, "--n", min=1000, help="ZN responses to simulate."),
    steps: int | None = typer.Option(None, "--steps", min=1, help=f"Training budget in "
                                     f"optimiser steps: the same model for a seed on any "
                                     f"machine (default {DEFAULT_STEPS} unless --minutes is "
                                     f"given)."),
    minutes: float | None = typer.Option(None, "--minutes", min=0.1, help="Wall-clock "
                                         "training budget (minutes), instead of or beside "
                                         "--steps (the first reached stops): the model then "
                                         "depends on the machine's load."),
    seed: int = typer.Option(0, "--seed", min=0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Run the whole chain on the built-in ZN default and print where the report is."""
    from calogen.pipelines.quickstart import headline_rows, run_quickstart, verdicts

    with fail_on_user_errors():
        res = run_quickstart(out, model=model, hparams=parse_hparams(hparam) or None,
                             n_events=n, steps=steps, minutes=minutes, seed=seed,
                             progress=progress, log=typer.echo)
    w = max(10, len(model))
    typer.echo(f"\n{'metric':44s} {model:>{w}s} {'shuffled':>10s} {'floor':>10s}")
    for name, m, s, f in headline_rows(res):
        cells = ["-" if v is None else f"{v:.4g}" for v in (m, s, f)]
        typer.echo(f"{name:44s} {cells[0]:>{w}s} {cells[1]:>10s} {cells[2]:>10s}")
    typer.echo("")
    for v in verdicts(res):
        typer.echo(v.line(model))
    typer.echo(f"\ndone in {res.seconds / 60:.1f} min; model: {res.model_dir.resolve()}")
    typer.echo(f"report: {res.report.resolve()}")


def register(app: typer.Typer) -> None:
    """Add ``quickstart``."""
    app.command("quickstart")(quickstart)
