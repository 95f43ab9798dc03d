"""``calogen compare`` on small reports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from typer.testing import CliRunner

from calogen.cli.main import app

_spec = importlib.util.spec_from_file_location(
    "_compare_reports", Path(__file__).parents[1] / "report" / "test_compare.py")
assert _spec is not None and _spec.loader is not None
_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reports)
write_report_doc = _reports.write_report_doc
"""Small valid metrics.json reports (shared with tests/report/test_compare.py)."""

runner = CliRunner()


def test_compare_orders_reports_and_writes_the_page(tmp_path: Path) -> None:
    worse = write_report_doc(tmp_path / "worse", cw1=20.0, auc=0.9, recall=0.5, ms=0.01)
    better = write_report_doc(tmp_path / "better", cw1=6.8, auc=0.7, recall=0.8, ms=0.2)
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", str(worse), str(better), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.index("better") < res.output.index("worse")
    assert "floor" in res.output and f"report: {(out / 'compare.html').resolve()}" in res.output
    assert (out / "compare.png").is_file() and (out / "compare.csv").is_file()
    res = runner.invoke(app, ["compare", str(worse), str(better), "--out", str(out),
                              "--sort", "ms", "--label", "W", "--label", "B"])
    assert res.exit_code == 0, res.output
    assert res.output.index(" W ") < res.output.index(" B ")


def test_compare_refuses_different_references(tmp_path: Path) -> None:
    a = write_report_doc(tmp_path / "a", cw1=7.0, auc=0.6, recall=0.8)
    b = write_report_doc(tmp_path / "b", cw1=7.0, auc=0.6, recall=0.8, reference="/x/ref2.h5")
    res = runner.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "different references" in res.output and "/x/ref2.h5" in res.output
    assert str(a / "metrics.json") in res.output and str(b / "metrics.json") in res.output
    assert not (tmp_path / "o" / "compare.html").exists()


def test_compare_bad_folder_is_a_user_error(tmp_path: Path) -> None:
    a = write_report_doc(tmp_path / "a", cw1=7.0, auc=0.6, recall=0.8)
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["compare", str(a), str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error:" in res.output and str(empty) in res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such file" in res.output
    run = tmp_path / "run" / "best"
    run.mkdir(parents=True)
    (run / "model.json").write_text("{}", "utf-8")
    res = runner.invoke(app, ["compare", str(run.parent), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--reference" in res.output


def test_compare_writes_a_markdown_table_with_chosen_columns(tmp_path: Path) -> None:
    worse = write_report_doc(tmp_path / "worse", cw1=20.0, auc=0.9, recall=0.5, ms=0.01)
    better = write_report_doc(tmp_path / "better", cw1=6.8, auc=0.7, recall=0.8, ms=0.2)
    md = tmp_path / "docs" / "board.md"
    res = runner.invoke(app, ["compare", str(worse), str(better), "--markdown", str(md),
                              "--metric", "auc_high", "--metric", "ms"])
    assert res.exit_code == 0, res.output
    assert f"wrote {md.resolve()}" in res.output and "report:" not in res.output
    lines = [line for line in md.read_text("utf-8").splitlines() if line.startswith("|")]
    assert lines[0] == "| model | AUC high | AUC high / floor | ms per response |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| floor (reference vs reference)",
                                                           "| better", "| worse"]
    assert lines[3] == "| better | 0.7 | 1.37 | 0.2 |"
    assert not (tmp_path / "cmp").exists()
    res = runner.invoke(app, ["compare", str(better), "--markdown", str(md), "--metric", "zz"])
    assert res.exit_code == 2 and "--metric 'zz'" in res.output


def test_compare_needs_an_output(tmp_path: Path) -> None:
    a = write_report_doc(tmp_path / "a", cw1=7.0, auc=0.6, recall=0.8)
    res = runner.invoke(app, ["compare", str(a)])
    assert res.exit_code == 2 and "--out" in res.output and "--markdown" in res.output
    run = tmp_path / "run" / "best"
    run.mkdir(parents=True)
    (run / "model.json").write_text("{}", "utf-8")
    res = runner.invoke(app, ["compare", str(run.parent), "--reference", str(a),
                              "--markdown", str(tmp_path / "b.md")])
    assert res.exit_code == 2 and "--out FOLDER" in res.output
