"""Import and export the public ALICE ZDC ``.npz`` layout.

The public ZDC fast-simulation data (github.com/m-wojnar/zdc and the papers built on it) come as
two ``numpy.savez`` archives, each holding one array under the default key ``arr_0``:

* ``data_nonrandom_responses.npz``: ``(N, 44, 44)`` ZN photon-count images (``(N, 56, 30)`` ZP);
* ``data_nonrandom_particles.npz``: ``(N, 10)``: ``E, vx, vy, vz, px, py, pz, mass, charge``
  (GeV, m, m, m, GeV, GeV, GeV, MeV, e; ALICE O2 order) followed by the PDG code.

Any single-array archive (or ``.npy`` file) is accepted; with several arrays pass ``key``. Files
are read without ever unpickling: whole-array reads use ``np.load(..., allow_pickle=False)``,
and the (large) responses are streamed row-block by row-block straight from the archive member
by parsing its ``.npy`` header with :mod:`numpy.lib.format`; object arrays are refused.
"""

from __future__ import annotations

import os
import secrets
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from calogen import __version__
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


def _load_array(path: PathLike, key: str | None, what: str) -> tuple[np.ndarray, str]:
    """Load one array from an ``.npz``/``.npy`` file without unpickling; returns (array, key)."""
    p = Path(path)
    if not p.is_file():
        raise ShowerSetError(f"{p}: file not found (expected the {what} .npz file)", path=p)
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, NPZ_KEY
        with loaded:
            name = _select_key(list(loaded.files), key, p, what)
            return loaded[name], name
    except ShowerSetError:
        raise
    except ValueError as exc:  # np.load's answer to pickles and to non-numpy files
        raise ShowerSetError(f"{p}: {what}: not a readable numeric .npz/.npy array (pickled "
                             f"objects are refused): {exc}", path=p, field=what) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ShowerSetError(f"{p}: {what}: not a readable .npz/.npy file (truncated or "
                             f"corrupt?): {exc}", path=p, field=what) from None


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


class _NpyRowReader:
    """Read the rows of an array stored in an ``.npz`` member (or ``.npy`` file) in blocks.

    Parses the ``.npy`` header with :mod:`numpy.lib.format`, refuses object dtypes (which
    would need unpickling) and reads raw bytes block by block, so memory stays bounded.
    Fortran-ordered arrays cannot be streamed and are loaded whole instead.
    """

    def __init__(self, path: PathLike, key: str | None, what: str) -> None:
        self.path = Path(path)
        self._stack = ExitStack()
        self._whole: np.ndarray | None = None
        self._pos = 0
        try:
            self._fp = self._open_member(key, what)
            self.shape, self.dtype = self._read_header(what)
        except BaseException:
            self._stack.close()
            raise
        self.field = f"{what} array '{self.key}'"

    def _open_member(self, key: str | None, what: str) -> IO[bytes]:
        p = self.path
        if not p.is_file():
            raise ShowerSetError(f"{p}: file not found (expected the {what} .npz file)", path=p)
        try:
            if not zipfile.is_zipfile(p):
                self.key = NPZ_KEY
                return self._stack.enter_context(open(p, "rb"))
            archive = self._stack.enter_context(zipfile.ZipFile(p))
            members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
            self.key = _select_key(list(members), key, p, what)
            return self._stack.enter_context(archive.open(members[self.key]))
        except (OSError, zipfile.BadZipFile) as exc:
            raise ShowerSetError(f"{p}: not a readable .npz file: {exc}", path=p) from None

    def _read_header(self, what: str) -> tuple[tuple[int, ...], np.dtype]:
        p, fmt = self.path, np.lib.format
        try:
            version = fmt.read_magic(self._fp)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(self._fp)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(self._fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ShowerSetError(f"{p}: {what} array: not a readable .npy array: {exc}",
                                 path=p) from None
        if dtype.hasobject:
            raise ShowerSetError.bad_field(p, f"{what} array", "a numeric array",
                                           "pickled Python objects (refused)")
        if fortran and len(shape) > 1:
            self._whole = np.ascontiguousarray(_load_array(p, self.key, what)[0])
        return tuple(int(d) for d in shape), dtype

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` rows (fewer at the end)."""
        n = max(0, min(n, len(self) - self._pos))
        if self._whole is not None:
            out = self._whole[self._pos:self._pos + n]
        else:
            row_items = int(np.prod(self.shape[1:], dtype=np.int64))
            n_bytes = n * row_items * self.dtype.itemsize
            try:
                raw = self._fp.read(n_bytes)
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ShowerSetError(f"{self.path}: field '{self.field}': read failed at row "
                                     f"{self._pos}: {exc}", path=self.path,
                                     field=self.field) from None
            if len(raw) != n_bytes:
                raise ShowerSetError.bad_field(
                    self.path, self.field, f"{len(self)} rows as the header says",
                    f"the data ending near row {self._pos} (file truncated)")
            out = np.frombuffer(raw, dtype=self.dtype).reshape(n, *self.shape[1:])
        self._pos += n
        return out

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> _NpyRowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _temp_for(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _check_zdc_columns(ss: ShowerSet) -> None:
    meta = ss.meta
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
        ShowerSetError: the ShowerSet lacks the ZDC condition columns/units, or an output exists
            and ``overwrite`` is false.
    """
    r_out, p_out = Path(responses_out), Path(particles_out)
    _check_outputs(r_out, p_out, overwrite)
    r_tmp, p_tmp = _temp_for(r_out), _temp_for(p_out)
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
