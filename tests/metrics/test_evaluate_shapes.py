"""evaluate on voxel and point-cloud showers (in-memory ShowerSets of the v2 contract)."""

from dataclasses import replace

import numpy as np
import pytest

from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, evaluate_sets
from calogen.report import validate_metrics_json, write_report

FAST = EvaluationConfig(
    progress=False, n_null=15, n_null_fpd_kpd=3, fpd_points=4, fpd_bootstrap=4, kpd_batches=4,
    prdc_max_samples=600, low_level_max_per_class=1200, slice_min_events=300, batch_size=500,
    classifier=replace(CALOGEN_DEFAULT, hidden=(32,), max_epochs=8, n_seeds=2, batch_size=128,
                       max_samples_per_class=1200),
)


def rows(result):
    return {r.name: r for r in result.summary}


@pytest.fixture(scope="module")
def voxel_results(toy_voxel_sets):
    s = toy_voxel_sets
    return {name: evaluate_sets(s["ref"], s[name], config=FAST)
            for name in ("perfect", "scaled", "deeper")}


@pytest.fixture(scope="module")
def point_results(toy_point_sets):
    s = toy_point_sets
    return {name: evaluate_sets(s["ref"], s[name], config=FAST) for name in ("perfect", "wide")}


def test_voxels_perfect_model_sits_on_the_floor(voxel_results):
    result = voxel_results["perfect"]
    r = rows(result)
    assert result.protocol["kind"] == "voxels"
    assert "E_layer0" in result.protocol["observables"]
    assert "energy_ratio" in result.protocol["observables"]
    w1 = r["W1 of standardised observables (mean over observables)"]
    assert w1.value < 1.6 * w1.floor and w1.p_value > 0.01
    for label in ("high-level", "low-level"):
        assert abs(r[f"classifier AUC ({label})"].value - 0.5) < 0.08, label
    # ZDC-only metrics are absent and say why
    assert "channel Wasserstein (mean of 5 channels)" not in r
    assert "channel MAE paired by condition" not in r
    assert "PMT channels" in next(iter(result.protocol["skipped"].values()))
    assert r["precision (PRDC, k=5, standardised observables)"].value is not None
    div = r["diversity at identical conditions (rel. spread of energy sum)"]
    assert div.value == pytest.approx(div.floor, rel=0.3)


def test_voxels_shifted_models_are_caught(voxel_results):
    scaled = voxel_results["scaled"]
    r = rows(scaled)
    obs = scaled.details["observables"]
    # 15% too much energy: the ratio to E_inc fails far beyond its floor; the total (whose
    # spread is mostly that of E_inc) beyond every null resample
    assert obs["energy_ratio"]["w1"]["value"] > 3 * obs["energy_ratio"]["w1"]["floor"]
    assert obs["energy_ratio"]["w1"]["p_value"] < 0.1
    assert obs["energy_sum"]["w1"]["p_value"] < 0.1
    assert r["classifier AUC (high-level)"].value > r["classifier AUC (high-level)"].floor + 0.1
    deeper = voxel_results["deeper"]
    obs = deeper.details["observables"]
    assert obs["E_layer2"]["w1"]["value"] > 3 * obs["E_layer2"]["w1"]["floor"]
    assert obs["sparsity_layer0"]["w1"]["p_value"] > 0.01  # the voxel pattern is unchanged
    low = rows(deeper)["classifier AUC (low-level)"]
    assert low.value > low.floor + 0.2  # the voxels over E_inc show it too


def test_points_perfect_model_sits_on_the_floor(point_results):
    result = point_results["perfect"]
    r = rows(result)
    assert result.protocol["kind"] == "points"
    w1 = r["W1 of standardised observables (mean over observables)"]
    assert w1.value < 1.6 * w1.floor and w1.p_value > 0.01
    assert abs(r["classifier AUC (high-level)"].value - 0.5) < 0.08
    low = r["classifier AUC (low-level)"]
    assert low.value is None and "skipped" in low.note and "points" in low.note
    assert "classifier (low-level)" in result.protocol["skipped"]


def test_points_too_wide_showers_are_caught(point_results):
    result = point_results["wide"]
    obs = result.details["observables"]
    assert obs["wx_layer0"]["w1"]["value"] > 3 * obs["wx_layer0"]["w1"]["floor"]
    assert obs["hit_cells"]["w1"]["p_value"] < 0.1
    assert obs["n_points"]["w1"]["p_value"] > 0.01  # same number of points
    r = rows(result)
    assert r["classifier AUC (high-level)"].value > r["classifier AUC (high-level)"].floor + 0.1


def test_different_kinds_or_geometries_are_refused(toy_voxel_sets, toy_point_sets):
    with pytest.raises(ValueError, match=r"/memory/ref.h5.*cannot be compared") as info:
        evaluate_sets(toy_voxel_sets["ref"], toy_point_sets["ref"], config=FAST)
    assert "points" in str(info.value) and "voxels" in str(info.value)
    import copy
    other = copy.copy(toy_voxel_sets["perfect"])
    geo = dict(other.meta.geometry)
    geo["layers"] = [dict(layer, r_edges_mm=[e * 2 for e in layer["r_edges_mm"]])
                     for layer in geo["layers"]]
    other.meta = replace(other.meta, geometry=geo)
    with pytest.raises(ValueError, match="geometry.*cannot be compared"):
        evaluate_sets(toy_voxel_sets["ref"], other, config=FAST)


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_report_for_voxels_and_points(kind, voxel_results, point_results, tmp_path):
    result = (voxel_results if kind == "voxels" else point_results)["perfect"]
    paths = write_report(result, tmp_path / kind)
    validate_metrics_json(paths.metrics_json)
    names = {p.name for p in paths.plots}
    assert {"observables.png", "layer_profiles.png", "correlations.png"} <= names
    assert not names & {"channels_per_species.png", "examples.png", "mean_images.png"}
    page = paths.html.read_text()
    assert "layer_profiles.png" in page and kind in page
    assert all(np.isfinite(r.value) for r in result.summary if r.value is not None)
