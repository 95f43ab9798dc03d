"""``calogen import-calochallenge`` / ``export-calochallenge`` through typer's CliRunner."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from calogen.cli import convert_cmd
from calogen.data import ShowerSet
from calogen.testing.showersets import write_toy_points


@pytest.fixture
def app() -> typer.Typer:
    """A fresh app with only the convert commands (independent of the other command modules)."""
    app = typer.Typer(pretty_exceptions_enable=False)
    convert_cmd.register(app)
    return app


@pytest.fixture
def cc_file(tmp_path: Path) -> Path:
    """A 5-shower dataset-2-shaped CaloChallenge file (float32, log-uniform energies)."""
    rng = np.random.default_rng(3)
    energies = (10.0 ** rng.uniform(3, 6, size=(5, 1))).astype(np.float32)
    showers = rng.exponential(10.0, size=(5, 6480)).astype(np.float32)
    showers[rng.random(showers.shape) < 0.8] = 0.0
    path = tmp_path / "ds2.hdf5"
    with h5py.File(path, "w") as f:
        f["incident_energies"] = energies
        f["showers"] = showers
    return path


def test_import_then_export_is_byte_identical(app: typer.Typer, cc_file: Path,
                                              tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ss.h5"
    res = runner.invoke(app, ["import-calochallenge", str(cc_file), "--dataset", "2",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote ShowerSet: {out.resolve()} (5 showers)" in res.output
    with ShowerSet(out) as ss:
        assert len(ss) == 5 and ss.meta.geometry["name"] == "calochallenge-2"
    back = tmp_path / "back.hdf5"
    res = runner.invoke(app, ["export-calochallenge", str(out), "--out", str(back)])
    assert res.exit_code == 0, res.output
    assert f"wrote CaloChallenge file: {back.resolve()} (5 showers)" in res.output
    with h5py.File(cc_file, "r") as a, h5py.File(back, "r") as b:
        for name in ("incident_energies", "showers"):
            assert b[name].dtype == a[name].dtype and b[name].shape == a[name].shape
            assert b[name][()].tobytes() == a[name][()].tobytes()


def test_binning_xml_option(app: typer.Typer, cc_file: Path, tmp_path: Path) -> None:
    ref = resources.files("calogen.geometry") / "binnings" / "binning_dataset_2.xml"
    with resources.as_file(ref) as official:
        xml = Path(shutil.copy(official, tmp_path / "mine.xml"))
    out = tmp_path / "ss.h5"
    res = CliRunner().invoke(app, ["import-calochallenge", str(cc_file), "--binning", str(xml),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    with ShowerSet(out) as ss:
        assert ss.meta.geometry["name"] == "mine" and ss.shower_shape == (6480,)


@pytest.mark.parametrize("choice", [[], ["--dataset", "2", "--binning", "x.xml"]])
def test_exactly_one_binning(app: typer.Typer, cc_file: Path, tmp_path: Path,
                             choice: list[str]) -> None:
    res = CliRunner().invoke(app, ["import-calochallenge", str(cc_file), "--out",
                                   str(tmp_path / "ss.h5"), *choice])
    assert res.exit_code == 2
    assert "error: give exactly one of --dataset" in res.output
    assert not (tmp_path / "ss.h5").exists()


def test_wrong_binning_exits_2_and_writes_nothing(app: typer.Typer, cc_file: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "ss.h5"
    res = CliRunner().invoke(app, ["import-calochallenge", str(cc_file), "--dataset", "3",
                                   "--out", str(out)])
    assert res.exit_code == 2
    assert (f"error: {cc_file}: field 'dataset showers': expected shape (N, 40500)"
            in res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds2.hdf5"]


def test_export_refuses_a_point_cloud(app: typer.Typer, tmp_path: Path) -> None:
    points = write_toy_points(tmp_path / "points.h5")
    out = tmp_path / "out.hdf5"
    res = CliRunner().invoke(app, ["export-calochallenge", str(points), "--out", str(out)])
    assert res.exit_code == 2
    assert "expected 'voxels'" in res.output
    assert not out.exists()
