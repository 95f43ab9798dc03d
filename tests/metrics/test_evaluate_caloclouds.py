"""The CaloClouds II evaluation of point clouds inside ``evaluate`` and its report."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.metrics.classifier import CALOCLOUDS_II
from calogen.metrics.evaluate import CALOCLOUDS_AUC_ROW, CALOCLOUDS_ROW, evaluate
from calogen.report import validate_metrics_json, write_report


@pytest.fixture(scope="module")
def cloud_results(toy_point_files, fast_config):
    cfg = replace(fast_config, caloclouds_cell_hits=2000,
                  caloclouds_classifier=replace(CALOCLOUDS_II, n_seeds=3))
    return {name: evaluate(toy_point_files["ref"], toy_point_files[name], config=cfg)
            for name in ("perfect", "wide")}


def _rows(result):
    return {r.name: r for r in result.summary}


def test_perfect_clouds_sit_near_the_floor(cloud_results) -> None:
    r = _rows(cloud_results["perfect"])
    for name in ("N_hits", "E_radial", "E_cell", "m1_x"):
        row = r[CALOCLOUDS_ROW.format(name=name)]
        assert row.value < 2.5 * row.floor + 20, name  # x1e-3 units
        assert row.value_std is not None and row.floor_std is not None
    auc = r[CALOCLOUDS_AUC_ROW]
    assert abs(auc.value - 0.5) < 0.1 and auc.value_std is not None
    proto = cloud_results["perfect"].protocol["caloclouds"]
    assert proto["threshold_mev"] == 0.1 and proto["radial_edges_mm"][-1] == 300.0


def test_too_wide_clouds_are_caught(cloud_results) -> None:
    r = _rows(cloud_results["wide"])
    radial = r[CALOCLOUDS_ROW.format(name="E_radial")]
    assert radial.value > 3 * radial.floor
    cells = r[CALOCLOUDS_ROW.format(name="E_cell")]  # energy spread over more cells
    assert cells.value > 2 * cells.floor
    auc = r[CALOCLOUDS_AUC_ROW]
    assert auc.value > auc.floor + 0.08


def test_report_shows_caloclouds_figures_and_paper_values(cloud_results, tmp_path) -> None:
    paths = write_report(cloud_results["wide"], tmp_path / "r")
    validate_metrics_json(paths.metrics_json)
    names = {p.name for p in paths.plots}
    assert {"caloclouds_cells.png", "caloclouds_observables.png",
            "caloclouds_examples.png"} <= names
    page = paths.html.read_text()
    assert "CaloClouds II scores" in page and "paper: CaloClouds II (CM)" in page
    assert "0.923" in page
    doc = json.loads(paths.metrics_json.read_text())
    assert set(doc["details"]["caloclouds"]["w1"]) >= {"E_long", "E_radial_10", "E_cell"}


def test_cli_caloclouds2_protocol_and_other_cells(toy_point_files, tmp_path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "evaluate", "--reference", str(toy_point_files["ref"]), "--generated",
        str(toy_point_files["perfect"]), "--out", str(out), "--seeds", "1", "--no-progress",
        "--protocol", "caloclouds2", "--cell-size", "20", "20", "--cell-offset", "5", "5",
        "--max-events", "400"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    proto = doc["protocol"]
    assert proto["name"] == "caloclouds2"
    assert proto["caloclouds"]["cell_size_mm"] == [20.0, 20.0]
    assert proto["caloclouds"]["cell_offset_mm"] == [5.0, 5.0]
    assert proto["caloclouds"]["grid_shape"][1:] == [6, 6]  # 100 mm from -55 with 20 mm cells
    assert proto["config"]["point_threshold_mev"] == 0.1
    assert proto["config"]["caloclouds_classifier"]["hidden"] == [32, 16, 8]
    bad = CliRunner().invoke(app, [
        "evaluate", "--reference", str(toy_point_files["ref"]), "--generated",
        str(toy_point_files["perfect"]), "--out", str(tmp_path / "bad"), "--no-progress",
        "--cell-size", "0", "5"])
    assert bad.exit_code == 2 and "cell size" in bad.output
