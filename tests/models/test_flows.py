"""Conditional flows from zuko's transforms: exact inverses, log-determinants equal to
autograd's, intermediate values aligned between directions, and the likelihood of a known
distribution."""

from __future__ import annotations

import math

import pytest
import torch

from calogen.models.nn.flows import ConditionalFlow, standard_normal_log_prob

CASES = [(a, e) for a in ("maf", "iaf", "coupling") for e in ("affine", "spline")]


@pytest.mark.parametrize(("arrangement", "elementwise"), CASES)
def test_inverse_and_log_determinant_match_autograd(arrangement, elementwise):
    torch.manual_seed(0)
    flow = ConditionalFlow(6, 3, 3, [16, 16], arrangement, elementwise)
    x, c = torch.randn(5, 6) * 1.5, torch.randn(5, 3)
    z, ladj, states = flow.to_noise(x, c)
    back, states_back = flow.to_data(z, c)
    torch.testing.assert_close(back, x, atol=2e-5, rtol=1e-5)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(
            lambda v, i=i: flow.to_noise(v[None], c[i:i + 1])[0][0], x[i])
        assert ladj[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-4)
    # states_back[k] is layer k's input; to_noise's states[k - 1] is layer k - 1's output
    torch.testing.assert_close(states_back[0], x, atol=2e-5, rtol=1e-5)
    for k in range(1, len(states_back)):
        torch.testing.assert_close(states_back[k], states[k - 1], atol=2e-5, rtol=1e-5)


def test_sampling_speed_class_follows_the_arrangement():
    assert not ConditionalFlow(4, 0, 1, [8], "maf").fast_sampling
    assert ConditionalFlow(4, 0, 1, [8], "iaf").fast_sampling
    assert ConditionalFlow(4, 0, 1, [8], "coupling").fast_sampling


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="arrangement"):
        ConditionalFlow(4, 0, 1, [8], "glow")
    with pytest.raises(ValueError, match="elementwise"):
        ConditionalFlow(4, 0, 1, [8], "maf", "cubic")
    with pytest.raises(ValueError, match="features"):
        ConditionalFlow(1, 0, 1, [8])


def test_learns_a_conditional_gaussian_to_its_entropy(one_thread):
    """x ~ N(A c, L L^T): after training, the mean log-likelihood of fresh samples is within
    0.1 nats of the true one (minus the entropy), and the density is correct pointwise."""
    torch.manual_seed(0)
    a = torch.tensor([[1.0, -0.5], [0.3, 2.0]])
    chol = torch.tensor([[0.5, 0.0], [0.4, 0.3]])
    truth = torch.distributions.MultivariateNormal(torch.zeros(2), scale_tril=chol)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.randn(n, 2)
        return c @ a.T + truth.sample((n,)), c

    flow = ConditionalFlow(2, 2, 3, [32, 32], "maf", "affine")
    opt = torch.optim.Adam(flow.parameters(), 5e-3)
    for _ in range(600):
        x, c = draw(256)
        loss = -flow.log_prob(x, c).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, c = draw(4000)
    with torch.no_grad():
        model_lp = flow.log_prob(x, c)
    true_lp = truth.log_prob(x - c @ a.T)
    assert (true_lp.mean() - model_lp.mean()).item() < 0.1
    assert (model_lp - true_lp).abs().median().item() < 0.1


def test_standard_normal_log_prob():
    z = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    expected = torch.tensor([-math.log(2 * math.pi), -1 - math.log(2 * math.pi)])
    torch.testing.assert_close(standard_normal_log_prob(z), expected)
