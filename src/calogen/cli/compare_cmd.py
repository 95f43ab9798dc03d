"""``calogen compare``: one leaderboard for many models evaluated on the same reference."""

from __future__ import annotations

from pathlib import Path

import typer

from calogen.cli.common import fail_on_user_errors


def _is_run(path: Path) -> Path | None:
    """The model folder of a run (``run/best``, ``run/last`` or ``run`` itself), or None."""
    for folder in (path / "best", path / "last", path):
        if (folder / "model.json").is_file():
            return folder
    return None


def _evaluate_run(run: Path, model: Path, reference: Path, out: Path, label: str, seed: int,
                  seeds: int, progress: bool) -> Path:
    """Generate for ``reference``'s conditions with ``model`` and evaluate it (with its
    generation time and parameters): the report folder ``out/runs/<label>/report``."""
    import torch

    from calogen.cli.evaluate_cmd import (
        ClassifierPreset,
        Protocol,
        add_model_rows,
        protocol_config,
    )
    from calogen.metrics.evaluate import evaluate
    from calogen.models.io import load_model, read_model_config
    from calogen.pipelines.generation import generate_sharded
    from calogen.report import write_report
    from calogen.train.generation import check_conditions_fit

    folder = out / "runs" / label
    folder.mkdir(parents=True, exist_ok=True)
    net = load_model(model, map_location="cuda" if torch.cuda.is_available() else "cpu")
    check_conditions_fit(net.spec, model, reference)
    producer = {"name": f"calogen.models.{net.family}",
                "version": read_model_config(model)["calogen_version"],
                "model": str(model.resolve()), "note": f"calogen compare: run {run}"}
    generated = generate_sharded(net, model, reference, folder / "generated.h5",
                                 producer=producer, seed=seed, overwrite=True,
                                 progress=progress).path
    cfg = protocol_config(Protocol.calogen, ClassifierPreset.calogen, seeds, seed=seed,
                          progress=progress)
    result = evaluate(reference, generated, config=cfg)
    add_model_rows(result, model, reference)
    return write_report(result, folder / "report").metrics_json


def compare(
    inputs: list[Path] = typer.Argument(
        ..., help="Report folders of calogen evaluate (or their metrics.json), or run folders "
        "(evaluated against --reference)."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for compare.html, compare.png (Pareto plot) and "
        "compare.csv (and the reports of run folders). Give --out, --markdown or both."),
    markdown: Path | None = typer.Option(
        None, "--markdown", help="Write the board as a GitHub Markdown table to this file "
        "(model, each metric and metric / floor, ms per response, parameters, training "
        "minutes, a floor row), for the README."),
    metric: list[str] = typer.Option(
        [], "--metric", help="A column of the Markdown table (repeatable, in order): a short "
        "name as for --sort (incl. ms, params, train_min) or a metric name [default: the "
        "headline metrics, ms, params, train_min]."),
    sort: str | None = typer.Option(
        None, "--sort", help="Metric to order by: a short name (channel_w1, auc_high, w1_obs, "
        "auc_low, fpd, kpd, precision, recall, ms, params, train_min, ...), a metric name or "
        "an unambiguous part of one [default: the first headline metric every report has]."),
    label: list[str] = typer.Option(
        [], "--label", help="Names of the models, in the order of the inputs [default: the "
        "folder names]."),
    reference: Path | None = typer.Option(
        None, "--reference", help="Reference ShowerSet to evaluate run folders against (one "
        "response generated per row; the reports go to OUT/runs/<name>/report)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of generation and evaluation of "
                             "run folders."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Classifier repeats when evaluating "
                              "run folders."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """One leaderboard for many models on the same reference: every metric beside its floor,
    ms per response, parameters and training minutes; refuses reports made on different
    references (different SHA-256 of the reference file). A timing.json beside a
    metrics.json (keys ms_per_response, batch, threads, parameters, training_minutes, note)
    gives the speed, size and training time when the run is not at hand."""
    from rich.console import Console

    from calogen.atomic import write_text_atomic
    from calogen.report.compare import (
        board_markdown,
        board_table,
        build_board,
        load_entry,
        resolve_metric,
        write_board,
    )

    with fail_on_user_errors():
        if out is None and markdown is None:
            raise ValueError("give --out FOLDER (HTML page, plot, CSV), --markdown FILE, or "
                             "both")
        if label and len(label) != len(inputs):
            raise ValueError(f"--label given {len(label)} times for {len(inputs)} inputs; give "
                             "one per input or none")
        names = label or [p.resolve().name if p.name != "metrics.json"
                          else p.resolve().parent.name for p in inputs]
        if len(set(names)) != len(names):
            names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
        entries = []
        for path, name in zip(inputs, names, strict=True):
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file or folder")
            source: Path = path
            if path.is_dir() and not (path / "metrics.json").is_file():
                model = _is_run(path)
                if model is None:
                    raise ValueError(f"{path}: neither a report (metrics.json) nor a run "
                                     "(model.json, best/model.json)")
                if reference is None or out is None:
                    raise ValueError(f"{path}: a run folder; give --reference FILE and --out "
                                     "FOLDER to evaluate it, or pass its report (calogen "
                                     "evaluate --model ... --out REPORT)")
                typer.echo(f"evaluating {path} against {reference} ...", err=True)
                source = _evaluate_run(path, model, reference, out, name, seed, seeds,
                                       progress)
            entries.append(load_entry(source, label=name))
        board = build_board(entries, sort)
        columns = [resolve_metric(board.entries, m, "--metric") for m in metric] or None
        files = write_board(board, out) if out is not None else None
        if markdown is not None:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(markdown, board_markdown(board, columns))
    Console(width=200).print(board_table(board))
    for note in board.notes:
        typer.echo(f"warning: evaluation settings differ: {note}", err=True)
    if markdown is not None:
        typer.echo(f"wrote {markdown.resolve()}")
    if files is not None:
        typer.echo(f"wrote {files.csv.resolve()}")
        typer.echo(f"wrote {files.png.resolve()}")
        typer.echo(f"report: {files.html.resolve()}")


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare")(compare)
