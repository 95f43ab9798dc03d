"""Tests of ``calogen info`` and ``calogen show`` through a fresh Typer app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from calogen.cli import inspect_cmd
from calogen.data.showerset import ShowerSet, write_showerset
from calogen.data.summary import summarize
from calogen.geometry import ZN

HOT_VALUE = 4321
NOTE = "parametrised stand-in for Geant4 (test)"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root (forces sub-command mode)."""

    inspect_cmd.register(app)
    return app


@pytest.fixture
def zn_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    pdg = np.array([2112] * 5 + [22] * 3 + [-211] * 2, dtype=np.int32)
    n = pdg.size
    showers = (rng.random((n, *ZN.shape)) < 0.05).astype(np.int32) * 7
    showers[4, 40, 2] = HOT_VALUE
    conditions = np.zeros((n, 9), dtype=np.float32)
    conditions[:, 0] = np.arange(1, n + 1) * 150.0
    path = tmp_path / "toy.h5"
    write_showerset(path, showers, conditions, pdg, detector="ZN", geometry=ZN.to_dict(),
                    producer={"name": "test-toy", "seed": 11, "note": NOTE})
    return path


def test_info_prints_species_hottest_pixel_and_note(zn_file):
    result = CliRunner().invoke(_app(), ["info", str(zn_file)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name, count in (("n", 5), ("gamma", 3), ("pi-", 2)):
        assert re.search(rf"^\s*{re.escape(name)}\s+{count}\s", out, re.MULTILINE), name
    assert str(HOT_VALUE) in out
    assert "(40, 2)" in out
    assert NOTE in " ".join(out.split())
    assert max(len(line) for line in out.splitlines()) <= 100


def test_info_json_matches_summary(zn_file, tmp_path):
    out_json = tmp_path / "out" / "summary.json"
    out_json.parent.mkdir()
    result = CliRunner().invoke(_app(), ["info", str(zn_file), "--convention", "warsaw",
                                         "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    assert f"wrote summary to {out_json}" in result.stdout
    data = json.loads(out_json.read_text())
    with ShowerSet.open(zn_file) as ss:
        expected = summarize(ss, convention="warsaw").to_dict()
    assert data == expected
    assert data["hottest_pixel"]["value"] == HOT_VALUE
    assert data["channel_names"] == ["common", "BL", "BR", "TL", "TR"]
    assert list(out_json.parent.iterdir()) == [out_json]


def test_show_writes_png_and_prints_path(zn_file, tmp_path):
    out_png = tmp_path / "show.png"
    result = CliRunner().invoke(_app(), ["show", str(zn_file), "--out", str(out_png),
                                         "--examples", "4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert str(out_png) in result.stdout
    img = matplotlib.image.imread(out_png)
    assert img.shape[1] >= 1000 and img.shape[0] >= 400


@pytest.mark.parametrize("command", ["info", "show"])
def test_bad_file_exits_2_with_one_line_message(tmp_path, command):
    bad = tmp_path / "not_a_showerset.h5"
    bad.write_bytes(b"this is not HDF5 at all" * 10)
    args = [command, str(bad)] + (["--out", str(tmp_path / "x.png")] if command == "show" else [])
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert "not_a_showerset.h5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_missing_file_exits_2(tmp_path):
    missing = tmp_path / "nope.h5"
    result = CliRunner().invoke(_app(), ["info", str(missing)])
    assert result.exit_code == 2
    assert "nope.h5" in result.stderr


def test_show_missing_output_directory_exits_2(zn_file, tmp_path):
    out_png = tmp_path / "no_such_dir" / "show.png"
    result = CliRunner().invoke(_app(), ["show", str(zn_file), "--out", str(out_png)])
    assert result.exit_code == 2
    assert "no_such_dir" in result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def voxel_file(tmp_path):
    from calogen.testing.showersets import write_toy_voxels

    return write_toy_voxels(tmp_path / "voxels.h5", 20, seed=2)


@pytest.fixture
def point_file(tmp_path):
    from calogen.testing.showersets import write_toy_points

    return write_toy_points(tmp_path / "points.h5", 30, seed=2)


def test_info_on_voxels_prints_layers_and_energy_ratio(voxel_file, tmp_path):
    from calogen.testing.showersets import toy_gun, toy_voxels

    out_json = tmp_path / "v.json"
    result = CliRunner().invoke(_app(), ["info", str(voxel_file), "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "voxels: shower shape (36,), MeV" in out and "zero voxels" in out
    assert "Energy per layer (MeV per event)" in out and "sum / E_inc" in out
    assert "PMT channels" not in out
    data = json.loads(out_json.read_text())
    x = toy_voxels(20, seed=2).astype(np.float64)
    layers = x.reshape(20, 3, 12).sum(axis=2)  # 3 layers of 12 voxels each
    assert data["kind"] == "voxels" and data["layer_ids"] == [0, 1, 2]
    np.testing.assert_allclose(data["layer_energy_mean"], layers.mean(axis=0), rtol=1e-5)
    ratio = x.sum(axis=1) / (toy_gun(20, seed=2)[0][:, 0] * 1000.0)
    assert data["energy_ratio"]["p50"] == pytest.approx(float(np.median(ratio)), rel=1e-5)
    assert data["energy_column"] == "E_inc"


def test_info_on_points_prints_points_per_shower(point_file, tmp_path):
    from calogen.testing.showersets import toy_points

    out_json = tmp_path / "p.json"
    result = CliRunner().invoke(_app(), ["info", str(point_file), "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "point clouds: x, y, z in mm, E in MeV" in out and "points per shower" in out
    assert "zero pixels" not in out and "Energy per layer" in out
    points, counts = toy_points(30, seed=2)
    data = json.loads(out_json.read_text())
    assert data["n_points"] == len(points) and data["points_per_shower"]["min"] == 0
    assert data["points_per_shower"]["p50"] == pytest.approx(float(np.median(counts)))
    layer = np.minimum((points[:, 2] // 10).astype(int), 2)
    expected = np.bincount(np.repeat(np.arange(30), counts) * 3 + layer, weights=points[:, 3],
                           minlength=90).reshape(30, 3).mean(axis=0)
    np.testing.assert_allclose(data["layer_energy_mean"], expected, rtol=1e-5)
    assert data["outside_energy_fraction"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("which", ["voxel_file", "point_file"])
def test_show_draws_voxels_and_points(which, tmp_path, request):
    path = request.getfixturevalue(which)
    out_png = tmp_path / "show.png"
    result = CliRunner().invoke(_app(), ["show", str(path), "--out", str(out_png)])
    assert result.exit_code == 0, result.output
    assert str(out_png) in result.stdout
    img = matplotlib.image.imread(out_png)
    assert img.shape[1] >= 1000 and float(img[..., :3].std()) > 0.05


def test_info_names_bad_point_of_a_points_file(point_file):
    import h5py

    with h5py.File(point_file, "a") as f:
        f["points"][3, 0] = np.nan
    result = CliRunner().invoke(_app(), ["info", str(point_file)])
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "field 'points': expected finite values, found NaN at row" in err
    assert "feature 'x'" in err
