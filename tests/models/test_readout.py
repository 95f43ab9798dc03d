"""The fast exact Poisson readout (calogen.models.nn.readout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from calogen.models.nn.readout import LOW_RATE, poisson_counts

RATES = (1e-3, 0.01, LOW_RATE * 0.999, LOW_RATE, 0.3, 1.0, 5.0, 50.0)


def _chi2_pvalue(counts: np.ndarray, lam: float) -> float:
    """Goodness of fit of ``counts`` to Poisson(lam), bins merged to >= 20 expected."""
    n = counts.size
    top = int(stats.poisson.ppf(1 - 1e-9, lam)) + 1
    observed = np.bincount(np.minimum(counts, top), minlength=top + 1)[:top + 1].astype(float)
    expected = stats.poisson.pmf(np.arange(top + 1), lam) * n
    expected[-1] += stats.poisson.sf(top, lam) * n
    obs, exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 20:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e:
        obs[-1] += acc_o
        exp[-1] += acc_e
    if len(obs) < 2:  # one bin: compare the probability of 0 directly
        return 1.0
    return float(stats.chisquare(obs, exp).pvalue)


def test_counts_follow_the_poisson_law_for_each_rate() -> None:
    n = 100_000
    rate = torch.tensor(RATES, dtype=torch.float32).repeat(n, 1)   # every column one rate
    counts = poisson_counts(rate, torch.Generator().manual_seed(1)).numpy()
    assert counts.dtype == np.int32 and counts.shape == rate.shape
    for j, lam in enumerate(RATES):
        c = counts[:, j]
        lam32 = float(np.float32(lam))
        se = np.sqrt(lam32 / n)
        assert abs(c.mean() - lam32) < 5 * se, (lam, c.mean())
        assert abs(c.var() - lam32) < 6 * lam32 * np.sqrt(2 / n) + 5 * se, (lam, c.var())
        assert _chi2_pvalue(c, lam32) > 1e-4, lam
        p0 = (c == 0).mean()
        assert abs(p0 - np.exp(-lam32)) < 5 * np.sqrt(np.exp(-lam32) * (1 - np.exp(-lam32)) / n
                                                      + 1e-12), lam


def test_a_wrong_law_fails_the_same_check() -> None:
    """The check above catches a Bernoulli readout (counts capped at 1) at rate 0.3."""
    rng = np.random.default_rng(0)
    wrong = (rng.random(100_000) < 1 - np.exp(-0.3)).astype(np.int32)
    assert _chi2_pvalue(wrong, 0.3) < 1e-6


def test_fibres_are_independent() -> None:
    rate = torch.full((50_000, 2), 0.5)
    rate[:, 1] = 0.005
    c = poisson_counts(rate, torch.Generator().manual_seed(2)).numpy().astype(float)
    assert abs(np.corrcoef(c[:, 0], c[:, 1])[0, 1]) < 5 / np.sqrt(50_000)


def test_reproducible_for_a_seed_and_different_for_another() -> None:
    rate = torch.rand(64, 44, 44) ** 4 * 3
    a = poisson_counts(rate, torch.Generator().manual_seed(5))
    b = poisson_counts(rate, torch.Generator().manual_seed(5))
    c = poisson_counts(rate, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = poisson_counts(rate)
    torch.manual_seed(3)
    assert torch.equal(d, poisson_counts(rate))


def test_zero_negative_and_nan_rates_give_zero() -> None:
    rate = torch.zeros(2000, 44, 44)
    rate[:, 0, 0] = -1.0
    rate[:, 0, 1] = float("nan")
    counts = poisson_counts(rate, torch.Generator().manual_seed(0))
    assert counts.shape == (2000, 44, 44) and int(counts.abs().sum()) == 0
    assert poisson_counts(torch.zeros(0, 3)).shape == (0, 3)


@pytest.mark.parametrize("lam", [0.004, 0.3])
def test_low_and_high_routes_agree_on_the_mean(lam: float) -> None:
    """A low-rate route (< LOW_RATE) and the high one give unbiased totals over many
    fibres."""
    rate = torch.full((400, 1936), lam)
    total = float(poisson_counts(rate, torch.Generator().manual_seed(9)).sum())
    n = rate.numel()
    assert abs(total - n * lam) < 5 * np.sqrt(n * lam)


@pytest.mark.parametrize("q", [0.2, 0.6])
def test_other_selection_probabilities_keep_the_law(q: float) -> None:
    rate = torch.tensor([0.05, 0.2, 1.5]).repeat(60_000, 1)
    counts = poisson_counts(rate, torch.Generator().manual_seed(3),
                            select_probability=q).numpy()
    for j, lam in enumerate((0.05, 0.2, 1.5)):
        assert _chi2_pvalue(counts[:, j], float(np.float32(lam))) > 1e-4, (q, lam)
    with pytest.raises(ValueError, match="select_probability"):
        poisson_counts(rate, select_probability=1.0)
