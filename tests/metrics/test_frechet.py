"""Fréchet distance, FPD and KPD against closed forms and limiting cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import iqr

from calogen.metrics.frechet import _mmd2_unbiased, fpd, frechet_distance, independent_columns, kpd


def test_frechet_distance_diagonal_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    fd = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert fd == pytest.approx(np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2), rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_for_general_covariances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = (np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2)
           - 2.0 * np.trace(np.real(sqrtm(c1 @ c2))))
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)


def test_frechet_distance_identical_and_singular() -> None:
    c = np.array([[1.0, 1.0], [1.0, 1.0]])  # rank 1
    assert frechet_distance([1.0, 2.0], c, [1.0, 2.0], c) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance([0.0, 0.0], np.zeros((2, 2)), [3.0, 4.0], np.zeros((2, 2))) == 25.0


def test_fpd_identical_samples_near_zero() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(20_000, 5))
    res = fpd(ref, ref.copy(), seed=0)
    assert res.n_values.shape == (10,) and res.fd_means.shape == (10,)
    assert res.n_values.min() == 10_000 and res.n_values.max() == 20_000
    assert np.all(np.diff(1.0 / res.n_values) < 0)  # evenly spaced in 1/N, decreasing
    # the bootstrap noise FD(N) ~ b/N (~1e-4 here) is extrapolated away: a ~ 0
    assert res.fd_means[0] > 5e-5
    assert res.value < 0.5 * res.fd_means.min()
    assert res.value < 3.0 * res.error + 1e-6  # consistent with 0 within its fit error
    json.dumps(res.to_dict())


def test_fpd_independent_samples_of_one_distribution_small() -> None:
    rng = np.random.default_rng(1)
    ref, gen = rng.normal(size=(20_000, 5)), rng.normal(size=(20_000, 5))
    # two finite data sets of 20k differ by ~ (2k + k(k+1)/2) / N / max|x|^2 ~ 1e-4
    assert fpd(ref, gen, seed=0).value < 3e-4


def test_fpd_shift_detected_and_matches_closed_form() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(20_000, 3))
    gen = rng.normal(size=(20_000, 3)) + np.array([0.5, 0.0, 0.0])
    res = fpd(ref, gen, seed=0)
    scale = np.abs(ref).max(axis=0)
    expected = (0.5 / scale[0]) ** 2  # mean shift only, in scaled units
    assert res.value == pytest.approx(expected, rel=0.1)
    assert res.error >= 0.0 and res.error < 0.1 * res.value


def test_fpd_small_data_shrinks_range() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(300, 4))
    gen = rng.normal(size=(250, 4)) + 3.0
    res = fpd(ref, gen, n_points=5, n_bootstrap=5)
    assert res.n_values.max() == 250 and res.n_values.min() == 125
    assert np.isfinite(res.value) and res.value > 0.05
    same = fpd(ref, ref, min_n=100, max_n=100, n_bootstrap=4)  # no fit possible: mean FD
    assert np.isfinite(same.value) and np.isfinite(same.error)


def test_mmd2_moment_path_matches_explicit_kernel() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, (700, 4)), rng.uniform(-1, 1, (500, 4)) * 0.9
    k = (x @ x.T / 4 + 1) ** 4
    kyy = (y @ y.T / 4 + 1) ** 4
    kxy = (x @ y.T / 4 + 1) ** 4
    explicit = ((k.sum() - np.trace(k)) / (700 * 699) + (kyy.sum() - np.trace(kyy)) / (500 * 499)
                - 2 * kxy.mean())
    assert _mmd2_unbiased(x, y, moments=True) == pytest.approx(explicit, rel=1e-8)
    assert _mmd2_unbiased(x, y, moments=False) == pytest.approx(explicit, rel=1e-8)


def test_kpd_identical_near_zero_and_shift_clearly_positive() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(10_000, 6))
    same = kpd(ref, rng.normal(size=(10_000, 6)), n_batches=10, batch_size=2000)
    assert abs(same.value) < 3 * same.error + 1e-6
    shifted = kpd(ref, rng.normal(size=(10_000, 6)) + 0.3, n_batches=10, batch_size=2000)
    assert shifted.value > 10 * max(same.error, abs(same.value))
    assert shifted.value > 5 * shifted.error
    json.dumps(shifted.to_dict())


def test_kpd_deterministic_per_seed() -> None:
    rng = np.random.default_rng(6)
    ref, gen = rng.normal(size=(500, 3)), rng.normal(size=(400, 3))
    a, b = kpd(ref, gen, seed=3), kpd(ref, gen, seed=3)
    assert a.value == b.value and a.error == b.error


def test_kpd_error_is_jetnet_half_iqr() -> None:
    """JetNet 0.2.5: error = scipy.stats.iqr(batch values, rng=(16.275, 83.725)) / 2."""
    rng = np.random.default_rng(7)
    ref, gen = rng.normal(size=(400, 3)), rng.normal(size=(400, 3)) + 0.1
    res = kpd(ref, gen, n_batches=10, batch_size=50, seed=1)
    vals = res.batch_values
    assert res.value == float(np.median(vals))
    assert res.error == pytest.approx(iqr(vals, rng=(16.275, 83.725)) / 2, rel=1e-12, abs=0)
    # differs from half the 16-84 % spread for 10 batches
    q16, q84 = np.percentile(vals, [16.0, 84.0])
    assert res.error != pytest.approx(0.5 * (q84 - q16), rel=1e-9, abs=0)


def test_independent_columns_drop_exact_combinations_only() -> None:
    rng = np.random.default_rng(8)
    parts_r = rng.poisson(40, size=(3000, 5)).astype(np.float64)
    parts_g = rng.poisson(45, size=(2500, 5)).astype(np.float64)

    def vec(p: np.ndarray) -> np.ndarray:  # parts, their sum, noise, a zero column
        return np.column_stack([p, p.sum(axis=1), rng.normal(size=len(p)), np.zeros(len(p))])

    r, g = vec(parts_r), vec(parts_g)
    np.testing.assert_array_equal(independent_columns(r, g), [0, 1, 2, 3, 4, 6])
    g_broken = g.copy()
    g_broken[:, 5] += 1.0  # not a sum in the generated set: kept, the difference must count
    g_broken[:, 7] = 1.0
    np.testing.assert_array_equal(independent_columns(r, g_broken), np.arange(8))
    few = rng.normal(size=(6, 12))  # more columns than rows: no relation holds in the other set
    np.testing.assert_array_equal(independent_columns(few, rng.normal(size=(6, 12))),
                                  np.arange(12))
