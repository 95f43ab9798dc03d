"""The Geant4 engine: data-free physics lists and C++ scoring on the geant4-pybind wheel.

Importing this package does not import Geant4; the first run does (offline, see
:mod:`calogen.physics.geant4.environment`) and compiles the C++ library
(:mod:`calogen.physics.geant4.build`).
"""

from calogen.physics.geant4.detectors import DETECTORS, get_detector
from calogen.physics.geant4.engine import (
    DEFAULT_CUT_MM,
    PHYSICS_LIST_CONTENT,
    PHYSICS_LISTS,
    EngineConfig,
    producer_info,
    readout_geometry,
    run_points,
    run_showers,
    run_totals,
)
from calogen.physics.geant4.environment import available

__all__ = [
    "DEFAULT_CUT_MM", "DETECTORS", "PHYSICS_LISTS", "PHYSICS_LIST_CONTENT", "EngineConfig",
    "available", "get_detector", "producer_info", "readout_geometry", "run_points", "run_showers",
    "run_totals",
]
