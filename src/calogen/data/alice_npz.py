"""Import and export the public ALICE ZDC ``.npz`` layout.

The public ZDC fast-simulation data (github.com/m-wojnar/zdc and the papers built on it) come as
two ``numpy.savez`` archives, each holding one array under the default key ``arr_0``:

* ``data_nonrandom_responses.npz``: ``(N, 44, 44)`` ZN photon-count images (``(N, 56, 30)`` ZP);
* ``data_nonrandom_particles.npz``: ``(N, 10)``: ``E, vx, vy, vz, px, py, pz, mass, charge``
  (GeV, m, m, m, GeV, GeV, GeV, MeV, e; ALICE O2 order) followed by the PDG code.

Any single-array archive (or ``.npy`` file) is accepted; with several arrays pass ``key``. Files
are read by one header-checked reader (:class:`_NpyRowReader`), never by ``np.load``: it parses
the ``.npy`` header itself, accepts plain numeric dtypes only (nothing is ever unpickled), checks
the size the header claims against the bytes the file or zip member holds before allocating,
reads in bounded blocks, and turns any corruption into a :class:`ShowerSetError` naming the
file, the array and the expectation. The (large) responses are streamed row-block by row-block.
"""

from __future__ import annotations

import ast
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from calogen import __version__
from calogen.atomic import remove_stale_temporaries, temp_sibling
from calogen.data import schema as S
from calogen.data.errors import ShowerSetError
from calogen.data.showerset import (
    ShowerSet,
    ShowerSetWriter,
    validate_conditions,
    validate_pdg,
    validate_showers,
)
from calogen.data.split import condition_groups
from calogen.geometry import FibreGrid, get_grid

PathLike = str | os.PathLike[str]

NPZ_KEY = "arr_0"
"""Key under which ``numpy.savez`` stores an unnamed array (the public files use it)."""

N_PARTICLE_COLUMNS = len(S.ZDC_CONDITION_COLUMNS) + 1
"""Columns of a particles array: the 9 ZDC conditions then the PDG code."""

DEFAULT_BATCH_EVENTS = 8192
"""Events per block when streaming (44 x 44 float64 responses: about 127 MB)."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"
"""First bytes of every ``.npy`` file (numpy.lib.format)."""

MAX_HEADER_BYTES = 10_000
"""Longest ``.npy`` header accepted (numpy's own default ``max_header_size``)."""

MAX_NDIM = 32
"""Most dimensions accepted in a header."""

READ_BLOCK_BYTES = 1 << 20
"""Bytes read per call, so that memory grows only with data actually present."""

DEFLATE_MAX_RATIO = 1032
"""Largest expansion deflate (RFC 1951) can achieve: 258 bytes per 2-bit code, ~1032:1."""

_NUMERIC_DESCR = re.compile(r"[<>|=]?[biuf][0-9]{1,2}")
"""A plain numeric dtype string (``'<f8'``, ``'|u1'``, ``'<i4'``, ...)."""

_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
"""Member compressions accepted: those ``numpy.savez`` / ``numpy.savez_compressed`` write
(bzip2 and lzma would decompress without an output bound)."""

_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, ArithmeticError, LookupError, TypeError, RuntimeError,
    SyntaxError, MemoryError, struct.error, zlib.error, zipfile.BadZipFile,
    zipfile.LargeZipFile)
"""What zipfile, zlib, ast and numpy raise on corrupt bytes (RuntimeError covers zipfile's
NotImplementedError and RecursionError; ValueError covers UnicodeDecodeError)."""


@contextmanager
def _decoding(path: Path, field: str, expected: str) -> Iterator[None]:
    """Turn any failure of decoding a corrupt file into a :class:`ShowerSetError`."""
    try:
        yield
    except ShowerSetError:
        raise
    except _DECODE_ERRORS as exc:
        raise ShowerSetError.bad_field(path, field, expected,
                                       f"{type(exc).__name__}: {exc}") from None


def _read_upto(fp: IO[bytes], n_bytes: int, backed: int) -> NDArray[np.uint8]:
    """Read ``n_bytes`` (fewer at end of data) in blocks of at most :data:`READ_BLOCK_BYTES`.

    At most ``backed`` bytes (what the storage is known to hold) are allocated before data
    arrive; beyond that the buffer grows by doubling as data are actually read, so a size
    claimed by a header never allocates memory by itself.
    """
    buf = np.empty(min(n_bytes, max(backed, 0)), dtype=np.uint8)
    got = 0
    while got < n_bytes:
        if got == buf.size:  # realloc (no copy for large buffers); buf has no views here
            buf.resize(min(n_bytes, max(2 * got, READ_BLOCK_BYTES)), refcheck=False)
        with buf[got:got + READ_BLOCK_BYTES].data as part:
            n_read = fp.readinto(part)  # type: ignore[attr-defined]
        if not n_read:
            break
        got += n_read
    return buf[:got]


def _select_key(keys: list[str], key: str | None, path: Path, what: str) -> str:
    """Pick the archive member: ``key`` if given, else the only one."""
    if key is not None:
        if key not in keys:
            raise ShowerSetError.bad_field(path, f"{what} array '{key}'",
                                           f"a key among {keys}", "no such key")
        return key
    if len(keys) != 1:
        raise ShowerSetError.bad_field(path, f"{what} array", "exactly one array (or pass key=)",
                                       f"{len(keys)} arrays: {keys}")
    return keys[0]


class _NpyRowReader:
    """Read the rows of an array stored in an ``.npz`` member (or ``.npy`` file) in blocks.

    Parses the ``.npy`` header itself (``ast.literal_eval`` of a header of at most
    :data:`MAX_HEADER_BYTES`), accepts plain numeric dtypes only (object arrays, which would
    need unpickling, are refused), and checks the data size the header claims (shape x
    itemsize) against the bytes the file, or the zip member's declared size, holds after the
    header before anything is allocated. Data are read in bounded blocks and a short read is
    reported as truncation, so memory grows only with bytes actually present. Fortran-ordered
    arrays cannot be streamed and are read whole on the first :meth:`read`.
    """

    def __init__(self, path: PathLike, key: str | None, what: str) -> None:
        self.path = Path(path)
        self.key = NPZ_KEY
        self.field = f"{what} array"
        self._container = "file"
        self._backed = 0
        self._stack = ExitStack()
        self._whole: np.ndarray | None = None
        self._pos = 0
        try:
            self._fp, available = self._open(key, what)
            self.field = f"{what} array '{self.key}'"
            with _decoding(self.path, self.field, "a readable .npy header"):
                self.shape, self.dtype, self._fortran = self._read_header(available)
        except BaseException:
            self._stack.close()
            raise

    # -- opening --------------------------------------------------------------------------

    def _open(self, key: str | None, what: str) -> tuple[IO[bytes], int]:
        """Open the array's bytes; returns (stream, bytes the file/member holds)."""
        p = self.path
        if not p.is_file():
            raise ShowerSetError(f"{p}: file not found (expected the {what} .npz file)", path=p)
        with _decoding(p, f"{what} file", "a readable .npz archive or .npy file"):
            fp = self._stack.enter_context(open(p, "rb"))
            if fp.read(len(NPY_MAGIC)) == NPY_MAGIC:
                fp.seek(0)
                self._backed = os.fstat(fp.fileno()).st_size
                return fp, self._backed
            fp.seek(0)
            if not zipfile.is_zipfile(fp):
                raise ShowerSetError.bad_field(p, f"{what} file", "an .npz (zip) archive or an "
                                               ".npy file", "neither (unknown leading bytes)")
            archive = self._stack.enter_context(zipfile.ZipFile(fp))
            members = {i.filename.removesuffix(".npy"): i for i in archive.infolist()
                       if not i.is_dir()}
            self.key = _select_key(list(members), key, p, what)
            info = members[self.key]
            self.field = f"{what} array '{self.key}'"
            self._container = f"zip member '{info.filename}' (declared size)"
            self._check_member(info, os.fstat(fp.fileno()).st_size)
            self._backed = min(info.file_size, info.compress_size)
        with _decoding(p, self.field, f"a readable zip member '{info.filename}'"):
            return self._stack.enter_context(archive.open(info)), info.file_size

    def _check_member(self, info: zipfile.ZipInfo, archive_bytes: int) -> None:
        """Refuse members zipfile would fail on, or whose declared sizes cannot be true."""
        p, field, name = self.path, self.field, info.filename
        if info.flag_bits & 0x1:
            raise ShowerSetError.bad_field(p, field, f"an unencrypted zip member '{name}'",
                                           "an encrypted member")
        if info.compress_type not in _ZIP_METHODS:
            raise ShowerSetError.bad_field(
                p, field, f"zip member '{name}' stored or deflated (as numpy.savez writes)",
                f"compression method {info.compress_type}")
        if info.header_offset + info.compress_size > archive_bytes:
            raise ShowerSetError.bad_field(
                p, field, f"zip member '{name}' inside the {archive_bytes}-byte file",
                f"{info.compress_size} compressed bytes at offset {info.header_offset} "
                f"(file truncated?)")
        bound = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                      else DEFLATE_MAX_RATIO)
        if info.file_size > bound:
            raise ShowerSetError.bad_field(
                p, field, f"zip member '{name}' of at most {bound} bytes (what its "
                f"{info.compress_size} {_ZIP_METHODS[info.compress_type]} bytes can hold)",
                f"a declared size of {info.file_size} bytes")

    # -- header ---------------------------------------------------------------------------

    def _read_header(self, available: int) -> tuple[tuple[int, ...], np.dtype, bool]:
        """Parse the header; ``available``: bytes the file/member holds, header included."""
        p, field = self.path, self.field
        start = _read_upto(self._fp, len(NPY_MAGIC) + 2, len(NPY_MAGIC) + 2)
        if start.tobytes()[:len(NPY_MAGIC)] != NPY_MAGIC or start.size < len(NPY_MAGIC) + 2:
            raise ShowerSetError.bad_field(p, field, "an .npy array (magic \\x93NUMPY)",
                                           f"leading bytes {start.tobytes()!r}")
        version = (int(start[-2]), int(start[-1]))
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ShowerSetError.bad_field(p, field, ".npy format version 1.0, 2.0 or 3.0",
                                           f"version {version[0]}.{version[1]}")
        len_bytes = 2 if version[0] == 1 else 4
        raw_len = _read_upto(self._fp, len_bytes, len_bytes)
        header_len = int.from_bytes(raw_len.tobytes(), "little")
        data_start = start.size + len_bytes + header_len
        if raw_len.size < len_bytes or header_len > MAX_HEADER_BYTES or data_start > available:
            raise ShowerSetError.bad_field(
                p, field, f"an .npy header of at most {MAX_HEADER_BYTES} bytes within the "
                f"{available} bytes available", f"a header length of {header_len} bytes")
        raw = _read_upto(self._fp, header_len, header_len)
        if raw.size < header_len:
            raise ShowerSetError.bad_field(p, field, f"an .npy header of {header_len} bytes",
                                           f"{raw.size} bytes (truncated)")
        text = raw.tobytes().decode("utf-8" if version[0] >= 3 else "latin-1")
        header = ast.literal_eval(text)
        shape, dtype, fortran = self._check_header(header)
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > available - data_start:
            raise ShowerSetError.bad_field(
                p, field, f"at most {available - data_start} bytes of data (what the "
                f"{self._container} holds after its header)",
                f"a header claiming shape {shape} of {dtype}: {claimed} bytes")
        return shape, dtype, fortran

    def _check_header(self, header: object) -> tuple[tuple[int, ...], np.dtype, bool]:
        """(shape, dtype, fortran_order) of a parsed header, or the error naming what is wrong."""
        p, field = self.path, self.field
        keys = {"descr", "fortran_order", "shape"}
        if not isinstance(header, dict) or set(header) != keys:
            raise ShowerSetError.bad_field(p, field, f"an .npy header dict with keys "
                                           f"{sorted(keys)}", f"{header!r:.200}")
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        if isinstance(descr, str) and "O" in descr:
            raise ShowerSetError.bad_field(p, field, "a numeric array",
                                           "pickled Python objects (refused)")
        if not isinstance(descr, str) or not _NUMERIC_DESCR.fullmatch(descr):
            raise ShowerSetError.bad_field(p, field, "a numeric array (bool, int, uint or "
                                           "float dtype)", f"dtype {descr!r:.200}")
        dtype = np.dtype(descr)  # TypeError on sizes numpy lacks (e.g. '<f3'): caught
        if not isinstance(fortran, bool):
            raise ShowerSetError.bad_field(p, field, "fortran_order True or False",
                                           f"{fortran!r:.200}")
        if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise ShowerSetError.bad_field(p, field, f"a shape of at most {MAX_NDIM} "
                                           f"non-negative integers", f"{shape!r:.200}")
        return shape, dtype, fortran

    # -- data -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def _read_items(self, n_items: int, first_row: int, row_items: int) -> np.ndarray:
        """``n_items`` values from the stream, or a truncation error naming the row."""
        n_bytes = n_items * self.dtype.itemsize
        with _decoding(self.path, self.field, f"readable data from row {first_row}"):
            raw = _read_upto(self._fp, n_bytes, self._backed)
        if raw.size != n_bytes:
            row = first_row + raw.size // max(1, row_items * self.dtype.itemsize)
            raise ShowerSetError.bad_field(
                self.path, self.field, f"{len(self)} rows ({math.prod(self.shape)} values) "
                f"as the header says", f"the data ending near row {row} (file truncated)")
        return raw.view(self.dtype)

    def read_all(self) -> np.ndarray:
        """The whole array (call once, before any :meth:`read`)."""
        flat = self._read_items(math.prod(self.shape), 0, math.prod(self.shape[1:]))
        if self._fortran:
            return flat.reshape(self.shape[::-1]).transpose()
        return flat.reshape(self.shape)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` rows (fewer at the end)."""
        n = max(0, min(n, len(self) - self._pos))
        if self._fortran and len(self.shape) > 1:
            if self._whole is None:
                self._whole = np.ascontiguousarray(self.read_all())
            out = self._whole[self._pos:self._pos + n]
        else:
            row_items = math.prod(self.shape[1:])
            out = self._read_items(n * row_items, self._pos, row_items).reshape(
                n, *self.shape[1:])
        self._pos += n
        return out

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> _NpyRowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_array(path: PathLike, key: str | None, what: str) -> tuple[np.ndarray, str]:
    """Load one array from an ``.npz``/``.npy`` file without unpickling; returns (array, key).

    Goes through :class:`_NpyRowReader`, so sizes are checked before allocation and any
    corruption becomes a :class:`ShowerSetError`.
    """
    with _NpyRowReader(path, key, what) as reader:
        return reader.read_all(), reader.key


def read_alice_particles(path: PathLike, key: str | None = None
                         ) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
    """Read a particles array ``(N, 10)``: the 9 ZDC conditions then the PDG code.

    Args:
        path: ``.npz`` (or ``.npy``) file.
        key: archive member; ``None`` takes the only one.

    Returns:
        ``(conditions, pdg)``: ``(N, 9)`` float32 in the units of
        :data:`~calogen.data.schema.ZDC_CONDITION_UNITS` and ``(N,)`` int32 PDG codes.

    Raises:
        ShowerSetError: wrong shape, non-finite values or a non-integral PDG column.
    """
    arr, name = _load_array(path, key, "particles")
    field = f"particles array '{name}'"
    if arr.ndim != 2 or arr.shape[1] != N_PARTICLE_COLUMNS:
        raise ShowerSetError.bad_field(
            path, field,
            f"shape (N, {N_PARTICLE_COLUMNS}): {', '.join(S.ZDC_CONDITION_COLUMNS)}, pdg",
            f"shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ShowerSetError.bad_field(path, field, "a numeric array", f"dtype {arr.dtype}")
    for col, col_name in enumerate(S.ZDC_CONDITION_COLUMNS):
        validate_conditions(arr[:, col:col + 1], 1, path=path, field_name=f"{field} column "
                            f"{col} ({col_name})")
    conditions = arr[:, :-1].astype(np.float32)
    pdg = validate_pdg(arr[:, -1], arr.shape[0], path=path,
                       field_name=f"{field} column {N_PARTICLE_COLUMNS - 1} (pdg)")
    return conditions, pdg


def _grid(detector: str) -> FibreGrid:
    try:
        return get_grid(detector)
    except ValueError as exc:
        raise ShowerSetError(f"detector: {exc}", field="detector") from None


def read_alice_responses(path: PathLike, key: str | None = None, detector: str = "ZN"
                         ) -> NDArray[np.int32]:
    """Read a responses array ``(N, *grid.shape)`` of photon counts (loads it whole).

    Args:
        path: ``.npz`` (or ``.npy``) file.
        key: archive member; ``None`` takes the only one.
        detector: ``"ZN"`` (44 x 44) or ``"ZP"`` (56 x 30).

    Returns:
        ``(N, rows, cols)`` int32 photon counts.

    Raises:
        ShowerSetError: wrong shape, NaN/inf, negative or non-integral counts.
    """
    grid = _grid(detector)
    arr, name = _load_array(path, key, "responses")
    return validate_showers(arr, grid.shape, np.int32, path=path,
                            field_name=f"responses array '{name}'")


def _progress(enabled: bool, total: int, label: str) -> tuple[Callable[[int], None],
                                                              Callable[[], None]]:
    """(advance, stop) for an optional rich progress bar on stderr."""
    if not enabled:
        return (lambda n: None), (lambda: None)
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    bar.start()
    return (lambda n: bar.advance(task, n)), bar.stop


def import_alice_npz(
    responses_path: PathLike,
    particles_path: PathLike,
    out_path: PathLike,
    *,
    detector: str = "ZN",
    overwrite: bool = False,
    responses_key: str | None = None,
    particles_key: str | None = None,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    progress: bool = False,
) -> Path:
    """Convert a pair of ALICE ZDC ``.npz`` files into one ShowerSet (atomically).

    Responses are streamed in blocks of ``batch_events``; particles (small) are read whole.
    Rows with bitwise-identical conditions and PDG code get one ``condition_id``
    (:func:`~calogen.data.split.condition_groups`) so that splits can keep them together.

    Args:
        responses_path: ``(N, rows, cols)`` photon counts (integral, finite, ``>= 0``).
        particles_path: ``(N, 10)`` conditions + PDG code.
        out_path: the ShowerSet to write.
        detector: ``"ZN"`` or ``"ZP"`` (sets the expected image shape and the geometry).
        overwrite: replace an existing ``out_path``.
        responses_key, particles_key: archive members (``None``: the only one).
        batch_events: events per streamed block.
        progress: draw a progress bar on stderr.

    Returns:
        ``out_path``.

    Raises:
        ShowerSetError: bad shapes, values or lengths, naming the input file and field.
    """
    grid = _grid(detector)
    conditions, pdg = read_alice_particles(particles_path, particles_key)
    groups = condition_groups(conditions, pdg)
    with _NpyRowReader(responses_path, responses_key, "responses") as reader:
        _check_responses_header(reader, grid, conditions.shape[0], Path(particles_path))
        producer = {
            "name": "calogen.data.import_alice_npz",
            "version": __version__,
            "source_responses": str(Path(responses_path).resolve()),
            "source_particles": str(Path(particles_path).resolve()),
            "note": "imported from the public ALICE ZDC npz layout; condition_id groups rows "
                    "with identical conditions and PDG code",
        }
        with ShowerSetWriter(out_path, shower_shape=grid.shape, detector=grid.name,
                             geometry=grid.to_dict(), condition_columns=S.ZDC_CONDITION_COLUMNS,
                             condition_units=S.ZDC_CONDITION_UNITS, producer=producer,
                             shower_dtype=np.int32, shower_units="photons",
                             overwrite=overwrite) as writer:
            advance, stop = _progress(progress, len(reader), f"importing {reader.path.name}")
            try:
                _copy_responses(reader, writer, conditions, pdg, groups, grid, batch_events,
                                advance)
            finally:
                stop()
    return Path(out_path)


def _check_responses_header(reader: _NpyRowReader, grid: FibreGrid, n_particles: int,
                            particles_path: Path) -> None:
    if len(reader.shape) != 3 or reader.shape[1:] != grid.shape:
        raise ShowerSetError.bad_field(
            reader.path, reader.field, f"shape (N, {grid.shape[0]}, {grid.shape[1]}) for "
            f"{grid.name}", f"shape {reader.shape}")
    if reader.dtype.kind not in "biuf":
        raise ShowerSetError.bad_field(reader.path, reader.field, "a numeric array",
                                       f"dtype {reader.dtype}")
    if len(reader) != n_particles:
        raise ShowerSetError.bad_field(
            reader.path, reader.field,
            f"{n_particles} events (as many as particles in {particles_path})",
            f"{len(reader)}")


def _copy_responses(reader: _NpyRowReader, writer: ShowerSetWriter, conditions: np.ndarray,
                    pdg: np.ndarray, groups: np.ndarray, grid: FibreGrid, batch_events: int,
                    advance: Callable[[int], None]) -> None:
    for start in range(0, len(reader), batch_events):
        block = reader.read(batch_events)
        stop = start + block.shape[0]
        showers = validate_showers(block, grid.shape, np.int32, path=reader.path,
                                   field_name=reader.field, offset=start)
        writer.append(showers, conditions[start:stop], pdg[start:stop], groups[start:stop])
        advance(block.shape[0])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _write_npz_member(path: Path, shape: tuple[int, ...], dtype: np.dtype,
                      blocks: Iterator[np.ndarray]) -> None:
    """Write ``path`` as a compressed ``.npz`` with one array ``arr_0``, block by block.

    The result is what ``np.savez_compressed(path, arr_0=array)`` writes, but the array is
    never held in memory whole.
    """
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": shape}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        with zf.open(f"{NPZ_KEY}.npy", "w", force_zip64=True) as fp:
            np.lib.format.write_array_header_1_0(fp, header)
            for block in blocks:
                fp.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


def _check_zdc_columns(ss: ShowerSet) -> None:
    meta = ss.meta
    if meta.kind != "image":
        raise ShowerSetError.bad_field(
            ss.path, f"{S.ATTR_GEOMETRY}.kind", "ZDC images (the ALICE npz layout holds "
            "(N, 44, 44) ZN or (N, 56, 30) ZP responses)", f"{meta.kind}")
    if meta.condition_columns != S.ZDC_CONDITION_COLUMNS:
        raise ShowerSetError.bad_field(ss.path, "conditions.columns",
                                       f"the ZDC columns {list(S.ZDC_CONDITION_COLUMNS)}",
                                       str(list(meta.condition_columns)))
    if meta.condition_units != S.ZDC_CONDITION_UNITS:
        raise ShowerSetError.bad_field(ss.path, "conditions.units",
                                       f"the ZDC units {list(S.ZDC_CONDITION_UNITS)}",
                                       str(list(meta.condition_units)))


def _check_outputs(responses: Path, particles: Path, overwrite: bool) -> None:
    if responses.resolve() == particles.resolve():
        raise ShowerSetError(f"{responses}: the responses and particles outputs are the same "
                             f"file", path=responses)
    for out in (responses, particles):
        if not out.parent.is_dir():
            raise ShowerSetError(f"{out}: output directory {out.parent} does not exist",
                                 path=out)
        if out.exists() and not overwrite:
            raise ShowerSetError(f"{out}: file exists; refusing to overwrite it "
                                 f"(pass overwrite=True / --overwrite to replace it)", path=out)


def export_alice_npz(showerset_path: PathLike, responses_out: PathLike, particles_out: PathLike,
                     *, overwrite: bool = False, batch_events: int = DEFAULT_BATCH_EVENTS
                     ) -> tuple[Path, Path]:
    """Write a ZDC ShowerSet as the public ALICE npz pair (key ``arr_0``), atomically.

    Responses keep the stored dtype (int32 photon counts); particles are ``(N, 10)`` float64
    (float64 holds every int32 PDG code exactly, e.g. the deuteron 1000010020, which float32
    would not). Both files are written to temporary names and renamed when both are complete.

    Raises:
        ShowerSetError: the ShowerSet holds voxels or point clouds, lacks the ZDC condition
            columns/units, or an output exists and ``overwrite`` is false.
    """
    r_out, p_out = Path(responses_out), Path(particles_out)
    _check_outputs(r_out, p_out, overwrite)
    for out in (r_out, p_out):
        remove_stale_temporaries(out)  # left by a killed export
    r_tmp, p_tmp = temp_sibling(r_out), temp_sibling(p_out)
    try:
        with ShowerSet(showerset_path) as ss:
            _check_zdc_columns(ss)
            n = len(ss)
            _write_npz_member(r_tmp, (n, *ss.shower_shape), ss.meta.shower_dtype,
                              (b.showers for b in ss.iter_batches(batch_events)))
            particles = np.concatenate(
                [ss.conditions().astype(np.float64), ss.pdg().astype(np.float64)[:, None]],
                axis=1)
            _write_npz_member(p_tmp, particles.shape, particles.dtype, iter([particles]))
        os.replace(r_tmp, r_out)
        os.replace(p_tmp, p_out)
    finally:
        r_tmp.unlink(missing_ok=True)
        p_tmp.unlink(missing_ok=True)
    return r_out, p_out
