"""The official CaloChallenge quantities on showers small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calogen.geometry.calochallenge import calochallenge_binning
from calogen.geometry.voxels import LayeredVoxelGeometry, VoxelLayer
from calogen.metrics import calochallenge as cc
from calogen.metrics.distances import separation_power

# Layer 0: 2 radial bins (centres 1, 3 mm) x 4 angular bins (centres -3pi/4, -pi/4, pi/4, 3pi/4)
# Layer 5: 1 radial bin (centre 5 mm), not binned in angle.
GEO = LayeredVoxelGeometry("hand", (VoxelLayer(0, (0.0, 2.0, 4.0), 4),
                                    VoxelLayer(5, (0.0, 10.0), 1)))
GEO_RADIAL = LayeredVoxelGeometry("hand-r", (VoxelLayer(0, (0.0, 2.0, 4.0), 4),
                                             VoxelLayer(1, (0.0, 2.0, 4.0), 2)))
C = math.cos(math.pi / 4)


def _shower(layer0: dict[tuple[int, int], float], layer5: float = 0.0) -> np.ndarray:
    """Voxel vector from {(alpha_bin, r_bin): MeV} of layer 0 (index alpha * 2 + r)."""
    x = np.zeros(GEO.n_voxels)
    for (a, r), e in layer0.items():
        x[a * 2 + r] = e
    x[8] = layer5
    return x


def test_features_by_hand() -> None:
    # Shower 0: 2 MeV at (alpha pi/4, r 1) and 2 MeV at (alpha 3pi/4, r 3); 6 MeV in layer 5.
    # eta = r cos(alpha): 1*C and -3*C; phi = r sin(alpha): 1*C and 3*C.
    s0 = _shower({(2, 0): 2.0, (3, 1): 2.0}, 6.0)
    # Shower 1: layer 0 empty, 4 MeV in layer 5.
    s1 = _shower({}, 4.0)
    f = cc.compute_features(np.stack([s0, s1]), np.array([10.0, 8.0]), GEO)
    assert f.layer_ids == (0, 5) and f.alpha_layer_ids == (0,)
    np.testing.assert_allclose(f.e_tot, [10.0, 4.0])
    np.testing.assert_allclose(f.e_layer, [[4.0, 6.0], [0.0, 4.0]])
    # centres: eta (C - 3C)/2 = -C, phi (C + 3C)/2 = 2C; widths: half the distance, |4C|/2, |2C|/2
    np.testing.assert_allclose(f.ec_eta[:, 0], [-C, 0.0], atol=1e-12)
    np.testing.assert_allclose(f.ec_phi[:, 0], [2 * C, 0.0], atol=1e-12)
    np.testing.assert_allclose(f.width_eta[:, 0], [2 * C, 0.0], atol=1e-12)
    np.testing.assert_allclose(f.width_phi[:, 0], [C, 0.0], atol=1e-7)
    # sparsity: 1 - fraction of voxels above 0: layer 0 6/8 then 8/8; layer 5 0, 0
    np.testing.assert_allclose(f.sparsity, [[0.75, 0.0], [1.0, 0.0]])
    assert f.ec_r is None and f.width_r is None  # layer 5 is not binned in angle
    # thresholds count in the sparsity only
    g = cc.compute_features(np.stack([s0, s1]), np.array([10.0, 8.0]), GEO, threshold_mev=3.0)
    np.testing.assert_allclose(g.sparsity, [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(g.e_layer, f.e_layer)


def test_radial_features_by_hand() -> None:
    x = np.zeros((1, GEO_RADIAL.n_voxels))
    x[0, 0] = 1.0   # layer 0, r centre 1
    x[0, 1] = 3.0   # layer 0, r centre 3
    f = cc.compute_features(x, np.array([4.0]), GEO_RADIAL)
    assert f.ec_r is not None and f.width_r is not None
    # <r> = (1 + 9) / 4 = 2.5; <r^2> = (1 + 27) / 4 = 7; width sqrt(7 - 6.25) = sqrt(0.75)
    np.testing.assert_allclose(f.ec_r[0], [2.5, 0.0])
    np.testing.assert_allclose(f.width_r[0], [math.sqrt(0.75), 0.0])
    assert f.alpha_layer_ids == (0, 1)


def test_feature_vectors() -> None:
    s0 = _shower({(2, 0): 2.0, (3, 1): 2.0}, 6.0)
    e = np.array([10.0])
    f = cc.compute_features(s0[None], e, GEO)
    low = cc.low_level_input(s0[None], e)
    assert low.shape == (1, 1 + GEO.n_voxels)
    assert low[0, 0] == pytest.approx(1.0) and low[0, 1 + 4] == pytest.approx(20.0)
    normed = cc.low_level_normed_input(s0[None], f, GEO)
    assert normed.shape == (1, 1 + GEO.n_voxels + 2)
    assert normed[0, 1 + 4] == pytest.approx(0.5) and normed[0, 1 + 8] == pytest.approx(1.0)
    np.testing.assert_allclose(normed[0, -2:], np.log10([4.0 + 1e-8, 6.0 + 1e-8]))
    high = cc.high_level_input(f)
    # log10 E_inc, 2 layer energies, then eta, phi, widths of the one angle-binned layer
    np.testing.assert_allclose(high[0], [1.0, np.log10(4 + 1e-8), np.log10(6 + 1e-8),
                                         -C / 100, 2 * C / 100, 2 * C / 100, C / 100],
                               atol=1e-9)
    np.testing.assert_array_equal(cc.fpd_kpd_input(f), high)
    p = cc.prdc_input(s0[None])
    assert p[0, 0] == pytest.approx(-3.0) and p[0, 4] == pytest.approx(np.log10(2.0))


def test_official_dataset_and_features_shape() -> None:
    for name, n_alpha_layers, radial in (("1-photons", 2, False), ("1-pions", 4, False),
                                         ("2", 45, True)):
        geo = calochallenge_binning(name).geometry
        assert cc.official_dataset(geo) == name
        f = cc.compute_features(np.ones((3, geo.n_voxels)), np.full(3, 1e3), geo)
        assert f.ec_eta.shape == (3, n_alpha_layers)
        assert (f.ec_r is not None) is radial
    assert cc.official_dataset(GEO) is None


def test_separation_powers_official_binning() -> None:
    geo = calochallenge_binning("1-photons").geometry
    rng = np.random.default_rng(0)
    e_inc = np.repeat(cc.DS1_ENERGIES_MEV[:3], 40)
    ref = rng.exponential(5.0, size=(len(e_inc), geo.n_voxels)) * (e_inc[:, None] / 368 / 5)
    gen = ref * 1.2
    fr = cc.compute_features(ref, e_inc, geo)
    fg = cc.compute_features(gen, e_inc, geo)
    entries = cc.separation_powers(fr, fg, "1-photons", ref_cells=ref, gen_cells=gen)
    labels = [e.label for e in entries]
    # official order: Etot/Einc, E layers, EC Eta, EC Phi, Width Eta, Width Phi, per energy, cells
    assert labels[:6] == ["Etot / Einc", "E layer 0", "E layer 1", "E layer 2", "E layer 3",
                          "E layer 12"]
    assert labels[6:8] == ["EC Eta layer 1", "EC Eta layer 2"]
    assert "Etot / Einc at E = 256.0" in labels and "Voxel distribution" in labels
    assert labels.index("Voxel distribution") < labels.index("Sparsity layer 0")
    first = entries[0]
    edges = np.linspace(0.5, 1.5, 101)
    assert first.value == pytest.approx(separation_power(fr.e_tot / e_inc, fg.e_tot / e_inc,
                                                         bins=edges).value)
    # the official definition on density histograms
    h1, _ = np.histogram(fr.e_tot / e_inc, bins=edges, density=True)
    h2, _ = np.histogram(fg.e_tot / e_inc, bins=edges, density=True)
    h1, h2 = h1 * np.diff(edges), h2 * np.diff(edges)
    assert first.value == pytest.approx(0.5 * np.sum((h1 - h2) ** 2 / (h1 + h2 + 1e-16)))
    assert first.value > 0.5  # a 20 % scale is well separated
    same = cc.separation_powers(fr, fr, "1-photons")
    assert all(e.value == 0.0 for e in same)
    means = cc.group_means(entries)
    assert set(means) >= {"E total", "E layer", "EC eta", "width phi", "sparsity"}


def test_text_outputs() -> None:
    geo = calochallenge_binning("2").geometry
    f = cc.compute_features(np.ones((4, geo.n_voxels)), np.full(4, 1e3), geo)
    entries = cc.separation_powers(f, f, "2")
    text = cc.histogram_chi2_text(entries)
    lines = text.splitlines()
    assert lines[0].startswith("List of chi2 of the plotted histograms")
    assert lines[1] == "Etot / Einc: " and lines[2] == "0.0" and lines[3] == ""
    assert "EC R layer 0: " in lines
    assert cc.classifier_text(0.61234, 0.0456) == (
        "Final result of classifier test (AUC / JSD):\n0.6123 / 0.0456\n\n")
    assert cc.fpd_kpd_text(0.01, 0.002, 1e-4, 2e-5).splitlines() == [
        "FPD (x10^3): 10.0000 \u00b1 2.0000", "KPD (x10^3): 0.1000 \u00b1 0.0200"]


def test_uncalibrated_energies_get_their_own_range_not_an_empty_official_histogram() -> None:
    """Sampling-calorimeter energies (E_tot / E_inc ~ 0.03, far below the official 0.5-1.5)
    would fall outside every official bin and give separation 0 whatever the model."""
    geo = calochallenge_binning("1-photons").geometry
    rng = np.random.default_rng(1)
    e_inc = np.repeat(cc.DS1_ENERGIES_MEV[:3], 60)
    ref = rng.exponential(1.0, size=(len(e_inc), geo.n_voxels)) * (0.03 * e_inc[:, None] / 368)
    fr = cc.compute_features(ref, e_inc, geo)
    fg = cc.compute_features(ref * 1.3, e_inc, geo)
    entries = {e.label: e for e in cc.separation_powers(fr, fg, "1-photons")}
    total = entries["Etot / Einc"]
    assert not total.official and total.value > 0.5
    assert not entries["Etot / Einc at E = 256.0"].official
