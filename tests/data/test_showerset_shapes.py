"""ShowerSet schema v2: images, voxels and ragged point clouds; version-1 files still open."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import SCHEMA_VERSION, ShowerSet, ShowerSetError, ShowerSetWriter, write_showerset
from calogen.data import schema as S
from calogen.data.h5probe import check_seal
from calogen.data.validation import batch_events, validate_showerset
from calogen.geometry import (
    ZN,
    LayeredVoxelGeometry,
    PointCloudVolume,
    uniform_layers,
)
from calogen.particles import gun_conditions

VOXELS = uniform_layers("toy-voxels", 3, [0.0, 5.0, 10.0, 20.0], 4)  # 36 voxels
VOLUME = PointCloudVolume("toy-volume", (-50.0, 50.0), (-50.0, 50.0), (0.0, 10.0, 20.0, 30.0))
COLUMNS, UNITS = gun_conditions("E_inc")
PRODUCER = {"name": "test"}


def gun(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 100.0, size=(n, 1)).astype(np.float32), np.full(n, 22, np.int32)


def voxel_events(n: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.exponential(2.0, size=(n, VOXELS.n_voxels)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0.0
    return x


def point_events(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ragged clouds with empty and 1-point showers: (points (P, 4) float32, counts (n,))."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, size=n)
    counts[0], counts[1], counts[n // 2], counts[-1] = 0, 1, 0, 1
    p = int(counts.sum())
    points = np.column_stack([rng.uniform(-50, 50, size=(p, 2)), rng.uniform(0, 30, size=p),
                              rng.exponential(1.0, size=p)]).astype(np.float32)
    return points, counts


def write_points(path: Path, points: np.ndarray, counts: np.ndarray, **kw: object) -> Path:
    cond, pdg = gun(len(counts))
    args: dict[str, object] = dict(detector="toy", geometry=VOLUME, producer=PRODUCER,
                                   condition_columns=COLUMNS, condition_units=UNITS,
                                   chunk_events=4, chunk_points=5)
    args.update(kw)
    return write_showerset(path, points, cond, pdg, counts=counts, **args)  # type: ignore


def write_voxels(path: Path, showers: np.ndarray, **kw: object) -> Path:
    cond, pdg = gun(len(showers))
    args: dict[str, object] = dict(detector="toy", geometry=VOXELS, producer=PRODUCER,
                                   condition_columns=COLUMNS, condition_units=UNITS,
                                   chunk_events=4)
    args.update(kw)
    return write_showerset(path, showers, cond, pdg, **args)  # type: ignore


def expected_points(points: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    offsets = np.concatenate([[0], np.cumsum(counts)])
    parts = [points[offsets[i]:offsets[i + 1]] for i in rows]
    return np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)


# --- round trips ----------------------------------------------------------------------------


def test_image_round_trip_is_kind_image_version_2(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.poisson(1.0, size=(10, 44, 44)).astype(np.int32)
    cond = rng.normal(size=(10, 9)).astype(np.float32)
    path = write_showerset(tmp_path / "i.h5", x, cond, np.full(10, 2112), detector="ZN",
                           geometry=ZN, producer=PRODUCER)
    with ShowerSet(path) as ss:
        assert ss.meta.kind == "image" and ss.meta.schema_version == SCHEMA_VERSION == 2
        assert ss.meta.geometry_object() == ZN and ss.meta.shower_units == "photons"
        b = ss.read()
        assert b.counts is None
        np.testing.assert_array_equal(b.showers, x)


def test_voxel_round_trip(tmp_path: Path) -> None:
    x = voxel_events()
    path = write_voxels(tmp_path / "v.h5", x)
    with ShowerSet(path) as ss:
        m = ss.meta
        assert m.kind == "voxels" and ss.shower_shape == (36,) and len(ss) == 20
        assert m.shower_dtype == np.float32 and m.shower_units == "MeV"
        assert m.condition_columns == ("E_inc",) and m.condition_units == ("GeV",)
        geo = m.geometry_object()
        assert isinstance(geo, LayeredVoxelGeometry) and geo == VOXELS
        b = ss.read()
        assert b.counts is None
        np.testing.assert_array_equal(b.showers, x)
        np.testing.assert_array_equal(ss.take([3, -1, 3]).showers, x[[3, 19, 3]])
        ss.validate_content(batch_size=3)


def test_points_round_trip_with_empty_and_one_point_showers(tmp_path: Path) -> None:
    points, counts = point_events()
    path = write_points(tmp_path / "p.h5", points, counts)
    with ShowerSet(path) as ss:
        m = ss.meta
        assert m.kind == "points" and len(ss) == 40 and m.n_points == len(points)
        assert m.shower_shape == (4,) and m.shower_dtype == np.float32
        assert m.shower_units == "MeV" and m.geometry_object() == VOLUME
        b = ss.read()
        assert b.showers.dtype == np.float32 and b.counts is not None
        np.testing.assert_array_equal(b.showers, points)
        np.testing.assert_array_equal(b.counts, counts)
        np.testing.assert_array_equal(ss.counts(), counts)
        np.testing.assert_array_equal(ss.offsets(), np.concatenate([[0], np.cumsum(counts)]))
        part = ss.read(5, 12)
        np.testing.assert_array_equal(part.counts, counts[5:12])
        np.testing.assert_array_equal(part.showers,
                                      expected_points(points, counts, np.arange(5, 12)))
        empty = ss.read(0, 1)
        assert len(empty) == 1 and empty.showers.shape == (0, 4)
        ss.validate_content(batch_size=3)
    with h5py.File(path, "r") as f:  # ragged on disk: never padded, no showers dataset
        assert S.SHOWERS not in f
        assert f[S.POINTS].shape == (len(points), 4) and f[S.POINTS].chunks == (5, 4)
        assert f[S.OFFSETS].shape == (41,) and f[S.OFFSETS].dtype == np.int64
        assert list(f[S.POINTS].attrs["units"]) == ["mm", "mm", "mm", "MeV"]
    assert check_seal(path)


def test_points_take_and_iter_batches_match_read(tmp_path: Path) -> None:
    points, counts = point_events(60, seed=3)
    path = write_points(tmp_path / "p.h5", points, counts)
    rng = np.random.default_rng(0)
    with ShowerSet(path) as ss:
        for _ in range(5):
            idx = rng.integers(-60, 60, size=25)
            rows = np.where(idx < 0, idx + 60, idx)
            t = ss.take(idx)
            np.testing.assert_array_equal(t.counts, counts[rows])
            np.testing.assert_array_equal(t.showers, expected_points(points, counts, rows))
            np.testing.assert_array_equal(t.conditions, ss.conditions()[rows])
        assert ss.take([]).showers.shape == (0, 4)
        got = list(ss.iter_batches(batch_size=7))
        assert [len(b) for b in got] == [7] * 8 + [4]
        np.testing.assert_array_equal(np.concatenate([b.showers for b in got]), points)
        np.testing.assert_array_equal(np.concatenate([b.counts for b in got]), counts)
        order = rng.permutation(60)
        shuffled = list(ss.iter_batches(batch_size=9, indices=order))
        np.testing.assert_array_equal(np.concatenate([b.showers for b in shuffled]),
                                      expected_points(points, counts, order))


def test_points_streamed_in_appends_equal_one_write(tmp_path: Path) -> None:
    points, counts = point_events(30, seed=4)
    cond, pdg = gun(30)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    with ShowerSetWriter(tmp_path / "s.h5", detector="toy", geometry=VOLUME,
                         condition_columns=COLUMNS, condition_units=UNITS, producer=PRODUCER,
                         chunk_points=4) as w:
        assert w.kind == "points" and w.shower_shape == (4,)
        for lo, hi in ((0, 7), (7, 7), (7, 20), (20, 30)):
            w.append(points[offsets[lo]:offsets[hi]], cond[lo:hi], pdg[lo:hi],
                     counts=counts[lo:hi])
    with ShowerSet(tmp_path / "s.h5") as ss:
        b = ss.read()
        np.testing.assert_array_equal(b.showers, points)
        np.testing.assert_array_equal(b.counts, counts)
        np.testing.assert_array_equal(b.condition_id, np.arange(30))


def test_padded_and_shower_index(tmp_path: Path) -> None:
    points, counts = point_events(12, seed=5)
    path = write_points(tmp_path / "p.h5", points, counts)
    with ShowerSet(path) as ss:
        b = ss.read()
    idx = b.shower_index()
    np.testing.assert_array_equal(idx, np.repeat(np.arange(12), counts))
    padded, mask = b.padded()
    assert padded.shape == (12, counts.max(), 4) and padded.dtype == np.float32
    np.testing.assert_array_equal(mask.sum(axis=1), counts)
    np.testing.assert_array_equal(padded[mask], points)
    assert not padded[~mask].any()
    wide, wide_mask = b.padded(max_points=int(counts.max()) + 3)
    assert wide.shape[1] == counts.max() + 3
    np.testing.assert_array_equal(wide[wide_mask], points)
    with pytest.raises(ValueError, match="max_points"):
        b.padded(max_points=int(counts.max()) - 1)
    with ShowerSet(write_voxels(tmp_path / "v.h5", voxel_events(3))) as vs:
        with pytest.raises(ValueError, match="not point clouds"):
            vs.read().padded()


def test_batch_events_of_points_counts_points(tmp_path: Path) -> None:
    points, counts = point_events(40)
    with ShowerSet(write_points(tmp_path / "p.h5", points, counts)) as ss:
        mean = -(-len(points) // 40)
        assert batch_events(ss.meta, 16 * mean * 10) == 10


# --- version 1 ------------------------------------------------------------------------------


def write_v1(path: Path, showers: np.ndarray) -> None:
    """The version-1 layout, written without calogen's writer (no seal, no geometry kind)."""
    n = showers.shape[0]
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("showers", data=showers, chunks=(min(4, n), *showers.shape[1:]))
        cond = f.create_dataset("conditions", data=rng.normal(size=(n, 9)).astype(np.float32))
        cond.attrs["columns"] = list(S.ZDC_CONDITION_COLUMNS)
        cond.attrs["units"] = list(S.ZDC_CONDITION_UNITS)
        f.create_dataset("pdg", data=np.full(n, 2112, np.int32))
        f.create_dataset("condition_id", data=np.arange(n, dtype=np.int64))
        geometry = {k: v for k, v in ZN.to_dict().items() if k != "kind"}
        f.attrs.update({"schema": S.SCHEMA_NAME, "schema_version": np.int64(1),
                        "detector": "ZN", "geometry": json.dumps(geometry),
                        "shower_units": "photons", "producer": "{}",
                        "created": "2024-01-01T00:00:00+00:00", "n_events": np.int64(n)})


def test_version_1_file_opens_as_image(tmp_path: Path) -> None:
    x = np.random.default_rng(2).poisson(1.0, size=(9, 44, 44)).astype(np.int32)
    write_v1(tmp_path / "v1.h5", x)
    with ShowerSet(tmp_path / "v1.h5") as ss:
        assert ss.meta.schema_version == 1 and ss.meta.kind == "image"
        assert ss.meta.geometry_object() == ZN
        np.testing.assert_array_equal(ss.read().showers, x)
        np.testing.assert_array_equal(ss.take([8, 0]).showers, x[[8, 0]])
    assert validate_showerset(tmp_path / "v1.h5", counts=True) == 9


def test_version_1_file_cannot_declare_points(tmp_path: Path) -> None:
    write_v1(tmp_path / "v1.h5", np.zeros((3, 44, 44), np.int32))
    with h5py.File(tmp_path / "v1.h5", "a") as f:
        f.attrs["geometry"] = json.dumps(VOLUME.to_dict())
    with pytest.raises(ShowerSetError, match=r"v1\.h5: field 'attribute geometry\.kind'"):
        ShowerSet(tmp_path / "v1.h5")


# --- bad input per shape: clear error naming file and field, no file left -------------------


def assert_nothing_left(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == []


@pytest.mark.parametrize(("feature", "value", "expected"), [
    (0, np.nan, "finite values"), (2, np.inf, "finite values"), (3, np.nan, "finite values"),
    (3, -0.5, "non-negative energies E"),
])
def test_bad_points_values_are_refused_naming_row_and_point(
        tmp_path: Path, feature: int, value: float, expected: str) -> None:
    points, counts = point_events(10)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    row = int(np.flatnonzero(counts >= 2)[1])
    points[offsets[row] + 1, feature] = value
    out = tmp_path / "out" / "bad.h5"
    out.parent.mkdir()
    with pytest.raises(ShowerSetError) as e:
        write_points(out, points, counts)
    msg = str(e.value)
    assert str(out) in msg and "field 'points'" in msg and expected in msg
    name = "xyzE"[feature]
    assert f"at row {row}, point 1, feature '{name}'" in msg
    assert_nothing_left(out.parent)


@pytest.mark.parametrize(("counts_change", "pattern"), [
    ("more", r"field 'counts': expected points per shower summing to"),
    ("negative", r"field 'counts': expected non-negative points per shower"),
    ("fraction", r"field 'counts': expected integer values"),
    ("matrix", r"field 'counts': expected shape \(n,\)"),
])
def test_counts_that_do_not_match_the_points_are_refused(
        tmp_path: Path, counts_change: str, pattern: str) -> None:
    points, counts = point_events(10)
    bad: np.ndarray = counts.copy()
    if counts_change == "more":
        bad[2] += 1
    elif counts_change == "negative":
        bad[2], bad[3] = -1, bad[3] + bad[2] + 1
    elif counts_change == "fraction":
        bad = counts.astype(np.float64)
        bad[2] += 0.5
        bad[3] -= 0.5
    else:
        bad = counts[None, :]
    out = tmp_path / "out" / "bad.h5"
    out.parent.mkdir()
    with pytest.raises(ShowerSetError, match=pattern) as e:
        write_points(out, points, bad)
    assert str(out) in str(e.value)
    assert_nothing_left(out.parent)


def test_points_need_counts_and_images_refuse_them(tmp_path: Path) -> None:
    points, counts = point_events(5)
    cond, pdg = gun(5)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ShowerSetError, match=r"p\.h5: field 'counts': expected points per "
                       r"shower"):
        write_showerset(out / "p.h5", points, cond, pdg, detector="toy", geometry=VOLUME,
                        producer={}, condition_columns=COLUMNS, condition_units=UNITS)
    with pytest.raises(ShowerSetError, match=r"v\.h5: field 'counts': expected none for a "
                       r"voxels file"):
        write_voxels(out / "v.h5", voxel_events(5), counts=np.ones(5, np.int64))
    with pytest.raises(ShowerSetError, match=r"p\.h5: field 'points': expected a float dtype"):
        write_points(out / "p.h5", points, counts, shower_dtype=np.int32)
    with pytest.raises(ShowerSetError, match=r"p\.h5: field 'shower_shape': expected \(4,\): "
                       r"one point \(x, y, z, E\), found \(3,\)"):
        write_points(out / "p.h5", points[:, :3], counts)
    assert_nothing_left(out)


def test_voxel_count_not_matching_the_binning_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ShowerSetError) as e:
        write_voxels(out / "v.h5", np.ones((4, 35), np.float32))
    msg = str(e.value)
    assert str(out / "v.h5") in msg and "field 'shower_shape'" in msg
    assert "(36,): the 36 voxels of the binning of geometry 'toy-voxels'" in msg
    assert "found (35,)" in msg
    w = ShowerSetWriter(out / "w.h5", detector="toy", geometry=VOXELS,
                        condition_columns=COLUMNS, condition_units=UNITS, producer={})
    assert w.shower_shape == (36,)
    with pytest.raises(ShowerSetError, match=r"field 'showers': expected shape \(n, 36\)"):
        w.append(np.ones((2, 40), np.float32), *gun(2))
    w.abort()
    assert_nothing_left(out)


@pytest.mark.parametrize(("value", "expected"), [(np.nan, "finite"), (-1.0, "non-negative")])
def test_bad_voxel_values_are_refused(tmp_path: Path, value: float, expected: str) -> None:
    x = voxel_events(6)
    x[4, 17] = value
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ShowerSetError, match=rf"v\.h5: field 'showers': expected {expected}"
                       r".* at row 4"):
        write_voxels(out / "v.h5", x)
    assert_nothing_left(out)


def test_invalid_voxel_geometry_is_refused(tmp_path: Path) -> None:
    geometry = VOXELS.to_dict()
    geometry["layers"][0]["n_alpha"] = 0
    with pytest.raises(ShowerSetError, match=r"v\.h5: field 'geometry': expected a valid "
                       r"voxels geometry"):
        write_voxels(tmp_path / "v.h5", voxel_events(2), geometry=geometry)
    assert_nothing_left(tmp_path)


# --- corrupt point-cloud files --------------------------------------------------------------


def corrupt(path: Path, edit: str) -> None:
    with h5py.File(path, "a") as f:
        off = f[S.OFFSETS]
        if edit == "first":
            off[0] = 1
        elif edit == "order":
            off[3], off[4] = off[4] + 2, off[4]
        elif edit == "beyond":
            off[-1] = off[-1] + 100
        elif edit == "length":
            off.resize(off.shape[0] - 1, axis=0)
        elif edit == "missing":
            del f[S.OFFSETS]
        elif edit == "showers":
            f.create_dataset(S.SHOWERS, data=np.zeros((40, 4), np.float32))
        elif edit == "units":
            f[S.POINTS].attrs["units"] = ["cm", "cm", "cm", "GeV"]


@pytest.mark.parametrize(("edit", "pattern"), [
    ("first", r"field 'dataset offsets': expected offsets\[0\] = 0, found 1"),
    ("order", r"field 'dataset offsets': expected non-decreasing offsets"),
    ("beyond", r"field 'dataset offsets': expected offsets\[40\] = \d+ \(the rows of dataset "
               r"points\), found \d+"),
    ("length", r"field 'dataset offsets': expected shape \(41,\)"),
    ("missing", r"field 'dataset offsets': expected present, found missing"),
    ("showers", r"field 'dataset showers': expected absent in a point-cloud file"),
    ("units", r"field 'points.units': expected \['mm', 'mm', 'mm', 'MeV'\]"),
])
def test_inconsistent_point_files_are_refused(tmp_path: Path, edit: str, pattern: str) -> None:
    points, counts = point_events(40)
    path = write_points(tmp_path / "p.h5", points, counts)
    corrupt(path, edit)
    with pytest.raises(ShowerSetError, match=pattern) as e:
        ShowerSet(path)
    assert str(path) in str(e.value)


def test_validate_content_names_bad_point_in_file(tmp_path: Path) -> None:
    points, counts = point_events(40)
    path = write_points(tmp_path / "p.h5", points, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    row = int(np.flatnonzero(counts >= 3)[-1])
    with h5py.File(path, "a") as f:
        f[S.POINTS][offsets[row] + 2, 3] = -2.0
    with pytest.raises(ShowerSetError, match=rf"p\.h5: field 'points': expected non-negative "
                       rf"energies E, found -2 at row {row}, point 2, feature 'E'"):
        validate_showerset(path)


def test_voxel_file_whose_showers_do_not_match_geometry_is_refused(tmp_path: Path) -> None:
    path = write_voxels(tmp_path / "v.h5", voxel_events(4))
    other = uniform_layers("toy-voxels", 2, [0.0, 5.0, 10.0, 20.0], 4)
    with h5py.File(path, "a") as f:
        f.attrs["geometry"] = json.dumps(other.to_dict())
    with pytest.raises(ShowerSetError, match=r"field 'dataset showers': expected shape "
                       r"\(N, 24\) \(the voxels of the geometry's binning\), found shape "
                       r"\(4, 36\)"):
        ShowerSet(path)
