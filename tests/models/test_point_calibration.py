"""Calibrations of generated point clouds: the fits invert known distortions."""

from __future__ import annotations

import numpy as np
import pytest

from calogen.geometry.points import PointCloudVolume
from calogen.models.nn.point_calibration import (
    MAX_NUMBER_FACTOR,
    CogCalibration,
    LayerEnergyCalibration,
    NumberCalibration,
    PointCalibrations,
    RatioFit,
    cloud_statistics,
)

VOLUME = PointCloudVolume("v", (-10.0, 10.0), (-10.0, 10.0), (0.0, 5.0, 10.0),
                          cell_size_mm=(5.0, 5.0))


def test_number_calibration_inverts_a_known_distortion() -> None:
    """Data clouds of N points hit f(N) cells; the model's clouds of M points hit h(M): the
    calibrated count must make the model hit f(N) cells."""
    n = np.arange(50, 3000, 10).astype(float)
    f = 0.6 * n * (1 - n / 6000)
    m = np.arange(50, 6000, 10).astype(float)
    h = 0.4 * m * (1 - m / 30000)
    cal = NumberCalibration.fit(n, f, m, h)
    n_test = np.array([100.0, 700.0, 1500.0, 2500.0])
    got = cal(n_test).astype(float)
    np.testing.assert_allclose(0.4 * got * (1 - got / 30000), 0.6 * n_test * (1 - n_test / 6000),
                               rtol=0.02)
    assert not np.allclose(got, n_test, rtol=0.1)  # the distortion is large


def test_number_calibration_identity_and_round_trip() -> None:
    n = np.array([0, 1, 17, 4000])
    np.testing.assert_array_equal(NumberCalibration()(n), n)
    cal = NumberCalibration.fit([10, 20, 30, 40, 50], [9, 17, 24, 30, 35], [10, 20, 30, 40],
                                [5, 10, 14, 18])
    back = NumberCalibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(back(n), cal(n))


def test_ratio_fit_is_clipped_to_its_domain() -> None:
    fit = RatioFit.fit([1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 9.0, 16.0])
    np.testing.assert_allclose(fit([2.0, 100.0]), [4.0, 16.0], atol=1e-9)


def test_layer_energy_and_cog_fits_invert_distortions() -> None:
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 50.0, size=(400, 3))
    distorted = data * np.array([0.5, 2.0, 1.0])
    cal = LayerEnergyCalibration.fit(data, distorted)
    np.testing.assert_allclose(cal.factors, [2.0, 0.5, 1.0], rtol=1e-9)
    cog = rng.normal([1.0, -2.0], [3.0, 0.5], size=(500, 2))
    bent = cog * np.array([0.5, 2.0]) + np.array([4.0, 1.0])
    ccal = CogCalibration.fit(cog, bent)
    np.testing.assert_allclose(ccal(bent), cog, atol=1e-9)


def test_calibrations_round_trip_and_refuse_bad_input() -> None:
    cal = PointCalibrations(NumberCalibration(), LayerEnergyCalibration((1.0, 2.0)),
                            CogCalibration((1.0, 2.0), (0.5, 0.0)), True)
    assert PointCalibrations.from_dict(cal.to_dict(), 2) == cal
    with pytest.raises(ValueError, match="layer_energy"):
        PointCalibrations.from_dict(cal.to_dict(), 3)
    bad = cal.to_dict()
    bad["cog"]["scale"] = ["x", 1]
    with pytest.raises(ValueError, match="cog.scale"):
        PointCalibrations.from_dict(bad, 2)


def test_cloud_statistics_by_hand() -> None:
    points = np.array([
        [1.0, 1.0, 1.0, 0.06], [2.0, 2.0, 2.0, 0.06],   # one cell, 0.12 MeV: above 0.1
        [-6.0, 1.0, 7.0, 0.05],                          # alone below threshold
        [-1.0, -1.0, 12.0, 1.0],                         # beyond the layers: last layer
    ])
    stats = cloud_statistics(points, [3, 1, 0], VOLUME, threshold_mev=0.1)
    np.testing.assert_array_equal(stats.n_points, [3, 1, 0])
    np.testing.assert_array_equal(stats.n_cells, [1, 0, 0])
    np.testing.assert_allclose(stats.layer_energy, [[0.12, 0.05], [0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(stats.cog[0], [(0.06 + 0.12 - 0.3) / 0.17,
                                              (0.06 + 0.12 + 0.05) / 0.17])
    assert np.isnan(stats.cog[2]).all()


def test_number_calibration_is_bounded_for_collapsed_clouds() -> None:
    """A model whose clouds hit ~30x fewer cells than the data's (points collapsed onto a few
    cells, as a short consistency distillation gives): the calibration may not multiply the
    points by more than MAX_NUMBER_FACTOR (unbounded it asks for ~30x the points)."""
    n = np.arange(500, 4000, 50).astype(float)
    m = np.arange(500, 4000, 50).astype(float)
    cal = NumberCalibration.fit(n, 0.3 * n, m, m / 30)
    got = cal(np.array([1000.0, 2000.0]))
    np.testing.assert_array_equal(got, np.array([1000, 2000]) * MAX_NUMBER_FACTOR)
    unbounded = cal.cells(np.array([1000.0])) * cal.points_per_cell(cal.cells(np.array([1000.0])))
    assert unbounded[0] > 2 * MAX_NUMBER_FACTOR * 1000
