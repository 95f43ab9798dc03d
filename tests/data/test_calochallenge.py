"""CaloChallenge HDF5 import/export: byte-identical round trips, streaming, bad inputs."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import ShowerSet, ShowerSetError, ShowerSetWriter
from calogen.data import calochallenge as cc
from calogen.data.calochallenge import (
    ORIGINAL_INCIDENT_ENERGIES,
    export_calochallenge,
    import_calochallenge,
)
from calogen.geometry.calochallenge import calochallenge_binning
from calogen.particles import gun_conditions
from calogen.testing.showersets import write_toy_points, write_toy_voxels

DATASETS = {"1-photons": (368, 22), "1-pions": (533, 211), "2": (6480, 11), "3": (40500, 11)}


def write_cc(path: Path, energies: np.ndarray, showers: np.ndarray, **kwargs: object) -> Path:
    """A CaloChallenge file holding the two datasets as given."""
    with h5py.File(path, "w") as f:
        f.create_dataset("incident_energies", data=energies)
        f.create_dataset("showers", data=showers, **kwargs)
    return path


def awkward_energies(n: int, dtype: str, seed: int) -> np.ndarray:
    """``(n, 1)`` MeV: powers of two times 256 (DS1) and log-uniform floats 1 GeV .. 1 TeV."""
    rng = np.random.default_rng(seed)
    powers = 256.0 * 2.0 ** np.arange(n)
    log_uniform = 10.0 ** rng.uniform(3.0, 6.0, size=n)
    mixed = np.where(np.arange(n) % 2 == 0, powers, log_uniform)
    return mixed.reshape(-1, 1).astype(dtype)


def sparse_showers(n: int, n_voxels: int, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.exponential(50.0, size=(n, n_voxels))
    x[rng.random(x.shape) < 0.7] = 0.0
    return x.astype(dtype)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dataset", "n", "e_dtype", "s_dtype"), [
    ("1-photons", 6, "float64", "float64"),
    ("1-pions", 5, "float32", "float32"),
    ("2", 4, ">f8", "float32"),
    ("3", 3, "float32", "<f8"),
])
def test_round_trip_is_byte_identical(tmp_path: Path, dataset: str, n: int, e_dtype: str,
                                      s_dtype: str) -> None:
    n_voxels, pdg = DATASETS[dataset]
    energies = awkward_energies(n, e_dtype, seed=n)
    showers = sparse_showers(n, n_voxels, s_dtype, seed=n)
    src = write_cc(tmp_path / "src.hdf5", energies, showers)
    written = import_calochallenge(src, tmp_path / "ss.h5", dataset=dataset, block_rows=2)
    assert written.n_showers == n
    with ShowerSet(written.path) as ss:
        assert ss.kind == "voxels" and ss.shower_shape == (n_voxels,)
        assert ss.meta.condition_columns == ("E_inc",) and ss.meta.condition_units == ("GeV",)
        np.testing.assert_allclose(ss.conditions()[:, 0], energies[:, 0] / 1000.0, rtol=1e-7)
        assert (ss.pdg() == pdg).all()
        assert ss.meta.producer["source"] == str(src.resolve())
        assert "src.hdf5" in ss.meta.producer["note"]
        assert ss.meta.detector == f"calochallenge-{dataset}"
    back = export_calochallenge(written.path, tmp_path / "back.hdf5", block_rows=2)
    assert back.n_showers == n
    with h5py.File(src, "r") as a, h5py.File(back.path, "r") as b:
        assert sorted(b.keys()) == ["incident_energies", "showers"]
        for name in ("incident_energies", "showers"):
            assert b[name].dtype == a[name].dtype
            assert b[name].shape == a[name].shape
            assert b[name][()].tobytes() == a[name][()].tobytes()


def test_gev_float32_alone_would_not_round_trip() -> None:
    """Why the originals are kept: float32 GeV times 1000 misses some of these MeV values."""
    e = awkward_energies(64, "float64", seed=1)[:, 0]
    via_gev = (e / 1000.0).astype(np.float32).astype(np.float64) * 1000.0
    assert (via_gev != e).any()


def test_export_without_originals_uses_e_inc_in_float64(tmp_path: Path) -> None:
    ss_path = write_toy_voxels(tmp_path / "toy.h5", n=9)
    out = export_calochallenge(ss_path, tmp_path / "toy.hdf5", block_rows=4).path
    with ShowerSet(ss_path) as ss, h5py.File(out, "r") as f:
        e = f["incident_energies"][()]
        assert e.dtype == np.float64 and e.shape == (9, 1)
        np.testing.assert_array_equal(e[:, 0], ss.conditions()[:, 0].astype(np.float64) * 1000)
        assert f["showers"].dtype == ss.meta.shower_dtype
        np.testing.assert_array_equal(f["showers"][()], ss.read().showers)


def test_user_binning_xml(tmp_path: Path) -> None:
    ref = resources.files("calogen.geometry") / "binnings" / "binning_dataset_1_photons.xml"
    with resources.as_file(ref) as official:
        xml = Path(shutil.copy(official, tmp_path / "my.xml"))
    src = write_cc(tmp_path / "src.hdf5", awkward_energies(3, "float64", 0),
                   sparse_showers(3, 368, "float32", 0))
    written = import_calochallenge(src, tmp_path / "ss.h5", binning=xml)
    with ShowerSet(written.path) as ss:
        assert ss.meta.geometry["name"] == "my" and (ss.pdg() == 22).all()
        assert ss.meta.producer["binning"] == str(xml.resolve())
    with pytest.raises(ValueError, match="exactly one"):
        import_calochallenge(src, tmp_path / "x.h5", dataset="2", binning=xml)
    with pytest.raises(ValueError, match="exactly one"):
        import_calochallenge(src, tmp_path / "x.h5")


# -- streaming -------------------------------------------------------------------------------


def test_import_reads_blocks_never_the_whole_dataset(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    n = 11
    src = write_cc(tmp_path / "src.hdf5", awkward_energies(n, "float32", 0),
                   sparse_showers(n, 368, "float32", 0))
    reads: list[int] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> object:
        out = original(self, key)
        if self.name == "/showers" and isinstance(out, np.ndarray) and out.ndim == 2:
            reads.append(out.shape[0])
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    import_calochallenge(src, tmp_path / "ss.h5", dataset="1-photons", block_rows=3)
    assert sum(reads) == n and max(reads) == 3


def test_default_block_is_bounded_and_aligned_to_source_chunks(tmp_path: Path) -> None:
    row_bytes = 40500 * 4
    rows = cc._block_rows(row_bytes, None, None)
    assert rows * row_bytes <= cc.BLOCK_BYTES < (rows + 1) * row_bytes
    assert cc._block_rows(row_bytes, 50, None) % 50 == 0
    assert cc._block_rows(row_bytes, 5000, None) == 5000  # one source chunk is the minimum
    src = write_cc(tmp_path / "src.hdf5", awkward_energies(10, "float32", 0),
                   sparse_showers(10, 368, "float32", 0), chunks=(4, 368))
    source = cc._Source.open(src, calochallenge_binning("1-photons").geometry)
    try:
        assert source.block_rows(None) % 4 == 0
    finally:
        source.close()


# -- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("energies", "showers", "field", "expected"), [
    (np.full((4, 1), 1e3), np.zeros((4, 367)), "dataset showers",
     r"expected shape \(N, 368\) \(the 368 voxels of binning 'calochallenge-1-photons'\), "
     r"found shape \(4, 367\)"),
    (np.full(4, 1e3), np.zeros((4, 368)), "dataset incident_energies",
     r"expected shape \(4, 1\) .*found shape \(4,\)"),
    (np.full((4, 2), 1e3), np.zeros((4, 368)), "dataset incident_energies",
     r"expected shape \(4, 1\) .*found shape \(4, 2\)"),
    (np.full((5, 1), 1e3), np.zeros((4, 368)), "dataset incident_energies",
     r"expected shape \(4, 1\) .*found shape \(5, 1\)"),
    (np.array([[1e3], [1e3], [1e3], [np.nan], [1e3]]), np.zeros((5, 368)),
     "dataset incident_energies", r"expected finite positive energies \(MeV\), found .*nan.* "
     r"at row 3"),
    (np.array([[1e3], [1e3], [1e3], [0.0], [1e3]]), np.zeros((5, 368)),
     "dataset incident_energies", "expected finite positive energies.*at row 3"),
])
def test_bad_header_or_energies(tmp_path: Path, energies: np.ndarray, showers: np.ndarray,
                                field: str, expected: str) -> None:
    src = write_cc(tmp_path / "bad.hdf5", energies, showers)
    out = tmp_path / "ss.h5"
    with pytest.raises(ShowerSetError, match=f"{src}: field '{field}': {expected}"):
        import_calochallenge(src, out, dataset="1-photons", block_rows=2)
    assert leftovers(tmp_path, {"bad.hdf5"}) == []


@pytest.mark.parametrize(("value", "expected"), [
    (np.nan, "expected finite values, found NaN or inf at row 3"),
    (np.inf, "expected finite values, found NaN or inf at row 3"),
    (-1.0, "expected non-negative values, found a negative value at row 3"),
])
def test_bad_shower_values_after_the_first_block_leave_nothing(tmp_path: Path, value: float,
                                                               expected: str) -> None:
    showers = sparse_showers(5, 533, "float32", 0)
    showers[3, 17] = value
    src = write_cc(tmp_path / "bad.hdf5", awkward_energies(5, "float32", 0), showers)
    with pytest.raises(ShowerSetError, match=f"{src}: field 'dataset showers': {expected}"):
        import_calochallenge(src, tmp_path / "ss.h5", dataset="1-pions", block_rows=2)
    assert leftovers(tmp_path, {"bad.hdf5"}) == []


def test_missing_dataset_and_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "bad.hdf5"
    with h5py.File(src, "w") as f:
        f["showers"] = np.zeros((2, 368))
    with pytest.raises(ShowerSetError, match=r"field 'dataset incident_energies': expected "
                       r"present .*found missing \(the file holds \['showers'\]\)"):
        import_calochallenge(src, tmp_path / "ss.h5", dataset="1-photons")
    with pytest.raises(ShowerSetError, match="nope.hdf5: file not found"):
        import_calochallenge(tmp_path / "nope.hdf5", tmp_path / "ss.h5", dataset="1-photons")
    not_hdf5 = tmp_path / "text.hdf5"
    not_hdf5.write_text("hello")
    with pytest.raises(ShowerSetError, match="text.hdf5"):
        import_calochallenge(not_hdf5, tmp_path / "ss.h5", dataset="1-photons")
    assert leftovers(tmp_path, {"bad.hdf5", "text.hdf5"}) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    src = write_cc(tmp_path / "src.hdf5", awkward_energies(2, "float32", 0),
                   sparse_showers(2, 368, "float32", 0))
    out = tmp_path / "ss.h5"
    out.write_text("keep me")
    with pytest.raises(ShowerSetError, match="file exists"):
        import_calochallenge(src, out, dataset="1-photons")
    assert out.read_text() == "keep me"
    assert import_calochallenge(src, out, dataset="1-photons", overwrite=True).n_showers == 2
    back = tmp_path / "back.hdf5"
    back.write_text("keep me")
    with pytest.raises(ShowerSetError, match="file exists"):
        export_calochallenge(out, back)
    assert back.read_text() == "keep me"


def test_export_refuses_points_and_inconsistent_originals(tmp_path: Path) -> None:
    points = write_toy_points(tmp_path / "points.h5")
    with pytest.raises(ShowerSetError, match=r"points.h5: field 'attribute geometry.kind': "
                       r"expected 'voxels'"):
        export_calochallenge(points, tmp_path / "p.hdf5")
    geometry = calochallenge_binning("1-photons").geometry
    columns, units = gun_conditions("E_inc")
    bad = tmp_path / "bad.h5"
    with ShowerSetWriter(bad, detector="x", geometry=geometry, condition_columns=columns,
                         condition_units=units, producer={"name": "test"},
                         extra_datasets={ORIGINAL_INCIDENT_ENERGIES: ((1,), np.float64)}) as w:
        w.append(np.zeros((3, 368)), [[1.0], [2.0], [3.0]], [22, 22, 22],
                 extra={ORIGINAL_INCIDENT_ENERGIES: [[1000.0], [2000.0], [3500.0]]})
    with pytest.raises(ShowerSetError, match=r"bad.h5: field 'dataset calochallenge/incident_"
                       r"energies': expected the incident energies of column 'E_inc' in MeV, "
                       r"found 3500.0 MeV against E_inc = 3.0 GeV at row 2"):
        export_calochallenge(bad, tmp_path / "out.hdf5", block_rows=2)
    assert leftovers(tmp_path, {"points.h5", "bad.h5"}) == []


# -- auxiliary per-event datasets of the ShowerSet writer ------------------------------------


def _writer(path: Path, **kwargs: object) -> ShowerSetWriter:
    columns, units = gun_conditions("E_inc")
    return ShowerSetWriter(path, detector="x", geometry=calochallenge_binning("1-photons")
                           .geometry, condition_columns=columns, condition_units=units,
                           producer={"name": "test"}, **kwargs)  # type: ignore[arg-type]


def test_extra_datasets_are_checked_and_read_back(tmp_path: Path) -> None:
    name = "aux/values"
    with _writer(tmp_path / "a.h5", extra_datasets={name: ((2,), ">i8")}) as w:
        for lo in (0, 3):
            w.append(np.zeros((3, 368)), np.ones((3, 1)), np.full(3, 22),
                     extra={name: np.arange(lo * 2, lo * 2 + 6).reshape(3, 2)})
        with pytest.raises(ShowerSetError, match=r"field 'aux/values': expected shape "
                           r"\(1, 2\), found shape \(1, 3\)"):
            w.append(np.zeros((1, 368)), np.ones((1, 1)), [22], extra={name: [[1, 2, 3]]})
        with pytest.raises(ShowerSetError, match="without loss"):
            w.append(np.zeros((1, 368)), np.ones((1, 1)), [22], extra={name: [[1.5, 2.0]]})
        with pytest.raises(ShowerSetError, match="rows for exactly"):
            w.append(np.zeros((1, 368)), np.ones((1, 1)), [22])
    with ShowerSet(tmp_path / "a.h5") as ss:
        assert len(ss) == 6 and ss.has_extra(name) and not ss.has_extra("aux/other")
        got = ss.read_extra(name, 2, 5)
        assert got.dtype == np.dtype(">i8")
        np.testing.assert_array_equal(got, np.arange(4, 10).reshape(3, 2))
        with pytest.raises(ShowerSetError, match="dataset aux/other': expected present"):
            ss.read_extra("aux/other")
        with pytest.raises(ValueError, match="schema dataset"):
            ss.read_extra("showers")


def test_extra_dataset_names_must_not_shadow_the_schema(tmp_path: Path) -> None:
    with pytest.raises(ShowerSetError, match="extra_datasets"):
        _writer(tmp_path / "a.h5", extra_datasets={"showers": ((1,), np.float64)})
    with pytest.raises(ShowerSetError, match="numeric dtype"):
        _writer(tmp_path / "b.h5", extra_datasets={"x": ((1,), "U3")})
    assert leftovers(tmp_path, set()) == []
