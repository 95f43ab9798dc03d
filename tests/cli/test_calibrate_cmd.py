"""calogen calibrate: re-fit a trained vae's rate noise on its training split."""

import json

from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()


def test_calibrate_refits_and_records_it(tmp_path, train_tiny):
    data = simulate_to_file(tmp_path / "zn.h5", n=300, seed=4, progress=False).path
    best = train_tiny(data, tmp_path / "run")
    out = tmp_path / "calibrated"
    res = runner.invoke(app, ["calibrate", "--model", str(best), "--data", str(data),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "distance_fitted" in res.output and str(out.resolve()) in res.output
    doc = json.loads((out / "model.json").read_text())
    assert doc["training_data"]["calibrated_on"]["data"] == str(data.resolve())
    assert "rate_noise_a" in doc["training_data"]["calibrated_on"]


def test_calibrate_refuses_a_family_without_calibrations(tmp_path, train_tiny):
    data = simulate_to_file(tmp_path / "zn.h5", n=300, seed=4, progress=False).path
    best = train_tiny(data, tmp_path / "run", family="gan", steps=2)
    res = runner.invoke(app, ["calibrate", "--model", str(best), "--data", str(data)])
    assert res.exit_code == 2 and "no calibrations" in res.output
