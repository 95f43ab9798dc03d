"""CaloClouds II (CM) (family ``"caloclouds2-cm"``; Buhmann et al., arXiv:2309.05704, Sec. 3.2):
the PointWise Net of a trained ``caloclouds2`` distilled into a consistency model (Song et al.,
"Consistency Models", arXiv:2303.01469, Algorithm 2).

The student ``f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in x, c_noise)`` per point with

    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
    c_out  = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)

so that ``f(x, sigma_min) = x`` exactly (Song et al., Eq. 7 / Appendix C). Training: ``N``
Karras boundaries ``sigma_1 < ... < sigma_N`` (18, as the paper); per point ``n ~ U{1..N-1}``,
``x_{n+1} = x + sigma_{n+1} z``, one Heun step of the teacher's probability-flow ODE to
``sigma_n`` gives ``x_hat_n``; the loss is the mean squared distance between
``f(x_{n+1}, sigma_{n+1})`` and ``f_target(x_hat_n, sigma_n)``, the target network an EMA of the
student (decay ``target_ema`` 0.95, updated at the start of each training loss). At the first
training step the student and the target take the teacher's PointWise Net, and the Shower Flow
and the standardisations are copied from the teacher and frozen; the calibrations are fitted
again for the student (:meth:`CaloClouds2.calibrate`).

Sampling: one call ``f(sigma_max z, sigma_max)``, or ``steps`` calls alternating re-noising to
intermediate Karras levels and denoising (multistep consistency sampling); the rest of the
sampling (layers, energies, centre of gravity) is ``caloclouds2``'s.

Train with ``calogen train --model caloclouds2-cm --teacher DIR``; the teacher is needed only
for training.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from calogen.models.families.caloclouds2 import ARCHITECTURE_KEYS, DEFAULTS, CaloClouds2
from calogen.models.generator import STEPS, BuiltOn, ModelSpec, SamplingOption, TrainBatch
from calogen.models.nn.pointwise import PointWiseNet, per_row_noise
from calogen.models.nn.samplers import (
    consistency_boundaries,
    consistency_coefficients,
    karras_sigma_list,
)
from calogen.models.registry import register_family

__all__ = ["CaloClouds2CM"]


@register_family
class CaloClouds2CM(CaloClouds2):
    """CaloClouds II (CM), see the module docstring. Hparams: ``teacher`` (a ``caloclouds2``
    directory, needed to train), ``boundaries`` (18), ``target_ema`` (0.95), sampling
    ``steps`` (1), plus the teacher's architecture (:data:`ARCHITECTURE_KEYS`)."""

    family: ClassVar[str] = "caloclouds2-cm"
    built_on: ClassVar[BuiltOn | None] = BuiltOn(("caloclouds2",), "teacher", ARCHITECTURE_KEYS)
    samplers: ClassVar[tuple[str, ...]] = ("consistency",)
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (
        STEPS, SamplingOption("sampler", str, "the integration method"),
        SamplingOption("sampling_dtype", str, "float32, or bfloat16 for the PointWise Net"))
    defaults: ClassVar[dict[str, Any]] = {
        **DEFAULTS, "teacher": "", "boundaries": 18, "target_ema": 0.95, "steps": 1,
        "sampler": "consistency"}

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if int(self.hparams["boundaries"]) < 2:
            raise ValueError(f"{self.family}: boundaries must be >= 2")
        if not 0.0 <= float(self.hparams["target_ema"]) < 1.0:
            raise ValueError(f"{self.family}: target_ema must be in [0, 1)")
        self.target_net = self.make_net()
        self.flow.requires_grad_(False)
        self.target_net.requires_grad_(False)
        self._teacher: CaloClouds2 | None = None

    # -- teacher ----------------------------------------------------------------------------

    def teacher(self) -> CaloClouds2:
        """The trained ``caloclouds2`` teacher (loaded on first use, frozen, not saved)."""
        if self._teacher is None:
            from calogen.models.io import load_teacher

            teacher = cast(CaloClouds2, load_teacher(self, "caloclouds2", ARCHITECTURE_KEYS,
                                                     next(self.parameters()).device))
            object.__setattr__(self, "_teacher", teacher)  # not a submodule: not saved
        assert self._teacher is not None
        return self._teacher

    def _initialise_from_teacher(self) -> None:
        teacher = self.teacher()
        self.flow.load_state_dict(teacher.flow.state_dict())
        self.scaler.load_state_dict(teacher.scaler.state_dict())
        self.net.load_state_dict(teacher.net.state_dict())
        self.target_net.load_state_dict(teacher.net.state_dict())
        self.calibrations = teacher.calibrations
        self.initialised.fill_(1)

    @torch.no_grad()
    def _update_target(self) -> None:
        mu = float(self.hparams["target_ema"])
        for tp, p in zip(self.target_net.parameters(), self.net.parameters(), strict=True):
            tp.mul_(mu).add_(p.detach(), alpha=1 - mu)

    # -- the consistency function -----------------------------------------------------------

    def consistency_fn(self, x: Tensor, sigma: Tensor, cond: Tensor, n_scaled: Tensor, *,
                       target: bool = False, rows: Tensor | None = None) -> Tensor:
        """``f(x, sigma)`` per point with the student (or the EMA target); ``sigma (P,)``;
        ``rows``: per-shower context as in :meth:`PointWiseNet.forward`."""
        hp = self.hparams
        c_skip, c_out, c_in, c_noise = consistency_coefficients(
            sigma, float(hp["sigma_data"]), float(hp["sigma_min"]))
        if rows is not None:
            c_noise = per_row_noise(c_noise, len(cond))
        net: PointWiseNet = self.target_net if target else self.net
        return c_skip[:, None] * x + c_out[:, None] * net(c_in[:, None] * x, c_noise, cond,
                                                          n_scaled, rows)

    def boundaries(self) -> Tensor:
        """Karras boundaries ``sigma_1 < ... < sigma_N`` (ascending, float64)."""
        hp = self.hparams
        return consistency_boundaries(int(hp["boundaries"]), float(hp["sigma_min"]),
                                      float(hp["sigma_max"]), float(hp["rho"]))

    # -- training ---------------------------------------------------------------------------

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The student PointWise Net (the flow is frozen, the target is an EMA)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return list(self.net.parameters())

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if self.training and torch.is_grad_enabled():
            if int(self.initialised) == 0:
                self._initialise_from_teacher()
            else:
                self._update_target()
        teacher = self.teacher()
        points, idx = self._flat(batch)
        if len(points) == 0:  # nothing to distil: a zero loss that still reaches the student
            zero = sum((p.sum() for p in self.net.parameters()), torch.zeros(()))
            return zero * 0.0, {"loss": 0.0}
        x0 = self.scaler.to_network(points)
        cond, n_scaled = self.point_context(batch, idx)
        sig = self.boundaries().to(x0.device, x0.dtype)
        n = torch.randint(0, len(sig) - 1, (len(x0),), device=x0.device)
        s_hi, s_lo = sig[n + 1], sig[n]
        x_hi = x0 + s_hi[:, None] * torch.randn_like(x0)
        sd = float(self.hparams["sigma_data"])
        with torch.no_grad():  # one Heun step of the teacher's probability-flow ODE
            d1 = (x_hi - teacher.net.denoise(x_hi, s_hi, cond, n_scaled, sd)) / s_hi[:, None]
            step = (s_lo - s_hi)[:, None]
            x_euler = x_hi + step * d1
            d2 = (x_euler - teacher.net.denoise(x_euler, s_lo, cond, n_scaled, sd)) / s_lo[:, None]
            x_lo = x_hi + step * 0.5 * (d1 + d2)
            target = self.consistency_fn(x_lo, s_lo, cond, n_scaled, target=True)
        pred = self.consistency_fn(x_hi, s_hi, cond, n_scaled)
        loss = (pred - target).pow(2).mean()
        return loss, {"loss": float(loss.detach())}

    # -- sampling ---------------------------------------------------------------------------

    def generate_network_points(self, noise: Tensor, cond: Tensor, n_scaled: Tensor,
                                generator: torch.Generator | None, rows: Tensor) -> Tensor:
        """One consistency call at ``sigma_max``, then ``steps - 1`` re-noise / denoise
        rounds at intermediate Karras levels."""
        hp = self.hparams
        steps = int(hp["steps"])
        smax, smin = float(hp["sigma_max"]), float(hp["sigma_min"])
        levels = karras_sigma_list(steps, smin, smax, float(hp["rho"]))[:steps]
        p = noise.shape[0]
        with self.pointwise_autocast():
            y = self.consistency_fn(noise * smax, noise.new_full((p,), smax), cond, n_scaled,
                                    rows=rows)
            for tau in levels[1:]:
                z = torch.randn(noise.shape, generator=generator, device=noise.device,
                                dtype=noise.dtype)
                x = y + (max(tau**2 - smin**2, 0.0) ** 0.5) * z
                y = self.consistency_fn(x, noise.new_full((p,), tau), cond, n_scaled,
                                        rows=rows)
        return y.to(noise.dtype)

    def network_calls(self) -> int:
        return int(self.hparams["steps"])
