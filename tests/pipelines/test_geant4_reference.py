"""``calogen simulate --engine geant4``: voxels, points and ZN images as seeded shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.physics.geant4.environment import available

pytestmark = pytest.mark.skipif(not available(), reason="geant4-pybind is not installed "
                                "(the geant4 extra)")
runner = CliRunner()


def _simulate(*args: str) -> str:
    result = runner.invoke(app, ["simulate", *args, "--engine", "geant4", "--no-progress"])
    assert result.exit_code == 0, result.output
    return result.output


def test_ds2_voxels_do_not_depend_on_the_workers(tmp_path: Path) -> None:
    one, two = tmp_path / "w1.h5", tmp_path / "w2.h5"
    _simulate("ds2", "--n", "20", "--energy", "1", "2", "--seed", "3", "--workers", "1",
              "--out", str(one))
    _simulate("ds2", "--n", "20", "--energy", "1", "2", "--seed", "3", "--workers", "2",
              "--out", str(two))
    with ShowerSet.open(one) as a, ShowerSet.open(two) as b:
        assert a.meta.kind == "voxels" and a.shower_shape == (6480,)
        assert a.meta.condition_columns == ("E_inc",) and a.meta.condition_units == ("GeV",)
        assert a.meta.producer["engine"] == "geant4" and a.meta.producer["seed"] == 3
        ra, rb = a.read(), b.read()
        np.testing.assert_array_equal(ra.showers, rb.showers)
        np.testing.assert_array_equal(ra.conditions, rb.conditions)
        e_inc = ra.conditions[:, 0]
        assert np.all((e_inc >= 1) & (e_inc <= 2))
        # ~3.2 % of the energy is seen in Si; voxels hold a little less (threshold, radial cut)
        ratio = ra.showers.sum(axis=1) / (e_inc * 1e3)
        assert 0.02 < ratio.mean() < 0.035
        a.validate_content()


def test_ild_points_and_zn_images(tmp_path: Path) -> None:
    _simulate("ild", "--n", "3", "--energy", "10", "10", "--out", str(tmp_path / "ild.h5"))
    with ShowerSet.open(tmp_path / "ild.h5") as ss:
        batch = ss.read()
        assert ss.meta.kind == "points" and len(batch) == 3
        assert batch.counts is not None and np.all(batch.counts > 100)
        assert np.all(batch.showers[:, 3] > 0)
        ss.validate_content()
    _simulate("zn", "--physics", "em+hadronic", "--pdg", "11", "--n", "3", "--energy", "50",
              "50", "--out", str(tmp_path / "zn.h5"))
    with ShowerSet.open(tmp_path / "zn.h5") as ss:
        batch = ss.read()
        assert ss.shower_shape == (44, 44) and batch.showers.dtype == np.int32
        assert ss.meta.condition_columns[0] == "E"
        np.testing.assert_allclose(batch.conditions[:, 0], 50.000511, rtol=1e-5)
        photons = batch.showers.sum(axis=(1, 2)) / 50.0
        assert 0.7 < photons.mean() < 1.4  # calibrated to 1.05 photons/GeV, ~15 % per shower


@pytest.mark.parametrize("args, message", [
    (["zp", "--n", "2"], "the Geant4 engine simulates"),
    (["ds2", "--n", "2", "--pdg", "2112"], "em+hadronic"),
    (["ds2"], "--n is required"),
])
def test_bad_requests_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", *args, "--engine", "geant4", "--out",
                                 str(tmp_path / "x.h5")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x.h5").exists()


def test_the_parametrised_engine_simulates_ild_too(tmp_path: Path) -> None:
    """``ild`` without ``--engine geant4`` runs the parametrised point engine (issue 16): a
    points file whose producer says so."""
    out = tmp_path / "x.h5"
    result = runner.invoke(app, ["simulate", "ild", "--n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with ShowerSet.open(out) as ss:
        assert ss.meta.kind == "points" and ss.meta.producer["engine"] == "parametrised"
