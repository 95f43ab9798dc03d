"""``calogen quickstart`` passes its budget through and prints, after the table, one verdict
line per headline metric against the shuffled baseline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.pipelines import quickstart

W1, MAE, AUC_HL, AUC_LL = quickstart.HEADLINE


def _fake_run(calls: list[dict[str, object]], tmp_path: Path):  # noqa: ANN202
    def run(out, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append(kwargs)

        def side(values: dict[str, float]) -> SimpleNamespace:
            return SimpleNamespace(summary=[SimpleNamespace(name=k, value=v, floor=0.1)
                                            for k, v in values.items()])
        return SimpleNamespace(
            model=side({W1: 10.2, MAE: 25.0, AUC_HL: 0.95, AUC_LL: 0.52}),
            shuffled=side({W1: 17.5, MAE: 20.0, AUC_HL: 0.88, AUC_LL: 0.60}),
            seconds=60.0, model_dir=tmp_path / "best", report=tmp_path / "report.html")
    return run


@pytest.mark.parametrize(("args", "steps", "minutes"), [
    ([], None, None), (["--steps", "123"], 123, None), (["--minutes", "2"], None, 2.0),
])
def test_verdict_lines_for_each_headline_metric(tmp_path: Path, monkeypatch, args, steps,
                                                minutes) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(quickstart, "run_quickstart", _fake_run(calls, tmp_path))
    res = CliRunner().invoke(app, ["quickstart", "--out", str(tmp_path / "qs"),
                                   "--no-progress", *args])
    assert res.exit_code == 0, res.output
    assert calls[0]["steps"] == steps and calls[0]["minutes"] == minutes
    lines = res.output.splitlines()
    assert f"{W1}: vae 10.2 vs shuffled baseline 17.5: beats it" in lines
    assert f"{MAE}: vae 25 vs shuffled baseline 20: does not beat it" in lines
    assert f"{AUC_HL}: vae 0.95 vs shuffled baseline 0.88: does not beat it" in lines
    assert f"{AUC_LL}: vae 0.52 vs shuffled baseline 0.6: beats it" in lines


def test_bad_steps_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["quickstart", "--out", str(tmp_path / "qs"), "--steps", "0"])
    assert res.exit_code == 2 and not (tmp_path / "qs").exists()
