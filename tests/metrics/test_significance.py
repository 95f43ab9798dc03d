"""Resampled nulls and p-values (arXiv:2409.16336)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calogen.metrics.distances import wasserstein_1d
from calogen.metrics.significance import p_value, resampled_null, two_sample_test


def test_p_value_formula_and_direction() -> None:
    null = np.arange(19, dtype=float)  # 0..18
    assert p_value(100.0, null) == pytest.approx(1 / 20)
    assert p_value(-1.0, null) == pytest.approx(1.0)
    assert p_value(9.0, null) == pytest.approx((1 + 10) / 20)
    assert p_value(-1.0, null, larger_is_worse=False) == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match="empty"):
        p_value(1.0, np.array([]))


def test_resampled_null_subsets_disjoint_and_sized() -> None:
    ref = np.arange(100, dtype=float)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        seen.append((a.copy(), b.copy()))
        return float(a.mean() - b.mean())

    null = resampled_null(stat, ref, 30, 40, n_resamples=15, seed=1)
    assert null.shape == (15,) and null.dtype == np.float64
    for a, b in seen:
        assert a.size == 30 and b.size == 40
        assert not set(a.tolist()) & set(b.tolist())
    assert len({tuple(a.tolist()) for a, _ in seen}) == 15  # different draws each time


def test_resampled_null_2d_rows_and_halves_fallback() -> None:
    ref = np.arange(60, dtype=float).reshape(30, 2)
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        shapes.append((a.shape, b.shape))
        assert not set(a[:, 0].tolist()) & set(b[:, 0].tolist())
        return 0.0

    resampled_null(stat, ref, 25, 25, n_resamples=3)  # 50 > 30 rows: halves of 15
    assert shapes == [((15, 2), (15, 2))] * 3


def test_resampled_null_deterministic() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=500)
    a = resampled_null(wasserstein_1d, ref, 100, 100, seed=4)
    b = resampled_null(wasserstein_1d, ref, 100, 100, seed=4)
    np.testing.assert_array_equal(a, b)


def test_two_sample_test_far_and_compatible() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=4000)
    far = two_sample_test(wasserstein_1d, ref, rng.normal(size=4000) + 1.0, n_resamples=30)
    assert far.p_value == pytest.approx(1 / 31)
    assert far.value > far.null_mean + 10 * far.null_std
    same = two_sample_test(wasserstein_1d, ref, rng.normal(size=4000), n_resamples=30, seed=2)
    assert same.p_value > 0.05
    assert (same.n_a, same.n_b) == (2000, 2000)
    json.dumps(same.to_dict())
