import numpy as np
import pytest

from calogen.particles import species_of
from calogen.physics.gun import DETECTOR_DISTANCE_M, Particles


def make_particles(pdg: int, energy_gev: float, n: int, x_cm: float = 0.0,
                   y_cm: float = 0.0) -> Particles:
    """n identical particles of one species hitting the ZN face at (x_cm, y_cm), side A."""
    s = species_of(pdg)
    m = s.mass_mev * 1e-3
    p = np.sqrt(max(energy_gev**2 - m**2, 0.0))
    d = np.array([x_cm * 1e-2, y_cm * 1e-2, DETECTOR_DISTANCE_M])
    px, py, pz = p * d / np.linalg.norm(d)
    row = [energy_gev, 0.0, 0.0, 0.0, px, py, pz, s.mass_mev, s.charge]
    cond = np.tile(np.array(row, dtype=np.float32), (n, 1))
    return Particles(cond, np.full(n, pdg, dtype=np.int32))


@pytest.fixture
def particles_factory():
    return make_particles
