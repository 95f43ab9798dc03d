"""ShowerSet write/read round trips, streaming, random access and bad-input handling."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ZDC_CONDITION_COLUMNS,
    ZDC_CONDITION_UNITS,
    ShowerSet,
    ShowerSetError,
    ShowerSetWriter,
    write_showerset,
)
from calogen.geometry import ZN

SHAPE = (6, 5)
PRODUCER = {"name": "test", "version": "0", "seed": 7, "note": "unit test"}


def make_events(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small random events: (showers int32 (n, 6, 5), conditions float32 (n, 9), pdg (n,))."""
    rng = np.random.default_rng(seed)
    showers = rng.poisson(2.0, size=(n, *SHAPE)).astype(np.int32)
    conditions = rng.normal(size=(n, len(ZDC_CONDITION_COLUMNS))).astype(np.float32)
    pdg = rng.choice([2112, 2212, 22, 1000010020], size=n).astype(np.int32)
    return showers, conditions, pdg


def writer_for(path: Path, **kw: object) -> ShowerSetWriter:
    args: dict[str, object] = dict(shower_shape=SHAPE, detector="ZN", geometry=ZN.to_dict(),
                                   condition_columns=ZDC_CONDITION_COLUMNS,
                                   condition_units=ZDC_CONDITION_UNITS, producer=PRODUCER,
                                   chunk_events=8)
    args.update(kw)
    return ShowerSetWriter(path, **args)  # type: ignore[arg-type]


def write_file(path: Path, n: int = 50, **kw: object) -> tuple[np.ndarray, ...]:
    showers, conditions, pdg = make_events(n)
    write_showerset(path, showers, conditions, pdg, detector="ZN", geometry=ZN.to_dict(),
                    producer=PRODUCER, chunk_events=8, **kw)  # type: ignore[arg-type]
    return showers, conditions, pdg


def assert_dir_empty(directory: Path) -> None:
    """No final file and no temporary file left behind."""
    assert sorted(p.name for p in directory.iterdir()) == []


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_values_dtypes_and_attributes(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    showers, conditions, pdg = write_file(path)
    with ShowerSet.open(path) as ss:
        assert len(ss) == 50 and ss.shower_shape == SHAPE and ss.path == path
        batch = ss.read()
        np.testing.assert_array_equal(batch.showers, showers)
        np.testing.assert_array_equal(batch.conditions, conditions)
        np.testing.assert_array_equal(batch.pdg, pdg)
        np.testing.assert_array_equal(batch.condition_id, np.arange(50))
        assert batch.showers.dtype == np.int32 and batch.conditions.dtype == np.float32
        assert batch.pdg.dtype == np.int32 and batch.condition_id.dtype == np.int64
        meta = ss.meta
        assert meta.detector == "ZN" and meta.geometry == ZN.to_dict()
        assert meta.condition_columns == ZDC_CONDITION_COLUMNS
        assert meta.condition_units == ZDC_CONDITION_UNITS
        assert meta.producer == PRODUCER and meta.shower_units == "photons"
        assert meta.schema_version == SCHEMA_VERSION and meta.n_events == 50
        assert meta.created.endswith("+00:00")
        np.testing.assert_array_equal(ss.pdg(), pdg)
        np.testing.assert_array_equal(ss.conditions(), conditions)
        ss.validate_content(batch_size=7)
    with h5py.File(path) as f:
        assert f.attrs["schema"] == SCHEMA_NAME
        assert f["showers"].chunks[0] == 8 and f["showers"].maxshape[0] is None
        assert f["showers"].compression == "gzip"


def test_float_showers_and_explicit_ids_over_several_appends(tmp_path: Path) -> None:
    path = tmp_path / "gen.h5"
    showers, conditions, pdg = make_events(20)
    with writer_for(path, shower_dtype=np.float32, shower_units="photons (generated)") as w:
        w.append(showers[:10] + 0.5, conditions[:10], pdg[:10], condition_id=np.full(10, 41))
        w.append(showers[10:] + 0.5, conditions[10:], pdg[10:])
        assert w.n_written == 20
    with ShowerSet(path) as ss:
        b = ss.read()
        assert b.showers.dtype == np.float32
        np.testing.assert_allclose(b.showers, showers + 0.5)
        np.testing.assert_array_equal(b.condition_id, [41] * 10 + list(range(42, 52)))


def test_empty_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with writer_for(path):
        pass
    with ShowerSet(path) as ss:
        assert len(ss) == 0 and len(ss.read()) == 0 and list(ss.iter_batches(4)) == []


# --- streaming and random access ------------------------------------------------------------


def test_iter_batches_covers_every_row_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    showers, _, _ = write_file(path, n=50)
    with ShowerSet(path) as ss:
        batches = list(ss.iter_batches(batch_size=12))
    assert [len(b) for b in batches] == [12, 12, 12, 12, 2]
    np.testing.assert_array_equal(np.concatenate([b.condition_id for b in batches]),
                                  np.arange(50))
    np.testing.assert_array_equal(np.concatenate([b.showers for b in batches]), showers)


def test_iter_batches_with_indices_keeps_their_order(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    showers, _, _ = write_file(path, n=50)
    idx = np.array([49, 3, 3, 17, 0, 25, 8])
    with ShowerSet(path) as ss:
        batches = list(ss.iter_batches(batch_size=3, indices=idx, progress=True))
    assert [len(b) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b.showers for b in batches]), showers[idx])


def test_take_unsorted_and_duplicate_indices(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    showers, conditions, pdg = write_file(path, n=50)
    idx = np.array([40, 2, 2, 49, 0, 17, 16, 40, -1])
    with ShowerSet(path) as ss:
        b = ss.take(idx)
        assert len(ss.take([])) == 0
        with pytest.raises(IndexError):
            ss.take([50])
    np.testing.assert_array_equal(b.showers, showers[idx])
    np.testing.assert_array_equal(b.conditions, conditions[idx])
    np.testing.assert_array_equal(b.pdg, pdg[idx])
    np.testing.assert_array_equal(b.condition_id, np.arange(50)[idx])


def test_read_slice(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    showers, _, _ = write_file(path, n=50)
    with ShowerSet(path) as ss:
        np.testing.assert_array_equal(ss.read(13, 29).showers, showers[13:29])
        np.testing.assert_array_equal(ss.read(-5).showers, showers[-5:])


# --- writer: bad input leaves nothing behind ------------------------------------------------


def _bad_showers_shape() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    return s[:, :, :4], c, p


def _nan_showers() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    f = s.astype(np.float64)
    f[2, 1, 1] = np.nan
    return f, c, p


def _inf_showers() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    f = s.astype(np.float32)
    f[3, 0, 0] = np.inf
    return f, c, p


def _negative_showers() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    s[1, 2, 3] = -1
    return s, c, p


def _fractional_counts() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    return s + 0.25, c, p


def _nan_conditions() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    c[2, 4] = np.nan
    return s, c, p


def _wrong_column_count() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    return s, c[:, :8], p


def _fractional_pdg() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    return s, c, p + 0.5


def _short_pdg() -> tuple[np.ndarray, ...]:
    s, c, p = make_events(4)
    return s, c, p[:3]


@pytest.mark.parametrize(("make_bad", "field", "found"), [
    (_bad_showers_shape, "showers", "shape"),
    (_nan_showers, "showers", "row 6"),  # rows count from the file start: 4 good rows first
    (_inf_showers, "showers", "row 7"),
    (_negative_showers, "showers", "row 5"),
    (_fractional_counts, "showers", "non-integer"),
    (_nan_conditions, "conditions", "row 6"),
    (_wrong_column_count, "conditions", "(4, 8)"),
    (_fractional_pdg, "pdg", "non-integer"),
    (_short_pdg, "pdg", "(3,)"),
])
def test_bad_batch_names_field_and_leaves_no_file(tmp_path: Path, make_bad, field: str,
                                                  found: str) -> None:
    path = tmp_path / "bad.h5"
    good = make_events(4)
    with pytest.raises(ShowerSetError) as info:
        with writer_for(path) as w:
            w.append(*good)
            w.append(*make_bad())
    msg = str(info.value)
    assert f"'{field}'" in msg and str(path) in msg and found in msg
    assert info.value.field == field
    assert_dir_empty(tmp_path)


def test_bad_batch_row_index_counts_previous_appends(tmp_path: Path) -> None:
    with pytest.raises(ShowerSetError, match="row 2"):
        with writer_for(tmp_path / "bad.h5") as w:
            w.append(*_nan_showers())
    with pytest.raises(ShowerSetError, match="row 12"):
        with writer_for(tmp_path / "bad.h5") as w:
            w.append(*make_events(6))
            w.append(*make_events(4))
            w.append(*_nan_showers())
    assert_dir_empty(tmp_path)


def test_exception_inside_with_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "partial.h5"
    with pytest.raises(RuntimeError, match="killed"):
        with writer_for(path) as w:
            w.append(*make_events(10))
            assert any(p.name.startswith(".partial.h5.tmp-") for p in tmp_path.iterdir())
            assert not path.exists()
            raise RuntimeError("killed")
    assert_dir_empty(tmp_path)


def test_abort_discards_and_close_after_abort_fails(tmp_path: Path) -> None:
    w = writer_for(tmp_path / "x.h5")
    w.append(*make_events(3))
    w.abort()
    assert_dir_empty(tmp_path)
    with pytest.raises(ShowerSetError, match="aborted"):
        w.close()


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with pytest.raises(ShowerSetError, match="refusing to overwrite"):
        write_file(path, n=7)
    with ShowerSet(path) as ss:
        assert len(ss) == 5
    write_file(path, n=7, overwrite=True)
    with ShowerSet(path) as ss:
        assert len(ss) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]


def test_units_must_match_columns(tmp_path: Path) -> None:
    with pytest.raises(ShowerSetError, match="conditions.units"):
        writer_for(tmp_path / "x.h5", condition_units=("GeV",))
    assert_dir_empty(tmp_path)


# --- reader: bad files --------------------------------------------------------------------


def test_nonexistent_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.h5"
    with pytest.raises(ShowerSetError, match="file not found") as info:
        ShowerSet(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShowerSetError, match="truncated") as info:
        ShowerSet(path)
    assert str(path) in str(info.value)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ShowerSetError, match="not a readable HDF5 file") as info:
        ShowerSet(path)
    assert str(path) in str(info.value)


def test_unknown_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ShowerSetError, match=r"schema_version.*supported versions \[1, 2\]") as e:
        ShowerSet(path)
    assert "99" in str(e.value)


def test_wrong_schema_name(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        f.attrs["schema"] = "something.else"
    with pytest.raises(ShowerSetError, match="attribute schema"):
        ShowerSet(path)


@pytest.mark.parametrize("name", ["showers", "conditions", "pdg", "condition_id"])
def test_missing_dataset(tmp_path: Path, name: str) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        del f[name]
    with pytest.raises(ShowerSetError, match=f"dataset {name}.*missing"):
        ShowerSet(path)


def test_columns_attribute_length_must_match(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        f["conditions"].attrs["columns"] = ["E", "vx"]
    with pytest.raises(ShowerSetError, match=r"conditions\.columns.*9 entries"):
        ShowerSet(path)


def test_inconsistent_lengths(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        f["pdg"].resize(4, axis=0)
    with pytest.raises(ShowerSetError, match="dataset pdg.*5 events"):
        ShowerSet(path)


def test_validate_content_finds_first_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=30, shower_dtype=np.float32)
    with h5py.File(path, "a") as f:
        f["showers"][17, 0, 0] = np.nan
        f["showers"][23, 0, 0] = -3
    with ShowerSet(path) as ss:
        with pytest.raises(ShowerSetError, match="'showers'.*row 17"):
            ss.validate_content(batch_size=8)


def test_default_chunk_size_targets_bytes(tmp_path: Path) -> None:
    from calogen.data.schema import default_chunk_events

    assert default_chunk_events((44, 44), 4) == 256
    assert default_chunk_events((40500,), 4) == 8
    assert default_chunk_events((3,), 4) == 1024
    assert default_chunk_events((10**7,), 4) == 1
    path = tmp_path / "zn.h5"
    s, c, p = make_events(3)
    write_showerset(path, np.zeros((3, 44, 44), np.int32), c, p, detector="ZN",
                    geometry=ZN.to_dict(), producer={})
    with h5py.File(path) as f:
        assert f["showers"].chunks == (256, 44, 44)


# --- debris of killed writers ---------------------------------------------------------------


def test_next_writer_removes_temporaries_of_killed_writers(tmp_path: Path) -> None:
    """A writer killed with SIGKILL leaves its temporary file; the next writer of the same
    output removes it (temporaries of live processes and of other outputs are kept)."""
    import os
    import subprocess
    import sys

    import calogen

    out = tmp_path / "out.h5"
    script = (f"import os, signal, sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from test_showerset import make_events, writer_for\n"
              "from pathlib import Path\n"
              f"w = writer_for(Path({str(out)!r}))\n"
              "w.append(*make_events(20))\n"
              "w._file.flush()\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(calogen.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE,
                            text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    debris = [p.name for p in tmp_path.iterdir()]
    assert len(debris) == 1 and debris[0].startswith(f".out.h5.tmp-{proc.pid}-"), debris
    live = tmp_path / f".out.h5.tmp-{os.getpid()}-0a1b2c3d"
    other = tmp_path / f".other.h5.tmp-{proc.pid}-0a1b2c3d"
    live.write_bytes(b"")
    other.write_bytes(b"")
    write_file(out, n=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name,
                                                                  "out.h5"])


# --- corrupt or wrongly typed headers: only ShowerSetError, naming the field ----------------


@pytest.mark.parametrize(("obj", "attr", "value", "match"), [
    ("/", "detector", np.bytes_(b"Z\xffN"), r"field 'attribute detector'.*UTF-8"),
    ("conditions", "columns", np.arange(9), r"field 'conditions\.columns'.*UTF-8 names"),
    ("/", "schema_version", np.array([1, 1]),
     r"field 'attribute schema_version'.*shape \(2,\)"),
], ids=["non-utf8-string", "non-string-columns", "array-schema-version"])
def test_wrongly_typed_attribute_is_a_showerseterror(tmp_path: Path, obj: str, attr: str,
                                                     value: np.ndarray, match: str) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        f[obj].attrs[attr] = value
    with pytest.raises(ShowerSetError, match=match):
        ShowerSet(path)


def test_corrupt_heap_entry_of_an_attribute_is_a_showerseterror(tmp_path: Path) -> None:
    """A column name's global-heap object gets a bad index: h5py raised a bare OSError."""
    import struct

    path = tmp_path / "set.h5"
    write_file(path, n=5)
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    pos = at + 16
    while True:  # find the heap object holding the column name "vx"
        index, = struct.unpack_from("<H", data, pos)
        size, = struct.unpack_from("<Q", data, pos + 8)
        assert index != 0, "column name not found in the global heap"
        if bytes(data[pos + 16:pos + 16 + size]) == b"vx":
            struct.pack_into("<H", data, pos, 0x7777)
            break
        pos += 16 + (size + 7) // 8 * 8
    path.write_bytes(data)
    with pytest.raises(ShowerSetError, match=r"field 'conditions\.columns'") as info:
        ShowerSet(path)
    assert info.value.path == str(path)


def test_shape_larger_than_the_file_can_hold_is_refused_before_reading(tmp_path: Path) -> None:
    """A header promising 200 GB used to open fine and then fail allocating in read()."""
    path = tmp_path / "set.h5"
    write_file(path, n=5)
    with h5py.File(path, "a") as f:
        del f["showers"]
        f.create_dataset("showers", shape=(5, 10**6, 10**4), dtype=np.int32,
                         chunks=(1, 100, 100), compression="gzip")
    with pytest.raises(ShowerSetError, match=r"field 'dataset showers'.*bytes of data"):
        with ShowerSet(path) as ss:
            ss.read(0, 5)


def test_corrupt_chunk_of_a_sealed_file_is_a_showerseterror(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_file(path, n=50)
    with h5py.File(path, "r") as f:
        info = f["showers"].id.get_chunk_info(1)
    data = bytearray(path.read_bytes())
    data[info.byte_offset:info.byte_offset + info.size] = b"\xa5" * info.size
    path.write_bytes(data)
    with ShowerSet(path) as ss:  # the seal does not cover chunk data: opened in-process
        with pytest.raises(ShowerSetError, match=r"field 'dataset showers'.*read failed"):
            ss.validate_content()
