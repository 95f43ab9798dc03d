"""The evaluation report: ``metrics.json``, the figures and a self-contained ``report.html``.

:func:`write_report` renders an :class:`~calogen.metrics.evaluate.EvaluationResult` into a
directory::

    out_dir/
        metrics.json            EvaluationResult.to_dict(), checked against metrics_schema.json
        observables.png, correlations.png, and for images channels_per_species.png,
        examples.png, mean_images.png; for voxels and point clouds layer_profiles.png
                                (calogen.report.evaluation_plots)
        report.html             one page, inline CSS, no scripts, relative links only

Order and failure semantics: the result is validated first (nothing is written if it does not
match the schema); the whole report is then written into a temporary folder beside ``out_dir``
and put in place only when complete, so a failing figure or a killed job leaves an earlier
report in ``out_dir`` complete and untouched, and never new metrics beside stale figures.
When ``out_dir`` holds nothing but report files (the usual case) it is replaced as a whole,
atomically (:func:`calogen.atomic.replace_directory`). A folder that also holds other files
(say ``--out .``) keeps them: the finished report files are then renamed in one by one,
``report.html`` last, and report files of the earlier report that were not rewritten are
removed. Temporary folders of killed runs beside ``out_dir`` are removed first.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from calogen.atomic import (
    atomic_directory,
    remove_stale_temporaries,
    temp_sibling,
    write_text_atomic,
)
from calogen.report import caloclouds_report, evaluation_plots
from calogen.report.caloclouds_report import caloclouds_section
from calogen.report.leaderboard import write_leaderboard
from calogen.report.numbers import fmt, fmt_std

if TYPE_CHECKING:  # importing calogen.metrics.evaluate pulls in torch; annotations only
    from calogen.metrics.evaluate import EvaluationResult

SCHEMA_RESOURCE = "metrics_schema.json"
"""File name of the JSON Schema of ``metrics.json`` inside the ``calogen.report`` package."""

FLAG_RATIO = 2.0
"""A lower-is-better value above FLAG_RATIO x its floor (higher-is-better: below floor /
FLAG_RATIO) is highlighted."""

FLAG_P_VALUE = 0.01
"""A lower-is-better value with a p-value below this is highlighted."""

MAX_SCHEMA_ERRORS = 10
"""Schema violations listed in a :class:`MetricsSchemaError` message."""


class MetricsSchemaError(ValueError):
    """A metrics document does not match ``metrics_schema.json``."""


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`write_report` wrote."""

    metrics_json: Path
    html: Path
    plots: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Schema


@cache
def _schema_text() -> str:
    return resources.files("calogen.report").joinpath(SCHEMA_RESOURCE).read_text("utf-8")


def metrics_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``metrics.json`` (a fresh copy on every call)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def _where(error: ValidationError) -> str:
    """``summary[0].value``-style location of an error (``<top level>`` for the root)."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def validate_metrics_json(doc: str | os.PathLike[str] | Mapping[str, Any]) -> None:
    """Check a metrics document (a path to ``metrics.json`` or the dict itself).

    Raises:
        MetricsSchemaError: (a ``ValueError``) naming the source, and for each violation (up
            to :data:`MAX_SCHEMA_ERRORS`) the offending key, e.g.
            ``summary[3].value: 'abc' is not of type 'number', 'null'``; also when the file
            is not JSON.
        FileNotFoundError: if a path is given and does not exist.
    """
    if isinstance(doc, Mapping):
        source, data = "metrics document", doc
    else:
        source = str(doc)
        text = Path(doc).read_text("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsSchemaError(f"{source}: not valid JSON ({exc})") from None
    validator = Draft202012Validator(metrics_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    lines = [f"  {_where(e)}: {_short(e.message)}" for e in errors[:MAX_SCHEMA_ERRORS]]
    more = len(errors) - MAX_SCHEMA_ERRORS
    if more > 0:
        lines.append(f"  ... and {more} more")
    raise MetricsSchemaError(
        f"{source} does not match the calogen.metrics schema ({SCHEMA_RESOURCE}); "
        f"{len(errors)} violation(s):\n" + "\n".join(lines))


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Writing


_write_text_atomic = write_text_atomic

REPORT_FILE_RE = re.compile(
    r"^(metrics\.json|report\.html|observables(_\d+)?\.png|channels_per_species\.png"
    r"|correlations\.png|examples\.png|mean_images\.png|layer_profiles\.png"
    r"|average_shower(_per_energy)?\.png|leaderboard\.csv|leaderboard\.png"
    r"|caloclouds_(cells|observables|examples)\.png"
    r"|(histogram_chi2|fpd_kpd|classifier_cls-low|classifier_cls-high|classifier_cls-low-normed)"
    r"_[A-Za-z0-9._-]+\.txt)$")
"""Names of the files :func:`write_report` writes (a folder holding only these is a report)."""


def write_report(result: EvaluationResult, out_dir: str | os.PathLike[str], *,
                 title: str | None = None, leaderboard: bool = True) -> ReportPaths:
    """Write ``metrics.json``, the figures and ``report.html`` into ``out_dir``.

    Args:
        result: what :func:`calogen.metrics.evaluate.evaluate` returned. Without
            ``plot_data`` the page has no figures (and says so).
        out_dir: output directory (created if missing; an earlier report in it is replaced,
            other files in it are kept).
        title: page title; default names the generated and reference producers.
        leaderboard: on a CaloChallenge binning, add the published rows of arXiv:2410.21611
            beside this run's (``leaderboard.csv``, ``leaderboard.png``, a page section).

    Returns:
        The paths written.

    Raises:
        MetricsSchemaError: if ``result.to_dict()`` does not match the schema (a bug in the
            producer of the result); nothing is written then.
        NotADirectoryError: if ``out_dir`` exists and is not a folder.
        Exception: from a figure; ``out_dir`` is then as it was (see the module docstring).
    """
    out = Path(os.path.abspath(out_dir))
    doc = result.to_dict()
    try:
        validate_metrics_json(doc)
    except MetricsSchemaError as exc:
        raise MetricsSchemaError(f"EvaluationResult.to_dict(): {exc}") from None
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a folder; the report needs one")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    if _replaceable(out):
        with atomic_directory(out) as tmp:
            names = _write_files(result, doc, tmp, title, leaderboard)
    else:
        staging = temp_sibling(out)
        staging.mkdir()
        try:
            names = _write_files(result, doc, staging, title, leaderboard)
            _move_into(staging, out, names)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ReportPaths(out / "metrics.json", out / "report.html",
                       [out / name for name in names[1:-1]])


def _replaceable(out: Path) -> bool:
    """Whether ``out`` may be replaced as a whole: absent, or a folder of report files only
    that is not the working directory or one of its parents."""
    if not out.exists():
        return True
    cwd = Path.cwd().resolve()
    resolved = out.resolve()
    if resolved == cwd or resolved in cwd.parents or out.is_symlink():
        return False
    return all(REPORT_FILE_RE.match(e.name) and e.is_file() and not e.is_symlink()
               for e in out.iterdir())


def _write_files(result: EvaluationResult, doc: Mapping[str, Any], folder: Path,
                 title: str | None, leaderboard: bool = True) -> list[str]:
    """Write the report into ``folder``; file names: metrics.json, figures, report.html."""
    _write_text_atomic(folder / "metrics.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
    paired = doc["protocol"].get("paired")
    figures: list[tuple[Path, str]] = []
    if result.plot_data is not None:
        figures = _make_plots(result, folder, paired if isinstance(paired, bool) else None)
    texts = official_texts(result)
    for name, text in texts.items():
        _write_text_atomic(folder / name, text)
    board: list[str] = []
    extra = ""
    dataset = (doc.get("details", {}).get("calochallenge") or {}).get("dataset")
    if leaderboard and dataset:
        extra = write_leaderboard(dataset, leaderboard_measurements(doc), folder,
                                  reference=str(doc.get("inputs", {}).get("reference", {})
                                                .get("path", "the reference")))
        board = ["leaderboard.csv", "leaderboard.png"]
    sections = [x for x in (extra, caloclouds_section(doc)) if x]
    page = render_html(doc, figures, title=title, has_plot_data=result.plot_data is not None,
                       extra_sections=sections or None)
    _write_text_atomic(folder / "report.html", page)
    return ["metrics.json", *(p.name for p, _ in figures), *texts, *board, "report.html"]


LEADERBOARD_ROWS: dict[str, tuple[str, ...]] = {
    "auc_low": ("classifier AUC (low-level)",),
    "auc_high": ("classifier AUC (high-level)",),
    "fpd": ("FPD (CaloChallenge high-level vector) x1e3",),
    "kpd": ("KPD (CaloChallenge high-level vector) x1e3",),
    "ms_per_shower_cpu_100": ("generation time (batch 100, 1 CPU thread)",
                              "generation time (from the generated file)"),
    "params": ("model parameters", "model parameters (from the generated file)"),
}
"""Leaderboard key -> the summary rows it is read from (the first present; ``calogen evaluate
--model`` measures the first, a generated file's producer may record the second)."""


def leaderboard_measurements(doc: Mapping[str, Any]) -> dict[str, float | int | None]:
    """This run's values for :func:`~calogen.report.leaderboard.write_leaderboard` from a
    metrics document (``None`` where not measured)."""
    rows = {r.get("name"): r for r in doc.get("summary", [])}
    out: dict[str, float | int | None] = {}
    for key, names in LEADERBOARD_ROWS.items():
        row: Mapping[str, Any] = next((rows[n] for n in names if n in rows), {})
        value = row.get("value")
        out[key] = (int(value) if key == "params" and value is not None else value)
        if key in ("auc_low", "auc_high", "fpd", "kpd") and row.get("value_std") is not None:
            out[f"{key}_std"] = row["value_std"]
    return out


def official_texts(result: EvaluationResult) -> dict[str, str]:
    """The CaloChallenge text outputs (``histogram_chi2_<dataset>.txt``,
    ``classifier_<mode>_<dataset>.txt``, ``fpd_kpd_<dataset>.txt``) of a voxel evaluation,
    file name -> text, in the official formats; empty for other shapes."""
    pd = result.plot_data
    if pd is None or not pd.calochallenge:
        return {}
    texts = pd.calochallenge.get("texts", {})
    return {n: t for n, t in texts.items() if REPORT_FILE_RE.match(n) and "/" not in n}


def _move_into(staging: Path, out: Path, names: list[str]) -> None:
    """Rename the finished files ``names`` (``report.html`` last) from ``staging`` into the
    folder ``out`` that also holds other files; remove earlier report files not rewritten."""
    (out / "report.html").unlink(missing_ok=True)  # never a page beside half-moved files
    for entry in out.iterdir():
        if (REPORT_FILE_RE.match(entry.name) and entry.name not in names
                and entry.is_file() and not entry.is_symlink()):
            entry.unlink()
    for name in names:
        os.replace(staging / name, out / name)


def _make_plots(result: EvaluationResult, out: Path,
                paired: bool | None) -> list[tuple[Path, str]]:
    """Draw every figure of the showers' kind; (path, caption) in page order."""
    pd = result.plot_data
    assert pd is not None
    ep = evaluation_plots  # looked up at call time (tests replace functions in the module)
    ccr = caloclouds_report
    figs: list[tuple[Path, str]] = []
    for p in ep.plot_observables(pd, out):
        figs.append((p, CAPTIONS["observables"]))
    steps: list[tuple[str, Callable[[], Path]]]
    if pd.kind == "image":
        steps = [
            ("channels_per_species", lambda: ep.plot_channels_per_species(pd, out)),
            ("correlations", lambda: ep.plot_correlations(pd, out)),
            ("examples", lambda: ep.plot_examples(pd, out, paired=paired)),
            ("mean_images", lambda: ep.plot_mean_images(pd, out)),
        ]
    else:
        steps = [("layer_profiles", lambda: ep.plot_layer_profiles(pd, out)),
                 ("correlations", lambda: ep.plot_correlations(pd, out))]
        if pd.caloclouds:
            steps += [("caloclouds_cells", lambda: ccr.plot_caloclouds_cells(pd, out)),
                      ("caloclouds_observables",
                       lambda: ccr.plot_caloclouds_observables(pd, out)),
                      ("caloclouds_examples", lambda: ccr.plot_cloud_examples(pd, out))]
        if pd.calochallenge and "mean_ref" in pd.calochallenge:
            steps += [("average_shower", lambda: ep.plot_average_showers(pd, out)),
                      ("average_shower_per_energy",
                       lambda: ep.plot_average_showers_per_energy(pd, out))]
    for key, draw in steps:
        caption = CAPTIONS[key]
        if key == "examples" and paired is False:
            caption += CAPTION_UNPAIRED
        figs.append((draw(), caption))
    return figs


CAPTIONS = {
    **caloclouds_report.CAPTIONS,
    "average_shower": (
        "Average shower (CaloChallenge 'avg'): mean energy per voxel over all events, one polar "
        "panel per layer (radius in mm, angle as binned), reference (top) and generated "
        "(bottom) on one logarithmic scale; empty voxels white. With many layers, evenly "
        "spaced layers are drawn."),
    "average_shower_per_energy": (
        "Average shower per incident-energy range (CaloChallenge 'avg-E': the DS1 energies, "
        "else decades 1 GeV - 1 TeV): mean energy per layer, reference (black) and generated "
        "(red)."),
    "observables": (
        "Distribution of every observable: reference (grey, filled), generated (red) and the "
        "floor sample (blue, dashed: a second reference sample with the generated sample's size "
        "and conditions). Bins come from the reference (integer observables on integer bins, "
        "photon counts on log-spaced bins when they span decades, where zeros fall outside). "
        "Each histogram is normalised to its number of events; entries outside the reference "
        "range are counted in the legend. Lower panels: generated / reference per bin; the blue "
        "band is floor / reference &plusmn; the reference's Poisson error. Where the red line "
        "leaves the band, the model differs by more than statistics explain. With many "
        "per-layer observables only evenly spaced layers are drawn here; the layer profiles "
        "show every layer."),
    "layer_profiles": (
        "Per-layer means over all events: energy, centres of energy and widths in x and y (and "
        "for voxels the fraction of empty voxels), reference (black), generated (red) and floor "
        "(blue, dashed), with standard errors. Lower panels: generated and floor relative to "
        "the reference (ratios for energies, widths and sparsity; differences in mm for the "
        "centres). Where the red curve departs further than the blue one, the model's "
        "longitudinal or transverse profile is off."),
    "channels_per_species": (
        "The five PMT channel sums for the most frequent species (rows), reference (filled) "
        "versus generated (red), normalised, log y. Bins from the reference of that species "
        "(log-spaced when the counts span decades; zero responses are then counted in the "
        "legend, as are generated entries outside the reference range)."),
    "correlations": (
        "Pearson correlation matrices of the observables for the reference and the generated "
        "sample (top), and the differences generated &minus; reference and floor &minus; "
        "reference (bottom) on one symmetric scale. Cells where the left difference is clearly "
        "larger than the right are correlations the model misses; the right panel shows the "
        "size of purely statistical differences."),
    "examples": (
        "Example responses: reference (left) and generated (right) for the same conditions, "
        "species and incident energy E in each pair's title, photon sums above each image. "
        "Each pair shares one logarithmic colour scale; empty pixels are black. Single "
        "responses fluctuate strongly: judge shape and scale, not pixel-by-pixel agreement."),
    "mean_images": (
        "Mean image over all events read from each file: the reference (left) and the "
        "generated sample (middle) on a shared logarithmic scale, and their difference "
        "generated &minus; reference (right; red: too many photons in the model, blue: too "
        "few)."),
}
"""Figure captions (HTML; entities allowed)."""

CAPTION_UNPAIRED = (
    " <strong>The files are not paired:</strong> the generated file does not hold one response "
    "per reference condition in the reference's order, so the reference image of each pair "
    "belongs to other conditions (titles give the generated event's).")


# --------------------------------------------------------------------------------------------
# Number formatting and flags


def fmt_p(p: Any) -> str:
    """A p-value: ``0.048``, ``0.5``, ``<0.001``; ``-`` for None."""
    if p is None:
        return "&ndash;"
    p = float(p)
    if p < 1e-3:
        return "&lt;0.001"
    return f"{p:.2g}"


def flag(value: Any, floor: Any, p_value: Any, lower_is_better: bool = True) -> str | None:
    """Why a value deserves attention, or None.

    Lower-is-better: above :data:`FLAG_RATIO` x a positive floor, or p below
    :data:`FLAG_P_VALUE`. Higher-is-better: below a positive floor / :data:`FLAG_RATIO`.
    """
    if value is None:
        return None
    reasons = []
    if floor is not None and floor > 0:
        if lower_is_better and value > FLAG_RATIO * floor:
            reasons.append(f"more than {FLAG_RATIO:g}&times; the floor")
        if not lower_is_better and value < floor / FLAG_RATIO:
            reasons.append(f"less than 1/{FLAG_RATIO:g} of the floor")
    if lower_is_better and p_value is not None and p_value < FLAG_P_VALUE:
        reasons.append(f"p &lt; {FLAG_P_VALUE:g}")
    return "; ".join(reasons) if reasons else None


# --------------------------------------------------------------------------------------------
# HTML


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1em; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; vertical-align: top; }
th { background: #f0f0f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td, td.bad { background: #fde2e1; }
td.flag { color: #a40000; font-size: 0.85em; }
td.note, .note { color: #555; font-size: 0.85em; }
.floor { color: #666; }
.callout { border-left: 4px solid #e69500; background: #fff6e5; padding: 0.5em 0.9em;
           margin: 0.8em 0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #333; max-width: 1100px; }
pre { background: #f6f6f8; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
details summary { cursor: pointer; }
"""

FLOOR_TEXT = {
    "halves": (
        "No second reference was given: the reference was split into two halves A and B by "
        "condition group (repeats of one particle never straddle the halves). The model's "
        "value compares A with the generated responses for B's conditions; the floor compares "
        "A with B (same sizes, same conditions)."),
    "reference-2": (
        "The floor compares the reference with a second, independent reference sample "
        "(reference 2); the model's value compares the reference with the generated sample."),
}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Iterable[str], rows: Iterable[str], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    cls_attr = f' class="{cls}"' if cls else ""
    return (f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>\n"
            + "\n".join(rows) + "\n</tbody></table>")


def _inputs_section(inputs: Mapping[str, Any]) -> str:
    rows, notes = [], []
    for role in ("reference", "generated", "reference_2"):
        item = inputs.get(role)
        if not isinstance(item, Mapping):
            continue
        label = role.replace("_", " ")
        note = item.get("note")
        rows.append(
            f"<tr><td>{_e(label)}</td><td><code>{_e(item.get('path', ''))}</code></td>"
            f'<td class="num">{fmt(item.get("n_events"))}</td><td>{_e(item.get("detector", ""))}'
            f"</td><td>{_e(item.get('producer') or 'unknown')}</td>"
            f'<td class="note">{_e(note) if note else ""}</td></tr>')
        if note:
            notes.append(f"<div class=\"callout\"><strong>{_e(label)} producer "
                         f"({_e(item.get('producer') or 'unknown')}):</strong> {_e(note)}</div>")
    extra = [k for k in inputs if k not in ("reference", "generated", "reference_2")]
    for k in extra:
        rows.append(f"<tr><td>{_e(k)}</td><td colspan=\"5\"><code>{_e(json.dumps(inputs[k]))}"
                    "</code></td></tr>")
    return ("<h2>Inputs</h2>\n" + "\n".join(notes)
            + _table(["role", "file", "events", "detector", "producer", "producer note"], rows))


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    return [(prefix, value)]


def _protocol_section(protocol: Mapping[str, Any]) -> str:
    floor = protocol.get("floor")
    paired = protocol.get("paired")
    n_cmp = protocol.get("n_compared", {})
    paired_text = (
        "yes: generated row i has the conditions of reference row i, so the paired metrics "
        "(MAE and RMSE by condition) are computable" if paired else
        "no: the generated rows do not follow the reference's conditions; paired metrics are "
        "not computable")
    rows = []
    if protocol.get("kind"):
        rows.append(f"<tr><th>showers</th><td>{_e(protocol['kind'])}</td></tr>")
    rows += [
        f"<tr><th>floor</th><td><strong>{_e(floor)}</strong> &mdash; "
        f"{_e(FLOOR_TEXT.get(str(floor), ''))}</td></tr>",
        f"<tr><th>paired</th><td>{_e(paired_text)}</td></tr>",
    ]
    if "n_reference_rows" in protocol:
        rows.append(f"<tr><th>reference rows used</th><td>{fmt(protocol['n_reference_rows'])}"
                    "</td></tr>")
    rows.append(
        "<tr><th>events compared</th><td>"
        f"reference {fmt(n_cmp.get('reference'))}, generated {fmt(n_cmp.get('generated'))}, "
        f"floor {fmt(n_cmp.get('floor'))}</td></tr>")
    if protocol.get("observables"):
        units = list(protocol.get("observable_units") or [])
        obs = ", ".join(f"{_e(n)} [{_e(units[i])}]" if i < len(units) and units[i] else _e(n)
                        for i, n in enumerate(protocol["observables"]))
        rows.append(f"<tr><th>observables</th><td>{obs}</td></tr>")
    skipped = protocol.get("skipped")
    if isinstance(skipped, Mapping) and skipped:
        items = "".join(f"<li><strong>{_e(k)}</strong>: {_e(v)}</li>"
                        for k, v in skipped.items())
        rows.append(f"<tr><th>not computed</th><td><ul>{items}</ul></td></tr>")
    out = "<h2>Protocol</h2>\n" + _table(["", ""], rows).replace(
        "<thead><tr><th></th><th></th></tr></thead>", "")
    rest = {k: v for k, v in protocol.items()
            if k not in ("kind", "floor", "paired", "n_reference_rows", "n_compared",
                         "observables", "observable_units", "skipped")}
    if rest:
        cfg_rows = [f"<tr><td><code>{_e(k)}</code></td><td><code>"
                    f"{_e(json.dumps(v) if not isinstance(v, str) else v)}</code></td></tr>"
                    for k, v in _flatten("", rest)]
        out += ("\n<details><summary>configuration</summary>\n"
                + _table(["setting", "value"], cfg_rows) + "\n</details>")
    return out


def _row_html(row: Mapping[str, Any], with_p: bool = True, with_note: bool = True) -> str:
    why = flag(row.get("value"), row.get("floor"), row.get("p_value"),
               bool(row.get("lower_is_better", True)))
    cls = ' class="bad"' if why else ""
    direction = "lower is better" if row.get("lower_is_better", True) else "higher is better"
    cells = [
        f"<td title=\"{_e(direction)}\">{_e(row['name'])}</td>",
        f"<td>{_e(row.get('unit', ''))}</td>",
        f'<td class="num">{fmt_std(row.get("value"), row.get("value_std"))}</td>',
        f'<td class="num floor">{fmt_std(row.get("floor"), row.get("floor_std"))}</td>',
    ]
    if with_p:
        cells.append(f'<td class="num">{fmt_p(row.get("p_value"))}</td>')
    cells.append(f'<td class="flag">{why or ""}</td>')
    if with_note:
        cells.append(f'<td class="note">{_e(row.get("note", ""))}</td>')
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def _summary_section(summary: list[Mapping[str, Any]]) -> str:
    rows = [_row_html(r) for r in summary]
    legend = (
        "<p class=\"note\">value: model (reference vs generated); floor: reference vs reference, "
        "the best any model can reach with these sample sizes. Highlighted rows: a "
        f"lower-is-better value more than {FLAG_RATIO:g}&times; its floor or with p &lt; "
        f"{FLAG_P_VALUE:g}, or a higher-is-better value below 1/{FLAG_RATIO:g} of its floor. "
        "p: probability that two reference samples differ at least as much (null from "
        "re-splitting the reference). &plusmn;: spread over batches / seeds / bootstrap.</p>")
    return ("<h2>Summary</h2>\n" + legend
            + _table(["metric", "unit", "value", "floor", "p-value", "flag", "note"], rows,
                     cls="summary"))


def _stat_cells(stat: Mapping[str, Any] | None) -> str:
    stat = stat or {}
    why = flag(stat.get("value"), stat.get("floor"), stat.get("p_value"))
    cls = " bad" if why else ""
    title = f' title="{why}"' if why else ""
    return (f'<td class="num{cls}"{title}>{fmt_std(stat.get("value"), stat.get("value_std"))}'
            f'</td><td class="num floor">{fmt_std(stat.get("floor"), stat.get("floor_std"))}</td>'
            f'<td class="num">{fmt_p(stat.get("p_value"))}</td>')


def _observables_section(details: Mapping[str, Any]) -> str:
    obs = details.get("observables")
    parts = []
    if isinstance(obs, Mapping) and obs:
        rows = []
        for name, entry in obs.items():
            sep = entry.get("separation_power") or {}
            rows.append(
                f"<tr><td>{_e(name)}</td><td>{_e(entry.get('unit', ''))}</td>"
                + _stat_cells(entry.get("w1")) + _stat_cells(sep)
                + f'<td class="num">{fmt(sep.get("generated_out_of_range"))}</td>'
                + f'<td class="num">{fmt(sep.get("floor_out_of_range"))}</td></tr>')
        parts.append(
            "<h2>Per observable</h2>\n<p class=\"note\">W1 on observables standardised with "
            "the reference's mean and std (mean &plusmn; std over batches); separation power "
            "on reference bins; out of range: generated / floor entries outside the reference "
            "bins (counted, not dropped). Highlighted cells: as in the summary.</p>\n"
            + _table(["observable", "unit", "W1", "W1 floor", "p", "separation", "sep. floor",
                      "p", "gen. out of range", "floor out of range"], rows))
    ch = details.get("channel_w1")
    if isinstance(ch, Mapping) and ch:
        rows = []
        for name, entry in ch.items():
            why = flag(entry.get("value"), entry.get("floor"), None)
            cls = ' class="num bad"' if why else ' class="num"'
            rows.append(f"<tr><td>{_e(name)}</td><td{cls}>{fmt(entry.get('value'))}</td>"
                        f'<td class="num floor">{fmt(entry.get("floor"))}</td></tr>')
        parts.append("<h3>Wasserstein distance per PMT channel (photons)</h3>\n"
                     + _table(["channel", "W1", "floor"], rows))
    return "\n".join(parts)


SLICE_TITLES = {"species": "Per species", "energy": "Per incident-energy bin"}


def _slices_section(slices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    if not slices:
        return ""
    parts = ["<h2>Slices</h2>\n<p class=\"note\">Metrics repeated per slice (without "
             "p-values): each cell is <em>value</em> <span class=\"floor\">(floor)</span>; "
             "highlighted as in the summary.</p>"]
    for kind, entries in slices.items():
        names: dict[str, str] = {}
        for entry in entries.values():
            for row in entry.get("metrics", []) or []:
                names.setdefault(row["name"], row.get("unit", ""))
        header = ["slice", "n ref.", "n gen.", "n floor"]
        header += [_e(n) + (f" [{_e(u)}]" if u else "") for n, u in names.items()]
        header.append("note")
        rows = []
        for sname, entry in entries.items():
            by_name = {r["name"]: r for r in entry.get("metrics", []) or []}
            cells = [f"<td>{_e(sname)}</td>"] + [
                f'<td class="num">{fmt(entry.get(k))}</td>'
                for k in ("n_reference", "n_generated", "n_floor")]
            for n in names:
                r = by_name.get(n)
                if r is None:
                    cells.append('<td class="num">&ndash;</td>')
                    continue
                why = flag(r.get("value"), r.get("floor"), r.get("p_value"),
                           bool(r.get("lower_is_better", True)))
                cls = "num bad" if why else "num"
                title = f' title="{why}"' if why else ""
                value = fmt_std(r.get("value"), r.get("value_std"))
                cells.append(f'<td class="{cls}"{title}>{value} '
                             f'<span class="floor">({fmt(r.get("floor"))})</span></td>')
            cells.append(f'<td class="note">{_e(entry.get("note", ""))}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        title = SLICE_TITLES.get(kind, f"Per {kind}")
        parts.append(f"<h3>{_e(title)}</h3>\n" + _table(header, rows))
    return "\n".join(parts)


def _timing_section(timing: Mapping[str, Mapping[str, Any]]) -> str:
    if not timing:
        return ""
    rows = [f"<tr><td>{_e(stage)}</td><td class=\"num\">{fmt(float(t.get('seconds', 0.0)))}"
            f"</td><td class=\"num\">{fmt(float(t.get('peak_rss_mb', 0.0)))}</td></tr>"
            for stage, t in timing.items()]
    total = sum(float(t.get("seconds", 0.0)) for t in timing.values())
    peak = max(float(t.get("peak_rss_mb", 0.0)) for t in timing.values())
    rows.append(f"<tr><th>total</th><th class=\"num\">{fmt(total)}</th>"
                f"<th class=\"num\">{fmt(peak)}</th></tr>")
    return ("<h2>Timing of the evaluation</h2>\n<p class=\"note\">Wall time per stage and the "
            "peak resident memory of the process up to the end of the stage.</p>\n"
            + _table(["stage", "seconds", "peak RSS [MB]"], rows))


def _figures_section(figures: list[tuple[Path, str]], has_plot_data: bool) -> str:
    if not figures:
        why = ("the result carries no plot data" if not has_plot_data else "none were drawn")
        return f"<h2>Figures</h2>\n<p class=\"note\">No figures: {why}.</p>"
    parts = ["<h2>Figures</h2>"]
    for path, caption in figures:
        name = _e(path.name)
        parts.append(f'<figure><a href="{name}"><img src="{name}" alt="{_e(path.stem)}">'
                     f"</a><figcaption>{caption}</figcaption></figure>")
    return "\n".join(parts)


def _details_section(details: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in details.items() if k not in ("observables", "channel_w1")}
    if not rest:
        return ""
    return ("<h2>Other details</h2>\n<details><summary>classifier, FPD/KPD, PRDC, paired "
            "metrics (as in metrics.json)</summary>\n<pre>"
            + _e(json.dumps(rest, indent=2)) + "</pre></details>")


def _default_title(inputs: Mapping[str, Any]) -> str:
    def who(role: str) -> str:
        item = inputs.get(role)
        if not isinstance(item, Mapping):
            return "?"
        return str(item.get("producer") or Path(str(item.get("path", "?"))).name)
    return f"calogen evaluation: {who('generated')} vs reference {who('reference')}"


def render_html(doc: Mapping[str, Any], figures: list[tuple[Path, str]], *,
                title: str | None = None, has_plot_data: bool = True,
                extra_sections: list[str] | None = None) -> str:
    """The report page for a (validated) metrics document and its figures.

    ``figures`` holds (path, HTML caption); only the file names are linked (relative links:
    the page must sit in the figures' directory).
    """
    page_title = title or _default_title(doc.get("inputs", {}))
    body = [
        f"<h1>{_e(page_title)}</h1>",
        f"<p class=\"meta\">calogen {_e(doc.get('calogen_version', '?'))}, created "
        f"{_e(doc.get('created', '?'))} &middot; all numbers in "
        "<a href=\"metrics.json\">metrics.json</a></p>",
        _inputs_section(doc.get("inputs", {})),
        _protocol_section(doc.get("protocol", {})),
        _summary_section(list(doc.get("summary", []))),
        *(extra_sections or []),
        _observables_section(doc.get("details", {})),
        _slices_section(doc.get("slices", {})),
        _figures_section(figures, has_plot_data),
        _timing_section(doc.get("timing", {})),
        _details_section(doc.get("details", {})),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(page_title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(b for b in body if b) + "\n</body>\n</html>\n")
