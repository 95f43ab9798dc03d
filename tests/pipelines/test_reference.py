import h5py
import numpy as np
import pytest

import calogen.pipelines.reference as reference
from calogen.data.showerset import ShowerSet
from calogen.physics.gun import ParticleGun, Particles
from calogen.physics.simulator import STAND_IN_NOTE, ZN_SIMULATOR
from calogen.pipelines.reference import simulate_to_file


def datasets(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, {k: f.attrs[k] for k in f.attrs if k != "created"}


def test_same_seed_same_file_whatever_workers_and_batch_size(tmp_path):
    a = simulate_to_file(tmp_path / "a.h5", n=700, seed=3, workers=1, batch_size=256,
                         progress=False)
    b = simulate_to_file(tmp_path / "b.h5", n=700, seed=3, workers=2, batch_size=2048,
                         progress=False)
    c = simulate_to_file(tmp_path / "c.h5", n=700, seed=4, workers=1, progress=False)
    assert a.n_written == b.n_written == 700 and a.n_simulated == b.n_simulated
    (da, aa), (db, ab), (dc, _) = (datasets(p.path) for p in (a, b, c))
    assert da.keys() == db.keys() == {"showers", "conditions", "pdg", "condition_id"}
    for key in da:
        np.testing.assert_array_equal(da[key], db[key])
    assert aa == ab  # every attribute but the creation time
    assert not np.array_equal(da["showers"], dc["showers"])


def test_files_are_byte_identical_with_a_fixed_creation_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = simulate_to_file(tmp_path / "a.h5", n=300, seed=9, workers=1, batch_size=256,
                         progress=False)
    b = simulate_to_file(tmp_path / "b.h5", n=300, seed=9, workers=2, batch_size=1024,
                         progress=False)
    assert a.path.read_bytes() == b.path.read_bytes()


def test_file_content_selection_and_provenance(tmp_path):
    rep = simulate_to_file(tmp_path / "zn.h5", n=300, seed=1, progress=False)
    with ShowerSet.open(rep.path) as ss:
        assert len(ss) == 300 and ss.meta.detector == "ZN"
        assert ss.meta.producer["note"] == STAND_IN_NOTE
        assert ss.meta.producer["seed"] == 1 and ss.meta.producer["min_photons"] == 10
        batch = ss.read()
    assert batch.showers.reshape(300, -1).sum(1).min() >= 10
    assert 0 < rep.efficiency < 1


def test_repeats_and_given_particles(tmp_path):
    parts = ParticleGun(ZN_SIMULATOR.gun, ZN_SIMULATOR.grid).sample(50, np.random.default_rng(0))
    rep = simulate_to_file(tmp_path / "p.h5", particles=parts, repeats=3, seed=2, progress=False)
    assert rep.n_written == 150  # no selection by default when particles are given
    with ShowerSet.open(rep.path) as ss:
        b = ss.read()
    np.testing.assert_array_equal(b.conditions, np.repeat(parts.conditions, 3, axis=0))
    np.testing.assert_array_equal(b.condition_id, np.repeat(np.arange(50), 3))
    capped = simulate_to_file(tmp_path / "q.h5", particles=parts, n=20, seed=2, progress=False)
    assert capped.n_written == 20


def test_impossible_selection_fails_cleanly_without_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "MAX_EMPTY_SHARDS", 2)
    with pytest.raises(ValueError, match="min_photons"):
        simulate_to_file(tmp_path / "none.h5", n=10, min_photons=10**9, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_bad_arguments_and_existing_files(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        simulate_to_file(tmp_path / "x.h5", n=None, progress=False)
    (tmp_path / "x.h5").write_bytes(b"keep me")
    with pytest.raises(ValueError, match="x.h5"):
        simulate_to_file(tmp_path / "x.h5", n=5, progress=False)
    assert (tmp_path / "x.h5").read_bytes() == b"keep me"
    bad = Particles(np.zeros((3, 9), np.float32), np.array([2112, 1, 22], np.int32))
    with pytest.raises(ValueError, match="PDG code 1 "):
        simulate_to_file(tmp_path / "y.h5", particles=bad, progress=False)
    assert not (tmp_path / "y.h5").exists()
