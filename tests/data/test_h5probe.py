"""The seal written by ShowerSetWriter and the child-process probe of unsealed HDF5 files."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data import ShowerSet, ShowerSetError, h5probe, write_showerset
from calogen.geometry import ZN

REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def write_zn(path: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(0)
    return write_showerset(path, rng.poisson(0.5, size=(n, 44, 44)).astype(np.int32),
                           rng.normal(size=(n, 9)).astype(np.float32),
                           np.full(n, 2112, np.int32), detector="ZN", geometry=ZN.to_dict(),
                           producer={"name": "test"}, chunk_events=2)


def heap_free_block_size_offset(data: bytes) -> int:
    """Offset of the size field of the free-space object (index 0) of the first global heap."""
    at = data.index(b"GCOL")
    end = at + struct.unpack_from("<Q", data, at + 8)[0]
    pos = at + 16
    while pos < end:
        index, = struct.unpack_from("<H", data, pos)
        if index == 0:
            return pos + 8
        size, = struct.unpack_from("<Q", data, pos + 8)
        pos += 16 + (size + 7) // 8 * 8
    raise AssertionError("no free-space object in the global heap")


def hanging_file(tmp_path: Path) -> Path:
    """A ShowerSet whose global heap free block claims 1 byte: HDF5 loops reading attributes."""
    path = write_zn(tmp_path / "hang.h5")
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, heap_free_block_size_offset(bytes(data)), 1)
    path.write_bytes(data)
    return path


def test_writer_seals_and_any_metadata_byte_breaks_the_seal(tmp_path: Path) -> None:
    path = write_zn(tmp_path / "a.h5")
    assert h5probe.check_seal(path)
    data = bytearray(path.read_bytes())
    data[h5probe.USERBLOCK_BYTES + 300] ^= 1  # inside HDF5 metadata
    path.write_bytes(data)
    assert not h5probe.check_seal(path)
    data[h5probe.USERBLOCK_BYTES + 300] ^= 1
    path.write_bytes(bytes(data) + b"\0")  # size changed
    assert not h5probe.check_seal(path)


def test_sealed_file_is_not_probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_zn(tmp_path / "a.h5")

    def no_probe(*args: object, **kw: object) -> None:
        raise AssertionError("probed a sealed file")

    monkeypatch.setattr(h5probe, "probe", no_probe)
    with ShowerSet(path) as ss:
        assert len(ss) == 5


def test_unsealed_valid_file_is_probed_and_opens(tmp_path: Path) -> None:
    path = write_zn(tmp_path / "a.h5")
    with open(path, "r+b") as fp:
        fp.write(b"\0" * 8)  # wipe the seal magic: as a file from another writer
    assert not h5probe.check_seal(path)
    h5probe.probe(path)
    with ShowerSet(path) as ss:
        assert ss.meta.detector == "ZN"
    with h5py.File(tmp_path / "plain.h5", "w") as f:  # no user block at all
        f.attrs["x"] = 1
    assert not h5probe.check_seal(tmp_path / "plain.h5")
    h5probe.probe(tmp_path / "plain.h5")


def test_hanging_file_gives_a_clear_error_within_seconds(tmp_path: Path) -> None:
    """Fails on the old reader: opening this file hangs in HDF5 (killed here after 30 s)."""
    path = hanging_file(tmp_path)
    code = ("import sys\nfrom calogen.data import ShowerSet, ShowerSetError\n"
            "try:\n    ShowerSet(sys.argv[1])\nexcept ShowerSetError as e:\n    print(e)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_SRC), "CALOGEN_H5_PROBE_TIMEOUT": "2"}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=30, env=env)
    assert time.monotonic() - t0 < 20
    assert str(path) in out.stdout and "did not finish reading it within 2 s" in out.stdout
    assert "field 'attribute " in out.stdout


def test_probe_names_the_field_on_a_hang(tmp_path: Path) -> None:
    path = hanging_file(tmp_path)
    with pytest.raises(ShowerSetError, match=r"field 'attribute \w+'.*within 1 s") as info:
        h5probe.probe(path, timeout=1.0)
    assert info.value.path == str(path)


def test_probe_reports_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_zn(tmp_path / "a.h5")

    def crash(p: Path, mark: object) -> None:
        mark("attribute detector")  # type: ignore[operator]
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(h5probe, "_walk", crash)
    with pytest.raises(ShowerSetError, match=r"field 'attribute detector'.*SIGSEGV"):
        h5probe.probe(path)


def test_probe_timeout_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALOGEN_H5_PROBE_TIMEOUT", "0.5")
    assert h5probe.probe_timeout() == 0.5
    monkeypatch.setenv("CALOGEN_H5_PROBE_TIMEOUT", "nonsense")
    assert h5probe.probe_timeout() == h5probe.PROBE_TIMEOUT_S


def test_probe_reports_hdf5_read_errors_without_a_second_parse(tmp_path: Path) -> None:
    path = write_zn(tmp_path / "a.h5")
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    struct.pack_into("<H", data, at + 16, 0x7777)  # first heap object: a bad index
    path.write_bytes(data)
    with pytest.raises(ShowerSetError, match=r"field '[^']+': expected readable HDF5 data"):
        h5probe.probe(path)


def test_probe_of_a_non_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(ShowerSetError, match="not a readable HDF5 file"):
        h5probe.probe(path)
