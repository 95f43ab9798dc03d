"""calogen.physics.point_readout: the parametrised engine's ILD-like point clouds."""

from dataclasses import replace

import numpy as np
import pytest

from calogen.physics.geant4.detectors import get_detector
from calogen.physics.point_readout import _cluster, point_engine, simulate_points
from calogen.physics.stacks import (
    ILD_E_OVER_MIP,
    SILICON,
    TUNGSTEN,
    mip_sampling_fraction,
    slab_stack,
)

ILD = get_detector("ild")


@pytest.fixture(scope="module")
def config():
    return point_engine("ild")


@pytest.fixture(scope="module")
def photons(config):
    energy = np.array([10.0, 35.0, 60.0, 90.0])
    points, counts = simulate_points(np.full(4, 22), energy, config, np.random.default_rng(3))
    return energy, points.astype(np.float64), counts


def test_stack_follows_the_geant4_slab_detector(config):
    stack = config.stack
    assert len(stack.segments) == ILD.n_layers == 30
    assert np.allclose(stack.edges_mm, ILD.volume.layer_edges_mm)
    assert [s.layer_id for s in stack.segments] == list(range(30))
    # 20 layers of 2.1 mm W then 10 of 4.2 mm: thicker W, smaller Si share of a MIP's loss.
    thin, thick = stack.segments[0].response, stack.segments[25].response
    f21 = mip_sampling_fraction([(TUNGSTEN, 2.1), (SILICON, 0.5)], SILICON)
    f42 = mip_sampling_fraction([(TUNGSTEN, 4.2), (SILICON, 0.5)], SILICON)
    assert thin / thick == pytest.approx(f21 / f42, rel=1e-3)
    # By hand: Si 1.664 * 2.329 * 0.05 cm against W 1.145 * 19.30 * 0.21 cm.
    si, w = 1.664 * 2.329 * 0.05, 1.145 * 19.30 * 0.21
    assert f21 == pytest.approx(si / (si + w), rel=1e-9)
    with pytest.raises(ValueError, match="cannot hold"):
        slab_stack("bad", (0.0, 2.0), (2.1,), 0.5)


def test_clouds_inside_the_detector_on_si_middles_and_the_cluster_grid(config, photons):
    _, p, counts = photons
    assert counts.shape == (4,) and np.all(counts > 100) and counts.sum() == len(p)
    mids = np.array([0.5 * (a + b) for a, b in ILD.sensitive_edges_mm()])
    assert np.isclose(p[:, 2][:, None], mids[None], atol=1e-4).any(axis=1).all()
    assert np.all(np.abs(p[:, :2]) < ILD.half_width_mm) and np.all(p[:, 3] > 0)
    # One point per occupied cluster square of a layer; the square's corner is on the axis.
    shower = np.repeat(np.arange(4), counts)
    layer = config.volume.layer_of(p[:, 2])
    c = ILD.cluster_mm
    sq = np.floor(p[:, :2] / c).astype(np.int64)
    keys = np.stack([shower, layer, sq[:, 0], sq[:, 1]], axis=1)
    assert len(np.unique(keys, axis=0)) == len(p)


def test_clustering_by_hand():
    stack = slab_stack("exact", ILD.volume.layer_edges_mm, ILD.absorber_mm, ILD.sensitive_mm,
                       e_over_mip=1.0, sampling_term_gev=1e-7)  # no sampling fluctuations
    cfg = replace(point_engine("ild"), stack=stack)
    c = ILD.cluster_mm
    # Spots: two in one square of layer 0, one just left of the axis (another square), one in
    # layer 3, one beyond the half-width (lost), one in event 1 behind the stack (lost).
    event = np.array([0, 0, 0, 0, 0, 1])
    seg = np.array([0, 0, 0, 3, 0, 30])
    x = np.array([0.2 * c, 0.8 * c, -0.1, 1.0, ILD.half_width_mm + 1, 0.0])
    y = np.array([0.5 * c, 0.5 * c, 0.1, -2.0 * c - 0.1, 0.0, 0.0])
    e_in = np.array([0.001, 0.003, 0.002, 0.004, 0.001, 0.001])  # GeV
    points, counts = _cluster(event, seg, x, y, e_in, 2, cfg, np.random.default_rng(0))
    assert counts.tolist() == [3, 0]
    r0, r3 = stack.segments[0].response, stack.segments[3].response
    mid0 = ILD.sensitive_edges_mm()[0][0] + 0.25
    mid3 = ILD.sensitive_edges_mm()[3][0] + 0.25
    rows = sorted(points.astype(np.float64).tolist(), key=lambda r: (r[2], r[0]))
    expect = sorted([[-0.1, 0.1, mid0, 2.0 * r0],
                     [(0.2 * c * 1 + 0.8 * c * 3) / 4, 0.5 * c, mid0, 4.0 * r0],
                     [1.0, -2.0 * c - 0.1, mid3, 4.0 * r3]], key=lambda r: (r[2], r[0]))
    assert np.allclose(rows, expect, rtol=1e-4, atol=1e-5)


def test_energy_scale_follows_the_configured_sampling_fraction(config, photons):
    energy, p, counts = photons
    shower = np.repeat(np.arange(4), counts)
    response = config.stack.response[config.volume.layer_of(p[:, 2])]
    deposited = np.bincount(shower, weights=p[:, 3] / response) / (energy * 1e3)
    assert np.all((deposited > 0.85) & (deposited < 1.05))  # contained up to leakage
    visible = np.bincount(shower, weights=p[:, 3]) / energy
    assert np.all((visible > 22.0) & (visible < 34.0))  # MeV per GeV (Geant4: 28.0)
    # Doubling e/mip doubles every point's energy (same seed, same spots).
    double = replace(config, stack=slab_stack(
        "x2", ILD.volume.layer_edges_mm, ILD.absorber_mm, ILD.sensitive_mm,
        e_over_mip=2 * ILD_E_OVER_MIP))
    p2, c2 = simulate_points(np.full(4, 22), energy, double, np.random.default_rng(3))
    assert np.array_equal(c2, counts)
    assert np.allclose(p2[:, 3], 2 * p[:, 3], rtol=1e-5)


def test_seeded_reproducibility(config):
    e = np.array([20.0, 50.0])
    a = simulate_points(np.full(2, 22), e, config, np.random.default_rng(11))
    b = simulate_points(np.full(2, 22), e, config, np.random.default_rng(11))
    c = simulate_points(np.full(2, 22), e, config, np.random.default_rng(12))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_refuses_hadrons_and_bad_energies(config):
    with pytest.raises(ValueError, match="electromagnetic"):
        simulate_points(np.array([211]), np.array([10.0]), config, np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        simulate_points(np.array([22]), np.array([-1.0]), config, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown point detector"):
        point_engine("ds2")
