import numpy as np
import pytest

from calogen.geometry import ZN, ZP
from calogen.particles import SPECIES, impact_point_cm
from calogen.physics.gun import (
    BEAM_ENERGY_PER_NUCLEON_GEV,
    ZN_GUN,
    ZP_GUN,
    GunConfig,
    ParticleGun,
)


@pytest.fixture(scope="module")
def zn_particles():
    return ParticleGun(ZN_GUN, ZN).sample(40_000, np.random.default_rng(1))


def test_species_mix_follows_the_configuration(zn_particles):
    total = sum(s.fraction for s in ZN_GUN.sources.values())
    for pdg in (22, 2112, 211):
        expected = ZN_GUN.sources[pdg].fraction / total
        assert np.mean(zn_particles.pdg == pdg) == pytest.approx(expected, abs=0.01)
    assert set(np.unique(zn_particles.pdg)) <= set(SPECIES)
    assert len(np.unique(zn_particles.pdg)) >= 18  # the ALICE set has 21 species


def test_conditions_are_physical(zn_particles):
    c = zn_particles.conditions.astype(np.float64)
    e, p, mass = c[:, 0], np.linalg.norm(c[:, 4:7], axis=1), c[:, 7] * 1e-3
    np.testing.assert_allclose(p**2 + mass**2, e**2, rtol=1e-4)
    for pdg in (2112, 211, 22):
        sel = zn_particles.pdg == pdg
        assert np.all(c[sel, 7] == np.float32(SPECIES[pdg].mass_mev))
        assert np.all(c[sel, 8] == SPECIES[pdg].charge)
    # Both sides, vertices with O2's spreads.
    assert 0.45 < np.mean(c[:, 6] > 0) < 0.55
    assert np.std(c[:, 3]) == pytest.approx(0.025, rel=0.05)
    assert np.std(c[:, 1]) == pytest.approx(4e-6, rel=0.05)


def test_spectator_neutrons_peak_at_the_beam_energy(zn_particles):
    e = zn_particles.conditions[zn_particles.pdg == 2112, 0]
    near_beam = np.abs(e - BEAM_ENERGY_PER_NUCLEON_GEV) < 0.3 * BEAM_ENERGY_PER_NUCLEON_GEV
    assert near_beam.mean() == pytest.approx(ZN_GUN.sources[2112].spectator_fraction, abs=0.05)
    photons = zn_particles.conditions[zn_particles.pdg == 22, 0]
    assert np.median(photons) < 1.0  # most photons are soft (PHYSICS.md)


def test_impact_points_lie_on_the_face(zn_particles):
    x, y, sx, sy = impact_point_cm(zn_particles.conditions)
    limit = 7.04 / 2 + ZN_GUN.impact_margin_cm + 1e-3
    assert np.abs(x).max() <= limit and np.abs(y).max() <= limit
    spect = (zn_particles.pdg == 2112) & (zn_particles.conditions[:, 0] > 2000)
    assert np.std(x[spect]) == pytest.approx(0.8, rel=0.1)
    assert np.abs(sx).max() < 1e-3


def test_zp_gun_uses_the_zp_face():
    parts = ParticleGun(ZP_GUN, ZP).sample(5000, np.random.default_rng(2))
    x, y, _, _ = impact_point_cm(parts.conditions)
    assert np.abs(x).max() > 6.0  # the long side (22.4 cm) is horizontal
    assert np.abs(y).max() <= 6.0 + ZP_GUN.impact_margin_cm + 1e-3


def test_seeded_and_reproducible():
    g = ParticleGun(ZN_GUN, ZN)
    a = g.sample(100, np.random.default_rng(5))
    b = g.sample(100, np.random.default_rng(5))
    c = g.sample(100, np.random.default_rng(6))
    assert np.array_equal(a.conditions, b.conditions) and np.array_equal(a.pdg, b.pdg)
    assert not np.array_equal(a.conditions, c.conditions)


def test_config_round_trip_and_validation():
    assert GunConfig.from_dict(ZN_GUN.to_dict()) == ZN_GUN
    bad = ZN_GUN.to_dict()
    bad["sources"] = {"999": {"fraction": 1, "e_min_gev": 1, "e_max_gev": 2, "power": 1}}
    with pytest.raises(ValueError, match="unknown PDG code 999"):
        GunConfig.from_dict(bad)
    bad = ZN_GUN.to_dict()
    bad["beam_energy"] = 1.0
    with pytest.raises(ValueError, match="unknown keys"):
        GunConfig.from_dict(bad)
