"""Noise schedules, preconditioning and sampling loops of diffusion and flow-matching models.

Pure functions of a network callable (no training code, no ``nn.Module``): a family wraps its
network in a closure and calls a loop below. Samples are tensors of any shape ``(B, ...)``;
per-row noise levels / times handed to the network are ``(B,)`` tensors on the device and in
the dtype of the sample (DDPM/DDIM timestep indices are ``int64``). Every stochastic loop takes
an optional ``torch.Generator``; it must live on the sample's device.

Conventions (one per family):

* **DDPM / DDIM** (Ho et al., "Denoising Diffusion Probabilistic Models", arXiv:2006.11239;
  Song et al., "Denoising Diffusion Implicit Models", arXiv:2010.02502): discrete timesteps
  ``t = 1..T`` stored at indices ``0..T-1``; ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``
  with ``abar_t = prod_{s <= t} (1 - beta_s)``; the network predicts ``eps``.
* **EDM** (Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models",
  arXiv:2206.00364): ``x = x_0 + sigma n``; the network callable returns the denoised
  estimate ``D(x; sigma)`` (apply :func:`edm_preconditioning` inside it).
* **Conditional flow matching** with the linear (optimal-transport, ``sigma_min = 0``) path
  (Lipman et al., "Flow Matching for Generative Modeling", arXiv:2210.02747, Eqs. 20-23;
  rectified flow, Liu et al., arXiv:2209.03003, Eq. 1): ``x_t = (1 - t) noise + t data`` for
  ``t in [0, 1]`` (``t = 0`` is noise, ``t = 1`` is data), target velocity ``data - noise``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import Tensor

__all__ = [
    "DDPM_SCHEDULES",
    "ODE_METHODS",
    "TIME_SAMPLINGS",
    "EDM_METHODS",
    "ddpm_alpha_bar",
    "ddim_sample",
    "edm_preconditioning",
    "edm_loss",
    "edm_loss_weight",
    "karras_sigmas",
    "edm_sample",
    "consistency_coefficients",
    "consistency_boundaries",
    "flow_matching_pair",
    "flow_matching_times",
    "ode_sample",
    "network_calls",
]

DDPM_SCHEDULES: tuple[str, ...] = ("cosine", "linear")
"""Names accepted by :func:`ddpm_alpha_bar`."""

ODE_METHODS: tuple[str, ...] = ("euler", "midpoint", "heun")
"""Integrators accepted by :func:`ode_sample`."""

EDM_METHODS: tuple[str, ...] = ("heun", "euler")
"""Step kinds of :func:`edm_sample` (``heun=True`` / ``heun=False``), for :func:`network_calls`."""

_COSINE_OFFSET = 0.008
"""Offset ``s`` of the cosine schedule (Nichol & Dhariwal, arXiv:2102.09672, Eq. 17)."""

_MAX_BETA = 0.999
"""Upper clip of the cosine schedule's ``beta_t`` (Nichol & Dhariwal, Sec. 3.2)."""

_LINEAR_BETAS = (1e-4, 0.02)
"""First and last ``beta_t`` of the linear schedule (Ho et al., arXiv:2006.11239, Sec. 4)."""


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _rows(value: float, like: Tensor) -> Tensor:
    """``value`` repeated as a ``(B,)`` tensor on ``like``'s device and in its dtype."""
    return torch.full((like.shape[0],), value, dtype=like.dtype, device=like.device)


def _broadcast(rows: Tensor, like: Tensor) -> Tensor:
    """A ``(B,)`` (or scalar) tensor reshaped to broadcast over ``like``'s trailing dims."""
    rows = rows.to(dtype=like.dtype, device=like.device)
    if rows.dim() == 0:
        return rows
    if rows.dim() != 1 or rows.shape[0] != like.shape[0]:
        raise ValueError(f"expected a ({like.shape[0]},) tensor, got shape {tuple(rows.shape)}")
    return rows.view(-1, *([1] * (like.dim() - 1)))


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------- DDPM / DDIM


def ddpm_alpha_bar(timesteps: int, schedule: str = "cosine") -> Tensor:
    """Cumulative products ``abar_t = prod_{s<=t} (1 - beta_s)``, ``t = 1..timesteps``.

    Returns a ``(timesteps,)`` float64 tensor (index 0 is ``t = 1``), strictly decreasing in
    ``(0, 1)``.

    * ``"cosine"`` (Nichol & Dhariwal, "Improved DDPM", arXiv:2102.09672, Eq. 17):
      ``f(t) = cos^2(pi/2 (t/T + s)/(1 + s))`` with ``s = 0.008``,
      ``beta_t = min(1 - f(t)/f(t-1), 0.999)``; ``abar`` is the cumulative product of the
      clipped ``1 - beta_t`` (so ``abar_T > 0``).
    * ``"linear"`` (Ho et al., arXiv:2006.11239, Sec. 4): ``beta_t`` linear from ``1e-4`` to
      ``0.02`` over ``timesteps`` (not rescaled with ``T``; designed for ``T = 1000``, where
      ``abar_T ~ 4e-5``; for small ``T`` the final ``abar`` stays far from 0).
    """
    _check_steps(timesteps)
    if schedule == "cosine":
        t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((t + _COSINE_OFFSET) / (1 + _COSINE_OFFSET) * (math.pi / 2)) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=_MAX_BETA)
    elif schedule == "linear":
        betas = torch.linspace(*_LINEAR_BETAS, timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"schedule must be one of {DDPM_SCHEDULES}, got {schedule!r}")
    return torch.cumprod(1 - betas, 0)


def _ddim_indices(timesteps: int, steps: int) -> list[int]:
    """``steps`` distinct indices evenly spaced from ``timesteps - 1`` down to 0 (rounded)."""
    if steps == 1:
        return [timesteps - 1]
    span, gaps = timesteps - 1, steps - 1
    # round(span * k / gaps), half up, in exact integer arithmetic; distinct as span >= gaps
    return [(2 * span * k + gaps) // (2 * gaps) for k in range(gaps, -1, -1)]


def ddim_sample(
    eps_fn: Callable[[Tensor, Tensor], Tensor],
    x_T: Tensor,
    alpha_bar: Tensor | Sequence[float],
    steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """Sample with the DDIM update (Song et al., arXiv:2010.02502, Eqs. 12 and 16).

    ``eps_fn(x, t_index)`` predicts the noise ``eps`` in ``x``, with ``t_index`` a ``(B,)``
    int64 tensor in ``[0, T)`` indexing ``alpha_bar`` (``(T,)``, e.g. :func:`ddpm_alpha_bar`).
    ``x_T`` is standard-normal noise. The ``steps`` timesteps are evenly spaced from the last
    index ``T - 1`` down to index 0 (rounded to integers). At each timestep ``t`` with successor
    ``p``::

        x0_hat = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        sigma  = eta sqrt((1 - abar_p) / (1 - abar_t)) sqrt(1 - abar_t / abar_p)
        x     <- sqrt(abar_p) x0_hat + sqrt(1 - abar_p - sigma^2) eps + sigma z,  z ~ N(0, I)

    ``eta = 0`` is the deterministic DDIM sampler, ``eta = 1`` the DDPM-like ancestral one
    (Ho et al., arXiv:2006.11239, Algorithm 2 with sigma_t^2 = beta_tilde_t, when every timestep
    is visited). The final step
    (index 0, i.e. ``t = 1``) returns ``x0_hat``. Exactly ``steps`` calls of ``eps_fn``.

    ``clip = (lo, hi)`` clamps ``x0_hat`` to the data range and re-derives ``eps`` from it
    (``eps = (x - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)``), as DDPM implementations do for
    bounded data: at the first timesteps ``1 / sqrt(abar_t)`` is large (cosine schedule:
    ~2e4 at ``t = T``), and an imperfect noise prediction would otherwise be amplified into
    far-out-of-range images.
    """
    _check_steps(steps)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    abar = _as_floats(alpha_bar, "alpha_bar")
    if len(abar) < 1:
        raise ValueError("alpha_bar must not be empty")
    timesteps = len(abar)
    if steps > timesteps:
        raise ValueError(f"steps ({steps}) must not exceed the number of timesteps ({timesteps})")
    indices = _ddim_indices(timesteps, steps)
    x = x_T
    for i, t in enumerate(indices):
        eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.int64, device=x.device))
        x0_hat = (x - math.sqrt(1 - abar[t]) * eps) / math.sqrt(abar[t])
        if clip is not None:
            x0_hat = x0_hat.clamp(clip[0], clip[1])
            eps = (x - math.sqrt(abar[t]) * x0_hat) / math.sqrt(1 - abar[t])
        if i == len(indices) - 1:
            return x0_hat
        a_t, a_p = abar[t], abar[indices[i + 1]]
        sigma = eta * math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
        x = math.sqrt(a_p) * x0_hat + math.sqrt(max(1 - a_p - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _randn_like(x, generator)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- EDM


def edm_preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM network preconditioning (Karras et al., arXiv:2206.00364, Table 1, "EDM" column).

    With ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)``, returns
    ``(c_skip, c_out, c_in, c_noise)``, each of ``sigma``'s shape::

        c_skip  = sd^2 / (sigma^2 + sd^2)        c_out = sigma sd / sqrt(sigma^2 + sd^2)
        c_in    = 1 / sqrt(sigma^2 + sd^2)       c_noise = ln(sigma) / 4

    where ``sd = sigma_data`` is the standard deviation of the data.
    """
    if sigma_data <= 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}")
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = total.rsqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """EDM loss weight ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (Karras et al.,
    arXiv:2206.00364, Table 1), which makes the effective training target of ``F`` unit-weight:
    ``lambda c_out^2 = 1``."""
    if sigma_data <= 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}")
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(denoise: Callable[[Tensor, Tensor], Tensor], x0: Tensor, p_mean: float,
             p_std: float, sigma_data: float) -> tuple[Tensor, Tensor]:
    """EDM training loss (Karras et al., arXiv:2206.00364, Sec. 5): ``ln sigma ~ N(p_mean,
    p_std^2)`` per sample, ``x0 + sigma n`` denoised by ``denoise(noisy, sigma)``, squared error
    averaged per sample and weighted by :func:`edm_loss_weight`. Returns the mean loss and the
    per-sample unweighted errors."""
    sigma = torch.exp(p_mean + p_std * torch.randn(x0.shape[0], device=x0.device))
    shape = (-1,) + (1,) * (x0.ndim - 1)
    noisy = x0 + sigma.view(shape) * torch.randn_like(x0)
    err = (denoise(noisy, sigma) - x0).pow(2).flatten(1).mean(1)
    return (edm_loss_weight(sigma, sigma_data) * err).mean(), err


def _as_floats(values: Tensor | Sequence[float], name: str) -> list[float]:
    """A 1-D tensor or a sequence as Python floats. Passing Python floats keeps the sampling
    loops free of tensor-to-Python conversions, so that ``torch.export`` can unroll them."""
    if isinstance(values, Tensor):
        if values.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(values.shape)}")
        return [float(v) for v in values.detach().to("cpu", torch.float64).tolist()]
    return [float(v) for v in values]


def karras_sigma_list(steps: int, sigma_min: float, sigma_max: float,
                      rho: float = 7.0) -> list[float]:
    """:func:`karras_sigmas` as Python floats (no tensor involved)."""
    _check_steps(steps)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min!r}, {sigma_max!r}")
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho!r}")
    if steps == 1:
        return [sigma_max, 0.0]
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    out = [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(steps)]
    out[0], out[-1] = sigma_max, sigma_min
    return [*out, 0.0]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """The EDM noise levels (Karras et al., arXiv:2206.00364, Eq. 5 / Table 1 "Time steps")::

        sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho

    for ``i = 0..N-1`` (``N = steps``), followed by ``sigma_N = 0``. Returns a ``(steps + 1,)``
    float64 tensor, decreasing from exactly ``sigma_max`` to exactly ``sigma_min``, then 0.
    ``steps = 1`` gives ``[sigma_max, 0]``.
    """
    return torch.tensor(karras_sigma_list(steps, sigma_min, sigma_max, rho),
                        dtype=torch.float64)


def edm_sample(
    denoise_fn: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    sigmas: Tensor | Sequence[float],
    heun: bool = True,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample with the EDM sampler (Karras et al., arXiv:2206.00364, Algorithms 1 and 2).

    ``denoise_fn(x, sigma)`` returns ``D(x; sigma)``, the denoised estimate, with ``sigma`` a
    ``(B,)`` tensor. ``noise`` is standard normal; ``x`` starts as ``noise * sigmas[0]``.
    ``sigmas`` (``(N + 1,)``, non-increasing, e.g. :func:`karras_sigmas`) gives ``N`` steps.
    Step ``i`` (Algorithm 2; ``s_churn = 0`` is the deterministic Algorithm 1)::

        gamma  = min(s_churn / N, sqrt(2) - 1) if s_tmin <= sigma_i <= s_tmax else 0
        sh     = sigma_i (1 + gamma);   x_hat = x + sqrt(sh^2 - sigma_i^2) s_noise z
        d      = (x_hat - D(x_hat; sh)) / sh
        x      = x_hat + (sigma_{i+1} - sh) d                            (Euler)
        if heun and sigma_{i+1} != 0:                                    (2nd-order correction)
            x  = x_hat + (sigma_{i+1} - sh) (d + (x - D(x; sigma_{i+1})) / sigma_{i+1}) / 2

    With a schedule ending at 0, deterministic Heun uses ``2N - 1`` calls, Euler ``N``.
    """
    levels = _as_floats(sigmas, "sigmas")
    if len(levels) < 2:
        raise ValueError(f"sigmas must hold >= 2 levels, got {len(levels)}")
    if levels[0] <= 0 or levels[-1] < 0 or any(a < b for a, b in pairwise(levels)):
        raise ValueError("sigmas must be non-increasing, non-negative and start above 0")
    if s_churn < 0 or s_noise < 0:
        raise ValueError(f"s_churn and s_noise must be >= 0, got {s_churn!r}, {s_noise!r}")
    n_steps = len(levels) - 1
    gamma_max = min(s_churn / n_steps, math.sqrt(2) - 1)
    x = noise * levels[0]
    for sigma, sigma_next in pairwise(levels):
        gamma = gamma_max if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * _randn_like(x, generator)
        d = (x - denoise_fn(x, _rows(sigma_hat, x))) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        if heun and sigma_next != 0:
            d_next = (x_next - denoise_fn(x_next, _rows(sigma_next, x))) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
        x = x_next
    return x


# --------------------------------------------------------------------------- flow matching


def consistency_coefficients(sigma: Tensor, sigma_data: float, sigma_min: float
                             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` of the consistency parametrisation ``f(x, sigma) =
    c_skip x + c_out F(c_in x, c_noise)`` (Song et al., arXiv:2303.01469, App. C, with EDM's
    ``c_in`` and ``c_noise``): ``c_skip(sigma_min) = 1`` and ``c_out(sigma_min) = 0``, so
    ``f(x, sigma_min) = x`` exactly."""
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / total.sqrt()
    return c_skip, c_out, total.rsqrt(), sigma.log() / 4


def consistency_boundaries(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0
                           ) -> Tensor:
    """The ``n`` Karras boundaries ``sigma_1 = sigma_min < ... < sigma_n = sigma_max``
    (ascending) of consistency distillation (Song et al., arXiv:2303.01469, Sec. 4)."""
    return karras_sigmas(n - 1, sigma_min, sigma_max, rho)[:-1].flip(0)


def flow_matching_pair(data: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Training pair of conditional flow matching on the linear path (Lipman et al.,
    arXiv:2210.02747, Eqs. 20-23 with ``sigma_min = 0``; Liu et al., arXiv:2209.03003, Eq. 1).

    Returns ``(x_t, v)`` with ``x_t = (1 - t) noise + t data`` and the target velocity
    ``v = data - noise``; ``t`` is ``(B,)`` (or a scalar) in ``[0, 1]``, broadcast over the
    trailing dims, and cast to ``data``'s dtype.
    """
    if data.shape != noise.shape:
        raise ValueError(f"data {tuple(data.shape)} and noise {tuple(noise.shape)} differ")
    tb = _broadcast(torch.as_tensor(t), data)
    return (1 - tb) * noise + tb * data, data - noise


def ode_sample(
    velocity_fn: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    steps: int,
    method: str = "euler",
) -> Tensor:
    """Integrate ``dx/dt = v(x, t)`` from ``t = 0`` (``x = noise``) to ``t = 1`` (data).

    ``velocity_fn(x, t)`` takes ``t`` as a ``(B,)`` tensor. ``steps`` uniform steps of size
    ``h = 1/steps`` from ``t_k = k h``; deterministic, so no generator. Methods (standard
    explicit Runge-Kutta schemes, e.g. Hairer, Norsett & Wanner, "Solving ODEs I", II.1):

    * ``"euler"``: ``x += h v(x, t_k)`` (``steps`` calls, 1st order);
    * ``"midpoint"``: ``x += h v(x + h/2 v(x, t_k), t_k + h/2)`` (``2 steps`` calls);
    * ``"heun"``: trapezoidal predictor-corrector, ``x_p = x + h v(x, t_k)``,
      ``x += h/2 (v(x, t_k) + v(x_p, t_{k+1}))`` (``2 steps`` calls, also on the last step).
    """
    _check_steps(steps)
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {ODE_METHODS}, got {method!r}")
    h = 1.0 / steps
    x = noise
    for k in range(steps):
        t = k * h
        v = velocity_fn(x, _rows(t, x))
        if method == "euler":
            x = x + h * v
        elif method == "midpoint":
            x = x + h * velocity_fn(x + 0.5 * h * v, _rows(t + 0.5 * h, x))
        else:
            v_next = velocity_fn(x + h * v, _rows((k + 1) * h, x))
            x = x + 0.5 * h * (v + v_next)
    return x


TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "logit-normal")
"""How flow-matching training draws ``t`` (:func:`flow_matching_times`)."""


def flow_matching_times(n: int, kind: str, device: torch.device | str | None = None) -> Tensor:
    """``n`` training times in (0, 1): ``"uniform"``, or ``"logit-normal"`` ``t =
    sigmoid(N(0, 1))``, which weights the middle of the path (Esser et al., arXiv:2403.03206)."""
    if kind == "uniform":
        return torch.rand(n, device=device)
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, device=device))
    raise ValueError(f"time sampling must be one of {TIME_SAMPLINGS}, got {kind!r}")


def network_calls(kind: str, steps: int, method: str = "") -> int:
    """Network evaluations to draw one batch with ``steps`` steps.

    * ``("ddim", N)`` -> ``N`` (``method`` must be empty);
    * ``("edm", N, "heun")`` -> ``2N - 1`` (schedule ending at 0, final step Euler);
      ``("edm", N, "euler")`` -> ``N``; an empty method means ``"heun"`` (the default);
    * ``("ode", N, "euler")`` -> ``N``; ``"midpoint"`` and ``"heun"`` -> ``2N``; an empty method
      means ``"euler"`` (the default of :func:`ode_sample`).
    """
    _check_steps(steps)
    if kind == "ddim":
        if method:
            raise ValueError(f"ddim takes no method, got {method!r}")
        return steps
    if kind == "edm":
        method = method or "heun"
        if method not in EDM_METHODS:
            raise ValueError(f"edm method must be one of {EDM_METHODS}, got {method!r}")
        return 2 * steps - 1 if method == "heun" else steps
    if kind == "ode":
        method = method or "euler"
        if method not in ODE_METHODS:
            raise ValueError(f"ode method must be one of {ODE_METHODS}, got {method!r}")
        return steps if method == "euler" else 2 * steps
    raise ValueError(f"kind must be one of ('ddim', 'edm', 'ode'), got {kind!r}")


def per_image(a: Tensor) -> Tensor:
    """Per-row coefficients ``(B,)`` -> ``(B, 1, 1, 1)`` for images."""
    return a.view(-1, 1, 1, 1)
