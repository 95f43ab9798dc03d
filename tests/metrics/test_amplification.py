"""Amplification (arXiv:2008.06545) on toys whose answer is known: a generator that is the true
distribution is worth as many events as it draws, one that memorises its training set is worth
no more than the training set, and a biased one saturates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calogen.metrics.amplification import QuantileBins, amplification

N_TRUTH = 400_000
N_TRAIN = 200
SHAPE = 2.0


def draw(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    return rng.gamma(SHAPE, scale, size=n)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return draw(np.random.default_rng(0), N_TRUTH)


@pytest.fixture(scope="module")
def bins(truth: np.ndarray) -> QuantileBins:
    return QuantileBins.from_truth(truth)


def test_bins_hold_equal_truth_probability(bins: QuantileBins) -> None:
    assert bins.n_bins == 50
    assert bins.probabilities.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(bins.probabilities, 1 / 50, rtol=1e-3)


@pytest.mark.parametrize("n", [100, 2000])
def test_expected_error_matches_independent_draws(bins: QuantileBins, n: int) -> None:
    rng = np.random.default_rng(1)
    errors = [bins.error(draw(rng, n)) for _ in range(300)]
    assert np.mean(errors) == pytest.approx(bins.expected_error(n), rel=0.06)


def test_discrete_observable_merges_tied_bins() -> None:
    rng = np.random.default_rng(2)
    truth = rng.poisson(3.0, size=200_000).astype(float)
    b = QuantileBins.from_truth(truth, n_bins=50)
    assert 2 <= b.n_bins <= 12  # a handful of distinct values, no empty bin
    assert (b.probabilities > 0).all()
    errors = [b.error(rng.poisson(3.0, size=500)) for _ in range(300)]
    assert np.mean(errors) == pytest.approx(b.expected_error(500), rel=0.08)


def test_training_sample_is_worth_its_size(truth: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    ratios = [amplification(truth, draw(rng, N_TRAIN), draw(rng, N_TRAIN)).n_eff_train / N_TRAIN
              for _ in range(20)]
    assert 0.7 < float(np.median(ratios)) < 1.4


def test_true_generator_amplification_grows_with_m(truth: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    train = draw(rng, N_TRAIN)
    amps = {m: amplification(truth, train, draw(rng, m * N_TRAIN)).amplification
            for m in (10, 100)}
    assert 5 < amps[10] < 20  # n_eff ~ M
    assert 50 < amps[100] < 200
    assert amps[100] > 4 * amps[10]


def test_memorising_generator_has_no_amplification(truth: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    amps = []
    for _ in range(10):
        train = draw(rng, N_TRAIN)
        for m in (10, 100):
            generated = rng.choice(train, size=m * N_TRAIN, replace=True)
            amps.append(amplification(truth, train, generated).amplification)
    assert float(np.median(amps)) < 1.3
    assert max(amps) < 2.5


def test_biased_generator_amplification_saturates(truth: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    train = draw(rng, N_TRAIN)
    res = {m: amplification(truth, train, draw(rng, m * N_TRAIN, scale=1.03))
           for m in (10, 100, 1000)}
    assert res[1000].n_eff < 1.5 * res[100].n_eff  # a perfect generator would gain 10x
    assert res[1000].resolved and res[1000].n_eff < 0.25 * res[1000].n_generated


def test_effective_size_beyond_truth_resolution_is_infinite(bins: QuantileBins) -> None:
    assert bins.effective_size(0.0) == math.inf
    assert bins.effective_size(bins.expected_error(1000)) == pytest.approx(1000)


@pytest.mark.parametrize(("truth", "message"), [
    (np.full(1000, 3.0), "single value"),
    (np.array([1.0, np.nan] * 500), "NaN"),
    (np.ones((100, 2)), "1-D"),
    (np.arange(10.0), "at least 100"),
])
def test_bad_truth_is_refused(truth: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuantileBins.from_truth(truth)


def test_bad_generated_sample_is_named(truth: np.ndarray) -> None:
    with pytest.raises(ValueError, match="generated: expected finite"):
        amplification(truth, truth[:10], np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="train: expected at least 1"):
        amplification(truth, np.array([]), truth[:10])
    with pytest.raises(ValueError, match="n_bins"):
        QuantileBins.from_truth(truth, n_bins=1)
