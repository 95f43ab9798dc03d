"""The built-in reference simulator: a parametrised (GFlash-style) stand-in for Geant4.

Layering: this package never imports torch. See :mod:`calogen.physics.simulator`.
"""

from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS
from calogen.physics.gun import (
    GunConfig,
    ParticleGun,
    Particles,
)
from calogen.physics.simulator import (
    SIMULATORS,
    STAND_IN_NOTE,
    ZN_SIMULATOR,
    ZP_SIMULATOR,
    SimulatorConfig,
    get_simulator,
    simulate_particles,
)

__all__ = [
    "CONDITION_COLUMNS", "CONDITION_UNITS", "GunConfig", "ParticleGun", "Particles",
    "SIMULATORS", "STAND_IN_NOTE", "ZN_SIMULATOR", "ZP_SIMULATOR", "SimulatorConfig",
    "get_simulator", "simulate_particles",
]
