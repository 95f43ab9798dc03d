"""Keep corrupt HDF5 files from hanging or crashing the process that reads them.

HDF5's C library can loop forever or segfault on corrupt metadata (a global heap whose free
block says 1 byte, a mangled attribute message, ...), where no Python ``try`` helps. Before a
ShowerSet is opened in-process, :func:`ensure_openable` therefore

1. runs a cheap check, :func:`check_seal`: files written by calogen carry a *seal* in their
   HDF5 user block (bytes HDF5 ignores): a BLAKE2b digest of every byte that is not chunk data
   (superblock, object headers, attributes, heaps, chunk indexes), their ranges and the file
   size. If the digest matches, the metadata HDF5 will parse is byte for byte what calogen wrote,
   so the file is opened directly;
2. otherwise (files from other writers, older files, any modified file) runs :func:`probe`:
   a forked child opens the file and touches everything the reader touches (every attribute,
   every dataset header, the chunk index, the first and last row of each dataset) under a time
   limit. A child killed by a signal or still running at the limit becomes a
   :class:`~calogen.data.errors.ShowerSetError` naming the file and the field being read.

The seal guards against accidents (bit rot, truncation, partial copies), not against an author
who recomputes it; chunk data is not covered because decompressing a corrupt chunk fails with an
error (the reader turns it into a ShowerSetError) rather than hanging.
"""

from __future__ import annotations

import ctypes
import faulthandler
import hashlib
import os
import selectors
import signal
import struct
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from calogen.data.errors import ShowerSetError

PathLike = str | os.PathLike[str]

USERBLOCK_BYTES = 4096
"""HDF5 user block reserved by the ShowerSet writer for the seal (a power of two >= 512)."""

SEAL_MAGIC = b"CGSEAL\x00\x01"
_HEADER = struct.Struct("<8s32sQII")  # magic, digest, file size, n ranges, payload bytes
MAX_RANGES = 1 << 20
"""Upper bound on sealed ranges accepted by the reader (a sanity bound, not a format limit)."""

PROBE_TIMEOUT_S = 5.0
"""Seconds a probe may take before the file is declared to hang HDF5 (a valid file: ~10 ms);
the environment variable ``CALOGEN_H5_PROBE_TIMEOUT`` overrides it (e.g. on a slow network
file system)."""


def probe_timeout() -> float:
    """The probe time limit in seconds (:data:`PROBE_TIMEOUT_S` or the environment's)."""
    text = os.environ.get("CALOGEN_H5_PROBE_TIMEOUT", "")
    try:
        value = float(text) if text else PROBE_TIMEOUT_S
    except ValueError:
        value = PROBE_TIMEOUT_S
    return value if value > 0 else PROBE_TIMEOUT_S

PROBE_ROW_BYTES = 64 * 1024 * 1024
"""Rows larger than this are not read by the probe (the reader refuses such headers)."""

_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------------------------
# Seal (written by ShowerSetWriter, checked by the reader)
# --------------------------------------------------------------------------------------------


def _metadata_ranges(chunks: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """``(start, length)`` of every byte range of ``[USERBLOCK_BYTES, size)`` not in ``chunks``."""
    out = []
    pos = USERBLOCK_BYTES
    for start, length in sorted(chunks):
        if start > pos:
            out.append((pos, start - pos))
        pos = max(pos, start + length)
    if size > pos:
        out.append((pos, size - pos))
    return out


def _digest(fp: object, size: int, payload: bytes, ranges: list[tuple[int, int]]) -> bytes:
    h = hashlib.blake2b(digest_size=32)
    h.update(SEAL_MAGIC + struct.pack("<Q", size) + payload)
    for start, length in ranges:
        fp.seek(start)  # type: ignore[attr-defined]
        data = fp.read(length)  # type: ignore[attr-defined]
        if len(data) != length:
            raise ValueError("short read")
        h.update(data)
    return h.digest()


def _encode(ranges: list[tuple[int, int]]) -> bytes:
    flat = np.zeros(2 * len(ranges), dtype="<u8")
    prev_end = USERBLOCK_BYTES
    for i, (start, length) in enumerate(ranges):
        flat[2 * i], flat[2 * i + 1] = start - prev_end, length
        prev_end = start + length
    return zlib.compress(flat.tobytes(), 9)


def _decode(payload: bytes, n: int) -> list[tuple[int, int]]:
    raw = zlib.decompressobj().decompress(payload, 16 * n + 1)
    if len(raw) != 16 * n:
        raise ValueError("bad payload")
    flat = np.frombuffer(raw, dtype="<u8").tolist()
    out, prev_end = [], USERBLOCK_BYTES
    for i in range(n):
        start = prev_end + flat[2 * i]
        out.append((start, flat[2 * i + 1]))
        prev_end = start + flat[2 * i + 1]
    return out


def seal(path: PathLike) -> bool:
    """Write the seal into the user block of a closed HDF5 file that calogen just wrote.

    Returns ``False`` (and leaves the user block blank) when the file has no user block of
    :data:`USERBLOCK_BYTES` or its ranges do not fit in it; readers then probe the file.
    """
    import h5py

    p = Path(path)
    chunks: list[tuple[int, int]] = []
    with h5py.File(p, "r") as f:
        if f.userblock_size != USERBLOCK_BYTES:
            return False
        for obj in f.values():
            if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
                obj.id.chunk_iter(lambda info: chunks.append((info.byte_offset, info.size)))
    size = p.stat().st_size
    ranges = _metadata_ranges(chunks, size)
    payload = _encode(ranges)
    if _HEADER.size + len(payload) > USERBLOCK_BYTES:
        return False
    with open(p, "r+b") as fp:
        digest = _digest(fp, size, payload, ranges)
        fp.seek(0)
        fp.write(_HEADER.pack(SEAL_MAGIC, digest, size, len(ranges), len(payload)) + payload)
    return True


def check_seal(path: PathLike) -> bool:
    """``True`` if ``path`` carries a seal matching its bytes (never raises on bad input)."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(USERBLOCK_BYTES)
            if len(head) < _HEADER.size or not head.startswith(SEAL_MAGIC):
                return False
            _, digest, size, n, n_payload = _HEADER.unpack_from(head)
            if size != os.fstat(fp.fileno()).st_size or not 0 < n <= MAX_RANGES or \
                    _HEADER.size + n_payload > len(head):
                return False
            payload = head[_HEADER.size:_HEADER.size + n_payload]
            ranges = _decode(payload, n)
            if any(length <= 0 or start + length > size for start, length in ranges):
                return False
            return _digest(fp, size, payload, ranges) == digest
    except (OSError, ValueError, zlib.error, OverflowError):
        return False


# --------------------------------------------------------------------------------------------
# Probe (a forked child touches what the reader will touch)
# --------------------------------------------------------------------------------------------


def _walk(path: Path, mark: Callable[[str], None]) -> None:
    """Touch every attribute, dataset header, chunk index and the first/last rows of ``path``.

    ``mark(text)`` is called before each step, and with ``"!<step>\t<error>"`` after a step
    that raised; every step is tried whatever the earlier ones gave.
    """
    import h5py

    def step(label: str, fn: Callable[[], Any]) -> Any:
        mark(label)
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            mark(f"!{label}\t{text}")
            return None

    def attrs(obj: h5py.HLObject, prefix: str) -> None:
        names = step(f"{prefix}attributes", lambda: list(obj.attrs)) or []
        for name in names:
            label = f"{prefix}{name}" if prefix else f"attribute {name}"
            step(label, partial(_read_attr, obj, name))

    f = step("file", lambda: h5py.File(path, "r"))
    if f is None:
        return
    attrs(f, "")
    names = step("root group", lambda: list(f)) or []
    for name in names:
        obj = step(f"dataset {name}", partial(f.get, name))
        if not isinstance(obj, h5py.Dataset):
            continue
        step(f"dataset {name}", partial(_dataset_header, obj))
        attrs(obj, f"{name}.")
        step(f"dataset {name}", partial(_chunk_index, obj))
        step(f"dataset {name}", partial(_first_last_rows, obj))


def _read_attr(obj: Any, name: str) -> Any:
    return name in obj.attrs, obj.attrs[name]


def _dataset_header(ds: Any) -> Any:
    return ds.shape, ds.dtype, ds.chunks, ds.compression, ds.compression_opts, ds.shuffle, \
        ds.fillvalue


def _chunk_index(ds: Any) -> None:
    if ds.chunks:
        ds.id.chunk_iter(lambda info: None)


def _first_last_rows(ds: Any) -> None:
    row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.float64))
    if ds.ndim and ds.shape[0] and row_bytes <= PROBE_ROW_BYTES:
        ds[:1], ds[-1:]


def _probe_child(path: Path, w: int, timeout: float) -> None:
    """Body of the forked child; never returns."""
    code = 0
    try:
        faulthandler.disable()  # a crash here is expected and reported by the parent
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(timeout) + 2)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

        def mark(text: str) -> None:
            os.write(w, (text + "\n").encode("utf-8", "replace"))

        _walk(path, mark)
        mark("done")
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def _fork_child(path: Path, w: int, timeout: float) -> int:
    """Fork holding h5py's global lock, so no other thread is inside HDF5 at the fork."""
    from h5py._objects import phil

    with phil:
        pid = os.fork()
    if pid == 0:
        _probe_child(path, w, timeout)
    return pid


def probe(path: PathLike, timeout: float | None = None) -> None:
    """Open and walk ``path`` in a forked child with a time limit.

    Raises:
        ShowerSetError: the child hung (killed after ``timeout`` seconds) or crashed, or HDF5
            could not read a part of the file, naming the file and the field. ``timeout``
            defaults to :func:`probe_timeout`.
    """
    p = Path(path)
    timeout = probe_timeout() if timeout is None else timeout
    r, w = os.pipe()
    try:
        pid = _fork_child(p, w, timeout)
    finally:
        os.close(w)
    log = bytearray()
    killed = False
    try:
        pidfd = os.pidfd_open(pid)
        with selectors.DefaultSelector() as sel:
            sel.register(pidfd, selectors.EVENT_READ)
            sel.register(r, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            done = False
            while not done:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                for key, _ in sel.select(left):
                    if key.fd == r:
                        chunk = os.read(r, 65536)
                        if chunk:
                            log += chunk
                        else:
                            sel.unregister(r)
                    else:
                        done = True
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        while chunk := os.read(r, 65536):
            log += chunk
    finally:
        os.close(r)
    lines = log.decode("utf-8", "replace").splitlines()
    if lines and lines[-1] == "done" and not killed and os.WIFEXITED(status) \
            and os.WEXITSTATUS(status) == 0:
        errors = [line[1:].split("\t", 1) for line in lines if line.startswith("!")]
        if errors:  # reading it again in-process would only repeat these (and their cost)
            field, text = errors[0] if len(errors[0]) == 2 else (errors[0][0], "?")
            if field == "file":
                raise ShowerSetError(f"{p}: not a readable HDF5 file (truncated, corrupt or "
                                     f"another format): {text}", path=p)
            raise ShowerSetError.bad_field(p, field, "readable HDF5 data",
                                           f"{text} (file truncated or corrupt?)")
        return
    field = next((line for line in reversed(lines) if not line.startswith("!")), "file")
    if killed:
        what = f"HDF5 did not finish reading it within {timeout:g} s (corrupt metadata?)"
    elif os.WIFSIGNALED(status):
        what = (f"HDF5 crashed reading it (signal {signal.Signals(os.WTERMSIG(status)).name}; "
                f"corrupt metadata?)")
    else:
        what = f"the probe process failed (exit status {os.WEXITSTATUS(status)})"
    raise ShowerSetError(f"{p}: field '{field}': not a readable ShowerSet: {what}",
                         path=p, field=field)


def ensure_openable(path: PathLike, timeout: float | None = None) -> None:
    """Return if ``path`` can be opened in-process without risk of a hang or a crash.

    A sealed file (see :func:`check_seal`) returns at once; any other file is probed.

    Raises:
        ShowerSetError: the probe hung, crashed or could not read a part of the file.
    """
    if not check_seal(path) and can_probe():
        probe(path, timeout)


def can_probe() -> bool:
    """Whether this system can probe a file in a forked child (Linux >= 5.3: ``fork`` and
    ``pidfd_open``); elsewhere unsealed files are opened without the probe."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and _pidfd_works()


def _pidfd_works() -> bool:
    global _PIDFD_OK
    if _PIDFD_OK is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _PIDFD_OK = True
        except OSError:
            _PIDFD_OK = False
    return _PIDFD_OK


_PIDFD_OK: bool | None = None
