"""The Cox readout: log-normal fluctuation of expected counts, and its fit."""

import numpy as np
import pytest
import torch

from calogen.models.nn.rate_noise import RateNoise, fit_rate_noise, observable_distance


def test_sum_is_kept_and_fibre_variance_is_negative_binomial_like():
    g = torch.Generator().manual_seed(0)
    lam, s = 4.0, 0.6
    rate = torch.full((2_000, 400), lam)
    noise = RateNoise(a=s, b=0.0)
    noisy = noise.apply(rate, g)
    np.testing.assert_allclose(noisy.sum(1).numpy(), rate.sum(1).numpy(), rtol=1e-5)
    counts = torch.poisson(noisy, generator=g).double()
    assert counts.mean().item() == pytest.approx(lam, rel=0.01)
    # over many fibres the rescaling is ~1: the per-fibre variance of a Cox readout
    expected_var = lam + lam**2 * (np.exp(s * s) - 1.0)
    assert counts.var().item() == pytest.approx(expected_var, rel=0.05)


def test_inactive_noise_changes_nothing_and_spread_follows_the_sum():
    rate = torch.rand(5, 3, 3)
    assert RateNoise().apply(rate) is rate
    noise = RateNoise(a=1.0, b=-0.25)
    s = noise.spread(torch.tensor([0.5, 10.0, 1e4, 1e12]))
    np.testing.assert_allclose(s.numpy(), [1.0, 0.75, 0.0, 0.0], atol=1e-6)
    assert RateNoise(a=5.0).spread(torch.tensor([1.0])).item() == 2.0  # clipped at S_MAX


def test_dict_round_trip_and_bad_input():
    n = RateNoise(0.5, -0.1)
    assert RateNoise.from_dict(n.to_dict()) == n
    with pytest.raises(ValueError, match="rate_noise"):
        RateNoise.from_dict({"a": "x"})
    with pytest.raises(ValueError, match="finite"):
        RateNoise.from_dict({"a": float("nan"), "b": 0.0})


def _blobs(n: int, g: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    cx = 4 + 4 * torch.rand(n, 1, 1, generator=g)
    cy = 4 + 4 * torch.rand(n, 1, 1, generator=g)
    total = 10 ** (1 + 2 * torch.rand(n, 1, 1, generator=g))
    w = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0)
    return total * w / w.sum((1, 2), keepdim=True)


def _obs(x: np.ndarray) -> np.ndarray:
    f = x.reshape(len(x), -1)
    return np.column_stack([f.sum(1), f.max(1), (f > 0).sum(1)])


def test_fit_recovers_the_spread_that_made_the_reference():
    g = torch.Generator().manual_seed(1)
    rates = _blobs(3000, g)
    truth = RateNoise(0.75, 0.0)
    reference = _obs(torch.poisson(truth.apply(rates, g), generator=g).numpy())
    fitted, logs = fit_rate_noise(rates, reference, _obs, g)
    assert fitted.spread(torch.tensor([100.0])).item() == pytest.approx(0.75, abs=0.2)
    assert logs["distance_fitted"] < logs["distance_poisson"]
    # a Poisson reference is fitted with (almost) no noise
    plain = _obs(torch.poisson(rates, generator=g).numpy())
    fitted0, _ = fit_rate_noise(rates, plain, _obs, g)
    assert fitted0.spread(torch.tensor([100.0])).item() <= 0.25


def test_observable_distance_is_zero_for_identical_samples():
    x = np.random.default_rng(0).normal(size=(500, 3))
    assert observable_distance(x, x) == 0.0
    assert observable_distance(x, x + 1.0) == pytest.approx(1.0 / x.std(0).mean(), rel=0.2)
