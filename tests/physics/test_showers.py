import numpy as np
import pytest

from calogen.physics.materials import TUNGSTEN_ALLOY
from calogen.physics.showers import (
    HadronShowerModel,
    develop_showers,
    is_baryon_induced,
    mean_em_fraction,
)


def test_baryons_are_recognised_by_their_pdg_code():
    pdg = np.array([2112, 2212, 3122, 1000010020, 211, -211, 130, -2212, 22])
    assert is_baryon_induced(pdg).tolist() == [True] * 4 + [False] * 5


def test_baryon_e0_lowers_the_em_fraction_of_baryon_showers_only():
    e = np.array([20.0, 100.0, 1000.0])
    default = HadronShowerModel()
    groom = HadronShowerModel(fem_e0_baryon_gev=2.6)
    meson = mean_em_fraction(e, groom, np.zeros(3, dtype=bool))
    baryon = mean_em_fraction(e, groom, np.ones(3, dtype=bool))
    # Default: every species alike; Groom 2007: 1 - (E / 2.6 GeV)^(-0.18) for baryons.
    assert np.allclose(mean_em_fraction(e, default, np.ones(3, dtype=bool)), meson)
    assert np.allclose(baryon, 1 - (e / 2.6) ** -0.18)
    assert np.all(baryon < meson)


def _subshower_depths(model: HadronShowerModel, energy_gev: float, n: int = 400) -> np.ndarray:
    """Depths of the sub-shower starts after their event's first interaction, cm."""
    ones = np.ones(n)
    showers = develop_showers(
        kind=np.ones(n, dtype=np.int64), pdg=np.full(n, 2112, dtype=np.int64),
        energy_gev=energy_gev * ones, available_gev=energy_gev * ones,
        charged=np.zeros(n, dtype=bool), x_cm=0 * ones, y_cm=0 * ones, slope_x=0 * ones,
        slope_y=0 * ones, absorber=TUNGSTEN_ALLOY, depth_cm=1e6, model=model,
        photons_per_gev=1.0, halo_relative_yield=0.2, track_photons_per_cm=0.0,
        rng=np.random.default_rng(0))
    em, halo = showers.em, showers.halo
    halo_start = np.zeros(n)  # the halo starts at each event's first interaction
    halo_start[halo.event] = halo.z_start_cm
    return em.z_start_cm - halo_start[em.event]


@pytest.mark.parametrize(("exponent", "ratio_range"), [(0.0, (0.85, 1.15)), (0.3, (1.8, 2.6))])
def test_subshower_depth_grows_with_energy_by_the_exponent(exponent, ratio_range):
    """Mean delay scales as E^b: (1000 / 100)^0.3 = 2.0; no change at b = 0."""
    model = HadronShowerModel(subshower_delay_lambda=0.35, subshower_delay_exponent=exponent)
    low, high = _subshower_depths(model, 100.0), _subshower_depths(model, 1000.0)
    assert np.all(low >= 0) and np.all(high >= 0)
    lo, hi = ratio_range
    assert lo < high.mean() / low.mean() < hi
    expected = 0.35 * TUNGSTEN_ALLOY.lambda_int_cm * 100.0**exponent
    assert low.mean() == pytest.approx(expected, rel=0.15)
