"""Diffusion / flow-matching schedules and samplers, checked on Gaussian data N(mu, s^2).

For Gaussian data every ideal network has a closed form (each is a conditional expectation of
jointly Gaussian variables, E[a | b] = E[a] + Cov(a, b) / Var(b) (b - E[b])):

* EDM, x = x0 + sigma n:            D(x; sigma) = (s^2 x + sigma^2 mu) / (s^2 + sigma^2);
* DDPM, x = sqrt(a) x0 + sqrt(1-a) eps: eps_hat = (x - sqrt(a) mu) sqrt(1-a) / (a s^2 + 1 - a);
* flow matching, x = (1-t) z + t x0:  v(x, t) = E[x0 - z | x]
                                            = mu + (t s^2 - (1-t)) / ((1-t)^2 + t^2 s^2) (x - t mu).

The exact probability-flow maps are affine, so the samplers must turn standard-normal noise into
N(mu, s^2) up to their discretisation error. Step counts below are where that error is below the
tolerance: for s = 0.5, DDIM (first order) is 2.9 % low in std at 50 steps, and EDM Heun on the
(0.002, 80, rho = 7) schedule is 5.5 % high in std at 18 steps (the scalar recursion of
test_edm_heun_is_the_exact_recursion_on_gaussian_data predicts this), hence the larger counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import pytest
import torch
from torch import Tensor

from calogen.models.nn.samplers import (
    ODE_METHODS,
    ddim_sample,
    ddpm_alpha_bar,
    edm_loss_weight,
    edm_preconditioning,
    edm_sample,
    flow_matching_pair,
    karras_sigmas,
    network_calls,
    ode_sample,
)

MU, S = 1.5, 0.5
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def _noise(n: int = 20_000, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _col(rows: Tensor, like: Tensor) -> Tensor:
    assert rows.shape == (like.shape[0],)
    return rows.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def ideal_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    sig2 = _col(sigma, x) ** 2
    return (S**2 * x + sig2 * MU) / (S**2 + sig2)


def ideal_velocity(x: Tensor, t: Tensor) -> Tensor:
    t = _col(t, x)
    return MU + (t * S**2 - (1 - t)) / ((1 - t) ** 2 + t**2 * S**2) * (x - t * MU)


def ideal_eps(alpha_bar: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    def eps_fn(x: Tensor, t_index: Tensor) -> Tensor:
        assert t_index.dtype == torch.int64
        a = _col(alpha_bar[t_index], x)
        return (x - a.sqrt() * MU) * (1 - a).sqrt() / (a * S**2 + 1 - a)

    return eps_fn


class Counted:
    """Wraps a network callable, recording the second argument of every call."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn, self.args = fn, []

    def __call__(self, x: Tensor, level: Tensor) -> Tensor:
        self.args.append(level.clone())
        return self.fn(x, level)

    @property
    def calls(self) -> int:
        return len(self.args)


def _assert_gaussian(x: Tensor, rel: float) -> None:
    mean, std = x.mean(0), x.std(0)
    assert torch.all((mean / MU - 1).abs() < rel), mean
    assert torch.all((std / S - 1).abs() < rel), std


# --------------------------------------------------------------------------- DDPM / DDIM


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_alpha_bar_shape_monotone_range(schedule: str) -> None:
    abar = ddpm_alpha_bar(1000, schedule)
    assert abar.shape == (1000,) and abar.dtype == torch.float64
    assert torch.all(abar[1:] < abar[:-1])
    assert torch.all((abar > 0) & (abar < 1))


def test_alpha_bar_endpoints() -> None:
    cos = ddpm_alpha_bar(1000, "cosine")
    assert cos[0] > 0.9999 and cos[-1] < 1e-6
    # away from the final clip, abar_t = f(t) / f(0) (Nichol & Dhariwal, Eq. 17)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert cos[499].item() == pytest.approx(f(500) / f(0), rel=1e-9)
    lin = ddpm_alpha_bar(1000, "linear")
    assert lin[0].item() == pytest.approx(1 - 1e-4, rel=1e-12)
    assert lin[-1].item() == pytest.approx(4.04e-5, rel=0.01)  # Ho et al.'s abar_T


def test_ddim_visits_evenly_spaced_timesteps_from_the_last() -> None:
    abar = ddpm_alpha_bar(1000)
    net = Counted(ideal_eps(abar))
    ddim_sample(net, _noise(4), abar, steps=7)
    ts = [int(a[0]) for a in net.args]
    assert net.calls == 7 and ts[0] == 999 and ts[-1] == 0
    assert all(len(set(a.tolist())) == 1 and a.shape == (4,) for a in net.args)
    assert all(abs((a - b) - 999 / 6) <= 1 for a, b in pairwise(ts))
    every = Counted(ideal_eps(abar[:10]))
    ddim_sample(every, _noise(4), abar[:10], steps=10)
    assert [int(a[0]) for a in every.args] == list(range(9, -1, -1))


def test_ddim_update_on_a_two_step_schedule() -> None:
    """Song et al., Eqs. 12 and 16, by hand on abar = (0.9, 0.5) with eps_fn(x) = 0.3 x."""
    abar = torch.tensor([0.9, 0.5], dtype=torch.float64)
    x_T = _noise(5, dtype=torch.float64)
    x0 = (x_T - math.sqrt(0.5) * 0.3 * x_T) / math.sqrt(0.5)
    x1 = math.sqrt(0.9) * x0 + math.sqrt(0.1) * 0.3 * x_T
    want = (x1 - math.sqrt(0.1) * 0.3 * x1) / math.sqrt(0.9)  # the last step returns x0_hat
    torch.testing.assert_close(ddim_sample(lambda x, t: 0.3 * x, x_T, abar, 2), want)
    # eta = 1 with eps = 0 and x_T = 0: the output is sigma z / sqrt(abar_0), where
    # sigma^2 = (1 - 0.9) / (1 - 0.5) * (1 - 0.5 / 0.9)
    gen = torch.Generator().manual_seed(0)
    out = ddim_sample(lambda x, t: torch.zeros_like(x), torch.zeros(20_000, 2), abar, 2,
                      eta=1.0, generator=gen)
    sigma = math.sqrt(0.1 / 0.5 * (1 - 0.5 / 0.9))
    assert out.std().item() == pytest.approx(sigma / math.sqrt(0.9), rel=0.02)


@pytest.mark.parametrize("eta, steps", [(0.0, 100), (1.0, 200)])
def test_ddim_ideal_predictor_reproduces_the_gaussian(eta: float, steps: int) -> None:
    abar = ddpm_alpha_bar(1000)
    net = Counted(ideal_eps(abar))
    gen = torch.Generator().manual_seed(1)
    out = ddim_sample(net, _noise(), abar, steps, eta=eta, generator=gen)
    assert net.calls == steps == network_calls("ddim", steps)
    _assert_gaussian(out, 0.03)


def test_ddim_deterministic_converges_to_the_exact_map() -> None:
    abar = ddpm_alpha_bar(1000)
    z = _noise(2000, dtype=torch.float64)
    a_T = abar[-1].item()
    exact = MU + S * (z - math.sqrt(a_T) * MU) / math.sqrt(a_T * S**2 + 1 - a_T)
    errors = [(ddim_sample(ideal_eps(abar), z, abar, n) - exact).abs().max() for n in (25, 100)]
    assert errors[1] < errors[0] / 2.5  # first order: ~4x smaller at 4x the steps


def test_ddim_stochastic_uses_the_generator_and_keeps_dtype() -> None:
    abar = ddpm_alpha_bar(100)
    z = _noise(64, dtype=torch.float64)
    run = lambda seed, eta: ddim_sample(  # noqa: E731
        ideal_eps(abar), z, abar, 20, eta=eta, generator=torch.Generator().manual_seed(seed))
    assert run(3, 1.0).dtype == torch.float64
    assert torch.equal(run(3, 1.0), run(3, 1.0))
    assert not torch.allclose(run(3, 1.0), run(4, 1.0))
    assert torch.equal(run(3, 0.0), run(4, 0.0))  # eta = 0 draws nothing


# --------------------------------------------------------------------------- EDM


def test_edm_preconditioning_closed_forms() -> None:
    sd = 0.5
    sigma = torch.tensor([0.002, 0.1, 0.5, 2.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sd)
    for got in (c_skip, c_out, c_in, c_noise):
        assert got.shape == sigma.shape
    for i, s in enumerate(sigma.tolist()):
        assert c_skip[i].item() == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-12)
        assert c_out[i].item() == pytest.approx(s * sd / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-12)
    torch.testing.assert_close(c_in**2 * (sigma**2 + sd**2), torch.ones_like(sigma))
    torch.testing.assert_close(c_skip + c_out**2 / sd**2, torch.ones_like(sigma))
    torch.testing.assert_close(edm_loss_weight(sigma, sd) * c_out**2, torch.ones_like(sigma))
    c_skip0, c_out0, _, _ = edm_preconditioning(torch.tensor([1e-9]), sd)
    assert c_skip0.item() == pytest.approx(1.0) and c_out0.item() == pytest.approx(0, abs=1e-8)


def test_karras_sigmas() -> None:
    sig = karras_sigmas(18, SIGMA_MIN, SIGMA_MAX)
    assert sig.shape == (19,)
    assert sig[0].item() == SIGMA_MAX and sig[-2].item() == SIGMA_MIN and sig[-1].item() == 0
    assert torch.all(sig[1:] < sig[:-1])
    # Eq. 5 at an interior point, and rho = 1 is linear spacing
    i, root = 9, lambda v: v ** (1 / 7)
    want = (root(SIGMA_MAX) + i / 17 * (root(SIGMA_MIN) - root(SIGMA_MAX))) ** 7
    assert sig[i].item() == pytest.approx(want, rel=1e-12)
    assert karras_sigmas(4, 1.0, 4.0, rho=1.0).tolist() == pytest.approx([4, 3, 2, 1, 0])
    assert karras_sigmas(1, SIGMA_MIN, SIGMA_MAX).tolist() == [SIGMA_MAX, 0.0]


def _heun_gain(sigmas: list[float]) -> float:
    """Scalar Heun recursion of y = x - mu under dy/dsigma = y sigma / (s^2 + sigma^2), which
    is (x - D(x; sigma)) / sigma for the ideal Gaussian denoiser; Euler on the last step."""
    y = 1.0
    for a, b in pairwise(sigmas):
        d = y * a / (S**2 + a**2)
        y_euler = y + (b - a) * d
        y = y + (b - a) * (d + y_euler * b / (S**2 + b**2)) / 2 if b > 0 else y_euler
    return y


def test_edm_heun_is_the_exact_recursion_on_gaussian_data() -> None:
    sig = karras_sigmas(18, SIGMA_MIN, SIGMA_MAX)
    z = _noise(500, dtype=torch.float64)
    out = edm_sample(ideal_denoiser, z, sig)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, MU + (z * SIGMA_MAX - MU) * _heun_gain(sig.tolist()))


@pytest.mark.parametrize("steps", [18, 64])
def test_edm_heun_ideal_denoiser_reproduces_the_gaussian(steps: int) -> None:
    net = Counted(ideal_denoiser)
    out = edm_sample(net, _noise(), karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX))
    assert net.calls == 2 * steps - 1 == network_calls("edm", steps, "heun")
    assert all(a.shape == (20_000,) and a.dtype == torch.float32 for a in net.args)
    assert net.args[0][0].item() == SIGMA_MAX
    assert net.args[-1][0].item() == pytest.approx(SIGMA_MIN, rel=1e-6)
    assert torch.all((out.mean(0) / MU - 1).abs() < 0.02)
    # 18 steps: the Heun discretisation leaves the std 5.5 % high for s = 0.5 (module docstring)
    assert torch.all((out.std(0) / S - 1).abs() < (0.07 if steps == 18 else 0.02))


def test_edm_refining_the_schedule_converges() -> None:
    z = _noise(2000)
    outs = [edm_sample(ideal_denoiser, z, karras_sigmas(n, SIGMA_MIN, SIGMA_MAX))
            for n in (4, 8, 16, 32, 64)]
    diffs = [(b - a).abs().max().item() for a, b in pairwise(outs)]
    assert all(d1 < d0 / 2 for d0, d1 in pairwise(diffs)), diffs


def test_edm_euler_call_count() -> None:
    net = Counted(ideal_denoiser)
    out = edm_sample(net, _noise(), karras_sigmas(100, SIGMA_MIN, SIGMA_MAX), heun=False)
    assert net.calls == 100 == network_calls("edm", 100, "euler")
    _assert_gaussian(out, 0.05)


def test_edm_stochastic_sampler() -> None:
    sig = karras_sigmas(64, SIGMA_MIN, SIGMA_MAX)
    kw = dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0)
    net = Counted(ideal_denoiser)
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    out = edm_sample(net, _noise(), sig, generator=gen(5), **kw)
    assert net.calls == 2 * 64 - 1
    _assert_gaussian(out, 0.05)
    # churn raises the levels inside [s_tmin, s_tmax] by gamma = sqrt(2) - 1 (40 / 64 > 0.414)
    # (step i's first call is call 2i; levels outside [0.05, 50] are not raised)
    first = [net.args[2 * i][0].item() for i in range(64)]
    raised = [f / lv for f, lv in zip(first, sig.tolist()[:-1], strict=True)]
    assert 0 < sum(r == pytest.approx(1) for r in raised) < 64
    assert all(r == pytest.approx(math.sqrt(2) if 0.05 <= lv <= 50 else 1)
               for r, lv in zip(raised, sig.tolist()[:-1], strict=True))
    z = _noise(100)
    again = lambda seed: edm_sample(ideal_denoiser, z, sig, generator=gen(seed), **kw)  # noqa: E731
    assert torch.equal(again(5), again(5)) and not torch.allclose(again(5), again(6))
    assert not torch.allclose(again(5), edm_sample(ideal_denoiser, z, sig))


# --------------------------------------------------------------------------- flow matching


def test_flow_matching_pair() -> None:
    gen = torch.Generator().manual_seed(0)
    data, noise = torch.randn(3, 4, 5, generator=gen), torch.randn(3, 4, 5, generator=gen)
    t = torch.tensor([0.0, 1.0, 0.25])
    x_t, v = flow_matching_pair(data, noise, t)
    assert x_t.shape == v.shape == data.shape
    torch.testing.assert_close(x_t[0], noise[0])
    torch.testing.assert_close(x_t[1], data[1])
    torch.testing.assert_close(x_t[2], 0.75 * noise[2] + 0.25 * data[2])
    torch.testing.assert_close(v, data - noise)
    # v is d x_t / dt along the path
    x_dt, _ = flow_matching_pair(data, noise, t + 1e-3)
    torch.testing.assert_close((x_dt - x_t) / 1e-3, v, atol=1e-3, rtol=1e-3)


def test_ideal_velocity_is_the_conditional_mean_target() -> None:
    """Monte Carlo check of the closed form used below: E[x0 - z | x_t] ~ v(x_t, t)."""
    gen = torch.Generator().manual_seed(0)
    x0 = MU + S * torch.randn(400_000, 1, generator=gen, dtype=torch.float64)
    z = torch.randn(400_000, 1, generator=gen, dtype=torch.float64)
    t = torch.full((400_000,), 0.6, dtype=torch.float64)
    x_t, target = flow_matching_pair(x0, z, t)
    # least-squares affine fit of the target on x_t is the Gaussian conditional mean
    design = torch.cat([torch.ones_like(x_t), x_t], 1)
    coef = torch.linalg.lstsq(design, target).solution.flatten()
    grid = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    want = ideal_velocity(grid, torch.full((2,), 0.6, dtype=torch.float64)).flatten()
    torch.testing.assert_close(coef[0] + coef[1] * grid.flatten(), want, atol=0.01, rtol=0)


@pytest.mark.parametrize("method", ODE_METHODS)
def test_ode_ideal_velocity_reproduces_the_gaussian(method: str) -> None:
    net = Counted(ideal_velocity)
    out = ode_sample(net, _noise(), 50, method)
    assert net.calls == network_calls("ode", 50, method) == (50 if method == "euler" else 100)
    assert all(a.shape == (20_000,) and a.dtype == torch.float32 for a in net.args)
    assert 0 <= min(a.min().item() for a in net.args) < max(a.max().item() for a in net.args) <= 1
    _assert_gaussian(out, 0.03 if method == "euler" else 0.01)


def test_ode_second_order_methods_beat_euler() -> None:
    z = _noise(5000, dtype=torch.float64)
    reference = ode_sample(ideal_velocity, z, 1000, "euler")
    torch.testing.assert_close(reference, MU + S * z, atol=5e-3, rtol=0)  # the exact flow map
    err = {m: (ode_sample(ideal_velocity, z, 8, m) - reference).abs().max().item()
           for m in ODE_METHODS}
    assert err["midpoint"] < err["euler"] / 5 and err["heun"] < err["euler"] / 5, err


# --------------------------------------------------------------------------- arguments


def test_network_calls() -> None:
    assert network_calls("ddim", 50) == 50
    assert network_calls("edm", 18, "heun") == 35 == network_calls("edm", 18)
    assert network_calls("edm", 18, "euler") == 18
    assert network_calls("ode", 10, "euler") == 10 == network_calls("ode", 10)
    assert network_calls("ode", 10, "midpoint") == network_calls("ode", 10, "heun") == 20


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ddpm_alpha_bar(0), "steps"),
        (lambda: ddpm_alpha_bar(10, "quadratic"), "schedule"),
        (lambda: ddim_sample(ideal_eps(ddpm_alpha_bar(10)), _noise(2), ddpm_alpha_bar(10), 0),
         "steps"),
        (lambda: ddim_sample(ideal_eps(ddpm_alpha_bar(10)), _noise(2), ddpm_alpha_bar(10), 11),
         "exceed"),
        (lambda: ddim_sample(ideal_eps(ddpm_alpha_bar(10)), _noise(2), ddpm_alpha_bar(10), 5,
                             eta=-0.1), "eta"),
        (lambda: karras_sigmas(0, SIGMA_MIN, SIGMA_MAX), "steps"),
        (lambda: karras_sigmas(10, 1.0, 0.5), "sigma_min"),
        (lambda: edm_sample(ideal_denoiser, _noise(2), torch.tensor([0.5, 1.0, 0.0])),
         "non-increasing"),
        (lambda: edm_sample(ideal_denoiser, _noise(2), torch.tensor([1.0])), "sigmas"),
        (lambda: edm_sample(ideal_denoiser, _noise(2), karras_sigmas(4, 0.1, 1.0), s_churn=-1),
         "s_churn"),
        (lambda: edm_preconditioning(torch.ones(2), 0.0), "sigma_data"),
        (lambda: ode_sample(ideal_velocity, _noise(2), 0), "steps"),
        (lambda: ode_sample(ideal_velocity, _noise(2), 4, "rk4"), "method"),
        (lambda: flow_matching_pair(_noise(4), _noise(4), torch.ones(3)), r"\(4,\)"),
        (lambda: network_calls("ddpm", 10), "kind"),
        (lambda: network_calls("edm", 10, "midpoint"), "method"),
        (lambda: network_calls("ode", 10, "rk4"), "method"),
        (lambda: network_calls("ddim", 10, "heun"), "method"),
        (lambda: network_calls("ode", 0, "euler"), "steps"),
    ],
)
def test_bad_arguments_raise(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_flow_matching_times() -> None:
    from calogen.models.nn.samplers import flow_matching_times

    torch.manual_seed(0)
    u = flow_matching_times(20_000, "uniform")
    ln = flow_matching_times(20_000, "logit-normal")
    assert 0 < u.min() and u.max() < 1 and abs(u.std().item() - (1 / 12) ** 0.5) < 0.01
    assert abs(ln.mean().item() - 0.5) < 0.01 and ln.std().item() < 0.25  # peaked in the middle
    with pytest.raises(ValueError, match="time sampling"):
        flow_matching_times(3, "beta")
