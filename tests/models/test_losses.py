"""Reconstruction losses: the squared error in log1p space and the Poisson likelihood of the
photon counts, whose optimum is the mean count (the squared error's is not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import poisson

from calogen.models.nn.losses import reconstruction_loss


def test_mse_is_the_pixel_sum_of_squares() -> None:
    x = torch.zeros(2, 1, 3, 3)
    x_hat = torch.full((2, 1, 3, 3), 0.5)
    assert torch.allclose(reconstruction_loss(x_hat, x, "mse"), torch.tensor([2.25, 2.25]))


def test_poisson_matches_scipy_log_pmf() -> None:
    counts = np.array([[0, 3, 7], [1, 0, 12]])
    rates = np.array([[0.4, 2.5, 9.0], [1.1, 0.2, 10.0]])
    x = torch.log1p(torch.as_tensor(counts, dtype=torch.float32))[:, None]
    x_hat = torch.log1p(torch.as_tensor(rates, dtype=torch.float32))[:, None]
    expected = -poisson.logpmf(counts, rates).sum(axis=1)
    got = reconstruction_loss(x_hat, x, "poisson").numpy()
    assert got == pytest.approx(expected, abs=0.01)  # the loss floors rates at 1e-3 in the log


def test_poisson_optimum_is_the_mean_count_and_mse_is_biased_low() -> None:
    """Fit one constant to counts drawn with a large spread: the Poisson loss recovers the mean
    count; the log1p squared error lands well below it (Jensen)."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.lognormal(np.log(50.0), 0.8, 4000)).astype(np.float32)
    x = torch.log1p(torch.as_tensor(counts))[:, None, None, None]
    fitted = {}
    for kind in ("mse", "poisson"):
        y = torch.tensor(3.0, requires_grad=True)
        opt = torch.optim.Adam([y], lr=0.05)
        for _ in range(600):
            opt.zero_grad()
            reconstruction_loss(y.expand_as(x), x, kind).mean().backward()
            opt.step()
        fitted[kind] = float(torch.expm1(y.detach()))
    assert fitted["poisson"] == pytest.approx(counts.mean(), rel=0.02)
    assert fitted["mse"] < 0.85 * counts.mean()


def test_unknown_loss_rejected() -> None:
    with pytest.raises(ValueError, match="mse"):
        reconstruction_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "l1")
