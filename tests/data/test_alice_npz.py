"""Import/export of the public ALICE ZDC npz layout."""

from __future__ import annotations

import re
import tracemalloc
import zipfile
from collections.abc import Callable
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


def test_export_removes_the_temporaries_of_a_killed_export(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "in").mkdir()
    r, p, _, _ = make_npz(tmp_path / "in")
    zn = import_alice_npz(r, p, tmp_path / "zn.h5")
    out = tmp_path / "out"
    out.mkdir()
    debris = [out / f".r.npz.tmp-{dead.pid}-0a1b2c3d", out / f".p.npz.tmp-{dead.pid}-0a1b2c3d.npz"]
    for d in debris:
        d.write_bytes(b"half")
    export_alice_npz(zn, out / "r.npz", out / "p.npz")
    assert sorted(q.name for q in out.iterdir()) == ["p.npz", "r.npz"]


def test_export_requires_zdc_columns(tmp_path: Path) -> None:
    from calogen.data import write_showerset

    path = write_showerset(tmp_path / "vox.h5", np.zeros((3, 10), np.int32),
                           np.zeros((3, 2), np.float32), np.full(3, 22), detector="voxels",
                           geometry={}, producer={}, condition_columns=("E", "phi"),
                           condition_units=("GeV", "rad"))
    with pytest.raises(ShowerSetError, match="conditions.columns"):
        export_alice_npz(path, tmp_path / "r.npz", tmp_path / "p.npz")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["vox.h5"]


# --------------------------------------------------------------------------------------------
# Corrupt and hostile files: every failure is a ShowerSetError naming the file; sizes claimed
# by headers are checked before anything is allocated.
# --------------------------------------------------------------------------------------------


def npy_bytes(header: str, data: bytes = b"", version: int = 1) -> bytes:
    """An ``.npy`` file with a given header text (padded like numpy pads it)."""
    text = header.encode("latin-1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    size = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + data


def particles_header(shape: str = "(3, 10)", descr: str = "<f8") -> str:
    return f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"


def valid_particles_npy() -> bytes:
    particles = np.zeros((3, 10))
    particles[:, 0], particles[:, 9] = 1000.0, 2112
    return npy_bytes(particles_header(), particles.tobytes())


def write_npz(path: Path, payload: bytes, method: int = zipfile.ZIP_STORED,
              name: str = "arr_0.npy") -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), payload, compress_type=method)
    return path


def patch_member(path: Path, *, flags: int | None = None, method: int | None = None,
                 file_size: int | None = None, name: bytes | None = None) -> None:
    """Rewrite fields of the one member's local header and central-directory entry."""
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    for start, off_flags, off_method, off_usize, off_name in ((local, 6, 8, 22, 30),
                                                              (central, 8, 10, 24, 46)):
        if flags is not None:
            data[start + off_flags:start + off_flags + 2] = flags.to_bytes(2, "little")
        if method is not None:
            data[start + off_method:start + off_method + 2] = method.to_bytes(2, "little")
        if file_size is not None:
            data[start + off_usize:start + off_usize + 4] = file_size.to_bytes(4, "little")
        if name is not None:
            data[start + off_name:start + off_name + len(name)] = name
    path.write_bytes(bytes(data))


def refusal_and_peak(read: Callable[[], object]) -> tuple[str, int]:
    """(message of the ShowerSetError ``read`` raises, peak memory traced meanwhile, numpy
    arrays included)."""
    tracemalloc.start()
    try:
        read()
    except ShowerSetError as exc:
        return str(exc), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("no ShowerSetError raised")


def test_header_claiming_terabytes_refused_before_allocation(tmp_path: Path) -> None:
    # was numpy's MemoryError: np.load allocated what the header claimed (80 TB here)
    path = tmp_path / "p.npy"
    path.write_bytes(npy_bytes(particles_header("(1000000000000, 10)"), b"\0" * 240))
    with pytest.raises(ShowerSetError, match=r"at most 240 bytes of data.*80000000000000 bytes"):
        read_alice_particles(path)
    write_npz(tmp_path / "r.npz", npy_bytes("{'descr': '<f8', 'fortran_order': False, "
                                            "'shape': (1000000000000, 44, 44), }"))
    with pytest.raises(ShowerSetError, match=r"r\.npz: field 'responses array 'arr_0''.*"
                                             r"claiming shape \(1000000000000, 44, 44\)"):
        read_alice_responses(tmp_path / "r.npz")


def test_huge_header_length_refused_without_reading_it(tmp_path: Path) -> None:
    # was MemoryError (or a 4 GB allocation): numpy read the claimed header length first
    path = tmp_path / "p.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + (0xFFFF0074).to_bytes(4, "little") + b" " * 200)
    message, peak = refusal_and_peak(lambda: read_alice_particles(path))
    assert peak < 50 << 20
    assert re.search(r"p\.npy.*header of at most 10000 bytes", message)


def test_declared_member_size_is_not_trusted(tmp_path: Path) -> None:
    # the header claims 100 MB, the member declares it too, but holds only 100 kB: the short
    # read is found while reading in bounded blocks, not after allocating 100 MB
    rows = 1_250_000
    payload = npy_bytes(particles_header(f"({rows}, 10)"),
                        np.random.default_rng(0).bytes(100_000))
    path = write_npz(tmp_path / "p.npz", payload, zipfile.ZIP_DEFLATED)
    patch_member(path, file_size=len(payload) - 100_000 + rows * 80)
    message, peak = refusal_and_peak(lambda: read_alice_particles(path))
    assert peak < 20 << 20
    assert re.search(r"p\.npz.*particles array 'arr_0'.*truncated", message)


def test_member_declaring_more_than_deflate_can_hold_refused(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "p.npz", valid_particles_npy(), zipfile.ZIP_DEFLATED)
    patch_member(path, file_size=0xFFFFFFF0)
    with pytest.raises(ShowerSetError, match=r"p\.npz.*at most \d+ bytes.*declared size of "
                                             r"4294967280 bytes"):
        read_alice_particles(path)


def test_unbalanced_header_refused(tmp_path: Path) -> None:
    # was tokenize.TokenError from numpy's header filter
    path = tmp_path / "p.npy"
    path.write_bytes(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 10), "))
    with pytest.raises(ShowerSetError, match=r"p\.npy.*particles array 'arr_0'.*\.npy header"):
        read_alice_particles(path)


def test_corrupt_deflate_stream_refused(tmp_path: Path) -> None:
    # was zlib.error
    path = write_npz(tmp_path / "p.npz", valid_particles_npy(), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    data[30 + len("arr_0.npy")] = 0xFF  # first deflate block: BTYPE 11 (reserved)
    path.write_bytes(bytes(data))
    with pytest.raises(ShowerSetError, match=r"p\.npz.*particles array 'arr_0'.*error"):
        read_alice_particles(path)


def test_unsupported_compression_method_refused(tmp_path: Path) -> None:
    # was zipfile's NotImplementedError
    path = write_npz(tmp_path / "p.npz", valid_particles_npy())
    patch_member(path, method=99)
    with pytest.raises(ShowerSetError, match=r"p\.npz.*stored or deflated.*method 99"):
        read_alice_particles(path)


def test_encrypted_member_refused(tmp_path: Path) -> None:
    # was RuntimeError("... is encrypted, password required")
    path = write_npz(tmp_path / "p.npz", valid_particles_npy())
    patch_member(path, flags=0x1)
    with pytest.raises(ShowerSetError, match=r"p\.npz.*unencrypted"):
        read_alice_particles(path)


def test_undecodable_member_name_refused_when_streaming(tmp_path: Path) -> None:
    # was UnicodeDecodeError from zipfile (UTF-8 flag set, name not UTF-8) in the importer
    r, p, _, _ = make_npz(tmp_path, n=4)
    patch_member(r, flags=0x800, name=b"\xff\xfe\xfd")
    with pytest.raises(ShowerSetError, match=r"responses\.npz.*UnicodeDecodeError"):
        import_alice_npz(r, p, tmp_path / "zn.h5")
    assert not (tmp_path / "zn.h5").exists()


def test_unparsable_dtype_refused_when_streaming(tmp_path: Path) -> None:
    # was SyntaxError from numpy's dtype parser (descr ',i4') in the importer
    r, p, _, _ = make_npz(tmp_path, n=3)
    write_npz(r, npy_bytes("{'descr': ',i4', 'fortran_order': False, 'shape': (3, 44, 44), }",
                           b"\0" * 3 * 44 * 44 * 4))
    with pytest.raises(ShowerSetError, match=r"responses\.npz.*numeric.*',i4'"):
        import_alice_npz(r, p, tmp_path / "zn.h5")


@pytest.mark.parametrize("shape", ["(99999999999999999999999999, 10)", "(True, 10)"])
def test_absurd_shape_refused(tmp_path: Path, shape: str) -> None:
    # were OverflowError (shape beyond int64) and TypeError (a bool in the shape)
    path = tmp_path / "p.npy"
    path.write_bytes(npy_bytes(particles_header(shape), b"\0" * 80))
    with pytest.raises(ShowerSetError, match=r"p\.npy.*particles array 'arr_0'"):
        read_alice_particles(path)


def test_member_that_is_not_an_npy_refused(tmp_path: Path) -> None:
    # was AttributeError: np.load returned the raw bytes of a member without the .npy magic
    path = write_npz(tmp_path / "p.npz", b"not an array", name="arr_0")
    with pytest.raises(ShowerSetError, match=r"p\.npz.*particles array 'arr_0'.*\.npy array"):
        read_alice_particles(path)
    write_npz(path, valid_particles_npy(), name="arr_0")  # a name without .npy is fine
    assert read_alice_particles(path)[0].shape == (3, 9)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["<f8", ">f4", "<i8", "|u1"])
def test_reader_matches_numpy(tmp_path: Path, version: tuple[int, int], order: str,
                              dtype: str) -> None:
    arr = (np.arange(5 * 44 * 44).reshape(5, 44, 44) % 7).astype(dtype)
    if order == "F":
        arr = np.asfortranarray(arr)
    with open(tmp_path / "r.npy", "wb") as fp:
        np.lib.format.write_array(fp, arr, version=version)
    np.savez_compressed(tmp_path / "r.npz", arr)
    for name in ("r.npy", "r.npz"):
        np.testing.assert_array_equal(read_alice_responses(tmp_path / name), arr)
