"""``calogen train``, ``calogen generate`` and ``calogen export``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from calogen.cli.common import (
    InputFile,
    fail_on_user_errors,
    no_validate_option,
    parse_hparams,
    validate_inputs,
)
from calogen.models.families import family_names


def train(
    model: str = typer.Option(..., "--model", help=f"Family: {', '.join(family_names())}."),
    data: Path = typer.Option(..., "--data", help="Training ShowerSet (split by condition "
                              "into train/val/test 0.8/0.1/0.1)."),
    out: Path = typer.Option(..., "--out", help="Run directory (best/, last/, log.csv)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Budget in optimiser steps "
                                     "(with --resume: the step to continue to; more than the "
                                     "run had extends it, see --resume)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Budget in epochs."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.05,
                                             help="Budget in wall-clock minutes."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Global batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (AdamW) [default: "
                                    "the family's recommendation (GANs 2e-4), else 1e-3]."),
    betas: str | None = typer.Option(None, "--betas", help="AdamW betas 'b1,b2' [default: the "
                                     "family's recommendation (GANs 0.5,0.9), else 0.9,0.999]."),
    seed: int = typer.Option(0, "--seed", min=0),
    val_every: int = typer.Option(200, "--val-every", min=1),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", min=1),
    max_events: int | None = typer.Option(None, "--max-events", min=10),
    hparam: list[str] = typer.Option([], "--hparam", help="Model hyper-parameter key=value "
                                     "(repeatable), e.g. --hparam latent_dim=32."),
    base: Path | None = typer.Option(None, "--base", help="Trained model the family is built "
                                     "on (families that declare one: the teacher of "
                                     "consistency / caloflow-student, the autoencoder of "
                                     "latent-flow-matching)."),
    teacher: Path | None = typer.Option(None, "--teacher", help="Alias of --base for families "
                                        "whose base is a teacher."),
    autoencoder: Path | None = typer.Option(None, "--autoencoder", help="Alias of --base for "
                                            "families whose base is an autoencoder."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out/checkpoint.pt "
                                "(finished or interrupted) with the run's settings; a new "
                                "--steps/--epochs/--max-minutes budget extends it. With a new "
                                "step budget the learning-rate schedule continues on the "
                                "schedule of a run of the new length (cosine/onecycle: the "
                                "rate at the current step is that schedule's, decaying to the "
                                "new end); with --max-minutes alone it keeps the run's. A "
                                "budget below the run's current step is refused."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh in an existing "
                                   "run directory."),
    ema: float | None = typer.Option(None, "--ema", help="EMA decay of the weights (e.g. "
                                     "0.999); off by default."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    no_validate: bool = no_validate_option(),
) -> None:
    """Train a generative model on a ShowerSet (CPU or GPU, or many with torchrun)."""
    from calogen.data.showerset import ShowerSet
    from calogen.pipelines.validation import validator_for
    from calogen.train.run import train_model
    from calogen.train.trainer import TrainConfig

    with fail_on_user_errors():
        if steps is None and epochs is None and max_minutes is None:
            raise ValueError("give a budget: --steps, --epochs and/or --max-minutes")
        hparams = _on_top_of(model, parse_hparams(hparam), base=base, teacher=teacher,
                             autoencoder=autoencoder)
        with ShowerSet.open(data) as ss:
            detector, kind = ss.meta.detector, ss.meta.kind
        validate_inputs("train", [InputFile(data, counts=kind == "image", min_events=1)],
                        skip=no_validate, progress=progress)
        opt = family_optimizer_settings(model, lr, betas)
        config = TrainConfig(**opt, batch_size=batch_size, max_steps=steps, max_epochs=epochs,
                             max_minutes=max_minutes, seed=seed, val_every=val_every,
                             checkpoint_every=checkpoint_every, ema_decay=ema)
        result = train_model(model, data, out, config=config, hparams=hparams,
                             max_events=max_events, resume=resume, overwrite=overwrite,
                             val_metric=validator_for(model, detector), progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: only rank 0 reports
        typer.echo(f"trained {model}: {result.steps} steps, {result.seconds:.0f} s, best "
                   f"{result.val_key} {result.best_metric} at step {result.best_step}")
        typer.echo(f"run directory: {Path(out).resolve()}")


def generate(
    model: Path = typer.Option(..., "--model", help="Model directory (e.g. run/best)."),
    conditions: Path = typer.Option(..., "--conditions", help="A ShowerSet (its conditions) or "
                                    "an ALICE particles npz (N, 10)."),
    out: Path = typer.Option(..., "--out", help="Output ShowerSet (.h5)."),
    batch_size: int = typer.Option(4096, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    sample: list[str] = typer.Option([], "--sample", help="Sampling option key=value "
                                     "(repeatable), e.g. --sample steps=8 --sample "
                                     "sampler=heun [default: the model's]; an unknown key "
                                     "lists the family's options. The flags below are "
                                     "aliases."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Iterative families: "
                                     "sampling steps [default: the model's]."),
    sampler: str | None = typer.Option(None, "--sampler", help="Iterative families: ddim; "
                                       "heun/euler/stochastic (edm); euler/midpoint/heun "
                                       "(flow matching, latent flow matching)."),
    eta: float | None = typer.Option(None, "--eta", min=0.0, help="DDIM stochasticity "
                                     "(0 deterministic, 1 ancestral)."),
    temperature: float | None = typer.Option(None, "--temperature", min=0.0, help="Token "
                                             "families (vq-vae, vq-gan): prior temperature "
                                             "(0 = greedy)."),
    top_k: int | None = typer.Option(None, "--top-k", min=0, help="Token families: sample "
                                     "among the k most likely tokens (0 = off)."),
    top_p: float | None = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Token "
                                       "families: nucleus sampling mass (1 = off)."),
    precision: str = typer.Option("float32", "--precision", help="Arithmetic of the network "
                                  "pass: float32, bfloat16 (autocast) or int8 (dynamically "
                                  "quantised linear layers); the readout stays float32."),
    detector: str | None = typer.Option(None, "--detector", help="Detector of npz particles "
                                        "[default: the model's]."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    no_validate: bool = no_validate_option(),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="Worker processes: 1 runs in this process, more start a "
                                     "local Dask cluster, each loading the model once (does "
                                     "not change the output)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Run on the existing Dask scheduler at this address."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue a stopped run of the same parameters (only its "
                                "missing shards run); keeps finished shards if it stops."),
) -> None:
    """Generate showers with a trained model for the conditions of a file.

    The rows are cut into seeded shards (the same seed gives the same file whatever
    --workers), merged into --out when all are done.
    """
    import torch

    from calogen.models.generator import SamplingOptions
    from calogen.models.io import load_model, read_model_config
    from calogen.pipelines.generation import PRECISION_OPTION, generate_sharded
    from calogen.train.generation import check_conditions_fit

    with fail_on_user_errors():
        net = load_model(model, map_location="cuda" if torch.cuda.is_available() else "cpu")
        doc = read_model_config(model)
        aliases = {k: v for k, v in (("steps", steps), ("sampler", sampler), ("eta", eta),
                                     ("temperature", temperature), ("top_k", top_k),
                                     ("top_p", top_p)) if v is not None}
        note = f"generated by a {net.family} model"
        options: dict[str, Any] = {}
        if sample or aliases:
            if not isinstance(net, SamplingOptions):
                raise ValueError(f"{model}: a {net.family} model has no sampling options; "
                                 f"--sample/--steps/--sampler/--eta are for iterative "
                                 f"families, --temperature/--top-k/--top-p for token families")
            options = sampling_options(net, sample, aliases)
            in_force = net.configure_sampling(**options)
            note += f" ({', '.join(f'{k}={v}' for k, v in in_force.items())})"
        net.set_sampling_precision(precision)
        if precision != "float32":
            options = {**options, PRECISION_OPTION: precision}
            note += f" [{precision} network pass]"
        producer = {"name": f"calogen.models.{net.family}", "version": doc["calogen_version"],
                    "model": str(model.resolve()), "note": note}

        if conditions.suffix == ".npz":
            from calogen.data.alice_npz import read_alice_particles
            from calogen.data.validation import validate_particles

            detector = check_conditions_fit(net.spec, model, conditions, detector=detector)
            if no_validate:
                validate_inputs("generate", [InputFile(conditions)], skip=True)
            else:
                validate_particles(*read_alice_particles(conditions), path=conditions)
        else:
            check_conditions_fit(net.spec, model, conditions)
            validate_inputs("generate", [InputFile(conditions, showers=False)],
                            skip=no_validate)
        report = generate_sharded(net, model, conditions, out, producer=producer,
                                  detector=detector, options=options, seed=seed,
                                  batch_size=batch_size, workers=workers,
                                  scheduler=scheduler, resume=resume, overwrite=overwrite,
                                  progress=progress)
        path = report.path
    typer.echo(f"wrote {path.resolve()}")


def export(
    model: Path = typer.Option(..., "--model", help="Model directory."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path = typer.Option(..., "--out", help="Output file (.onnx)."),
) -> None:
    """Export a one-step model to ONNX (ALICE O2 signature) with its condition scales."""
    from calogen.models.export_onnx import export_onnx
    from calogen.models.io import load_model

    with fail_on_user_errors():
        if format != "onnx":
            raise ValueError(f"--format {format!r}: only onnx is supported")
        res = export_onnx(load_model(model), out, source=model)
    typer.echo(f"wrote {res.onnx.resolve()}")
    typer.echo(f"wrote {res.scales.resolve()}")


def family_optimizer_settings(family: str, lr: float | None,
                              betas: str | None) -> dict[str, Any]:
    """``lr`` and ``betas`` for :class:`TrainConfig`: the given values, else the family's
    recommendation (:func:`calogen.models.registry.optimizer_defaults`), else the trainer's."""
    from calogen.models.registry import optimizer_defaults

    out = optimizer_defaults(family)
    if lr is not None:
        out["lr"] = lr
    if betas is not None:
        try:
            b1, b2 = (float(v) for v in betas.split(","))
        except ValueError:
            raise ValueError(f"--betas: expected two numbers 'b1,b2', got {betas!r}") from None
        out["betas"] = (b1, b2)
    return out


def sampling_options(net: Any, pairs: list[str], aliases: dict[str, Any]) -> dict[str, Any]:
    """The sampling options of ``--sample key=value`` merged with the alias flags
    (``--steps``, ``--sampler``, ...); ``ValueError`` for an unknown key, a bad value, or an
    option given twice with different values."""
    options = net.parse_sampling(pairs)
    for key, value in aliases.items():
        if key in options and options[key] != value:
            raise ValueError(f"sampling option {key!r} given twice: --sample {key}="
                             f"{options[key]!r} and --{key.replace('_', '-')} {value!r}")
        options[key] = value
    return options


def _on_top_of(family: str, hparams: dict[str, Any], **bases: Path | None) -> dict[str, Any]:
    """``hparams`` completed from the base model a family is built on (``--base``, or its
    aliases ``--teacher`` / ``--autoencoder`` where that is the family's
    :attr:`~calogen.models.generator.BuiltOn.option`); ``ValueError`` for a base given to a
    family that is not built on one, or through the other alias."""
    from calogen.models.io import hparams_on_top_of
    from calogen.models.registry import FAMILIES, family_class

    given = {option: path for option, path in bases.items() if path is not None}
    if not given:
        return hparams
    if len(given) > 1:
        raise ValueError(f"give the base model once, not {', '.join('--' + o for o in given)}")
    ((option, path),) = given.items()
    built_on = family_class(family).built_on
    if built_on is None or option not in ("base", built_on.option):
        takers = sorted(n for n, c in FAMILIES.items() if c.built_on is not None
                        and option in ("base", c.built_on.option))
        raise ValueError(f"--{option} is for --model {' / '.join(takers)}, not {family!r}")
    return hparams_on_top_of(family, path, hparams)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``generate`` and ``export``."""
    app.command("train")(train)
    app.command("generate")(generate)
    app.command("export")(export)
