"""evaluate and ``calogen evaluate`` on voxel and point-cloud ShowerSets (the toy files of
conftest.py): a perfect model sits at the floor, a shifted one is caught, the report is drawn."""

from dataclasses import replace

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.metrics.evaluate import evaluate
from calogen.report import validate_metrics_json, write_report


def rows(result):
    return {r.name: r for r in result.summary}


@pytest.fixture(scope="module")
def voxel_results(toy_voxel_files, fast_config):
    f = toy_voxel_files
    out = {name: evaluate(f["ref"], f[name], config=fast_config) for name in ("scaled", "deeper")}
    # the perfect model with slices: the E_inc bins (GeV) are binned
    out["perfect"] = evaluate(f["ref"], f["perfect"],
                              config=replace(fast_config, slice_min_events=100))
    return out


@pytest.fixture(scope="module")
def point_results(toy_point_files, fast_config):
    f = toy_point_files
    return {name: evaluate(f["ref"], f[name], config=fast_config) for name in ("perfect", "wide")}


def test_voxels_perfect_model_sits_on_the_floor(voxel_results):
    result = voxel_results["perfect"]
    r = rows(result)
    assert result.protocol["kind"] == "voxels" and result.inputs["reference"]["kind"] == "voxels"
    assert {"E_layer0", "energy_ratio", "sparsity_layer2"} <= set(result.protocol["observables"])
    w1 = r["W1 of standardised observables (mean over observables)"]
    assert w1.value < 1.6 * w1.floor and w1.p_value > 0.01
    for label in ("high-level", "low-level"):
        assert abs(r[f"classifier AUC ({label})"].value - 0.5) < 0.08, label
    # ZDC-only metrics are absent, and the protocol says why
    assert "channel Wasserstein (mean of 5 channels)" not in r
    assert "channel MAE paired by condition" not in r
    assert "PMT channels" in next(iter(result.protocol["skipped"].values()))
    assert r["precision (PRDC, k=5, log10 voxels, CaloChallenge)"].value is not None
    div = r["diversity at identical conditions (rel. spread of energy sum)"]
    assert div.value == pytest.approx(div.floor, rel=0.3)
    energy_bin = result.slices["energy"]["0-10 GeV"]
    assert energy_bin["n_reference"] > 100 and "metrics" in energy_bin


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


def test_different_kinds_or_geometries_are_refused(toy_voxel_files, toy_point_files,
                                                   fast_config, tmp_path):
    ref = toy_voxel_files["ref"]
    with pytest.raises(ValueError, match=r"points/ref.h5.*points.*voxels/ref.h5.*voxels.*"
                                         r"cannot be compared"):
        evaluate(ref, toy_point_files["ref"], config=fast_config)
    # the same voxel file with other radial edges (and the same number of voxels)
    other = tmp_path / "other.h5"
    other.write_bytes(toy_voxel_files["perfect"].read_bytes())
    with h5py.File(other, "r+") as f:
        key = next(k for k, v in f.attrs.items() if isinstance(v, str) and '"layers"' in v)
        f.attrs[key] = f.attrs[key].replace("40.0", "45.0")
    with pytest.raises(ValueError, match=r"other.h5.*geometry.*voxels/ref.h5.*cannot be compared"):
        evaluate(ref, other, config=fast_config)


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_report_for_voxels_and_points(kind, voxel_results, point_results, tmp_path):
    result = (voxel_results if kind == "voxels" else point_results)["perfect"]
    paths = write_report(result, tmp_path / kind)
    validate_metrics_json(paths.metrics_json)
    names = {p.name for p in paths.plots}
    assert {"observables.png", "layer_profiles.png", "correlations.png"} <= names
    assert not names & {"channels_per_species.png", "examples.png", "mean_images.png"}
    page = paths.html.read_text()
    assert "layer_profiles.png" in page and f"<td>{kind}</td>" in page
    assert "not computed" in page
    assert all(np.isfinite(r.value) for r in result.summary if r.value is not None)


def test_calogen_evaluate_on_points(toy_point_files, toy_voxel_files, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "evaluate", "--reference", str(toy_point_files["ref"]), "--generated",
        str(toy_point_files["perfect"]), "--out", str(out), "--seeds", "1", "--no-progress",
        "--point-threshold", "0.5"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    validate_metrics_json(out / "metrics.json")
    assert (out / "layer_profiles.png").is_file() and not (out / "mean_images.png").exists()
    refused = CliRunner().invoke(app, [
        "evaluate", "--reference", str(toy_point_files["ref"]), "--generated",
        str(toy_voxel_files["ref"]), "--out", str(tmp_path / "r2"), "--no-progress"])
    assert refused.exit_code == 2 and "cannot be compared" in refused.output


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_large_showers_are_read_in_smaller_batches(kind, toy_voxel_files, toy_point_files,
                                                   fast_config, monkeypatch):
    import calogen.metrics.evaluate as ev
    from calogen.data.showerset import ShowerSet

    path = (toy_voxel_files if kind == "voxels" else toy_point_files)["ref"]
    with ShowerSet.open(path) as ss:
        extractor = ev._extractor(ss, fast_config)
        rows = np.arange(len(ss))
        assert ev._batch_rows(ss, fast_config) == fast_config.batch_size
        [(whole, _)] = ev._scan([ss], rows, extractor, fast_config, label=kind)
        monkeypatch.setattr(ev, "READ_BATCH_VALUES", 400)
        assert ev._batch_rows(ss, fast_config) < 40
        [(parts, _)] = ev._scan([ss], rows, extractor, fast_config, label=kind)
    # equal up to the summation order of the matrix products (1e-13 relative)
    np.testing.assert_allclose(parts.observables, whole.observables, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(parts.conditions, whole.conditions)
