"""The parametrised engine in the CaloChallenge geometries (calogen.physics.voxel_readout)."""

from dataclasses import replace

import numpy as np
import pytest

from calogen.geometry.calochallenge import calochallenge_binning
from calogen.physics.stacks import ATLAS_LIKE_BARREL, PAR04_WSI, W_SI
from calogen.physics.voxel_readout import (
    DS1_ENERGIES_GEV,
    DS23_THRESHOLD_MEV,
    SpotModel,
    simulate_voxels,
    spots_per_shower,
    voxel_engine,
)

DS2, DS2_GUN = voxel_engine("ds2")
PHOTONS, PHOTON_GUN = voxel_engine("ds1-photons")
PIONS, PION_GUN = voxel_engine("ds1-pions")


def _run(config, pdg, energy_gev, n, seed=0):
    rng = np.random.default_rng(seed)
    return simulate_voxels(np.full(n, pdg), np.full(n, float(energy_gev)), config, rng)


def _mean_depth_x0(showers, config):
    """Energy-weighted mean depth (X0 of the stack) of the layer centres."""
    stack = config.stack
    centres = 0.5 * (stack.edges_x0[:-1] + stack.edges_x0[1:])
    by_id = {s.layer_id: c for s, c in zip(stack.segments, centres, strict=True)}
    z = np.array([by_id[i] for i in config.geometry.layer_ids])
    le = config.geometry.layer_energies(showers)
    return float((le @ z).sum() / le.sum())


def test_par04_mixture_matches_the_pdg_rule():
    # 1.4 mm W + 0.3 mm Si: X0 4.22 mm, R_M 10.9 mm, E_c 8.2 MeV (benchmarks/geant4_validation).
    assert W_SI.x0_mm == pytest.approx(4.22, abs=0.01)
    assert W_SI.moliere_mm == pytest.approx(10.9, abs=0.1)
    assert W_SI.critical_energy_mev == pytest.approx(8.2, abs=0.1)
    assert PAR04_WSI.depth_x0 == pytest.approx(45 * 3.4 / 4.22, rel=0.01)
    z = np.array([0.0, 5.0, 77.7, 153.0])
    assert np.allclose(PAR04_WSI.x0_to_mm(PAR04_WSI.mm_to_x0(z)), z)


def test_atlas_like_stack_depths():
    stack = ATLAS_LIKE_BARREL
    ecal = [s for s in stack.segments if s.layer_id in (1, 2, 3)]
    assert sum(s.thickness_mm / s.medium.x0_mm for s in ecal) == pytest.approx(
        22.3 * np.cosh(0.225), rel=0.01)
    tile = [s for s in stack.segments if s.layer_id in (12, 13, 14)]
    assert sum(s.thickness_mm / s.medium.lambda_mm for s in tile) == pytest.approx(
        7.4 * np.cosh(0.225), rel=0.01)
    assert "no accordion" in stack.simplifications


@pytest.mark.parametrize("name,n_voxels", [("ds2", 6480), ("ds3", 40500),
                                           ("ds1-photons", 368), ("ds1-pions", 533)])
def test_shape_and_geometry_are_the_official_binning(name, n_voxels):
    config, gun = voxel_engine(name)
    dataset = name.removeprefix("ds")
    assert config.geometry == calochallenge_binning(dataset).geometry
    x = _run(config, gun.pdg, 20.0, 3)
    assert x.shape == (3, n_voxels) and x.dtype == np.float32
    assert np.all(x >= 0) and np.all(x.sum(axis=1) > 0)


def test_ds2_visible_energy_is_the_sampling_fraction():
    for energy in (5.0, 50.0):
        x = _run(DS2, 11, energy, 20)
        ratio = x.sum(axis=1) / (energy * 1e3)
        # 0.0323 in the whole detector; the readout radius (3.8 R_M) loses a few per cent.
        assert 0.029 < ratio.mean() < 0.0330, (energy, ratio.mean())


def test_ds1_photons_are_at_the_em_scale_and_pions_below():
    e = 65.536
    photons = _run(PHOTONS, 22, e, 40).sum(axis=1) / (e * 1e3)
    pions = _run(PIONS, 211, e, 40).sum(axis=1) / (e * 1e3)
    # Photons lose only the dead material in front; pions are non-compensating (e/h > 1).
    assert 0.9 < photons.mean() < 1.0
    assert 0.6 < pions.mean() < photons.mean() - 0.05
    assert pions.std() > 3 * photons.std()


def test_mean_depth_grows_like_ln_e():
    energies = np.array([2.0, 15.0, 110.0])
    depth = np.array([_mean_depth_x0(_run(DS2, 11, e, 20), DS2) for e in energies])
    slope = np.diff(depth) / np.diff(np.log(energies))
    # t_max = ln(E / E_c) - 0.5: one X0 per e-fold of energy.
    assert np.all(slope > 0.7) and np.all(slope < 1.3), slope


def test_photons_are_shallower_than_pions():
    e = 32.768
    assert (_mean_depth_x0(_run(PHOTONS, 22, e, 30), PHOTONS)
            < _mean_depth_x0(_run(PIONS, 211, e, 30), PIONS) - 5.0)
    pions = _run(PIONS, 211, e, 30)
    le = PIONS.geometry.layer_energies(pions)
    assert le[:, 4:].sum() > 0.3 * le.sum()  # the tile calorimeter sees a pion shower


def test_threshold_applied():
    x = _run(DS2, 11, 10.0, 10)
    assert np.all((x == 0) | (x >= DS23_THRESHOLD_MEV)) and (x > 0).any()
    raw = _run(replace(DS2, threshold_mev=0.0), 11, 10.0, 10)
    assert ((raw > 0) & (raw < DS23_THRESHOLD_MEV)).any()  # the threshold has work to do


def test_sparsity_and_resolution_improve_with_energy():
    low, high = _run(DS2, 11, 2.0, 30), _run(DS2, 11, 100.0, 30)
    assert (low > 0).mean() < 0.5 * (high > 0).mean()
    assert (low > 0).mean() < 0.1  # sparse, as CaloChallenge showers
    res = [x.sum(1).std() / x.sum(1).mean() for x in (low, high)]
    assert res[0] > 2 * res[1]


def test_spots_proportional_to_energy_and_capped():
    spots = SpotModel(spot_energy_gev=0.01, min_spots=10, max_spots=1000)
    n = spots_per_shower(np.array([0.01, 1.0, 2.0, 1e3]), spots)
    assert list(n) == [10, 100, 200, 1000]


def test_seeds_reproducible():
    a = _run(PIONS, 211, 8.192, 5, seed=3)
    b = _run(PIONS, 211, 8.192, 5, seed=3)
    c = _run(PIONS, 211, 8.192, 5, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_guns():
    rng = np.random.default_rng(0)
    e = PHOTON_GUN.draw(rng, 300)
    assert set(np.round(e, 6)) <= set(np.round(DS1_ENERGIES_GEV, 6)) and len(set(e)) > 10
    assert DS1_ENERGIES_GEV[0] == pytest.approx(0.256) and DS1_ENERGIES_GEV[-1] == pytest.approx(
        4194.304)
    e2 = DS2_GUN.draw(rng, 2000)
    assert e2.min() >= 1.0 and e2.max() <= 1000.0
    assert np.median(np.log10(e2)) == pytest.approx(1.5, abs=0.1)  # log-uniform
    assert (PHOTON_GUN.pdg, PION_GUN.pdg, DS2_GUN.pdg) == (22, 211, 11)


def test_bad_input():
    with pytest.raises(ValueError, match="energy_gev"):
        simulate_voxels(np.array([11]), np.array([-1.0]), DS2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown voxel detector"):
        voxel_engine("ds4")
