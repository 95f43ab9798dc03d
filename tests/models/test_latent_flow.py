"""The conditional coupling flow: invertible, exact log-density (against autograd's Jacobian
determinant and a known Gaussian), and it learns a conditional distribution."""

from __future__ import annotations

import math

import pytest
import torch

from calogen.models.nn.flows import ConditionalCouplingFlow


def _randomised(dim: int = 4, cond_dim: int = 3, seed: int = 0) -> ConditionalCouplingFlow:
    torch.manual_seed(seed)
    flow = ConditionalCouplingFlow(dim, cond_dim, layers=4, hidden=16).double()
    for p in flow.parameters():  # leave the identity initialisation
        torch.nn.init.normal_(p, std=0.3)
    return flow


def test_sampling_and_density_directions_invert() -> None:
    flow = _randomised()
    z = torch.randn(50, 4, dtype=torch.float64)
    c = torch.randn(50, 3, dtype=torch.float64)
    u = flow(z, c)
    back = u
    for layer in reversed(flow.layers):
        back, _ = layer.inverse(back, c)
    assert torch.allclose(back, z, atol=1e-10)
    assert not torch.allclose(u, z, atol=1e-3)


def test_log_prob_equals_change_of_variables_with_autograd_jacobian() -> None:
    flow = _randomised()
    c = torch.randn(1, 3, dtype=torch.float64)
    u = torch.randn(1, 4, dtype=torch.float64)

    def to_noise(v: torch.Tensor) -> torch.Tensor:
        out = v[None]
        for layer in reversed(flow.layers):
            out, _ = layer.inverse(out, c)
        return out[0]

    jac = torch.autograd.functional.jacobian(to_noise, u[0])
    z = to_noise(u[0])
    expected = (-0.5 * (z @ z) - 2 * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1])
    got = float(flow.log_prob(u, c)[0].detach())
    assert got == pytest.approx(float(expected.detach()), abs=1e-9)


def test_identity_at_initialisation_gives_standard_normal_density() -> None:
    flow = ConditionalCouplingFlow(3, 2)
    u = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    expected = -0.5 * (u.pow(2).sum(1) + 3 * math.log(2 * math.pi))
    assert torch.allclose(flow.log_prob(u, torch.zeros(2, 2)), expected, atol=1e-6)


def test_learns_a_condition_dependent_mean_and_spread() -> None:
    """Target u | c ~ N(2c, (0.5 + 0.4 c)^2) per coordinate (c in [-1, 1]): after training the
    samples' mean and spread follow c."""
    torch.manual_seed(0)
    flow = ConditionalCouplingFlow(2, 1, layers=4, hidden=32)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(400):
        c = torch.rand(256, 1) * 2 - 1
        u = 2 * c + (0.5 + 0.4 * c) * torch.randn(256, 2)
        opt.zero_grad()
        (-flow.log_prob(u, c).mean()).backward()
        opt.step()
    with torch.no_grad():
        for cv in (-0.8, 0.8):
            s = flow(torch.randn(4000, 2), torch.full((4000, 1), cv))
            assert s.mean(0) == pytest.approx(torch.full((2,), 2 * cv), abs=0.12)
            assert s.std(0) == pytest.approx(torch.full((2,), 0.5 + 0.4 * cv), abs=0.1)


def test_needs_two_features() -> None:
    with pytest.raises(ValueError, match="dim >= 2"):
        ConditionalCouplingFlow(1, 2)
