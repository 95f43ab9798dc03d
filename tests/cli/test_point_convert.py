"""``calogen import-caloclouds`` / ``export-caloclouds`` / ``import-edm4hep`` / ``project``
through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from calogen.cli import convert_cmd
from calogen.data import ShowerSet
from calogen.testing.showersets import TOY_VOLUME


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    convert_cmd.register(app)
    return app


@pytest.fixture
def cc_file(tmp_path: Path) -> Path:
    """Two showers in ILD-like detector coordinates (z of the front at 1800 mm): one point in
    layer 0 and two in layer 1 of the ILD-like volume after a -1800 mm shift; the last one at
    1900 mm stays outside."""
    events = np.zeros((2, 4, 3), dtype=np.float32)
    events[0, :, 0] = [1.0, 1.0, 1801.0, 0.5]
    events[1, :, :] = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1805.0, 1805.5, 1990.0],
                       [2.0, 0.05, 1.0]]
    path = tmp_path / "cc.h5"
    with h5py.File(path, "w") as f:
        f["events"] = events
        f["energy"] = np.array([[10.0], [90.0]], dtype=np.float32)
    return path


def test_import_export_project_workflow(app: typer.Typer, cc_file: Path,
                                        tmp_path: Path) -> None:
    runner = CliRunner()
    ss = tmp_path / "ss.h5"
    res = runner.invoke(app, ["import-caloclouds", str(cc_file), "--out", str(ss),
                              "--shift-mm", "0", "0", "-1800"])
    assert res.exit_code == 0, res.output
    assert f"wrote ShowerSet: {ss.resolve()} (2 showers, 4 points)" in res.stdout
    assert "warning: 1 of 4 points lie outside" in res.stderr
    with ShowerSet(ss) as s:
        assert s.meta.geometry["name"] == "ILD-like-ECAL" and s.counts().tolist() == [1, 3]
    back = tmp_path / "back.h5"
    res = runner.invoke(app, ["export-caloclouds", str(ss), "--out", str(back),
                              "--max-points", "5"])
    assert res.exit_code == 0, res.output
    assert f"wrote CaloClouds file: {back.resolve()} (2 showers, 4 points)" in res.stdout
    with h5py.File(back) as f:
        assert f["events"].shape == (2, 4, 5)
    cells = tmp_path / "cells.h5"
    res = runner.invoke(app, ["project", str(ss), "--out", str(cells)])
    assert res.exit_code == 0, res.output
    assert f"wrote cells: {cells.resolve()} (2 showers, 30 layers x 30 x 30 cells)" in res.stdout
    with h5py.File(cells) as f:
        c = f["cells"][()]
        assert c.shape == (2, 30, 30, 30)
        # shower 1: 2 MeV at x = 1 (cell 15), 0.05 MeV at x = 2 (same cell) -> 2.05 MeV
        assert c[1, 1, 15, 15] == pytest.approx(2.05, rel=1e-6)
        assert c[0, 0, 15, 15] == pytest.approx(0.5)
        assert c.sum() == pytest.approx(2.55, rel=1e-6)  # the point at 190 mm is dropped
    assert "points outside the cells were dropped" in res.stderr
    res = runner.invoke(app, ["project", str(ss), "--out", str(tmp_path / "big.h5"),
                              "--cell-size", "10", "10", "--cell-offset", "5", "5",
                              "--threshold-mev", "0"])
    assert res.exit_code == 0, res.output
    assert "(2 showers, 30 layers x 15 x 15 cells)" in res.stdout  # edges -75, -65, .., 75


def test_bad_inputs_exit_2_with_one_line(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["events"] = np.zeros((2, 3, 5), dtype=np.float32)
        f["energy"] = np.ones((2, 1))
    res = runner.invoke(app, ["import-caloclouds", str(bad), "--out", str(tmp_path / "o.h5")])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "dataset events" in \
        res.stderr
    res = runner.invoke(app, ["import-caloclouds", str(bad), "--out", str(tmp_path / "o.h5"),
                              "--volume", "nowhere"])
    assert res.exit_code == 2 and "expected one of ['ild']" in res.stderr
    res = runner.invoke(app, ["project", str(bad), "--out", str(tmp_path / "c.h5")])
    assert res.exit_code == 2 and res.stderr.startswith("error: ")
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "c.h5").exists()


def test_import_edm4hep_command(app: typer.Typer, tmp_path: Path) -> None:
    pytest.importorskip("uproot")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "edm4hep_writer", Path(__file__).parents[1] / "data" / "test_edm4hep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    write_edm4hep = module.write_edm4hep
    src = write_edm4hep(tmp_path / "sim.root")
    volume = tmp_path / "toy.json"
    volume.write_text(json.dumps(TOY_VOLUME.to_dict()))
    out = tmp_path / "ss.h5"
    res = CliRunner().invoke(app, ["import-edm4hep", str(src), "--collection", "ECal",
                                   "--out", str(out), "--steps", "--volume", str(volume)])
    assert res.exit_code == 0, res.output
    assert f"wrote ShowerSet: {out.resolve()} (3 showers, 4 points)" in res.stdout
    res = CliRunner().invoke(app, ["import-edm4hep", str(src), "--collection", "HCal",
                                   "--out", str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "collections present: ECal" in res.stderr
