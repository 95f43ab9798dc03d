"""One leaderboard for many models evaluated on the same reference (``calogen compare``).

Reads the ``metrics.json`` that ``calogen evaluate`` writes (``report/metrics_schema.json``):
every summary metric with its floor, the generation time and parameter count rows that
``calogen evaluate --model`` adds, and, through the generated file's producer record, the run
that made the model (training minutes from its ``log.csv``). A ``timing.json`` beside
metrics.json (:data:`TIMING_KEYS`, :func:`write_timing`) gives the ms per response, parameters
and training minutes when the run is not at hand, and overrides the values found elsewhere.
Reports are on the same reference when the references' SHA-256 (``inputs.reference.sha256``)
agree; reports written before that field existed are matched by path, event count, detector
and producer. Never computes a metric.

* :func:`load_entry` -- one report as an :class:`Entry`.
* :func:`check_same_reference` -- refuse reports made on different references.
* :func:`build_board` -- the entries ordered by a metric (:class:`Board`).
* :func:`board_table` -- the board as a rich table for the terminal.
* :func:`board_markdown` -- the board as a GitHub table (for the README).
* :func:`write_board` -- ``compare.html``, ``compare.png`` (Pareto plot) and ``compare.csv``.
* :func:`read_timing` / :func:`write_timing` -- the ``timing.json`` sidecar.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calogen.atomic import atomic_path, remove_stale_temporaries, write_text_atomic
from calogen.report.numbers import fmt
from calogen.report.style import hep_style, new_figure

__all__ = ["CSV_NAME", "HEADLINE", "HTML_NAME", "PNG_NAME", "TIMING_KEYS", "TIMING_NAME",
           "Board", "Entry", "Timing", "board_markdown", "board_table", "build_board",
           "check_same_reference", "load_entry", "read_timing", "resolve_metric", "write_board",
           "write_timing"]

HTML_NAME, PNG_NAME, CSV_NAME = "compare.html", "compare.png", "compare.csv"

TIME_ROW_UNIT = "ms / shower"
"""Unit of the generation-time rows ``calogen evaluate --model`` appends to the summary."""
PARAMETERS_ROW = "model parameters"

MS, PARAMS, TRAIN_MIN = "ms per response", "parameters", "training minutes"
"""Pseudo-metrics a board can also be sorted by (all lower-is-better)."""

SHORT_NAMES: dict[str, str] = {
    "channel_w1": "channel Wasserstein (mean of 5 channels)",
    "w1_obs": "W1 of standardised observables (mean over observables)",
    "sep": "separation power (mean over observables)",
    "corr": "correlation matrix difference (Frobenius)",
    "fpd": "FPD (observables) x1e3",
    "kpd": "KPD (observables) x1e3",
    "mae": "channel MAE paired by condition",
    "rmse": "per-pixel RMSE paired by condition",
    "diversity": "diversity at identical conditions",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
    "auc_low": "classifier AUC (low-level)",
    "auc_high": "classifier AUC (high-level)",
    "jsd_low": "classifier JSD (low-level)",
    "jsd_high": "classifier JSD (high-level)",
    "ms": MS, "params": PARAMS, "train_min": TRAIN_MIN,
}
"""Short names accepted by ``--sort`` -> the start of a summary row's name."""

HEADLINE = ("channel_w1", "auc_high", "w1_obs", "auc_low", "fpd", "precision", "recall")
"""Metrics shown in the terminal table, in order; the default sort is the first of them that
every report holds."""

COLUMN_TITLES = {"channel_w1": "channel W1", "auc_high": "AUC high", "w1_obs": "W1 obs.",
                 "auc_low": "AUC low", "fpd": "FPD x1e3", "precision": "precision",
                 "recall": "recall"}
"""Short terminal headers of the :data:`HEADLINE` metrics."""


def _title(metric: str) -> str:
    for key, title in COLUMN_TITLES.items():
        if metric.startswith(SHORT_NAMES[key]):
            return title
    return metric


@dataclass(frozen=True)
class Entry:
    """One evaluated model: its summary rows by name (``value``, ``floor``, ``value_std``,
    ``lower_is_better`` as in metrics.json), generation time (ms per response, None when not
    measured), parameters, training minutes (None when unknown) and where they came from."""

    label: str
    source: Path
    doc: Mapping[str, Any] = field(repr=False)
    metrics: dict[str, Mapping[str, Any]]
    ms_per_response: float | None
    ms_note: str
    parameters: int | None
    training_minutes: float | None
    run_dir: Path | None


def _metrics_path(path: Path) -> Path:
    if path.is_dir():
        inner = path / "metrics.json"
        if not inner.is_file():
            raise ValueError(f"{path}: no metrics.json in this folder; expected a report of "
                             "calogen evaluate (or a run folder with --reference)")
        return inner
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path


def _run_of(doc: Mapping[str, Any]) -> Path | None:
    """The run folder of the model that made the generated file (its producer's ``model``),
    or of the ``model <path>`` note of the parameter row; None when neither is readable."""
    candidates: list[str] = []
    gen = doc.get("inputs", {}).get("generated", {})
    try:
        import h5py

        with h5py.File(gen.get("path", ""), "r") as f:
            producer = json.loads(f.attrs.get("producer", "{}"))
        if isinstance(producer, dict) and producer.get("model"):
            candidates.append(str(producer["model"]))
    except (OSError, ValueError, TypeError):
        pass
    for row in doc.get("summary", []):
        note = str(row.get("note", ""))
        if row.get("name") == PARAMETERS_ROW and note.startswith("model "):
            candidates.append(note[len("model "):])
    for c in candidates:
        model = Path(c)
        for run in (model, model.parent):
            if (run / "log.csv").is_file():
                return run
    return None


def training_minutes(run_dir: Path) -> float | None:
    """Wall minutes of training: the largest ``seconds`` of the run's ``log.csv`` / 60."""
    try:
        with open(run_dir / "log.csv", newline="", encoding="utf-8") as fh:
            seconds = [float(r["seconds"]) for r in csv.DictReader(fh)
                       if r.get("seconds") not in (None, "")]
    except (OSError, ValueError, KeyError):
        return None
    return max(seconds) / 60.0 if seconds else None


def _safetensors_parameters(run_dir: Path) -> int | None:
    """Number of values in the model's safetensors file (header only; no torch)."""
    for folder in (run_dir / "best", run_dir / "last", run_dir):
        path = folder / "model.safetensors"
        try:
            with open(path, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
        except (OSError, ValueError):
            continue
        return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return None


TIMING_NAME = "timing.json"
"""The sidecar beside metrics.json read by :func:`load_entry` (:data:`TIMING_KEYS`)."""

TIMING_KEYS: dict[str, str] = {
    "ms_per_response": "generation time in ms per response (a number > 0)",
    "batch": "responses per call when it was timed (an integer >= 1)",
    "threads": "CPU threads when it was timed (an integer >= 1)",
    "parameters": "number of model parameters (an integer >= 0)",
    "training_minutes": "wall minutes of training (a number >= 0)",
    "note": "free text: machine, precision, command (a string)",
}
"""Keys of ``timing.json``, a JSON object holding any of them (others are refused):
what each means and the values expected."""


@dataclass(frozen=True)
class Timing:
    """The content of a ``timing.json`` (None where a key is absent)."""

    ms_per_response: float | None = None
    batch: int | None = None
    threads: int | None = None
    parameters: int | None = None
    training_minutes: float | None = None
    note: str | None = None

    def describe(self) -> str:
        """How the time was measured, e.g. ``batch 1000, 1 thread; bf16``."""
        parts = []
        if self.batch is not None:
            parts.append(f"batch {self.batch}")
        if self.threads is not None:
            parts.append(f"{self.threads} thread" + ("s" if self.threads != 1 else ""))
        text = ", ".join(parts)
        if self.note:
            text = f"{text}; {self.note}" if text else self.note
        return text


def _timing_value(source: str, key: str, value: Any) -> Any:
    """``value`` checked against :data:`TIMING_KEYS` (``ValueError`` naming file and key)."""
    def bad() -> ValueError:
        return ValueError(f"{source}: field {key!r}: expected {TIMING_KEYS[key]}, "
                          f"found {value!r}")

    if value is None:
        return None
    if key == "note":
        if not isinstance(value, str):
            raise bad()
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad()
    if key in ("batch", "threads", "parameters"):
        if not isinstance(value, int) or value < (0 if key == "parameters" else 1):
            raise bad()
        return int(value)
    if not math.isfinite(value) or value < 0 or (key == "ms_per_response" and value == 0):
        raise bad()
    return float(value)


def _timing_of(source: str, doc: Any) -> Timing:
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a JSON object with keys among "
                         f"{', '.join(TIMING_KEYS)}, found {type(doc).__name__}")
    unknown = sorted(set(doc) - set(TIMING_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                         f"expected keys among {', '.join(TIMING_KEYS)}")
    return Timing(**{k: _timing_value(source, k, v) for k, v in doc.items()})


def read_timing(path: str | os.PathLike[str]) -> Timing:
    """Read and check a ``timing.json`` (:data:`TIMING_KEYS`).

    Raises:
        ValueError: not JSON, not an object, an unknown key or a bad value (names the file
            and the key).
    """
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return _timing_of(str(path), doc)


def write_timing(folder: str | os.PathLike[str], *, ms_per_response: float | None = None,
                 batch: int | None = None, threads: int | None = None,
                 parameters: int | None = None, training_minutes: float | None = None,
                 note: str | None = None) -> Path:
    """Write ``folder/timing.json`` (atomically; absent values are left out), for benchmark
    scripts that time a model without keeping its run. Returns the path."""
    out = Path(folder) / TIMING_NAME
    values = {"ms_per_response": ms_per_response, "batch": batch, "threads": threads,
              "parameters": parameters, "training_minutes": training_minutes, "note": note}
    doc = {k: v for k, v in values.items() if v is not None}
    _timing_of(str(out), doc)
    write_text_atomic(out, json.dumps(doc, indent=2) + "\n")
    return out


def load_entry(path: str | os.PathLike[str], label: str | None = None) -> Entry:
    """Read a report folder (or its ``metrics.json``) into an :class:`Entry`; a
    ``timing.json`` beside it (:data:`TIMING_KEYS`) overrides the ms per response, parameters
    and training minutes of metrics.json and of the run.

    Raises:
        ValueError: the file is not a valid calogen metrics document, or the ``timing.json``
            beside it is invalid (names the file).
        FileNotFoundError: nothing at ``path``.
    """
    from calogen.report.evaluation_report import validate_metrics_json

    src = _metrics_path(Path(path))
    validate_metrics_json(src)
    doc = json.loads(src.read_text("utf-8"))
    metrics: dict[str, Mapping[str, Any]] = {}
    ms, ms_note, params = None, "", None
    for row in doc["summary"]:
        if row["unit"] == TIME_ROW_UNIT:
            if ms is None and row["value"] is not None:  # the first: CPU (GPU rows follow)
                ms, ms_note = float(row["value"]), f"{row['name']}: {row['note']}"
            continue
        if row["name"] == PARAMETERS_ROW:
            params = None if row["value"] is None else int(row["value"])
            continue
        metrics[row["name"]] = row
    run = _run_of(doc)
    if params is None and run is not None:
        params = _safetensors_parameters(run)
    minutes = training_minutes(run) if run is not None else None
    sidecar = src.parent / TIMING_NAME
    if sidecar.is_file():
        timing = read_timing(sidecar)
        if timing.ms_per_response is not None:
            ms = timing.ms_per_response
            ms_note = f"{sidecar}" + (f": {timing.describe()}" if timing.describe() else "")
        params = params if timing.parameters is None else timing.parameters
        minutes = minutes if timing.training_minutes is None else timing.training_minutes
    folder = src.parent if src.name == "metrics.json" else src
    return Entry(label=label or folder.name, source=src, doc=doc, metrics=metrics,
                 ms_per_response=ms, ms_note=ms_note, parameters=params,
                 training_minutes=minutes, run_dir=run)


# --------------------------------------------------------------------------------------------
# The reference


FINGERPRINT = "sha256"
"""Key of a file's content fingerprint in metrics.json's ``inputs`` entries
(:func:`calogen.metrics.evaluate.file_sha256`)."""

ROLES = ("reference", "reference_2")


def reference_identity(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What metrics.json records about the reference and its floor: path, event count,
    detector, kind, producer and SHA-256 of the reference (and of a second reference), the
    floor's kind and the reference rows used."""
    inputs, protocol = doc.get("inputs", {}), doc.get("protocol", {})
    out: dict[str, Any] = {}
    for role in ROLES:
        item = inputs.get(role) or {}
        for key in ("path", "n_events", "detector", "kind", "producer", FINGERPRINT):
            out[f"{role}.{key}"] = item.get(key)
    out["protocol.floor"] = protocol.get("floor")
    out["protocol.n_reference_rows"] = protocol.get("n_reference_rows")
    return out


def _ignored(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """Identity fields not compared: per role, the path when both reports hold the file's
    fingerprint (identical copies may live anywhere), else the fingerprint (older reports)."""
    out = set()
    for role in ROLES:
        key = f"{role}.{FINGERPRINT}"
        both = a[key] is not None and b[key] is not None
        out.add(f"{role}.path" if both else key)
    return out


def _short(key: str, value: Any) -> str:
    if key.endswith(f".{FINGERPRINT}") and isinstance(value, str):
        return repr(value[:16] + "...")
    return repr(value)


def check_same_reference(entries: Sequence[Entry]) -> None:
    """Raise ``ValueError`` naming both reports, both reference files and every differing
    field when two entries were evaluated on different references (or floors): by content
    (SHA-256) when both reports record it, else by path, event count, detector and producer."""
    if not entries:
        return
    first = entries[0]
    ident = reference_identity(first.doc)
    for other in entries[1:]:
        theirs = reference_identity(other.doc)
        skip = _ignored(ident, theirs)
        diff = [f"{k}: {_short(k, ident[k])} vs {_short(k, theirs[k])}" for k in ident
                if k not in skip and ident[k] != theirs[k]]
        if diff:
            raise ValueError(
                f"reports made on different references: {first.source} ({first.label}, "
                f"reference {ident['reference.path']}) and {other.source} ({other.label}, "
                f"reference {theirs['reference.path']}) differ in " + "; ".join(diff)
                + ". Evaluate every model against the same reference file.")


def protocol_differences(entries: Sequence[Entry]) -> list[str]:
    """Evaluation settings (protocol name and config) that differ between the entries: the
    numbers are then less comparable, though the reference is the same."""
    def flat(doc: Mapping[str, Any]) -> dict[str, Any]:
        p = doc.get("protocol", {})
        out = {"protocol.name": p.get("name", "calogen")}
        for k, v in (p.get("config") or {}).items():
            if k != "progress":
                out[f"config.{k}"] = json.dumps(v, sort_keys=True)
        return out

    if not entries:
        return []
    base = flat(entries[0].doc)
    notes = []
    for e in entries[1:]:
        other = flat(e.doc)
        for k in sorted(set(base) | set(other)):
            if base.get(k) != other.get(k):
                notes.append(f"{k}: {entries[0].label}={base.get(k)} vs "
                             f"{e.label}={other.get(k)}")
    return notes


# --------------------------------------------------------------------------------------------
# The board


def _value(entry: Entry, metric: str) -> float | None:
    if metric == MS:
        return entry.ms_per_response
    if metric == PARAMS:
        return None if entry.parameters is None else float(entry.parameters)
    if metric == TRAIN_MIN:
        return entry.training_minutes
    row = entry.metrics.get(metric)
    return None if row is None or row["value"] is None else float(row["value"])


def _lower_is_better(entries: Sequence[Entry], metric: str) -> bool:
    for e in entries:
        if metric in e.metrics:
            return bool(e.metrics[metric]["lower_is_better"])
    return True


def resolve_metric(entries: Sequence[Entry], name: str, option: str = "--sort") -> str:
    """The summary-row name ``name`` means: an exact name, a short name of
    :data:`SHORT_NAMES`, or a case-insensitive part of exactly one name (``option`` names
    the command-line option in errors)."""
    known = list(dict.fromkeys(n for e in entries for n in e.metrics)) + [MS, PARAMS, TRAIN_MIN]
    if name in known:
        return name
    if name in SHORT_NAMES:
        hits = [k for k in known if k.startswith(SHORT_NAMES[name])]
    else:
        hits = [k for k in known if name.lower() in k.lower()]
    if len(hits) == 1:
        return hits[0]
    short = ", ".join(k for k in SHORT_NAMES if any(n.startswith(SHORT_NAMES[k])
                                                      for n in known))
    if not hits:
        raise ValueError(f"{option} {name!r}: no such metric in these reports; expected one of "
                         f"{short} or a metric name")
    raise ValueError(f"{option} {name!r}: ambiguous, matches {', '.join(map(repr, hits))}")


def default_metric(entries: Sequence[Entry]) -> str:
    """The first :data:`HEADLINE` metric every entry holds a value of."""
    for key in HEADLINE:
        prefix = SHORT_NAMES[key]
        names = [n for n in dict.fromkeys(n for e in entries for n in e.metrics)
                 if n.startswith(prefix)]
        for n in names:
            if all(_value(e, n) is not None for e in entries):
                return n
    for n in entries[0].metrics:
        if all(_value(e, n) is not None for e in entries):
            return n
    raise ValueError("the reports share no metric with a value to sort by")


@dataclass(frozen=True)
class Board:
    """Entries ordered by ``metric`` (best first; entries without it last, in the order
    given), the metric names of the summary in report order, and the floor of each metric
    (``None`` where the entries' floors differ)."""

    entries: list[Entry]
    metric: str
    lower_is_better: bool
    metric_names: list[str]
    floors: dict[str, float | None]
    floor_differs: set[str]
    notes: list[str]


def build_board(entries: Sequence[Entry], sort: str | None = None) -> Board:
    """Check the references, then order ``entries`` by ``sort`` (see :func:`resolve_metric`;
    default :func:`default_metric`)."""
    if not entries:
        raise ValueError("compare: no reports given")
    check_same_reference(entries)
    metric = resolve_metric(entries, sort) if sort else default_metric(entries)
    lower = _lower_is_better(entries, metric)
    have = [e for e in entries if _value(e, metric) is not None]
    rest = [e for e in entries if _value(e, metric) is None]
    sign = 1.0 if lower else -1.0
    have.sort(key=lambda e: sign * (_value(e, metric) or 0.0))
    names = list(dict.fromkeys(n for e in entries for n in e.metrics))
    floors: dict[str, float | None] = {}
    differs: set[str] = set()
    for n in names:
        fl = [e.metrics[n]["floor"] for e in entries if n in e.metrics]
        fl = [f for f in fl if f is not None]
        floors[n] = fl[0] if fl else None
        if any(not math.isclose(f, fl[0], rel_tol=1e-9, abs_tol=1e-12) for f in fl):
            differs.add(n)
    return Board(have + rest, metric, lower, names, floors, differs,
                 protocol_differences(entries))


def _num(x: float | int | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.4g}"


def _cell(board: Board, entry: Entry, metric: str) -> str:
    v = _value(entry, metric)
    text = _num(v)
    if metric in board.floor_differs and v is not None:
        text += f" [floor {_num(entry.metrics[metric]['floor'])}]"
    return text


def headline_columns(board: Board) -> list[str]:
    """The metrics of the terminal table: :data:`HEADLINE` ones present, and the sort
    metric."""
    cols = []
    for key in HEADLINE:
        cols += [n for n in board.metric_names if n.startswith(SHORT_NAMES[key])
                 and n not in cols]
    if board.metric in board.metric_names and board.metric not in cols:
        cols.insert(0, board.metric)
    return cols


def board_table(board: Board) -> Any:
    """A ``rich.table.Table``: one row per model (rank, metrics, ms per response,
    parameters, training minutes) under a row of the floors (reference vs reference)."""
    from rich.table import Table

    arrow = "lower" if board.lower_is_better else "higher"
    table = Table(title=f"calogen compare: sorted by {board.metric} ({arrow} is better)")
    cols = headline_columns(board)
    table.add_column("#", justify="right")
    table.add_column("model")
    for c in cols:
        table.add_column(_title(c), justify="right")
    for c in (MS, PARAMS, TRAIN_MIN):
        table.add_column(c, justify="right")
    table.add_row("", "floor (ref. vs ref.)",
                  *[("(differs)" if c in board.floor_differs else _num(board.floors.get(c)))
                    for c in cols], "", "", "", style="dim")
    for i, e in enumerate(board.entries, start=1):
        ranked = _value(e, board.metric) is not None
        table.add_row(str(i) if ranked else "", e.label, *[_cell(board, e, c) for c in cols],
                      _num(e.ms_per_response), _num(e.parameters),
                      _num(e.training_minutes))
    return table


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _ratio(value: float | None, floor: Any) -> str:
    if value is None or floor is None or float(floor) == 0.0:
        return "-"
    return f"{value / float(floor):.3g}"


def markdown_columns(board: Board) -> list[str]:
    """The default columns of :func:`board_markdown`: :func:`headline_columns`, then ms per
    response, parameters and training minutes."""
    return [*headline_columns(board), MS, PARAMS, TRAIN_MIN]


def board_markdown(board: Board, columns: Sequence[str] | None = None) -> str:
    """The board as a GitHub-flavoured Markdown table, rows in board order under a floor row.

    Each metric of ``columns`` (summary-row names or :data:`MS`, :data:`PARAMS`,
    :data:`TRAIN_MIN`; default :func:`markdown_columns`) gives two columns, its value and
    value / floor (the entry's own floor; ``-`` without one); the three pseudo-metrics one.
    A line under the table names the sort metric and the reference."""
    cols = list(markdown_columns(board) if columns is None else columns)
    fixed = (MS, PARAMS, TRAIN_MIN)
    head = ["model"]
    for c in cols:
        head += [c] if c in fixed else [_title(c), f"{_title(c)} / floor"]
    floor_row = ["floor (reference vs reference)"]
    for c in cols:
        if c in fixed:
            floor_row.append("")
        elif c in board.floor_differs:
            floor_row += ["differs", ""]
        else:
            floor_row += [_num(board.floors.get(c)), ""]
    rows = [floor_row]
    for e in board.entries:
        cells = [e.label]
        for c in cols:
            v = _value(e, c)
            if c in fixed:
                cells.append(_num(e.parameters) if c == PARAMS else _num(v))
            else:
                row = e.metrics.get(c)
                cells += [_num(v), _ratio(v, None if row is None else row["floor"])]
        rows.append(cells)
    align = ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(_md(x) for x in r) + " |" for r in (head, align, *rows)]
    ident = reference_identity(board.entries[0].doc)
    arrow = "lower" if board.lower_is_better else "higher"
    sha = ident[f"reference.{FINGERPRINT}"]
    ref = Path(str(ident["reference.path"])).name + (f", sha256 {sha[:12]}" if sha else "")
    lines += ["", f"Sorted by {_md(board.metric)} ({arrow} is better); reference {_md(ref)} "
              f"({ident['reference.n_events']} events); floor: {ident['protocol.floor']}; "
              "made by `calogen compare`."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Files


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both x and y (lower is better on both),
    ordered by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def plot_metric(board: Board) -> str:
    """The y metric of the Pareto plot: the sort metric, or the default when sorting by
    time, parameters or training minutes."""
    if board.metric in (MS, PARAMS, TRAIN_MIN):
        return default_metric(board.entries)
    return board.metric


def plot_board(board: Board, path: str | os.PathLike[str]) -> None:
    """Fidelity (the plot metric) vs ms per response (log x), the Pareto front joined and the
    floor drawn as a horizontal line; written directly to ``path`` (PNG)."""
    metric = plot_metric(board)
    lower = _lower_is_better(board.entries, metric)
    pts = [(e, e.ms_per_response, _value(e, metric)) for e in board.entries]
    shown = [(e, x, y) for e, x, y in pts if x is not None and y is not None and x > 0]
    with hep_style():
        fig = new_figure(figsize=(7.5, 5.2))
        ax = fig.subplots()
        if shown:
            front = pareto_front([(x, y if lower else -y) for _, x, y in shown])
            ax.scatter([x for _, x, _ in shown], [y for _, _, y in shown], color="#5a6f8c",
                       zorder=3, label="models")
            for e, x, y in shown:
                ax.annotate(e.label, (x, y), xytext=(4, 4), textcoords="offset points",
                            fontsize=8)
            ax.step([shown[i][1] for i in front], [shown[i][2] for i in front], where="post",
                    color="#d62728", lw=1.5, zorder=2, label="Pareto front")
            ax.set_xscale("log")
        floor = board.floors.get(metric)
        if floor is not None:
            extra = " (first report's; floors differ)" if metric in board.floor_differs else ""
            ax.axhline(floor, color="black", ls="--", lw=1.2,
                       label=f"floor (reference vs reference){extra}")
        missing = [e.label for e, x, y in pts if x is None or y is None or x <= 0]
        if missing:
            ax.plot([], [], " ", label="not timed: " + ", ".join(missing))
        ax.set_xlabel("ms per response (generation, CPU)")
        ax.set_ylabel(metric + (" (lower is better)" if lower else " (higher is better)"))
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)


CSV_FIXED = ("rank", "model", "report", MS, PARAMS, TRAIN_MIN)


def board_csv(board: Board) -> str:
    """Every model with every summary metric (``<metric>`` and ``<metric> floor``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_FIXED, *[c for n in board.metric_names for c in (n, f"{n} floor")]])
    for i, e in enumerate(board.entries, start=1):
        cells: list[Any] = [i if _value(e, board.metric) is not None else "", e.label,
                            str(e.source), e.ms_per_response, e.parameters,
                            e.training_minutes]
        for n in board.metric_names:
            row = e.metrics.get(n)
            cells += [None, None] if row is None else [row["value"], row["floor"]]
        w.writerow(["" if c is None else c for c in cells])
    return buf.getvalue()


def _e(x: Any) -> str:
    return html.escape(str(x))


def board_html(board: Board) -> str:
    """The page: the reference, the ordering, a table of every metric beside its floor, the
    Pareto plot and any differing evaluation settings."""
    ident = reference_identity(board.entries[0].doc)
    arrow = "lower" if board.lower_is_better else "higher"
    head = ["#", "model", *[_e(n) for n in board.metric_names], _e(MS), _e(PARAMS),
            _e(TRAIN_MIN)]
    floor_cells = [("differs (in brackets)" if n in board.floor_differs
                    else fmt(board.floors.get(n))) for n in board.metric_names]
    rows = ['<tr class="floor" style="color:#666"><td></td><td>floor (reference vs '
            "reference)</td>" + "".join(f'<td class="num">{c}</td>' for c in floor_cells)
            + "<td></td><td></td><td></td></tr>"]
    for i, e in enumerate(board.entries, start=1):
        cells = []
        for n in board.metric_names:
            row = e.metrics.get(n)
            text = fmt(None if row is None else row["value"])
            if row is not None and n in board.floor_differs:
                text += f" [{fmt(row['floor'])}]"
            cells.append(text)
        rank = str(i) if _value(e, board.metric) is not None else ""
        rows.append(f"<tr><td>{rank}</td><td>{_e(e.label)}</td>"
                    + "".join(f'<td class="num">{c}</td>' for c in cells)
                    + f'<td class="num">{fmt(e.ms_per_response)}</td>'
                    f'<td class="num">{fmt(e.parameters)}</td>'
                    f'<td class="num">{fmt(e.training_minutes)}</td></tr>')
    sources = "".join(f"<li>{_e(e.label)}: {_e(e.source)}"
                      + (f" (run {_e(e.run_dir)})" if e.run_dir else "")
                      + (f"; time: {_e(e.ms_note)}" if e.ms_note else "") + "</li>"
                      for e in board.entries)
    notes = ("<p><strong>Evaluation settings differ</strong> (same reference):</p><ul>"
             + "".join(f"<li>{_e(n)}</li>" for n in board.notes) + "</ul>"
             if board.notes else "")
    fingerprint = ident[f"reference.{FINGERPRINT}"]
    sha = f", sha256 {_e(fingerprint[:16])}..." if fingerprint else ""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>calogen compare</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}.num{text-align:right}"
        "img{max-width:100%}</style></head><body>\n"
        f"<h1>calogen compare: {len(board.entries)} models</h1>\n"
        f"<p>Reference: {_e(ident['reference.path'])} ({_e(ident['reference.n_events'])} "
        f"events, {_e(ident['reference.detector'])}{sha}); floor: "
        f"{_e(ident['protocol.floor'])}. "
        f"Sorted by <strong>{_e(board.metric)}</strong> ({arrow} is better). The floor row "
        "compares the reference with itself (two halves or a second reference): a model at "
        "its floor cannot be told from the reference by that metric.</p>\n"
        f"<table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead><tbody>\n"
        + "\n".join(rows) + "\n</tbody></table>\n"
        f'<figure><img src="{PNG_NAME}" alt="Pareto plot"><figcaption>'
        f"{_e(plot_metric(board))} versus ms per response (log scale); red: the Pareto front "
        "(no other model both faster and better); dashed: the floor.</figcaption></figure>\n"
        f'<p>All numbers: <a href="{CSV_NAME}">{CSV_NAME}</a>.</p>\n'
        f"{notes}<h2>Sources</h2><ul>{sources}</ul>\n</body></html>\n")


@dataclass(frozen=True)
class BoardFiles:
    """What :func:`write_board` wrote."""

    html: Path
    png: Path
    csv: Path


def write_board(board: Board, out_dir: str | os.PathLike[str]) -> BoardFiles:
    """Write ``compare.png``, ``compare.csv`` and ``compare.html`` into ``out_dir`` (created
    if missing), each under a temporary name renamed when complete (the page last)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder; --out needs one")
    out.mkdir(parents=True, exist_ok=True)
    for name in (HTML_NAME, PNG_NAME, CSV_NAME):
        remove_stale_temporaries(out / name)
    with atomic_path(out / PNG_NAME) as png_tmp:
        plot_board(board, png_tmp)
    write_text_atomic(out / CSV_NAME, board_csv(board))
    write_text_atomic(out / HTML_NAME, board_html(board))
    return BoardFiles(out / HTML_NAME, out / PNG_NAME, out / CSV_NAME)
