"""calogen.pipelines.voxel_reference: the parametrised voxel engine into ShowerSets."""

import numpy as np
import pytest

from calogen.data.showerset import ShowerSet
from calogen.geometry.calochallenge import calochallenge_binning
from calogen.physics.voxel_readout import DS1_ENERGIES_GEV
from calogen.pipelines.voxel_reference import SHOWERS_PER_SHARD, simulate_voxels_to_file


def _read(path):
    with ShowerSet.open(path) as ss:
        return ss.meta, ss.read()


def test_writes_a_voxel_showerset(tmp_path):
    out = tmp_path / "photons.h5"
    n = SHOWERS_PER_SHARD + 6  # two shards, the second truncated
    report = simulate_voxels_to_file(out, detector="ds1-photons", n=n, seed=2, progress=False)
    assert report.n_written == n and report.n_shards == 2
    meta, batch = _read(out)
    assert meta.kind == "voxels" and meta.shower_shape == (368,) and meta.shower_units == "MeV"
    assert meta.geometry == calochallenge_binning("1-photons").geometry.to_dict()
    assert meta.condition_columns == ("E_inc",)
    assert meta.producer["engine"] == "parametrised"
    assert "not Geant4" in meta.producer["note"] and "no accordion" in \
        meta.producer["simplifications"]
    assert batch.showers.shape == (n, 368) and np.all(batch.pdg == 22)
    e = batch.conditions[:, 0].astype(np.float64)
    assert np.all(np.isclose(e[:, None], np.array(DS1_ENERGIES_GEV)[None], rtol=1e-6).any(1))
    ratio = batch.showers.sum(axis=1) / (batch.conditions[:, 0] * 1e3)
    assert 0.8 < ratio.mean() < 1.0


def test_same_seed_same_file_and_resume(tmp_path):
    a, b, c = (tmp_path / f"{k}.h5" for k in "abc")
    simulate_voxels_to_file(a, detector="ds1-pions", n=20, seed=7, progress=False)
    simulate_voxels_to_file(b, detector="ds1-pions", n=20, seed=7, progress=False, resume=True)
    simulate_voxels_to_file(c, detector="ds1-pions", n=20, seed=8, progress=False)
    (ma, xa), (_, xb), (_, xc) = _read(a), _read(b), _read(c)
    assert np.array_equal(xa.showers, xb.showers)
    assert np.array_equal(xa.conditions, xb.conditions)
    assert not np.array_equal(xa.showers, xc.showers)
    assert ma.shower_shape == (533,) and ma.producer["seed"] == 7


def test_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="simulates"):
        simulate_voxels_to_file(tmp_path / "x.h5", detector="zn", n=5, progress=False)
    with pytest.raises(ValueError, match="positive"):
        simulate_voxels_to_file(tmp_path / "x.h5", detector="ds2", n=0, progress=False)
