"""Consistency distillation of an EDM teacher (family ``"consistency"``).

Song et al., "Consistency Models", arXiv:2303.01469 (Algorithm 2, consistency distillation), as
used to bring point-cloud diffusion to one step in CaloClouds II (Buhmann et al.,
arXiv:2309.05704). The student ``f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in x,
c_noise)`` with the boundary-respecting coefficients

    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2),
    c_out = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2),

(so ``f(x, sigma_min) = x``) maps any point of a teacher ODE trajectory to its end. Training:
``N`` Karras boundaries ``sigma_1 < ... < sigma_N``; for ``n ~ U{1..N-1}``,
``x_{n+1} = x + sigma_{n+1} z``; one Heun step of the teacher's ODE from ``sigma_{n+1}`` to
``sigma_n`` gives ``x_hat_n``; the loss is the squared distance between
``f(x_{n+1}, sigma_{n+1})`` and ``f_target(x_hat_n, sigma_n)``, with ``f_target`` an exponential
moving average of the student (decay ``target_ema``; updated at the start of each training
loss, i.e. from the weights of the previous step). The student starts from the teacher's
weights (its U-Net and condition embedding).

Sampling: one network call ``f(sigma_max z, sigma_max)``, or ``steps`` calls alternating
re-noising to intermediate Karras levels and denoising (multistep consistency sampling).

Train with ``calogen train --model consistency --base DIR`` (an ``edm`` model directory);
the student copies the teacher's architecture hparams
(:attr:`ConsistencyDistillation.built_on`). The
teacher is needed only for training; a trained student samples without it.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from calogen.models.families.edm import EDM
from calogen.models.generator import (
    UNET_DEFAULTS,
    BuiltOn,
    IterativeImageGenerator,
    ModelSpec,
    TrainBatch,
)
from calogen.models.nn.samplers import (
    consistency_boundaries,
    consistency_coefficients,
    karras_sigma_list,
    per_image,
)
from calogen.models.registry import register_family

__all__ = ["ARCHITECTURE_KEYS", "ConsistencyDistillation"]

ARCHITECTURE_KEYS: tuple[str, ...] = (
    "unet_channels", "unet_attention", "groups", "cond_dim", "use_species", "data_scale",
    "sigma_data", "sigma_min", "sigma_max", "rho")
"""Hparams a student must share with its teacher (network shape and noise parametrisation)."""


@register_family
class ConsistencyDistillation(IterativeImageGenerator):
    """Consistency model distilled from an EDM teacher. Hparams: ``teacher`` (model directory,
    needed to train), ``boundaries`` (N, 18), ``target_ema`` (0.95), ``sigma_data``,
    ``sigma_min``, ``sigma_max``, ``rho`` (as the teacher), sampling ``steps`` (1), plus
    :data:`calogen.models.families.ddpm.UNET_DEFAULTS`."""

    family: ClassVar[str] = "consistency"
    category: ClassVar[str] = "diffusion"
    built_on: ClassVar[BuiltOn | None] = BuiltOn(("edm",), "teacher", ARCHITECTURE_KEYS)
    samplers: ClassVar[tuple[str, ...]] = ("consistency",)
    defaults = {
        **UNET_DEFAULTS, "teacher": "", "boundaries": 18, "target_ema": 0.95,
        "sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
        "steps": 1, "sampler": "consistency",
    }

    initialised: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if int(self.hparams["boundaries"]) < 2:
            raise ValueError("consistency: boundaries must be >= 2")
        self.target_embed = self.condition_embedding()
        self.target_net = self.make_unet()
        for p in self._target_modules().parameters():
            p.requires_grad_(False)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        self._teacher: EDM | None = None

    def _target_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.target_embed, self.target_net])

    def _student_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.cond_embed, self.net])

    # -- teacher ----------------------------------------------------------------------------

    def teacher(self) -> EDM:
        """The EDM teacher (loaded on first use, frozen, never saved with the student)."""
        if self._teacher is None:
            from calogen.models.io import load_frozen_base

            path = str(self.hparams["teacher"])
            if not path:
                raise ValueError("consistency: training needs a teacher (hparam 'teacher', "
                                 "or `calogen train --model consistency --base DIR`)")
            # load_frozen_base refuses any family but "edm"
            teacher = cast(EDM, load_frozen_base(path, "edm", self.hparams, ARCHITECTURE_KEYS,
                                                 next(self.parameters()).device))
            object.__setattr__(self, "_teacher", teacher)  # not a submodule: not saved
        assert self._teacher is not None
        return self._teacher

    def _initialise_from_teacher(self) -> None:
        teacher = self.teacher()
        weights = nn.ModuleList([teacher.cond_embed, teacher.net]).state_dict()
        self._student_modules().load_state_dict(weights)
        self._target_modules().load_state_dict(weights)
        self.initialised.fill_(1)

    # -- the consistency function -----------------------------------------------------------

    def _coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return consistency_coefficients(sigma, float(self.hparams["sigma_data"]),
                                        float(self.hparams["sigma_min"]))

    def consistency_fn(self, x: Tensor, sigma: Tensor, c: Tensor, *,
                       target: bool = False) -> Tensor:
        """``f(x, sigma)`` with the student (or the EMA target) network; ``sigma (B,)``."""
        c_skip, c_out, c_in, c_noise = self._coefficients(sigma)
        net = self.target_net if target else self.net
        return per_image(c_skip) * x + per_image(c_out) * net(per_image(c_in) * x, c_noise, c)

    def boundaries(self) -> Tensor:
        """Karras boundaries ``sigma_1 < ... < sigma_N`` (ascending)."""
        hp = self.hparams
        return consistency_boundaries(int(hp["boundaries"]), float(hp["sigma_min"]),
                                      float(hp["sigma_max"]), float(hp["rho"]))

    # -- training ---------------------------------------------------------------------------

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The student (condition embedding and U-Net); the EMA target is not optimised."""
        if phase not in self.phases:
            raise ValueError(f"consistency: unknown phase {phase!r}; phases {self.phases}")
        return list(self._student_modules().parameters())

    @torch.no_grad()
    def _update_target(self) -> None:
        mu = float(self.hparams["target_ema"])
        for tp, p in zip(self._target_modules().parameters(),
                         self._student_modules().parameters(), strict=True):
            tp.mul_(mu).add_(p.detach(), alpha=1 - mu)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"consistency: unknown phase {phase!r}; phases {self.phases}")
        training = self.training and torch.is_grad_enabled()
        if training:
            if int(self.initialised) == 0:
                self._initialise_from_teacher()
            else:
                self._update_target()
        teacher = self.teacher()
        x0 = batch.x / self._scale()
        b = x0.shape[0]
        sig = self.boundaries().to(x0.device, x0.dtype)
        n = torch.randint(0, len(sig) - 1, (b,), device=x0.device)
        s_hi, s_lo = sig[n + 1], sig[n]
        x_hi = x0 + s_hi.view(-1, 1, 1, 1) * torch.randn_like(x0)
        species = self._species(batch)
        with torch.no_grad():  # one Heun step of the teacher's probability-flow ODE
            tc = teacher.cond_embed(batch.cond, species)
            d1 = (x_hi - teacher.denoise(x_hi, s_hi, tc)) / s_hi.view(-1, 1, 1, 1)
            step = (s_lo - s_hi).view(-1, 1, 1, 1)
            x_euler = x_hi + step * d1
            d2 = (x_euler - teacher.denoise(x_euler, s_lo, tc)) / s_lo.view(-1, 1, 1, 1)
            x_lo = x_hi + step * 0.5 * (d1 + d2)
            target = self.consistency_fn(x_lo, s_lo, self.target_embed(batch.cond, species),
                                         target=True)
        pred = self.consistency_fn(x_hi, s_hi, self.cond_embed(batch.cond, species))
        loss = (pred - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    # -- sampling ---------------------------------------------------------------------------

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        hp = self.hparams
        steps = int(hp["steps"])
        smax, smin = float(hp["sigma_max"]), float(hp["sigma_min"])
        b = noise.shape[0]  # symbolic under torch.export
        levels = karras_sigma_list(steps, smin, smax, float(hp["rho"]))[:steps]
        y = self.consistency_fn(noise * smax, torch.full((b,), smax, device=noise.device), c)
        for tau in levels[1:]:
            z = torch.randn(noise.shape, generator=generator, device=noise.device)
            x = y + (max(tau ** 2 - smin ** 2, 0.0) ** 0.5) * z
            y = self.consistency_fn(x, torch.full((b,), tau, device=noise.device), c)
        return y

    def network_calls(self) -> int:
        return int(self.hparams["steps"])

    def exportable(self) -> bool:
        """One step is deterministic; multistep sampling draws fresh noise at every step."""
        return int(self.hparams["steps"]) == 1
