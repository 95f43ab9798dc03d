"""W1, batched W1, separation power and correlation differences against known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calogen.metrics.distances import (
    batched_w1,
    channel_wasserstein,
    correlation_difference,
    separation_power,
    wasserstein_1d,
)


def test_w1_gaussian_shift_equals_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, 200_000)
    for mu in (0.5, -1.5):
        b = rng.normal(mu, 1.0, 200_000)
        assert wasserstein_1d(a, b) == pytest.approx(abs(mu), abs=0.02)


def test_w1_gaussian_width_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, 200_000)
    sigma = 2.0
    b = rng.normal(0.0, sigma, 200_000)
    expected = abs(sigma - 1.0) * math.sqrt(2.0 / math.pi)
    assert wasserstein_1d(a, b) == pytest.approx(expected, abs=0.02)


def test_channel_wasserstein_per_channel_and_mean() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(100.0, 10.0, (50_000, 5))
    shifts = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    gen = rng.normal(100.0, 10.0, (50_000, 5)) + shifts
    res = channel_wasserstein(ref, gen)
    assert res.per_channel.shape == (5,)
    np.testing.assert_allclose(res.per_channel, shifts, atol=0.25)
    assert res.mean == pytest.approx(float(res.per_channel.mean()))
    json.dumps(res.to_dict())


def test_channel_wasserstein_rejects_column_mismatch_and_nan() -> None:
    with pytest.raises(ValueError, match="columns"):
        channel_wasserstein(np.zeros((10, 5)), np.zeros((10, 4)))
    bad = np.zeros((10, 5))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        channel_wasserstein(np.zeros((10, 5)), bad)


def test_batched_w1_identical_distributions_near_zero() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(5.0, 3.0, (20_000, 4))
    gen = rng.normal(5.0, 3.0, (20_000, 4))
    res = batched_w1(ref, gen, n_batches=10, seed=0)
    assert res.mean.shape == (4,) and res.std.shape == (4,)
    assert res.batch_size == 2000
    # finite-sample W1 of two batches of 2000 standard normals is ~ 0.03; 0.06 is far above it
    assert np.all(res.mean < 0.06)
    assert np.all(res.std < 0.03)


def test_batched_w1_shift_in_reference_std_units() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(0.0, 2.0, (20_000, 2))
    gen = rng.normal(0.0, 2.0, (20_000, 2)) + np.array([1.0, 0.0])
    res = batched_w1(ref, gen, seed=1)
    # standardised with the reference std 2: a shift of 1 becomes 0.5
    assert res.mean[0] == pytest.approx(0.5, abs=0.05)
    assert res.mean[1] < 0.06
    assert res.mean[0] > 5 * res.mean[1]


def test_batched_w1_deterministic_and_constant_feature_safe() -> None:
    rng = np.random.default_rng(5)
    ref = np.column_stack([rng.normal(size=1000), np.full(1000, 3.0)])
    gen = np.column_stack([rng.normal(size=1000), np.full(1000, 3.5)])
    a, b = batched_w1(ref, gen, seed=7), batched_w1(ref, gen, seed=7)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert np.all(np.isfinite(a.mean))
    assert a.mean[1] == pytest.approx(0.5)  # constant feature only centred, scale 1


def test_batched_w1_too_few_rows() -> None:
    with pytest.raises(ValueError, match="batches"):
        batched_w1(np.zeros((5, 1)), np.zeros((5, 1)), n_batches=10)


def test_separation_power_identical_is_zero() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=5000)
    assert separation_power(x, x.copy()).value == pytest.approx(0.0, abs=1e-12)
    y = rng.normal(size=200_000)
    z = rng.normal(size=200_000)
    assert separation_power(y, z, bins=30).value < 1e-3


def test_separation_power_disjoint_is_one() -> None:
    a = np.linspace(0.0, 1.0, 100)
    b = np.linspace(2.0, 3.0, 100)
    edges = np.linspace(0.0, 3.0, 31)
    assert separation_power(a, b, bins=edges).value == pytest.approx(1.0)
    # with reference bins the generated set is entirely out of range: S = 1, counted
    res = separation_power(a, b, bins=10)
    assert res.value == 1.0
    assert res.gen_above == 100 and res.gen_out_of_range_fraction == 1.0
    assert separation_power(a, b, bins=10, overflow=True).value == pytest.approx(1.0)


def test_separation_power_counts_out_of_range_exactly() -> None:
    ref = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    gen = np.array([-2.0, -1.0, 0.0, 0.5, 4.0, 4.0001, 7.0])
    res = separation_power(ref, gen, bins=4)
    np.testing.assert_allclose(res.edges, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert (res.gen_below, res.gen_above) == (2, 2)
    assert (res.ref_below, res.ref_above) == (0, 0)
    np.testing.assert_array_equal(res.gen_counts, [2, 0, 0, 1])
    np.testing.assert_array_equal(res.ref_counts, [1, 1, 1, 2])
    assert res.gen_out_of_range_fraction == pytest.approx(4 / 7)
    # S by hand: h1 = [.2,.2,.2,.4], h2 = [2/3, 0, 0, 1/3]
    h1 = np.array([0.2, 0.2, 0.2, 0.4])
    h2 = np.array([2 / 3, 0.0, 0.0, 1 / 3])
    assert res.value == pytest.approx(0.5 * np.sum((h1 - h2) ** 2 / (h1 + h2)))
    d = res.to_dict()
    json.dumps(d)
    assert d["gen_below"] == 2 and d["gen_out_of_range_fraction"] == pytest.approx(4 / 7)


def test_separation_power_quantile_range_counts_reference_tails() -> None:
    ref = np.arange(101, dtype=float)
    res = separation_power(ref, ref, bins=10, range_quantiles=(0.1, 0.9))
    assert res.ref_below == 10 and res.ref_above == 10
    assert res.value == pytest.approx(0.0)


def test_separation_power_constant_reference() -> None:
    ref = np.full(100, 7.0)
    res = separation_power(ref, np.full(50, 7.0))
    assert res.value == pytest.approx(0.0)
    assert np.all(np.isfinite(res.edges)) and res.edges[0] < 7.0 < res.edges[-1]
    res2 = separation_power(ref, np.full(50, 100.0))
    assert res2.value == 1.0 and res2.gen_above == 50


def test_correlation_difference_known_pair() -> None:
    rng = np.random.default_rng(8)
    n = 100_000
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    ref = rng.multivariate_normal([0.0, 0.0], cov, n)
    gen = rng.normal(size=(n, 2))
    res = correlation_difference(ref, gen)
    assert res.ref_corr[0, 1] == pytest.approx(0.8, abs=0.01)
    assert res.gen_corr[0, 1] == pytest.approx(0.0, abs=0.01)
    assert res.frobenius == pytest.approx(0.8 * math.sqrt(2.0), abs=0.02)
    np.testing.assert_allclose(res.ref_corr, np.corrcoef(ref, rowvar=False), atol=1e-10)


def test_correlation_difference_constant_column_no_nan() -> None:
    rng = np.random.default_rng(9)
    x = np.column_stack([rng.normal(size=500), np.ones(500), rng.normal(size=500)])
    res = correlation_difference(x, x)
    assert np.all(np.isfinite(res.ref_corr))
    np.testing.assert_allclose(np.diag(res.ref_corr), 1.0)
    assert res.ref_corr[0, 1] == 0.0 and res.ref_corr[1, 2] == 0.0
    assert res.frobenius == pytest.approx(0.0, abs=1e-12)
    json.dumps(res.to_dict())
