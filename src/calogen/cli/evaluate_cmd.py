"""``calogen evaluate``: every metric beside its reference floor, in a report (ZDC images,
layered voxels or point clouds: the observables follow the files' geometry)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from calogen.cli.common import InputFile, fail_on_user_errors, no_validate_option, validate_inputs


class ClassifierPreset(StrEnum):
    calogen = "calogen"
    calochallenge_2022 = "calochallenge-2022"


class Protocol(StrEnum):
    calogen = "calogen"
    calochallenge_2022 = "calochallenge-2022"
    caloclouds2 = "caloclouds2"


def evaluate(
    reference: Path = typer.Option(..., "--reference", help="Reference ShowerSet (.h5)."),
    generated: Path = typer.Option(
        ..., "--generated", help="Generated ShowerSet, one response per reference condition "
        "in the reference's row order (as many rows as the reference)."),
    out: Path = typer.Option(..., "--out", help="Output directory for metrics.json, plots and "
                             "report.html."),
    reference_2: Path | None = typer.Option(
        None, "--reference-2", help="A second reference (e.g. the same particles simulated "
        "again): the floor becomes reference vs reference 2."),
    max_events: int | None = typer.Option(None, "--max-events", min=100,
                                          help="Use at most this many reference events."),
    seeds: int | None = typer.Option(None, "--seeds", min=1,
                                     help="Classifier repeats (seeds); default 5, 10 with "
                                     "--protocol calochallenge-2022."),
    classifier: ClassifierPreset = typer.Option(
        ClassifierPreset.calogen, "--classifier",
        help="calogen: a practical MLP for a laptop CPU; calochallenge-2022: the published "
        "3x2048 MLP (the official DNN with --cls_n_layer 2), 50 epochs (slow on a CPU)."),
    protocol: Protocol = typer.Option(
        Protocol.calogen, "--protocol",
        help="calogen: practical settings for a laptop CPU; calochallenge-2022: the official "
        "CaloChallenge protocol (its classifier preset, 10 seeds unless --seeds is given, "
        "every event for the classifiers and PRDC, the cls-low-normed classifier too); "
        "caloclouds2: point clouds as CaloClouds II (half-MIP threshold 0.1 MeV for the "
        "cell counts too, its 32-16-8 classifier with 10 repeats unless --seeds). "
        "metrics.json and the report name the protocol that ran."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every resampling and split."),
    convention: str = typer.Option("o2", "--convention", help="ZDC channel convention: o2 or "
                                   "warsaw."),
    point_threshold: float = typer.Option(
        0.0, "--point-threshold", min=0.0, help="Point clouds: cell energy (MeV) from which a "
        "projected cell counts as hit (CaloClouds II: half a MIP)."),
    cell_size: tuple[float, float] | None = typer.Option(
        None, "--cell-size", help="Point clouds: project onto cells of DX DY mm instead of the "
        "file's (geometry independence)."),
    cell_offset: tuple[float, float] | None = typer.Option(
        None, "--cell-offset", help="Point clouds: shift the cell grid to the corner OX OY mm."),
    shower_axis: tuple[float, float] = typer.Option(
        (0.0, 0.0), "--shower-axis", help="Point clouds: x y (mm) of the axis the radial "
        "observables are measured from (calogen's guns hit 0 0)."),
    model: Path | None = typer.Option(
        None, "--model", help="The trained model (run/best) that made --generated: its "
        "parameter count and generation time (ms per shower at batch 100 on one CPU thread, "
        "the paper's protocol) join the summary and the leaderboard."),
    leaderboard: bool = typer.Option(
        True, "--leaderboard/--no-leaderboard", help="On a CaloChallenge binning: add the "
        "published results of arXiv:2410.21611 (measured on the official Geant4 files) beside "
        "this run's to the report (leaderboard.csv, leaderboard.png)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
    no_validate: bool = no_validate_option(),
) -> None:
    """Compare generated showers with a reference: metrics.json, plots and report.html."""
    from calogen.metrics.evaluate import evaluate as run_evaluation
    from calogen.report import write_report

    with fail_on_user_errors():
        if convention not in ("o2", "warsaw"):
            raise ValueError(f"--convention must be o2 or warsaw, got {convention!r}")
        validate_inputs("evaluate", [
            InputFile(reference, "--reference", min_events=1),
            InputFile(generated, "--generated", min_events=1),
            None if reference_2 is None else InputFile(reference_2, "--reference-2",
                                                       min_events=1),
        ], skip=no_validate, progress=progress)
        cfg = protocol_config(protocol, classifier, seeds, convention=convention,
                              max_events=max_events, seed=seed, progress=progress,
                              point_threshold_mev=point_threshold, cell_size_mm=cell_size,
                              cell_offset_mm=cell_offset, shower_axis_mm=shower_axis)
        result = run_evaluation(reference, generated, reference_2=reference_2, config=cfg)
        if model is not None:
            add_model_rows(result, model, reference)
        paths = write_report(result, out, leaderboard=leaderboard)
    _print_summary(result)
    typer.echo(f"wrote {paths.metrics_json.resolve()}")
    typer.echo(f"protocol: {result.protocol.get('name', 'calogen')}")
    typer.echo(f"wrote {len(paths.plots)} plots and text outputs to {out.resolve()}")
    typer.echo(f"report: {paths.html.resolve()}")


def protocol_config(protocol: Protocol, classifier: ClassifierPreset, seeds: int | None,
                    **settings: Any):  # noqa: ANN201 - EvaluationConfig, imported lazily
    """The :class:`~calogen.metrics.evaluate.EvaluationConfig` of a protocol preset.

    ``calochallenge-2022`` (arXiv:2410.21611, CaloChallenge ``code/evaluate.py``): the
    ``calochallenge-2022`` classifier preset whatever ``--classifier`` says, 10 seeds, no row
    limit for the classifiers (``max_samples_per_class`` None, no low-level cap beyond the
    memory bound) and PRDC on every event, the ``cls-low-normed`` classifier and the official
    ``cls-high`` input for the high-level classifier (the default reads calogen's observables,
    a superset; see ``EvaluationConfig.calochallenge_high_level``).

    ``caloclouds2`` (arXiv:2309.05704): the CaloClouds II classifier preset with 10 repeats, and
    half a MIP as the threshold of calogen's ``hit_cells`` too. The CaloClouds II scores and
    classifier run for every point-cloud file with ``E_inc``; with ``calogen`` their classifier
    repeats follow ``--seeds`` (default 10).
    """
    from dataclasses import replace

    from calogen.metrics.caloclouds import HALF_MIP_MEV
    from calogen.metrics.classifier import CALOCHALLENGE_2022, CALOCLOUDS_II, CALOGEN_DEFAULT
    from calogen.metrics.evaluate import EvaluationConfig

    if protocol is Protocol.calochallenge_2022:
        clf = replace(CALOCHALLENGE_2022, n_seeds=seeds or CALOCHALLENGE_2022.n_seeds)
        return EvaluationConfig(classifier=clf, protocol=protocol.value,
                                prdc_max_samples=None, low_level_max_per_class=1 << 62,
                                calochallenge_low_normed=True, calochallenge_high_level=True,
                                **settings)
    if protocol is Protocol.caloclouds2:
        clf = replace(CALOCLOUDS_II, n_seeds=seeds or CALOCLOUDS_II.n_seeds)
        if not settings.get("point_threshold_mev"):
            settings["point_threshold_mev"] = HALF_MIP_MEV
        return EvaluationConfig(classifier=replace(CALOGEN_DEFAULT, n_seeds=seeds or 5),
                                caloclouds_classifier=clf, protocol=protocol.value, **settings)
    preset = CALOGEN_DEFAULT if classifier is ClassifierPreset.calogen else CALOCHALLENGE_2022
    return EvaluationConfig(classifier=replace(preset, n_seeds=seeds or 5),
                            caloclouds_classifier=replace(
                                CALOCLOUDS_II, n_seeds=seeds or CALOCLOUDS_II.n_seeds),
                            protocol=protocol.value, **settings)


def _print_summary(result) -> None:  # noqa: ANN001 - EvaluationResult, imported lazily
    from rich.console import Console
    from rich.table import Table

    table = Table(title="calogen evaluate: value (model) vs floor (reference vs reference)")
    for col in ("metric", "unit", "value", "floor", "p-value"):
        table.add_column(col, justify="left" if col == "metric" else "right")

    def fmt(x: float | None, std: float | None = None) -> str:
        if x is None:
            return "-"
        text = f"{x:.4g}"
        return text + (f" ± {std:.2g}" if std else "")

    for row in result.summary:
        p = "-" if row.p_value is None else ("<0.001" if row.p_value < 1e-3 else
                                             f"{row.p_value:.3f}")
        table.add_row(row.name, row.unit, fmt(row.value, row.value_std),
                      fmt(row.floor, row.floor_std), p)
    Console(width=120).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command("evaluate")(evaluate)


def add_model_rows(result: Any, model: Path, conditions: Path) -> None:
    """Append the model's parameter count and generation time to ``result.summary``."""
    from calogen.metrics.evaluate import MetricRow
    from calogen.pipelines.model_timing import time_model

    if _model_kind(model) == "points":
        add_point_model_rows(result, model)
        return
    t = time_model(model, conditions)
    note = (f"median of {t.repeats} calls of batch {t.batch} on {t.threads} CPU thread, "
            f"model {model}")
    result.summary.append(MetricRow(MODEL_TIME_ROW, "ms / shower", t.ms_per_shower, None,
                                    note=note))
    result.summary.append(MetricRow(MODEL_PARAMETERS_ROW, "", float(t.parameters), None,
                                    note=f"model {model}"))


MODEL_TIME_ROW = "generation time (batch 100, 1 CPU thread)"
MODEL_PARAMETERS_ROW = "model parameters"


POINT_TIME_ROW = "generation time (batch 1, 1 CPU thread, 10-90 GeV)"
POINT_GPU_TIME_ROW = "generation time (batch 64, GPU, 10-90 GeV)"


def _model_kind(model: Path) -> str | None:
    """The shower kind a saved model generates, from its config (None when unreadable)."""
    try:
        from calogen.models.io import load_model

        return str(load_model(model, map_location="cpu").spec.kind)
    except (OSError, ValueError):
        return None


def add_point_model_rows(result: Any, model: Any, *, repeats: int = 5,
                         n_showers: int = 20) -> None:
    """Append a point-cloud model's time per shower as CaloClouds II measures it (batch 1 on
    one CPU thread; batch 64 on CUDA when present) and its parameter count."""
    import torch

    from calogen.metrics.evaluate import MetricRow
    from calogen.pipelines.model_timing import time_point_model

    t = time_point_model(model, batch=1, threads=1, repeats=repeats, n_showers=n_showers)
    note = (f"mean ± std of {t.repeats} runs of {t.n_showers} photons, E_inc uniform 10-90 GeV "
            "(CaloClouds II Table 3: CM 84 ms on a Xeon core, Geant4 3.9 s)")
    result.summary.append(MetricRow(POINT_TIME_ROW, "ms / shower", t.ms_per_shower, None,
                                    value_std=t.ms_std, note=note))
    if torch.cuda.is_available():
        g = time_point_model(model, batch=64, repeats=repeats, n_showers=max(n_showers, 128),
                             device="cuda")
        result.summary.append(MetricRow(POINT_GPU_TIME_ROW, "ms / shower", g.ms_per_shower,
                                        None, value_std=g.ms_std,
                                        note="CUDA synchronised (the paper: CM 2.09 ms, A100)"))
    result.summary.append(MetricRow(MODEL_PARAMETERS_ROW, "", float(t.parameters), None,
                                    note=f"model {model}"))
