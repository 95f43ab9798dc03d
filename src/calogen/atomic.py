"""Atomic writes: write beside the target under a temporary name, rename when complete.

A killed or failing job therefore never leaves a half-written file or folder under the final
name. Every temporary name made here has the form ``.<name>.tmp-<pid>-<hex><suffix>`` beside
the target, so a later run on the same output can find what a killed run left behind and
remove it (:func:`remove_stale_temporaries`) without touching the temporaries of a run that is
still alive. Files and folders honour the user's umask (some writers, e.g. safetensors and
:func:`tempfile.mkdtemp`, create them ``0600`` / ``0700``; :func:`apply_umask` fixes that).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]

_TEMP_RE = re.compile(
    r"^\.(?P<name>.+?)\.(?:tmp|old)-(?P<pid>\d+)(?:-[0-9a-f]+(?:\..*)?)?$")
"""A temporary (``tmp``) or displaced (``old``) sibling made by this module (the random part
is optional: calogen <= 0.1 wrote some as ``.<name>.tmp-<pid>``)."""

_LEGACY_TEMP_RE = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<suffix>.*)$")
"""The temporary-file name of calogen <= 0.1 (``.<stem>.<pid>.<hex>.tmp<suffix>``)."""


# --------------------------------------------------------------------------------------------
# Names and permissions
# --------------------------------------------------------------------------------------------


def temp_sibling(path: PathLike, kind: str = "tmp") -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<kind>-<pid>-<hex><suffix>`` (the
    target's suffix is kept, so writers that look at the extension behave)."""
    out = Path(path)
    return out.with_name(f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}{out.suffix}")


def current_umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: PathLike) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have given it
    (``0o666`` / ``0o777`` minus the umask), recursively for a folder."""
    mask = current_umask()
    root = Path(path)
    if root.is_dir():
        for dirpath, _dirs, files in os.walk(root):
            os.chmod(dirpath, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(dirpath, name), 0o666 & ~mask)
    elif root.exists():
        os.chmod(root, 0o666 & ~mask)


# --------------------------------------------------------------------------------------------
# Debris of killed runs
# --------------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (conservative: ``True`` when it
    cannot be told)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _owner_pid(name: str, target: str) -> int | None:
    """The pid in a temporary sibling's name if it belongs to ``target``, else ``None``."""
    match = _TEMP_RE.match(name)
    if match and match.group("name") == target:
        return int(match.group("pid"))
    legacy = _LEGACY_TEMP_RE.match(name)
    if legacy and f"{legacy.group('stem')}{legacy.group('suffix')}" == target:
        return int(legacy.group("pid"))
    return None


def stale_temporaries(path: PathLike) -> list[Path]:
    """Temporary siblings of ``path`` left by processes that no longer exist."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        return []
    found = []
    for entry in parent.iterdir():
        pid = _owner_pid(entry.name, target.name)
        if pid is not None and not pid_alive(pid):
            found.append(entry)
    return sorted(found)


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Delete the temporary files and folders that killed runs left beside ``path``; the
    temporaries of live processes are kept. Returns what was removed."""
    removed = []
    for entry in stale_temporaries(path):
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # removed concurrently
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on normal exit it is renamed over
    ``path`` with the umask's permissions, on an exception deleted."""
    out = Path(path)
    tmp = temp_sibling(out)
    try:
        yield tmp
        if tmp.exists():
            apply_umask(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: PathLike, text: str, *, fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    return Path(path)


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def linux_libc_function(name: str) -> Any | None:
    """The C library's function ``name`` (errno kept for :func:`ctypes.get_errno`), or ``None``
    off Linux or where the C library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return getattr(libc, name)
    except (OSError, AttributeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; ``False`` when the
    system or the file system cannot."""
    renameat2 = linux_libc_function("renameat2")
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")


def replace_directory(new: PathLike, final: PathLike) -> None:
    """Put the complete folder ``new`` in place of ``final``.

    ``final`` is never absent: on Linux the two are exchanged in one system call and the old
    content deleted afterwards; elsewhere (or on file systems without the call) the old folder
    is renamed aside first, which leaves a short window (its name then starts with
    ``.<name>.old-``).
    """
    src, dst = Path(new), Path(final)
    if not dst.exists():
        os.replace(src, dst)
        return
    if _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # ``src`` now holds the old content
        return
    old = temp_sibling(dst, "old")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on normal exit it replaces ``path``
    (:func:`replace_directory`, umask permissions), on an exception it is deleted."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
        apply_umask(tmp)
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
