"""calogen.report.compare: ordering, the reference check, the files written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calogen.report.compare import (
    build_board,
    check_same_reference,
    load_entry,
    pareto_front,
    resolve_metric,
    write_board,
)
from calogen.report.evaluation_report import validate_metrics_json

CW1 = "channel Wasserstein (mean of 5 channels)"
AUC = "classifier AUC (high-level)"
RECALL = "recall (PRDC, k=5, log10(1+pixels))"


def _row(name: str, value: float | None, floor: float | None, unit: str = "",
         lower: bool = True, note: str = "") -> dict[str, Any]:
    return {"name": name, "unit": unit, "value": value, "floor": floor, "p_value": None,
            "value_std": None, "floor_std": None, "lower_is_better": lower, "note": note}


def write_report_doc(folder: Path, *, cw1: float, auc: float, recall: float,
                     ms: float | None = None, params: int | None = None,
                     reference: str = "/data/ref.h5", n_events: int = 1000,
                     cw1_floor: float = 6.5, seed: int = 0) -> Path:
    """A small valid metrics.json in ``folder`` (returned)."""
    summary = [_row(CW1, cw1, cw1_floor, "photons"), _row(AUC, auc, 0.51),
               _row(RECALL, recall, 0.9, lower=False)]
    if ms is not None:
        summary.append(_row("generation time (batch 100, 1 CPU thread)", ms, None,
                            "ms / shower", note="median of 5 calls"))
    if params is not None:
        summary.append(_row("model parameters", float(params), None, note="model /nowhere"))
    doc = {
        "schema": "calogen.metrics", "schema_version": 1, "calogen_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "inputs": {"reference": {"path": reference, "n_events": n_events, "detector": "ZN",
                                 "kind": "image", "producer": "sim", "note": None},
                   "generated": {"path": str(folder / "missing.h5"), "n_events": n_events,
                                 "detector": "ZN", "kind": "image", "producer": "m",
                                 "note": None},
                   "reference_2": None},
        "protocol": {"kind": "image", "floor": "halves", "paired": True,
                     "n_reference_rows": n_events,
                     "n_compared": {"reference": 500, "generated": 500, "floor": 500},
                     "name": "calogen", "config": {"seed": seed}},
        "summary": summary, "details": {}, "slices": {}, "timing": {},
    }
    validate_metrics_json(doc)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    return folder


def test_orders_by_the_first_headline_metric_then_by_a_chosen_one(tmp_path: Path) -> None:
    good = write_report_doc(tmp_path / "good", cw1=6.9, auc=0.77, recall=0.66, ms=0.13,
                            params=1000)
    bad = write_report_doc(tmp_path / "bad", cw1=33.9, auc=0.94, recall=0.95, ms=0.01)
    board = build_board([load_entry(bad), load_entry(good)])
    assert board.metric == CW1 and board.lower_is_better
    assert [e.label for e in board.entries] == ["good", "bad"]
    assert board.floors[CW1] == 6.5 and not board.floor_differs
    assert board.entries[0].ms_per_response == 0.13 and board.entries[0].parameters == 1000
    assert CW1 in board.entries[0].metrics and "model parameters" not in board.metric_names
    # recall: higher is better, as the schema row says
    by_recall = build_board([load_entry(good), load_entry(bad)], sort="recall")
    assert by_recall.metric == RECALL and not by_recall.lower_is_better
    assert [e.label for e in by_recall.entries] == ["bad", "good"]
    by_ms = build_board([load_entry(good), load_entry(bad)], sort="ms")
    assert [e.label for e in by_ms.entries] == ["bad", "good"]


def test_unknown_sort_metric_is_refused(tmp_path: Path) -> None:
    e = load_entry(write_report_doc(tmp_path / "a", cw1=7, auc=0.6, recall=0.8))
    with pytest.raises(ValueError, match="no such metric"):
        resolve_metric([e], "nonsense")
    assert resolve_metric([e], "AUC (high") == AUC


def test_refuses_reports_on_different_references(tmp_path: Path) -> None:
    a = load_entry(write_report_doc(tmp_path / "a", cw1=7, auc=0.6, recall=0.8))
    b = load_entry(write_report_doc(tmp_path / "b", cw1=8, auc=0.6, recall=0.8,
                                    reference="/data/other.h5"))
    with pytest.raises(ValueError, match="different references") as info:
        build_board([a, b])
    msg = str(info.value)
    assert str(a.source) in msg and str(b.source) in msg
    assert "reference.path" in msg and "/data/other.h5" in msg
    c = load_entry(write_report_doc(tmp_path / "c", cw1=8, auc=0.6, recall=0.8,
                                    n_events=999))
    with pytest.raises(ValueError, match="reference.n_events: 1000 vs 999"):
        check_same_reference([a, c])


def test_different_settings_are_noted_and_floors_shown_per_row(tmp_path: Path) -> None:
    a = load_entry(write_report_doc(tmp_path / "a", cw1=7, auc=0.6, recall=0.8))
    b = load_entry(write_report_doc(tmp_path / "b", cw1=8, auc=0.6, recall=0.8, seed=3,
                                    cw1_floor=6.0))
    board = build_board([a, b])
    assert any("config.seed" in n for n in board.notes)
    assert board.floor_differs == {CW1}


def test_pareto_front() -> None:
    assert pareto_front([(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (0.5, 9.0)]) == [3, 0, 1]


def test_writes_html_plot_and_csv(tmp_path: Path) -> None:
    a = write_report_doc(tmp_path / "vae", cw1=6.9, auc=0.77, recall=0.66, ms=0.13)
    b = write_report_doc(tmp_path / "flow", cw1=7.5, auc=0.7, recall=0.7, ms=2.0)
    c = write_report_doc(tmp_path / "untimed", cw1=9.0, auc=0.8, recall=0.5)
    board = build_board([load_entry(p) for p in (a, b, c)])
    files = write_board(board, tmp_path / "out")
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files.html.read_text("utf-8")
    assert "compare.png" in page and "floor (reference vs reference)" in page
    assert page.index(">vae<") < page.index(">flow<") < page.index(">untimed<")
    lines = files.csv.read_text("utf-8").splitlines()
    assert lines[1].split(",")[1] == "vae" and f"{CW1} floor" in lines[0]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no metrics.json"):
        load_entry(tmp_path)
    bad = tmp_path / "broken" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=str(bad)):
        load_entry(bad.parent)


def test_run_folder_gives_training_minutes_and_parameters(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "log.csv").write_text("step,epoch,seconds\n10,1,30.0\n20,2,90.0\n", "utf-8")
    header = json.dumps({"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
                         "b": {"dtype": "F32", "shape": [4], "data_offsets": [48, 64]}})
    blob = len(header).to_bytes(8, "little") + header.encode() + bytes(64)
    (run / "best" / "model.safetensors").write_bytes(blob)
    rep = write_report_doc(tmp_path / "rep", cw1=7, auc=0.6, recall=0.8)
    doc = json.loads((rep / "metrics.json").read_text("utf-8"))
    doc["summary"].append(_row("model parameters", None, None, note=f"model {run / 'best'}"))
    (rep / "metrics.json").write_text(json.dumps(doc), "utf-8")
    e = load_entry(rep)
    assert e.run_dir == run and e.training_minutes == pytest.approx(1.5)
    assert e.parameters == 16
