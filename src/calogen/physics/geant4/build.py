"""Compile and load the engine's C++ library (``cxx/*.cc``) at first use.

The library is built from the project's own sources with the system C++ compiler (``$CXX`` or
``g++``/``c++``) into a per-user cache, named after the hash of the sources, the flags and the
compiler's version, so an edit or another compiler builds a new one. The build goes to a
temporary name and is renamed when complete. It is not linked against Geant4: it is loaded with
``RTLD_GLOBAL`` after :func:`calogen.physics.geant4.environment.import_geant4`, whose symbols it
uses.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from calogen.atomic import remove_stale_temporaries, temp_sibling
from calogen.physics.geant4.environment import cache_root, import_geant4

SOURCE_DIR = Path(__file__).with_name("cxx")
"""The C++ sources and the declarations they use."""

FLAGS: tuple[str, ...] = ("-std=c++17", "-O2", "-fPIC", "-shared", "-Wall")
"""Compiler flags (no Geant4 headers, no link against the module)."""

LIBRARY_STEM = "libcalogen_g4"


class CompilerNotFoundError(RuntimeError):
    """No C++ compiler to build the Geant4 engine's library."""


def find_compiler() -> list[str]:
    """The compiler command: ``$CXX`` when set, else ``g++``, else ``c++`` on ``PATH``;
    :class:`CompilerNotFoundError` naming what to install otherwise."""
    cxx = os.environ.get("CXX")
    candidates = [cxx] if cxx else ["g++", "c++"]
    for candidate in candidates:
        command = shlex.split(candidate)
        if command and shutil.which(command[0]):
            return command
    tried = f"CXX={cxx!r}" if cxx else "g++ and c++ on PATH"
    raise CompilerNotFoundError(
        f"the Geant4 engine compiles a small C++ library at first use and found no C++ compiler "
        f"(tried {tried}): install one (Debian/Ubuntu: apt-get install g++; Fedora: dnf install "
        f"gcc-c++; conda: conda install gxx_linux-64) or set CXX to its path")


def compiler_version(command: list[str]) -> str:
    """The first line of ``<compiler> --version``."""
    try:
        out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CompilerNotFoundError(f"the C++ compiler {shlex.join(command)!r} does not run "
                                    f"({exc}): install g++ or set CXX") from None
    return out.splitlines()[0] if out else "unknown"


def sources() -> list[Path]:
    """The files the library is built from (sources and declarations), sorted."""
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".cc", ".hh"))


def build_key(command: list[str]) -> str:
    """Hash of the sources, the flags and the compiler version (16 hex digits)."""
    digest = hashlib.sha256()
    for path in sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(" ".join(FLAGS).encode() + b"\0" + compiler_version(command).encode())
    return digest.hexdigest()[:16]


def library_path(command: list[str] | None = None) -> Path:
    """Where the library for the current sources and compiler lives in the cache."""
    command = command or find_compiler()
    return cache_root() / "lib" / f"{LIBRARY_STEM}-{build_key(command)}.so"


def build_library(force: bool = False) -> Path:
    """Compile the library into the cache unless it is there (or ``force``); its path.

    ``CompilerNotFoundError`` without a compiler; ``RuntimeError`` with the compiler's output
    when compilation fails.
    """
    command = find_compiler()
    target = library_path(command)
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = temp_sibling(target)
    cc_files = [str(p) for p in sources() if p.suffix == ".cc"]
    cmd = [*command, *FLAGS, f"-I{SOURCE_DIR}", *cc_files, "-o", str(tmp)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"building the Geant4 engine library failed ({shlex.join(cmd)}):\n"
                               f"{result.stderr.strip()[-4000:]}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


_LIBRARY: ctypes.CDLL | None = None


def load_library() -> ctypes.CDLL:
    """Import Geant4 offline, build the library if needed and load it (once per process)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return _LIBRARY
    import_geant4()
    lib = ctypes.CDLL(str(build_library()), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    _declare(lib)
    if lib.cg4_layout_check() != 1:
        raise RuntimeError("the Geant4 engine library does not match this Geant4 build (G4Step "
                           "layout check failed): the engine supports geant4-pybind==0.1.3")
    _LIBRARY = lib
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    dp = ctypes.POINTER(ctypes.c_double)
    lp = ctypes.POINTER(ctypes.c_long)
    sig: dict[str, tuple[object, list[object]]] = {
        "cg4_layout_check": (ctypes.c_int, []),
        "cg4_configure_em": (None, []),
        "cg4_construct_particles": (None, []),
        "cg4_construct_em": (None, []),
        "cg4_configure_hadronic": (None, []),
        "cg4_construct_hadronic": (None, []),
        "cg4_install_scoring": (ctypes.c_int, [ctypes.c_char_p]),
        "cg4_set_frame": (None, [dp, dp, dp]),
        "cg4_set_voxel_scorer": (None, [ctypes.c_int, ctypes.c_double, ctypes.c_int,
                                        ctypes.c_double, ctypes.c_int]),
        "cg4_set_fibre_scorer": (None, [ctypes.c_int, ctypes.c_int, ctypes.c_double,
                                        ctypes.c_double, ctypes.c_double, ctypes.c_double]),
        "cg4_end_event": (None, []),
        "cg4_set_point_scorer": (None, [dp, ctypes.c_int, ctypes.c_double]),
        "cg4_begin_event": (None, [lp, dp]),
        "cg4_event_totals": (None, [dp]),
        "cg4_point_count": (ctypes.c_int, []),
        "cg4_point_copy": (None, [dp]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
