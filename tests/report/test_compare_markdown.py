"""compare's Markdown table and the timing.json sidecar."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from calogen.report.compare import (
    MS,
    PARAMS,
    TIMING_NAME,
    TRAIN_MIN,
    board_markdown,
    build_board,
    load_entry,
    read_timing,
    write_timing,
)

_spec = importlib.util.spec_from_file_location("_compare_reports",
                                               Path(__file__).parent / "test_compare.py")
assert _spec is not None and _spec.loader is not None
_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reports)
write_report_doc = _reports.write_report_doc
CW1, AUC, RECALL = _reports.CW1, _reports.AUC, _reports.RECALL


def _table(text: str) -> list[list[str]]:
    """The cells of the first Markdown table in ``text`` (header, then rows; no rule)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in rows]
    assert set(cells[1]) <= {"---", "---:"}
    return [cells[0], *cells[2:]]


def test_markdown_rows_follow_the_sort_order_under_a_floor_row(tmp_path: Path) -> None:
    slow = write_report_doc(tmp_path / "slow", cw1=6.85, auc=0.77, recall=0.66, ms=0.13,
                            params=1_319_809)
    fast = write_report_doc(tmp_path / "fast", cw1=33.9, auc=0.94, recall=0.95, ms=0.003)
    mid = write_report_doc(tmp_path / "mid", cw1=9.0, auc=0.81, recall=0.7)
    board = build_board([load_entry(p) for p in (fast, mid, slow)])
    head, floor, *rows = _table(board_markdown(board))
    assert head[:3] == ["model", "channel W1", "channel W1 / floor"]
    assert head[-3:] == [MS, PARAMS, TRAIN_MIN]
    assert [r[0] for r in rows] == ["slow", "mid", "fast"]
    assert floor[0].startswith("floor") and float(floor[1]) == 6.5
    docs = {p.name: json.loads((p / "metrics.json").read_text("utf-8")) for p in
            (slow, fast, mid)}
    col = {name: i for i, name in enumerate(head)}
    for r in rows:
        summary = {row["name"]: row for row in docs[r[0]]["summary"]}
        for metric, title in ((CW1, "channel W1"), (AUC, "AUC high"), (RECALL, "recall")):
            value, floor_value = summary[metric]["value"], summary[metric]["floor"]
            assert float(r[col[title]]) == pytest.approx(value, rel=1e-3)
            assert float(r[col[f"{title} / floor"]]) == pytest.approx(value / floor_value,
                                                                       rel=5e-3)
    assert float(rows[0][col[MS]]) == 0.13 and rows[0][col[PARAMS]] == "1,319,809"
    assert rows[1][col[MS]] == "-" and rows[2][col[PARAMS]] == "-"


def test_markdown_columns_can_be_chosen(tmp_path: Path) -> None:
    a = write_report_doc(tmp_path / "a|b", cw1=7.0, auc=0.6, recall=0.8, ms=0.5)
    board = build_board([load_entry(a)], sort="auc_high")
    text = board_markdown(board, [AUC, MS])
    head, floor, row = _table(text)
    assert head == ["model", "AUC high", "AUC high / floor", MS]
    assert row[0] == "a\\|b" and float(row[1]) == 0.6 and float(row[3]) == 0.5
    assert "Sorted by " + AUC in text and "ref.h5" in text


def test_timing_sidecar_gives_speed_parameters_and_minutes(tmp_path: Path) -> None:
    rep = write_report_doc(tmp_path / "rep", cw1=7.0, auc=0.6, recall=0.8, ms=0.13,
                           params=10)
    before = load_entry(rep)
    assert before.training_minutes is None and before.ms_per_response == 0.13
    path = write_timing(rep, ms_per_response=0.018, batch=1000, threads=1, parameters=1234,
                        training_minutes=29.5, note="bf16")
    assert path == rep / TIMING_NAME
    assert json.loads(path.read_text("utf-8")) == {
        "ms_per_response": 0.018, "batch": 1000, "threads": 1, "parameters": 1234,
        "training_minutes": 29.5, "note": "bf16"}
    e = load_entry(rep)
    assert (e.ms_per_response, e.parameters, e.training_minutes) == (0.018, 1234, 29.5)
    assert "batch 1000, 1 thread; bf16" in e.ms_note and TIMING_NAME in e.ms_note
    # a partial sidecar leaves the other values as metrics.json gives them
    path.write_text(json.dumps({"training_minutes": 3}), "utf-8")
    e = load_entry(rep)
    assert (e.ms_per_response, e.parameters, e.training_minutes) == (0.13, 10, 3.0)


@pytest.mark.parametrize("doc, match", [
    ({"ms_per_response": 0}, "'ms_per_response': expected .* > 0"),
    ({"ms_per_response": "fast"}, "'ms_per_response'"),
    ({"batch": 2.5}, "'batch': expected .*an integer >= 1"),
    ({"threads": True}, "'threads'"),
    ({"training_minutes": -1}, "'training_minutes'"),
    ({"ms": 0.1}, "unknown field.*'ms'.*ms_per_response"),
    ([0.1], "expected a JSON object"),
])
def test_bad_timing_sidecar_names_file_and_field(tmp_path: Path, doc: object,
                                                  match: str) -> None:
    rep = write_report_doc(tmp_path / "rep", cw1=7.0, auc=0.6, recall=0.8)
    (rep / TIMING_NAME).write_text(json.dumps(doc), "utf-8")
    with pytest.raises(ValueError, match=match) as info:
        load_entry(rep)
    assert str(rep / TIMING_NAME) in str(info.value)
    with pytest.raises(ValueError, match=match):
        read_timing(rep / TIMING_NAME)
