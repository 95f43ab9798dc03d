"""PRDC (Naeem et al. 2020): limiting cases, a dense brute-force cross-check, and chunking."""

from __future__ import annotations

import json

import numpy as np
import pytest

import calogen.metrics.prdc as prdc_mod
from calogen.metrics.prdc import prdc


def _brute_prdc(x: np.ndarray, y: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Dense PRDC for small inputs as the ``prdc`` package 0.2 defines it (open balls, float64
    distances, the (k+1)-th smallest distance within a set, itself included)."""
    dxx = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    dyy = np.sqrt(((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    dxy = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))  # (N, M)
    rx = np.sort(dxx, axis=1)[:, k]
    ry = np.sort(dyy, axis=1)[:, k]
    inside = dxy < rx[:, None]
    precision = inside.any(axis=0).mean()
    recall = (dxy < ry[None, :]).any(axis=1).mean()
    density = inside.sum() / (k * y.shape[0])
    coverage = (dxy.min(axis=1) < rx).mean()
    return float(precision), float(recall), float(density), float(coverage)


@pytest.mark.parametrize("d", [3, 80])  # 80 > 64: blocked k-NN path
def test_matches_dense_brute_force(d: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(d)
    x = rng.normal(size=(300, d))
    y = rng.normal(size=(240, d)) * 1.2 + 0.2
    expected = _brute_prdc(x, y, 5)
    # force many small blocks: the result must not depend on the chunking
    monkeypatch.setattr(prdc_mod, "_BLOCK_BYTES", 40 * 300 * 8)
    res = prdc(x, y, k=5)
    got = (res.precision, res.recall, res.density, res.coverage)
    np.testing.assert_allclose(got, expected, atol=1.5 / 240)
    assert (res.n_ref, res.n_gen, res.k) == (300, 240, 5)


@pytest.mark.parametrize(("d", "precision"), [(3, "float64"), (80, "float64"),
                                              (80, "float32")])
def test_exact_ties_counted_as_the_prdc_package(d: int, precision: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Small integer counts (as ZN photon counts): many distances tie exactly with a radius.

    Open balls exclude the ties (closed balls counted them: density +several %)."""
    rng = np.random.default_rng(10 + d)
    x = rng.poisson(0.4, size=(220, d)).astype(np.float64)
    y = rng.poisson(0.5, size=(200, d)).astype(np.float64)
    expected = _brute_prdc(x, y, 5)
    monkeypatch.setattr(prdc_mod, "_BLOCK_BYTES", 30 * 220 * 8)
    res = prdc(x, y, k=5, precision=precision)  # type: ignore[arg-type]
    assert (res.precision, res.recall, res.density, res.coverage) == expected


def test_all_rows_when_max_samples_is_none() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(1200, 3)), rng.normal(size=(1100, 3))
    res = prdc(x, y, max_samples=None)
    assert (res.n_ref, res.n_gen) == (1200, 1100)
    assert (res.precision, res.recall, res.density, res.coverage) == _brute_prdc(x, y, 5)


def test_blocks_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No block of distances larger than the configured bound is ever built."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 100)), rng.normal(size=(900, 100))
    sizes: list[int] = []
    original = prdc_mod._sq_dist_block

    def spy(a, sq_a, b, sq_b):  # type: ignore[no-untyped-def]
        out = original(a, sq_a, b, sq_b)
        sizes.append(out.nbytes)
        return out

    monkeypatch.setattr(prdc_mod, "_BLOCK_BYTES", 200_000)
    monkeypatch.setattr(prdc_mod, "_sq_dist_block", spy)
    prdc(x, y)
    assert sizes and max(sizes) <= 200_000
    assert len(sizes) > 3  # chunked: several blocks per pass


def test_identical_distributions_density_one_coverage_theory() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5000, 4)), rng.normal(size=(5000, 4))
    res = prdc(x, y, k=5)
    assert res.density == pytest.approx(1.0, abs=0.05)
    assert res.coverage == pytest.approx(1 - 2**-5, abs=0.015)
    assert res.precision > 0.9 and res.recall > 0.9
    json.dumps(res.to_dict())


def test_mode_collapse_low_recall_and_coverage() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 4))
    y = 0.05 * rng.normal(size=(3000, 4)) + 0.5  # everything near one point
    res = prdc(x, y, k=5)
    assert res.recall < 0.1 and res.coverage < 0.1
    assert res.precision > 0.9  # collapsed samples are still realistic


def test_shifted_generator_low_precision() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4))
    y = rng.normal(size=(3000, 4)) + 3.0
    res = prdc(x, y, k=5)
    assert res.precision < 0.2 and res.density < 0.2 and res.coverage < 0.2


def test_subsampling_is_seeded_and_reported() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3000, 3)), rng.normal(size=(2000, 3))
    a = prdc(x, y, max_samples=1000, seed=5)
    b = prdc(x, y, max_samples=1000, seed=5)
    assert a == b
    assert (a.n_ref, a.n_gen) == (1000, 1000)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="more than k"):
        prdc(np.zeros((4, 2)), np.zeros((10, 2)), k=5)
    with pytest.raises(ValueError, match="columns"):
        prdc(np.zeros((10, 2)), np.zeros((10, 3)))
