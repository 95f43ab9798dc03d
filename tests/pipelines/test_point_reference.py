"""calogen.pipelines.point_reference and ``calogen simulate ild``: parametrised point clouds."""

import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.geometry.points import ild_like_ecal
from calogen.pipelines.geant4_reference import DEFAULT_GUNS, GunSpec
from calogen.pipelines.point_reference import SHOWERS_PER_SHARD, simulate_points_to_file
from calogen.pipelines.shards import ShardSpec

runner = CliRunner()


def _read(path):
    with ShowerSet.open(path) as ss:
        ss.validate_content()
        return ss.meta, ss.read()


def test_writes_a_points_showerset(tmp_path):
    out = tmp_path / "ild.h5"
    n = SHOWERS_PER_SHARD + 3  # two shards, the second truncated
    report = simulate_points_to_file(out, n=n, seed=4, progress=False)
    assert report.n_written == n and report.n_shards == 2
    meta, batch = _read(out)
    assert meta.kind == "points" and meta.shower_shape == (4,) and meta.shower_units == "MeV"
    assert meta.geometry == ild_like_ecal().to_dict()
    assert meta.condition_columns == ("E_inc",) and meta.condition_units == ("GeV",)
    assert meta.producer["engine"] == "parametrised" and "not Geant4" in meta.producer["note"]
    assert "air gap" in meta.producer["simplifications"]
    assert len(batch) == n and np.all(batch.pdg == 22) and batch.counts.sum() == len(batch.showers)
    e = batch.conditions[:, 0]
    assert np.all((e >= 10) & (e <= 90))
    # The energies of shard k are the Geant4 engine's draws for shard k (same gun, same seed).
    first = DEFAULT_GUNS["ild"].draw(ShardSpec(0, 4).rng(), SHOWERS_PER_SHARD)
    assert np.allclose(e[:SHOWERS_PER_SHARD], first.astype(np.float32))
    visible = np.bincount(np.repeat(np.arange(n), batch.counts), weights=batch.showers[:, 3])
    assert 22 < np.mean(visible / e) < 34  # MeV per GeV


def test_same_seed_same_file_and_resume(tmp_path):
    a, b, c = (tmp_path / f"{k}.h5" for k in "abc")
    gun = GunSpec(11, 5.0, 8.0, "uniform")
    simulate_points_to_file(a, n=6, seed=7, gun=gun, progress=False)
    simulate_points_to_file(b, n=6, seed=7, gun=gun, progress=False, resume=True)
    simulate_points_to_file(c, n=6, seed=8, gun=gun, progress=False)
    (ma, xa), (_, xb), (_, xc) = _read(a), _read(b), _read(c)
    assert np.array_equal(xa.showers, xb.showers) and np.array_equal(xa.counts, xb.counts)
    assert not np.array_equal(xa.conditions, xc.conditions)
    assert ma.producer["seed"] == 7 and np.all(xa.pdg == 11)


def test_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="simulates"):
        simulate_points_to_file(tmp_path / "x.h5", detector="ds2", n=5, progress=False)
    with pytest.raises(ValueError, match="positive"):
        simulate_points_to_file(tmp_path / "x.h5", n=0, progress=False)
    with pytest.raises(ValueError, match="e\\+- and photons"):
        simulate_points_to_file(tmp_path / "x.h5", n=2, gun=GunSpec(211, 10, 20),
                                progress=False)


def test_cli_simulate_ild_defaults_to_the_parametrised_engine(tmp_path):
    out = tmp_path / "ild.h5"
    res = runner.invoke(app, ["simulate", "ild", "--n", "5", "--seed", "3", "--out", str(out),
                              "--workers", "1", "--no-progress", "--energy", "20", "30"])
    assert res.exit_code == 0, res.output
    assert str(out.resolve()) in res.output and "parametrised" in res.output
    meta, batch = _read(out)
    assert meta.kind == "points" and len(batch) == 5 and meta.producer["seed"] == 3
    assert np.all((batch.conditions[:, 0] >= 20) & (batch.conditions[:, 0] <= 30))
    res = runner.invoke(app, ["simulate", "ild", "--n", "5", "--pdg", "2112", "--out",
                              str(tmp_path / "x.h5"), "--no-progress"])
    assert res.exit_code == 2 and "PDG 2112" in res.output
    res = runner.invoke(app, ["simulate", "ild", "--n", "5", "--repeats", "2", "--out",
                              str(tmp_path / "x.h5"), "--no-progress"])
    assert res.exit_code == 2 and "--repeats" in res.output
