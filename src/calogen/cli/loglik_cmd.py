"""``calogen loglik``: per-shower log-likelihood under a flow model, improbable ones flagged."""

from __future__ import annotations

from pathlib import Path

import typer

from calogen.cli.common import InputFile, fail_on_user_errors, no_validate_option, validate_inputs


def loglik(
    file: Path = typer.Argument(..., help="ShowerSet whose showers to score."),
    model: Path = typer.Option(..., "--model", help="Flow model directory (caloflow, calo-inn "
                               "or caloflow-student; the student's likelihood is sequential "
                               "and slow: prefer its teacher)."),
    out: Path | None = typer.Option(None, "--out", help="CSV to write [default: FILE with "
                                    "suffix .loglik.csv]."),
    reference: Path | None = typer.Option(None, "--reference", help="ShowerSet whose "
                                          "log-likelihoods set the flag threshold (e.g. the "
                                          "held-out split) [default: FILE itself]."),
    quantile: float = typer.Option(0.01, "--quantile", help="Flag showers below this "
                                   "quantile of the reference's log-likelihoods."),
    draws: int = typer.Option(4, "--draws", min=1, help="Dequantisation draws per shower "
                              "(the bound tightens with more)."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1),
    max_events: int | None = typer.Option(None, "--max-events", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    overwrite: bool = typer.Option(False, "--overwrite"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    no_validate: bool = no_validate_option(),
) -> None:
    """Per-shower log-likelihood (nats) of FILE under a flow model; flags improbable showers."""
    import numpy as np
    import torch

    from calogen.models.io import load_model
    from calogen.pipelines.loglik import write_loglik_table

    with fail_on_user_errors():
        net = load_model(model, map_location="cuda" if torch.cuda.is_available() else "cpu")
        counts = net.spec.kind == "image"  # photon counts; voxels are energies (MeV)
        validate_inputs("loglik", [
            InputFile(file, "FILE", counts=counts),
            None if reference is None else InputFile(reference, "--reference", counts=counts),
        ], skip=no_validate, progress=progress)
        target = out if out is not None else file.with_suffix(".loglik.csv")
        res = write_loglik_table(net, file, target, reference=reference, quantile=quantile,
                                 draws=draws, batch_size=batch_size, seed=seed,
                                 max_events=max_events, overwrite=overwrite, progress=progress)
    ll = res.loglik
    if len(ll):
        q = np.quantile(ll, [0.01, 0.5, 0.99])
        typer.echo(f"{len(ll)} showers: log-likelihood [nats] median {q[1]:.1f}, 1% {q[0]:.1f}, "
                   f"99% {q[2]:.1f}")
        lowest = np.argsort(ll)[:5]
        typer.echo(f"flagged {int(res.flagged.sum())} below {res.threshold:.1f} (quantile "
                   f"{quantile} of {res.reference}); lowest: "
                   + ", ".join(f"#{i} ({ll[i]:.1f})" for i in lowest))
    typer.echo(f"wrote {res.path.resolve()}")


def register(app: typer.Typer) -> None:
    """Add the ``loglik`` command to ``app``."""
    app.command("loglik")(loglik)
