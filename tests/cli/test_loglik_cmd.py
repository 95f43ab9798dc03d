"""calogen loglik (and the flow families through train / generate / export) on a tiny file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()
FLOW = ["--hparam", "stage1_layers=2", "--hparam", "stage1_hidden=[16]", "--hparam",
        "stage1_elementwise=affine", "--hparam", "stage2_layers=2", "--hparam",
        "stage2_hidden=[32]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("loglik")
    return simulate_to_file(d / "zn.h5", n=300, seed=4, repeats=2, progress=False).path


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "caloflow"
    res = runner.invoke(app, ["train", "--model", "caloflow", "--data", str(data), "--out",
                              str(run), "--steps", "4", "--batch-size", "32", "--val-every",
                              "100", "--no-progress", *FLOW])
    assert res.exit_code == 0, res.output
    return run / "last"


def test_loglik_writes_a_flagged_table(data, teacher, tmp_path):
    out = tmp_path / "ll.csv"
    res = runner.invoke(app, ["loglik", str(data), "--model", str(teacher), "--out", str(out),
                              "--quantile", "0.1", "--draws", "2", "--max-events", "120",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "flagged 12 " in res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# calogen loglik")
    rows = list(csv.DictReader(lines[1:]))
    assert len(rows) == 120
    values = np.array([float(r["loglik_nats"]) for r in rows])
    flagged = np.array([r["flagged"] == "1" for r in rows])
    assert np.isfinite(values).all() and flagged.sum() == 12
    assert values[flagged].max() < values[~flagged].min()
    with ShowerSet.open(data) as ss:
        ids = ss.condition_ids()[:120]
    assert [int(r["condition_id"]) for r in rows] == ids.tolist()
    # an existing table is not overwritten without --overwrite
    res = runner.invoke(app, ["loglik", str(data), "--model", str(teacher), "--out", str(out),
                              "--max-events", "10", "--no-progress"])
    assert res.exit_code == 2 and "exists" in res.output


def test_loglik_refuses_models_without_a_likelihood(data, tmp_path):
    run = tmp_path / "vae"
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(data), "--out", str(run),
                              "--steps", "1", "--batch-size", "16", "--hparam", "backbone=mlp",
                              "--hparam", "mlp_hidden=[16,16]", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["loglik", str(data), "--model", str(run / "last"), "--out",
                              str(tmp_path / "x.csv"), "--no-progress"])
    assert res.exit_code == 2 and "no tractable likelihood" in res.output
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_student_trains_generates_and_exports(data, teacher, tmp_path):
    run = tmp_path / "student"
    res = runner.invoke(app, ["train", "--model", "caloflow-student", "--teacher", str(teacher),
                              "--data", str(data), "--out", str(run), "--steps", "3",
                              "--batch-size", "32", "--val-every", "100", "--no-progress"])
    assert res.exit_code == 0, res.output
    gen = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "last"), "--conditions",
                              str(data), "--out", str(gen), "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g:
        assert len(g) == 300 and g.shower_shape == (44, 44)
    onnx = tmp_path / "student.onnx"
    res = runner.invoke(app, ["export", "--model", str(run / "last"), "--out", str(onnx)])
    assert res.exit_code == 0, res.output
    scales = json.loads(onnx.with_name("student.scales.json").read_text())
    assert scales["inputs"]["noise"] == [None, 1936]
