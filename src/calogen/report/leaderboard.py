"""The CaloChallenge 2022 leaderboard: a run's numbers beside the published submissions.

The published rows are the tables of the CaloChallenge 2022 write-up (arXiv:2410.21611), shipped
in ``calogen/report/published/`` (see its README: source, columns, units). They were measured by
the organisers on the official Geant4 files; a calogen run is usually measured against another
reference (calogen's simulated showers are not the official files), and every output here says
so.

* :func:`published_results` -- the rows of one dataset as :class:`PublishedRow`.
* :func:`leaderboard_rows` -- the published rows and a measured row, ranked.
* :func:`write_leaderboard` -- ``leaderboard.csv`` and ``leaderboard.png`` in a folder, and an
  HTML fragment (table, figure, note) for a report page in that folder.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from calogen.atomic import atomic_path, remove_stale_temporaries
from calogen.geometry.calochallenge import CALOCHALLENGE_DATASETS
from calogen.report.numbers import fmt, fmt_std
from calogen.report.style import hep_style, new_figure

__all__ = ["CSV_NAME", "MEASURED_KEYS", "PNG_NAME", "LeaderboardRow", "PublishedRow",
           "leaderboard_rows", "published_results", "write_leaderboard"]

SOURCE = ("CaloChallenge 2022 final results, arXiv:2410.21611 (CaloChallenge/homepage "
          "repository, commit 9b41df7)")
"""Where the published rows come from."""

REFERENCE_SUBMISSION = "GEANT4"
"""Name of the published reference-vs-reference row (a second Geant4 sample: the floor)."""

CSV_NAME = "leaderboard.csv"
PNG_NAME = "leaderboard.png"

MEASURED_KEYS = ("auc_low", "auc_high", "fpd", "kpd", "ms_per_shower_cpu_100", "params")
"""Keys of a measured row: AUC of the low-level (voxel) and high-level classifier, FPD and KPD
x1e3 (as in the paper's tables and calogen's summary), generation time in ms per shower at batch
size 100 on CPU, and the number of parameters used to generate. ``auc_low_std``,
``auc_high_std``, ``fpd_std`` and ``kpd_std`` are accepted too."""

RANK_KEYS = ("auc_low", "auc_high", "fpd", "kpd")
"""Metrics a leaderboard can be ranked by (all lower-is-better); the default is the first one
the measured row holds."""

_STD_KEYS = tuple(f"{k}_std" for k in RANK_KEYS)

_DATASET_TITLES = {"1-photons": "dataset 1 (photons)", "1-pions": "dataset 1 (pions)",
                   "2": "dataset 2 (electrons)", "3": "dataset 3 (electrons)"}


@dataclass(frozen=True)
class PublishedRow:
    """One row of the paper's tables (``None``: not reported). FPD and KPD are x1e3; times in
    ms per shower at the batch size in the name; parameters are counts."""

    submission: str
    params_training: int | None
    params_generation: int | None
    auc_low: float | None
    auc_low_std: float | None
    auc_high: float | None
    auc_high_std: float | None
    fpd: float | None
    fpd_std: float | None
    kpd: float | None
    kpd_std: float | None
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None
    ms_cpu_1: float | None
    ms_cpu_1_std: float | None
    ms_cpu_100: float | None
    ms_cpu_100_std: float | None
    ms_cpu_10000: float | None
    ms_cpu_10000_std: float | None
    ms_gpu_1: float | None
    ms_gpu_1_std: float | None
    ms_gpu_100: float | None
    ms_gpu_100_std: float | None
    ms_gpu_10000: float | None
    ms_gpu_10000_std: float | None

    @property
    def is_reference(self) -> bool:
        """Whether this is the Geant4 reference-vs-reference row (not a submission)."""
        return self.submission == REFERENCE_SUBMISSION


_COLUMNS: dict[str, str] = {
    "submission": "submission name",
    "params_training": "Parameters training",
    "params_generation": "Parameters generation",
    "auc_low": "binary cls low",
    "auc_low_std": "binary cls low std",
    "auc_high": "binary cls high",
    "auc_high_std": "binary cls high std",
    "fpd": "FPD * 1e3",
    "fpd_std": "FPD * 1e3 std",
    "kpd": "KPD * 1e3",
    "kpd_std": "KPD * 1e3 std",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
    **{f"ms_{dev.lower()}_{b}{s.replace(' ', '_')}": f"time {dev} {b}{s}"
       for dev in ("CPU", "GPU") for b in (1, 100, 10000) for s in ("", " std")},
}
"""PublishedRow field -> column of the shipped CSV (the source's column names)."""


def _check_dataset(dataset: str) -> None:
    if dataset not in CALOCHALLENGE_DATASETS:
        raise ValueError(f"unknown CaloChallenge dataset {dataset!r}; expected one of "
                         f"{', '.join(CALOCHALLENGE_DATASETS)}")


def _cell(text: str, where: str, integer: bool) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number or an empty cell, found {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, found {text!r}")
    if integer:
        if value != int(value):
            raise ValueError(f"{where}: expected a whole count, found {text!r}")
        return int(value)
    return value


def parse_published_csv(text: str, source: str) -> list[PublishedRow]:
    """The rows of a published-results CSV (the format of ``calogen/report/published``);
    ``source`` names the file in error messages."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS.values() if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(map(repr, missing))}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        name = (raw["submission name"] or "").strip()
        if not name:
            raise ValueError(f"{source} line {line}: 'submission name' is empty")
        values: dict[str, Any] = {"submission": name}
        for fld, col in _COLUMNS.items():
            if fld != "submission":
                values[fld] = _cell(raw[col] or "", f"{source} line {line} ({name}), {col!r}",
                                    integer=fld.startswith("params"))
        rows.append(PublishedRow(**values))
    return rows


@cache
def _published(dataset: str) -> tuple[PublishedRow, ...]:
    name = f"calochallenge_2022_{dataset}.csv"
    ref = resources.files("calogen.report") / "published" / name
    return tuple(parse_published_csv(ref.read_text("utf-8"), f"calogen/report/published/{name}"))


def published_results(dataset: str) -> list[PublishedRow]:
    """The published rows of ``dataset`` ("1-photons", "1-pions", "2" or "3") in the paper's
    order, the ``GEANT4`` reference row first (arXiv:2410.21611)."""
    _check_dataset(dataset)
    return list(_published(dataset))


# --------------------------------------------------------------------------------------------
# Merging and ranking


@dataclass(frozen=True)
class LeaderboardRow:
    """One row of the leaderboard. ``source``: ``"measured"`` (this run), ``"published"`` (a
    submission) or ``"reference"`` (the published Geant4 floor). ``rank``: 1 is best; ``None``
    for the reference row and rows without the ranking metric. FPD/KPD x1e3; times in ms per
    shower at batch size 100; ``params``: parameters used to generate."""

    rank: int | None
    submission: str
    source: str
    auc_low: float | None
    auc_low_std: float | None
    auc_high: float | None
    auc_high_std: float | None
    fpd: float | None
    fpd_std: float | None
    kpd: float | None
    kpd_std: float | None
    ms_per_shower_cpu_100: float | None
    ms_per_shower_gpu_100: float | None
    params: int | None


def _measured_values(measured: Mapping[str, Any]) -> dict[str, Any]:
    """Validated measured values: known keys, finite numbers or None, a whole params count."""
    allowed = MEASURED_KEYS + _STD_KEYS
    out: dict[str, Any] = {}
    for key, value in measured.items():
        if key not in allowed:
            raise ValueError(f"measured values: unknown key {key!r}; expected some of "
                             f"{', '.join(allowed)}")
        if value is None:
            out[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"measured values: {key!r} must be a number or None, "
                                 f"found {value!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"measured values: {key!r} must be finite, found {value!r}")
        if key == "params":
            if value < 0 or value != int(value):
                raise ValueError(f"measured values: 'params' must be a whole count >= 0, "
                                 f"found {value!r}")
            out[key] = int(value)
        else:
            if key == "ms_per_shower_cpu_100" and value <= 0:
                raise ValueError(f"measured values: 'ms_per_shower_cpu_100' must be > 0, "
                                 f"found {value!r}")
            out[key] = float(value)
    return out


def _from_published(row: PublishedRow) -> LeaderboardRow:
    return LeaderboardRow(
        rank=None, submission=row.submission,
        source="reference" if row.is_reference else "published",
        auc_low=row.auc_low, auc_low_std=row.auc_low_std,
        auc_high=row.auc_high, auc_high_std=row.auc_high_std,
        fpd=row.fpd, fpd_std=row.fpd_std, kpd=row.kpd, kpd_std=row.kpd_std,
        ms_per_shower_cpu_100=row.ms_cpu_100, ms_per_shower_gpu_100=row.ms_gpu_100,
        params=row.params_generation)


def _default_rank_key(values: Mapping[str, Any]) -> str:
    for key in RANK_KEYS:
        if values.get(key) is not None:
            return key
    return RANK_KEYS[0]


def leaderboard_rows(dataset: str, measured: Mapping[str, float | int | None], *,
                     label: str = "this run", rank_by: str | None = None
                     ) -> list[LeaderboardRow]:
    """The published rows of ``dataset`` and the measured row ``label``, ranked.

    Args:
        dataset: "1-photons", "1-pions", "2" or "3".
        measured: values of this run (keys in :data:`MEASURED_KEYS`, optional ``*_std``;
            missing or ``None``: not measured). FPD and KPD x1e3, time in ms per shower.
        label: name of the measured row.
        rank_by: one of :data:`RANK_KEYS` (lower is better); default: the first of them the
            measured row holds (``auc_low`` if none).

    Returns:
        The Geant4 reference row first (unranked: it is the floor), then the rows holding the
        ranking metric from best to worst (ranks 1, 2, ...; equal values share a rank, the
        published row listed first), then the rows without it in the paper's order.
    """
    _check_dataset(dataset)
    if not label.strip():
        raise ValueError("leaderboard: the measured row's label is empty")
    values = _measured_values(measured)
    key = rank_by if rank_by is not None else _default_rank_key(values)
    if key not in RANK_KEYS:
        raise ValueError(f"leaderboard: cannot rank by {key!r}; expected one of "
                         f"{', '.join(RANK_KEYS)}")
    ours = LeaderboardRow(
        rank=None, submission=label, source="measured",
        auc_low=values.get("auc_low"), auc_low_std=values.get("auc_low_std"),
        auc_high=values.get("auc_high"), auc_high_std=values.get("auc_high_std"),
        fpd=values.get("fpd"), fpd_std=values.get("fpd_std"),
        kpd=values.get("kpd"), kpd_std=values.get("kpd_std"),
        ms_per_shower_cpu_100=values.get("ms_per_shower_cpu_100"),
        ms_per_shower_gpu_100=None, params=values.get("params"))
    published = [_from_published(r) for r in _published(dataset)]
    reference = [r for r in published if r.source == "reference"]
    entries = [r for r in published if r.source == "published"] + [ours]
    have = sorted((r for r in entries if getattr(r, key) is not None),
                  key=lambda r: getattr(r, key))
    ranked: list[LeaderboardRow] = []
    for i, row in enumerate(have):
        value = getattr(row, key)
        if ranked and getattr(have[i - 1], key) == value:
            rank = ranked[-1].rank
        else:
            rank = i + 1
        ranked.append(_replace_rank(row, rank))
    rest = [r for r in entries if getattr(r, key) is None]
    return reference + ranked + rest


def _replace_rank(row: LeaderboardRow, rank: int | None) -> LeaderboardRow:
    return dataclasses.replace(row, rank=rank)


# --------------------------------------------------------------------------------------------
# Files and HTML


def _e(value: Any) -> str:
    return html.escape(str(value))


CSV_COLUMNS = ("rank", "submission", "source", "compared_with", "auc_low", "auc_low_std",
               "auc_high", "auc_high_std", "fpd_x1e3", "fpd_x1e3_std", "kpd_x1e3",
               "kpd_x1e3_std", "ms_per_shower_cpu_100", "ms_per_shower_gpu_100", "params")
"""Columns of ``leaderboard.csv`` (empty cell: not measured / not reported)."""

OFFICIAL_REFERENCE = "official CaloChallenge Geant4 files (arXiv:2410.21611)"


def leaderboard_csv(rows: Sequence[LeaderboardRow], reference: str | None = None) -> str:
    """The text of ``leaderboard.csv`` for ``rows``; ``reference`` names what the measured row
    was compared with."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    ours = reference or "the reference of this evaluation (not the official files)"
    for r in rows:
        cells: list[Any] = [r.rank, r.submission, r.source,
                            ours if r.source == "measured" else OFFICIAL_REFERENCE,
                            r.auc_low, r.auc_low_std, r.auc_high, r.auc_high_std, r.fpd,
                            r.fpd_std, r.kpd, r.kpd_std, r.ms_per_shower_cpu_100,
                            r.ms_per_shower_gpu_100, r.params]
        writer.writerow(["" if c is None else repr(c) if isinstance(c, float) else c
                         for c in cells])
    return buf.getvalue()


_SHORT = {"auc_low": "AUC low", "auc_high": "AUC high", "ms_per_shower_cpu_100": "time"}


def plot_leaderboard(rows: Sequence[LeaderboardRow], dataset: str,
                     path: str | os.PathLike[str]) -> None:
    """Draw AUC low vs AUC high (left) and AUC high vs ms per shower on CPU at batch 100
    (right) into ``path`` (PNG, written directly: callers make it atomic). The measured row is
    a red star, or a dashed red line where only one of its two coordinates was measured."""
    ours = next(r for r in rows if r.source == "measured")
    others = [r for r in rows if r.source != "measured"]
    with hep_style():
        fig = new_figure(figsize=(12, 5.2))
        axes = fig.subplots(1, 2)
        panels = (("auc_low", "auc_high", "AUC, low-level classifier (voxels)", False),
                  ("ms_per_shower_cpu_100", "auc_high", "ms per shower, CPU, batch 100", True))
        for ax, (xkey, ykey, xlabel, logx) in zip(axes, panels, strict=True):
            for r in others:
                x, y = getattr(r, xkey), getattr(r, ykey)
                if x is None or y is None:
                    continue
                ref = r.source == "reference"
                ax.scatter([x], [y], marker="x" if ref else "o", s=40 if ref else 22,
                           color="black" if ref else "#5a6f8c", zorder=2)
                ax.annotate(r.submission, (x, y), xytext=(3, 3), textcoords="offset points",
                            fontsize=6, color="#333333")
            x, y = getattr(ours, xkey), getattr(ours, ykey)
            style = {"color": "#d62728", "zorder": 3}
            if x is not None and y is not None:
                ax.scatter([x], [y], marker="*", s=220, label=ours.submission, **style)
                ax.annotate(ours.submission, (x, y), xytext=(6, -10), textcoords="offset points",
                            fontsize=8, color="#d62728", fontweight="bold")
            elif y is not None:
                ax.axhline(y, ls="--", label=f"{ours.submission} ({_SHORT[xkey]} not measured)",
                           **style)
            elif x is not None:
                ax.axvline(x, ls="--", label=f"{ours.submission} ({_SHORT[ykey]} not measured)",
                           **style)
            else:
                ax.plot([], [], " ", label=f"{ours.submission}: not measured")
            if logx:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("AUC, high-level classifier")
            ax.legend(loc="best")
        fig.suptitle(f"CaloChallenge 2022 {_DATASET_TITLES[dataset]}: published rows on the "
                     "official Geant4 files (x: Geant4 vs Geant4)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path)


NOTE = (
    "<strong>Not the same reference.</strong> The published rows were measured by the "
    "CaloChallenge organisers on the official Geant4 files of the dataset ({source}); their "
    "times on the organisers' hardware. The row <em>{label}</em> was measured against "
    "{reference}, on this machine. calogen's simulated showers are not the official files: "
    "unless the reference was the official Geant4 file, compare the rows as an indication "
    "only.")


def leaderboard_html(rows: Sequence[LeaderboardRow], dataset: str, *,
                     reference: str | None = None, image: str | None = PNG_NAME,
                     csv_name: str | None = CSV_NAME) -> str:
    """The HTML fragment: heading, the reference note, the table and the figure (relative
    links to ``image`` and ``csv_name``; ``None`` leaves them out)."""
    ours = next(r for r in rows if r.source == "measured")
    ref_text = (f"<em>{_e(reference)}</em>" if reference
                else "the reference this evaluation used")
    note = NOTE.format(source=_e(SOURCE), label=_e(ours.submission), reference=ref_text)
    header = ["rank", "submission", "AUC low", "AUC high", "FPD &times;10<sup>3</sup>",
              "KPD &times;10<sup>3</sup>", "ms/shower CPU (batch 100)",
              "ms/shower GPU (batch 100)", "parameters"]
    body = []
    for r in rows:
        if r.source == "measured":
            attrs = ' class="ours" style="background:#e3efff;font-weight:bold"'
        elif r.source == "reference":
            attrs = ' class="floor" style="color:#666"'
        else:
            attrs = ""
        name = _e(r.submission) + (" (Geant4 vs Geant4: the floor)"
                                   if r.source == "reference" else "")
        cells = [fmt(r.rank) if r.rank is not None else "", name,
                 fmt_std(r.auc_low, r.auc_low_std), fmt_std(r.auc_high, r.auc_high_std),
                 fmt_std(r.fpd, r.fpd_std), fmt_std(r.kpd, r.kpd_std),
                 fmt(r.ms_per_shower_cpu_100), fmt(r.ms_per_shower_gpu_100), fmt(r.params)]
        tds = "".join(f'<td class="num">{c}</td>' if i != 1 else f"<td>{c}</td>"
                      for i, c in enumerate(cells))
        body.append(f"<tr{attrs}>{tds}</tr>")
    head = "".join(f"<th>{h}</th>" for h in header)
    parts = [
        f"<h2>Leaderboard: CaloChallenge 2022 {_e(_DATASET_TITLES[dataset])}</h2>",
        f'<p class="callout">{note}</p>',
        '<p class="note">Ranked by the lowest value of the first metric this run measured '
        "(AUC low, AUC high, FPD, KPD; an AUC of 0.5 means the classifier cannot tell the "
        "samples apart). &plusmn;: std over the published runs. Parameters: those used to "
        "generate.</p>",
        f'<table class="leaderboard"><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(body) + "\n</tbody></table>",
    ]
    if image:
        parts.append(
            f'<figure><a href="{_e(image)}"><img src="{_e(image)}" alt="leaderboard"></a>'
            "<figcaption>Left: AUC of the low-level (voxel) versus the high-level classifier; "
            "right: AUC high versus generation time on CPU at batch size 100 (log scale). "
            "Blue: published submissions; black cross: Geant4 versus Geant4; red: this run "
            "(a dashed line where only one coordinate was measured). Lower left is better."
            "</figcaption></figure>")
    if csv_name:
        parts.append(f'<p class="note">All rows: <a href="{_e(csv_name)}">{_e(csv_name)}</a>'
                     f". Source of the published rows: {_e(SOURCE)}.</p>")
    return "\n".join(parts) + "\n"


def write_leaderboard(dataset: str, measured: Mapping[str, float | int | None],
                      out_dir: str | os.PathLike[str], *, label: str = "this run",
                      rank_by: str | None = None, reference: str | None = None) -> str:
    """Write ``leaderboard.csv`` and ``leaderboard.png`` into ``out_dir`` (created if missing)
    and return the HTML fragment for a page in ``out_dir`` (it links both by relative name).

    ``reference`` names what the measured values were compared with (a file, a producer);
    arguments otherwise as :func:`leaderboard_rows`. Both files are drawn under temporary
    names and renamed only when both are complete: a failure leaves earlier files untouched.
    """
    rows = leaderboard_rows(dataset, measured, label=label, rank_by=rank_by)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a folder; the leaderboard "
                                 "needs one")
    out.mkdir(parents=True, exist_ok=True)
    for name in (CSV_NAME, PNG_NAME):
        remove_stale_temporaries(out / name)
    with atomic_path(out / PNG_NAME) as png_tmp, atomic_path(out / CSV_NAME) as csv_tmp:
        plot_leaderboard(rows, dataset, png_tmp)
        csv_tmp.write_text(leaderboard_csv(rows, reference), encoding="utf-8")
    return leaderboard_html(rows, dataset, reference=reference)
