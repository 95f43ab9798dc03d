"""Dequantisation and the logit transform: exact inverses, Jacobians against autograd."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from calogen.models.nn.flow_preprocessing import LogitTransform, dequantise, quantise


@given(st.lists(st.integers(0, 2**24 - 2), min_size=1, max_size=50), st.integers(0, 2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_dequantise_then_quantise_recovers_the_counts(counts: list[int], seed: int) -> None:
    n = torch.tensor(counts)
    d = dequantise(n, torch.Generator().manual_seed(seed))
    assert d.dtype == torch.float32
    assert torch.equal(quantise(d), n)
    assert bool(((d - n) >= 0).all()) and bool(((d - n) < 1).all())


def test_dequantisation_noise_is_uniform() -> None:
    d = dequantise(torch.zeros(100_000, dtype=torch.int64), torch.Generator().manual_seed(0))
    assert abs(d.mean().item() - 0.5) < 0.005 and abs(d.var().item() - 1 / 12) < 0.002


def test_narrow_dequantisation_stays_in_its_cell() -> None:
    n = torch.arange(0, 50_000) % 7
    d = dequantise(n, torch.Generator().manual_seed(0), width=0.1)
    assert torch.equal(quantise(d), n)
    assert abs((d - n).mean().item() - 0.05) < 0.001 and (d - n).max().item() < 0.1
    with pytest.raises(ValueError, match="width"):
        dequantise(n, width=0.0)


def test_dequantise_rejects_non_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        dequantise(torch.tensor([1, -1]))
    with pytest.raises(ValueError, match="integers"):
        dequantise(torch.tensor([0.5]))


def test_logit_round_trip_and_margin() -> None:
    t = LogitTransform(1e-6)
    f = torch.tensor([0.0, 1e-9, 0.25, 0.5, 0.999, 1.0], dtype=torch.float64)
    x = t.forward(f)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(t.inverse(x), f, atol=1e-12, rtol=0)
    assert t.inverse(torch.tensor([-1e3, 1e3])).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t.forward(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.5)


def test_logit_log_det_matches_autograd() -> None:
    t = LogitTransform(1e-3)
    f = torch.rand(20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f.requires_grad_(True)
    (grad,) = torch.autograd.grad(t.forward(f).sum(), f)
    torch.testing.assert_close(t.log_abs_det_jacobian(f.detach()), grad.abs().log())
