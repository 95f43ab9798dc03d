"""CaloClouds HDF5 import and export (``calogen.data.caloclouds``)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import ShowerSet
from calogen.data.caloclouds import export_caloclouds, import_caloclouds
from calogen.data.errors import ShowerSetError
from calogen.testing.showersets import TOY_VOLUME, toy_points, write_toy_points, write_toy_voxels


def _cc_file(path: Path, n: int = 7, width: int = 9, seed: int = 0) -> Path:
    """A CaloClouds file of toy clouds (first shower empty, second one point)."""
    points, counts = toy_points(n, seed)
    events = np.zeros((n, 4, width), dtype=np.float32)
    starts = np.cumsum(counts) - counts
    for i, (s, c) in enumerate(zip(starts, counts, strict=True)):
        events[i, :, :c] = points[s:s + c].T
    with h5py.File(path, "w") as f:
        f["events"] = events
        f["energy"] = np.linspace(10, 90, n, dtype=np.float32).reshape(n, 1)
    return path


def test_import_keeps_points_counts_and_energies(tmp_path: Path) -> None:
    src = _cc_file(tmp_path / "cc.h5")
    done = import_caloclouds(src, tmp_path / "ss.h5", volume=TOY_VOLUME, block_rows=3)
    points, counts = toy_points(7, 0)
    assert (done.n_showers, done.n_points, done.n_outside) == (7, len(points), 0)
    with ShowerSet(done.path) as ss:
        np.testing.assert_array_equal(ss.counts(), counts)
        assert ss.counts()[0] == 0 and ss.counts()[1] == 1
        batch = ss.read()
        np.testing.assert_array_equal(batch.showers, points)
        np.testing.assert_array_equal(batch.conditions.ravel(),
                                      np.linspace(10, 90, 7, dtype=np.float32))
        assert set(batch.pdg.tolist()) == {22}
        assert ss.meta.condition_columns == ("E_inc",) and ss.meta.condition_units == ("GeV",)
        assert ss.meta.geometry["name"] == TOY_VOLUME.name


def test_round_trip_import_export_import_is_identical(tmp_path: Path) -> None:
    src = _cc_file(tmp_path / "cc.h5")
    first = import_caloclouds(src, tmp_path / "a.h5", volume=TOY_VOLUME)
    back = export_caloclouds(first.path, tmp_path / "back.h5", block_rows=2)
    second = import_caloclouds(back.path, tmp_path / "b.h5", volume=TOY_VOLUME)
    with ShowerSet(first.path) as a, ShowerSet(second.path) as b:
        ra, rb = a.read(), b.read()
        np.testing.assert_array_equal(a.counts(), b.counts())
        assert ra.showers.tobytes() == rb.showers.tobytes()
        assert ra.conditions.tobytes() == rb.conditions.tobytes()
    with h5py.File(src) as f, h5py.File(back.path) as g:
        width = int(toy_points(7, 0)[1].max())
        assert g["events"].shape == (7, 4, width)  # padded to the largest shower
        np.testing.assert_array_equal(g["events"][()], f["events"][:, :, :width])
        np.testing.assert_array_equal(g["energy"][()], f["energy"][()])


def test_export_max_points_pads_or_names_the_row(tmp_path: Path) -> None:
    ss = write_toy_points(tmp_path / "p.h5", n=6, seed=1)
    counts = toy_points(6, 1)[1]
    done = export_caloclouds(ss, tmp_path / "wide.h5", max_points=20)
    with h5py.File(done.path) as f:
        assert f["events"].shape == (6, 4, 20)
        assert (f["events"][:, 3, :] > 0).sum(axis=1).tolist() == counts.tolist()
    small = int(counts.max()) - 1
    row = int(np.argmax(counts > small))
    with pytest.raises(ShowerSetError, match=f"points at row {row}"):
        export_caloclouds(ss, tmp_path / "narrow.h5", max_points=small)
    assert not (tmp_path / "narrow.h5").exists()


def test_shift_moves_points_and_outside_points_are_counted(tmp_path: Path) -> None:
    events = np.zeros((2, 4, 2), dtype=np.float32)
    events[0, :, 0] = [1.0, 2.0, 1805.0, 1.0]
    events[1, :, :] = [[1.0, 1.0], [2.0, 2.0], [1815.0, 1900.0], [1.0, 2.0]]
    src = tmp_path / "det.h5"
    with h5py.File(src, "w") as f:
        f["events"] = events
        f["energy"] = np.array([[10.0], [20.0]])
    done = import_caloclouds(src, tmp_path / "ss.h5", volume=TOY_VOLUME,
                             shift_mm=(0.0, 0.0, -1800.0))
    assert done.n_outside == 1  # z = 100 mm after the shift, beyond the 30 mm of layers
    with ShowerSet(done.path) as ss:
        np.testing.assert_allclose(ss.read().showers[:, 2], [5.0, 15.0, 100.0])
    done = import_caloclouds(src, tmp_path / "axes.h5", volume=TOY_VOLUME, axes="zxy",
                             overwrite=False)
    with ShowerSet(done.path) as ss:
        np.testing.assert_allclose(ss.read().showers[0], [1805.0, 1.0, 2.0, 1.0])
    assert done.n_outside == 3


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda e, n: e.__setitem__((2, 0, 0), np.nan), "NaN or inf at row 2"),
    (lambda e, n: e.__setitem__((3, 3, 1), -1.0), "E >= 0.*at row 3"),
    (lambda e, n: n.__setitem__((4, 0), 0.0), "incident energies.*at row 4"),
])
def test_bad_values_name_dataset_and_row(tmp_path: Path, mutate, match: str) -> None:
    src = _cc_file(tmp_path / "cc.h5")
    with h5py.File(src, "r+") as f:
        events, energy = f["events"][()], f["energy"][()]
        mutate(events, energy)
        f["events"][...] = events
        f["energy"][...] = energy
    with pytest.raises(ShowerSetError, match=match) as err:
        import_caloclouds(src, tmp_path / "ss.h5", volume=TOY_VOLUME, block_rows=2)
    assert str(src) in str(err.value)
    assert not (tmp_path / "ss.h5").exists()


def test_wrong_layout_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["events"] = np.zeros((2, 3, 5), dtype=np.float32)
        f["energy"] = np.ones((2, 1))
    with pytest.raises(ShowerSetError, match=r"dataset events.*\(N, 4, max_points\)"):
        import_caloclouds(bad, tmp_path / "ss.h5")
    with h5py.File(bad, "w") as f:
        f["events"] = np.zeros((2, 4, 5), dtype=np.float32)
    with pytest.raises(ShowerSetError, match="dataset energy.*missing"):
        import_caloclouds(bad, tmp_path / "ss.h5")
    with h5py.File(bad, "w") as f:
        f["events"] = np.zeros((2, 4, 5), dtype=np.float32)
        f["energy"] = np.ones((3, 1))
    with pytest.raises(ShowerSetError, match=r"shape \(2, 1\)"):
        import_caloclouds(bad, tmp_path / "ss.h5")
    vox = write_toy_voxels(tmp_path / "vox.h5", n=2)
    with pytest.raises(ShowerSetError, match="'points'"):
        export_caloclouds(vox, tmp_path / "cc.h5")


def test_export_reports_zero_energy_points_and_handles_all_empty(tmp_path: Path) -> None:
    from calogen.data import write_showerset
    from calogen.particles import gun_conditions

    cols, units = gun_conditions("E_inc")
    common = {"detector": "toy", "geometry": TOY_VOLUME, "producer": {"name": "t"},
              "condition_columns": cols, "condition_units": units}
    zero = write_showerset(tmp_path / "z.h5", np.array([[0, 0, 5, 0.0], [1, 1, 5, 2.0]],
                                                       dtype=np.float32),
                           np.ones((1, 1), np.float32), np.full(1, 22, np.int32),
                           counts=[2], **common)
    assert export_caloclouds(zero, tmp_path / "z_cc.h5").n_zero_energy == 1
    empty = write_showerset(tmp_path / "e.h5", np.zeros((0, 4), dtype=np.float32),
                            np.ones((3, 1), np.float32), np.full(3, 22, np.int32),
                            counts=[0, 0, 0], **common)
    done = export_caloclouds(empty, tmp_path / "e_cc.h5")
    with h5py.File(done.path) as f:
        assert f["events"].shape == (3, 4, 0)
    again = import_caloclouds(done.path, tmp_path / "e2.h5", volume=TOY_VOLUME)
    with ShowerSet(again.path) as ss:
        assert ss.counts().tolist() == [0, 0, 0]


def test_mutated_caloclouds_files_raise_only_showerseterror(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from calogen.testing import fuzz

    monkeypatch.setenv("CALOGEN_H5_PROBE_TIMEOUT", "1")
    seeds = [p.read_bytes() for p in fuzz.seed_corpus("caloclouds", tmp_path / "seeds")]
    outcomes = list(fuzz.run_inputs(fuzz.TARGETS["caloclouds"],
                                    fuzz.mutated_inputs(seeds, 40, 16), tmp_path / "work",
                                    timeout=10.0, workers=1))
    assert len(outcomes) == 40
    assert [o.detail for o in outcomes if o.kind != "ok"] == []
