"""Import Geant4 (the ``geant4_pybind`` wheel) offline, without its data sets.

The wheel asks to download Geant4's data sets at import unless ``GEANT4_DATA_DIR`` is set (with
``CI=true`` it downloads without asking). The engine's physics lists read no data file, so every
data variable points to an empty stub folder in a per-user cache (``ENSDFSTATE`` holds an empty
``ENSDFSTATE.dat``: the nuclide table opens it at start-up). Variables the user set to an existing
folder are kept. The module is imported with ``RTLD_NOW | RTLD_GLOBAL`` so that the engine's C++
library (:mod:`calogen.physics.geant4.build`) resolves Geant4's symbols from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

MODULE = "geant4_pybind"
"""The Python module holding Geant4 (PyPI ``geant4-pybind==0.1.3``: Geant4 11.4.p01)."""

DATA_VARIABLES: tuple[str, ...] = (
    "G4ABLADATA", "G4ALPHAHPDATA", "G4CHANNELINGDATA", "G4DEUTERONHPDATA", "G4DICHROICDATA",
    "G4ENSDFSTATEDATA", "G4HE3HPDATA", "G4INCLDATA", "G4LEDATA", "G4LENDDATA",
    "G4LEVELGAMMADATA", "G4NEUTRONHPDATA", "G4NEUTRONXSDATA", "G4NUDEXLIBDATA",
    "G4PARTICLEHPDATA", "G4PARTICLEXSDATA", "G4PIIDATA", "G4PROTONHPDATA", "G4RADIOACTIVEDATA",
    "G4REALSURFACEDATA", "G4SAIDDATA", "G4SAIDXSDATA", "G4TRITONHPDATA",
)
"""Every data-set variable Geant4 11.4 reads."""

_ENSDF_FILE = "ENSDFSTATE.dat"


def cache_root() -> Path:
    """The per-user cache of the engine: ``$CALOGEN_CACHE`` or ``$XDG_CACHE_HOME/calogen`` or
    ``~/.cache/calogen``, then ``geant4``."""
    base = os.environ.get("CALOGEN_CACHE")
    if base:
        return Path(base) / "geant4"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "calogen" / "geant4"


def stub_data_dir() -> Path:
    """The folder of empty data-set stubs (created when missing)."""
    root = cache_root() / "data-stubs"
    for name in DATA_VARIABLES:
        (root / name).mkdir(parents=True, exist_ok=True)
    ensdf = root / "G4ENSDFSTATEDATA" / _ENSDF_FILE
    if not ensdf.exists():
        ensdf.touch()
    return root


def offline_environment() -> dict[str, str]:
    """Set ``GEANT4_DATA_DIR`` and every unset (or missing-folder) data variable to the stubs;
    returns the variables it set."""
    root = stub_data_dir()
    changed: dict[str, str] = {}
    current = os.environ.get("GEANT4_DATA_DIR")
    if not current or not Path(current).is_dir():
        changed["GEANT4_DATA_DIR"] = str(root)
    for name in DATA_VARIABLES:
        value = os.environ.get(name)
        if not value or not Path(value).is_dir():
            changed[name] = str(root / name)
    os.environ.update(changed)
    return changed


def available() -> bool:
    """Whether ``geant4_pybind`` is installed (without importing it)."""
    return MODULE in sys.modules or importlib.util.find_spec(MODULE) is not None


def import_geant4() -> ModuleType:
    """Import ``geant4_pybind`` offline (see the module docstring); ``ImportError`` naming the
    extra to install when it is missing."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    if not available():
        raise ImportError("the Geant4 engine needs geant4-pybind: pip install 'calogen[geant4]' "
                          "(geant4-pybind==0.1.3)")
    offline_environment()
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_GLOBAL)
    try:
        return importlib.import_module(MODULE)
    finally:
        sys.setdlopenflags(flags)
