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
