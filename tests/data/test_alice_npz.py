"""Import/export of the public ALICE ZDC npz layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calogen.data import (
    ShowerSet,
    ShowerSetError,
    export_alice_npz,
    import_alice_npz,
    read_alice_particles,
    read_alice_responses,
)


def make_npz(directory: Path, n: int = 40, shape: tuple[int, int] = (44, 44),
             seed: int = 0) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Public-layout pair with repeated particles: float64 arrays saved under 'arr_0'."""
    rng = np.random.default_rng(seed)
    responses = rng.poisson(0.5, size=(n, *shape)).astype(np.float64)
    base = np.column_stack([rng.uniform(100, 3000, 8), rng.normal(size=(8, 6)),
                            np.full(8, 939.565), np.zeros(8)]).astype(np.float32)
    codes = np.array([2112, 2112, 2212, 1000010020, 22, 2112, -2112, 211], dtype=np.float64)
    pick = rng.integers(0, 8, n)
    particles = np.column_stack([base[pick].astype(np.float64), codes[pick]])
    r, p = directory / "data_nonrandom_responses.npz", directory / "data_nonrandom_particles.npz"
    np.savez(r, responses)
    np.savez(p, particles)
    return r, p, responses, particles


def test_import_export_round_trip(tmp_path: Path) -> None:
    r, p, responses, particles = make_npz(tmp_path)
    out = import_alice_npz(r, p, tmp_path / "zn.h5", batch_events=16)
    with ShowerSet(out) as ss:
        b = ss.read()
        np.testing.assert_array_equal(b.showers, responses)
        assert b.showers.dtype == np.int32
        np.testing.assert_array_equal(b.pdg, particles[:, 9])
        ids = b.condition_id
        # identical particles share an id, different ones do not
        same = (particles[:, None, :] == particles[None, :, :]).all(axis=2)
        np.testing.assert_array_equal(ids[:, None] == ids[None, :], same)
        assert ss.meta.producer["source_responses"].endswith(r.name)
        assert ss.meta.detector == "ZN"
    r2, p2 = export_alice_npz(out, tmp_path / "r2.npz", tmp_path / "p2.npz")
    with np.load(r2, allow_pickle=False) as f:
        assert f.files == ["arr_0"]
        np.testing.assert_array_equal(f["arr_0"], responses)
    with np.load(p2, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["arr_0"], particles)  # incl. deuteron 1000010020
    assert not [q for q in tmp_path.iterdir() if ".tmp-" in q.name]


def test_zp_and_explicit_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    responses = rng.poisson(1.0, size=(5, 56, 30)).astype(np.int64)
    np.savez(tmp_path / "r.npz", images=responses, other=np.zeros(3))
    got = read_alice_responses(tmp_path / "r.npz", key="images", detector="zp")
    np.testing.assert_array_equal(got, responses)
    with pytest.raises(ShowerSetError, match="exactly one array"):
        read_alice_responses(tmp_path / "r.npz", detector="ZP")


def test_read_particles_splits_pdg(tmp_path: Path) -> None:
    _, p, _, particles = make_npz(tmp_path)
    cond, pdg = read_alice_particles(p)
    assert cond.shape == (40, 9) and cond.dtype == np.float32 and pdg.dtype == np.int32
    np.testing.assert_array_equal(pdg, particles[:, 9])


def test_particles_wrong_shape_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, np.zeros((5, 9)))
    with pytest.raises(ShowerSetError, match=r"particles array 'arr_0'.*shape \(5, 9\)") as e:
        read_alice_particles(path)
    assert str(path) in str(e.value)


def test_particles_non_integer_pdg_rejected(tmp_path: Path) -> None:
    particles = np.zeros((5, 10))
    particles[:, 9] = 2112
    particles[3, 9] = 2112.5
    np.savez(tmp_path / "p.npz", particles)
    with pytest.raises(ShowerSetError, match=r"column 9 \(pdg\).*integer.*row 3"):
        read_alice_particles(tmp_path / "p.npz")


def test_particles_nan_rejected_naming_column(tmp_path: Path) -> None:
    particles = np.zeros((5, 10))
    particles[2, 4] = np.nan
    np.savez(tmp_path / "p.npz", particles)
    with pytest.raises(ShowerSetError, match=r"column 4 \(px\).*row 2"):
        read_alice_particles(tmp_path / "p.npz")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(ShowerSetError, match="pickled"):
        read_alice_particles(tmp_path / "p.npy")


@pytest.mark.parametrize(("corrupt", "match"), [
    ("negative", "non-negative.*row 7"),
    ("nan", "NaN or inf.*row 30"),
    ("length", "40 events"),
    ("shape", r"shape \(N, 44, 44\)"),
])
def test_bad_responses_rejected_and_nothing_written(tmp_path: Path, corrupt: str,
                                                    match: str) -> None:
    r, p, responses, _ = make_npz(tmp_path)
    if corrupt == "negative":
        responses[7, 3, 3] = -2
    elif corrupt == "nan":
        responses[30, 0, 1] = np.nan
    elif corrupt == "length":
        responses = responses[:-1]
    else:
        responses = responses[:, :40, :]
    np.savez(r, responses)
    out = tmp_path / "zn.h5"
    with pytest.raises(ShowerSetError, match=match) as e:
        import_alice_npz(r, p, out, batch_events=16)
    assert str(r) in str(e.value) and "responses array 'arr_0'" in str(e.value)
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted([r.name, p.name])


def test_truncated_npz_rejected(tmp_path: Path) -> None:
    r, p, _, _ = make_npz(tmp_path)
    data = r.read_bytes()
    r.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShowerSetError, match=str(r)):
        import_alice_npz(r, p, tmp_path / "zn.h5")
    assert not (tmp_path / "zn.h5").exists()


def test_import_refuses_overwrite(tmp_path: Path) -> None:
    r, p, _, _ = make_npz(tmp_path)
    out = import_alice_npz(r, p, tmp_path / "zn.h5")
    with pytest.raises(ShowerSetError, match="refusing to overwrite"):
        import_alice_npz(r, p, out)
    import_alice_npz(r, p, out, overwrite=True)


def test_export_requires_zdc_columns(tmp_path: Path) -> None:
    from calogen.data import write_showerset

    path = write_showerset(tmp_path / "vox.h5", np.zeros((3, 10), np.int32),
                           np.zeros((3, 2), np.float32), np.full(3, 22), detector="voxels",
                           geometry={}, producer={}, condition_columns=("E", "phi"),
                           condition_units=("GeV", "rad"))
    with pytest.raises(ShowerSetError, match="conditions.columns"):
        export_alice_npz(path, tmp_path / "r.npz", tmp_path / "p.npz")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["vox.h5"]
