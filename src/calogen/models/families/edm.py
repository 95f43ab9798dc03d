"""EDM (family ``"edm"``; Karras et al., arXiv:2206.00364) on the ``log1p`` photon image.

``x + sigma n`` with ``ln sigma ~ N(P_mean, P_std^2)``; the preconditioned denoiser
``D = c_skip x + c_out F(c_in x, c_noise)`` is trained with the weight ``lambda(sigma)``;
sampling with the Karras schedule by Heun (``2 steps - 1`` calls), Euler, or the stochastic
sampler (``s_churn``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from calogen.models.generator import (
    SAMPLER,
    STEPS,
    UNET_DEFAULTS,
    IterativeImageGenerator,
    SamplingOption,
    TrainBatch,
)
from calogen.models.nn.samplers import (
    edm_loss,
    edm_preconditioning,
    edm_sample,
    karras_sigma_list,
    network_calls,
    per_image,
)
from calogen.models.registry import register_family

__all__ = ["EDM"]


@register_family
class EDM(IterativeImageGenerator):
    """EDM (Karras et al.). Hparams: ``sigma_data`` (0.5), ``p_mean`` (-1.2), ``p_std`` (1.2),
    ``sigma_min`` (0.002), ``sigma_max`` (80), ``rho`` (7); sampling ``steps`` (18),
    ``sampler`` (``"heun"``, ``"euler"`` or ``"stochastic"``: Heun with ``s_churn``
    (40), ``s_tmin`` (0.05), ``s_tmax`` (50), ``s_noise`` (1.003)), plus :data:`UNET_DEFAULTS`."""

    family: ClassVar[str] = "edm"
    category: ClassVar[str] = "diffusion"
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (
        STEPS, SAMPLER, SamplingOption("s_churn", float, "stochasticity of the stochastic sampler"))
    samplers: ClassVar[tuple[str, ...]] = ("heun", "euler", "stochastic")
    defaults = {
        **UNET_DEFAULTS, "sigma_data": 0.5, "p_mean": -1.2, "p_std": 1.2, "sigma_min": 0.002,
        "sigma_max": 80.0, "rho": 7.0, "steps": 18, "sampler": "heun", "s_churn": 40.0,
        "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003,
    }

    def denoise(self, x: Tensor, sigma: Tensor, c: Tensor) -> Tensor:
        """Preconditioned denoiser ``D(x; sigma)`` (network space, ``sigma (B,)``)."""
        sd = float(self.hparams["sigma_data"])
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sd)
        return per_image(c_skip) * x + per_image(c_out) * self.net(per_image(c_in) * x, c_noise, c)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"edm: unknown phase {phase!r}; phases {self.phases}")
        x0 = batch.x / self._scale()
        hp = self.hparams
        c = self.cond_embed(batch.cond, self._species(batch))
        loss, err = edm_loss(lambda noisy, sigma: self.denoise(noisy, sigma, c), x0,
                             float(hp["p_mean"]), float(hp["p_std"]), float(hp["sigma_data"]))
        return loss, {"loss": loss.item(), "mse": err.mean().item()}

    def sigmas(self) -> list[float]:
        """The Karras noise levels of the current sampling options (Python floats)."""
        hp = self.hparams
        return karras_sigma_list(int(hp["steps"]), float(hp["sigma_min"]),
                                 float(hp["sigma_max"]), float(hp["rho"]))

    def exportable(self) -> bool:
        return self.hparams["sampler"] != "stochastic"

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        hp = self.hparams
        stochastic = hp["sampler"] == "stochastic"
        return edm_sample(lambda x, s: self.denoise(x, s, c), noise, self.sigmas(),
                          heun=hp["sampler"] != "euler",
                          s_churn=float(hp["s_churn"]) if stochastic else 0.0,
                          s_tmin=float(hp["s_tmin"]), s_tmax=float(hp["s_tmax"]),
                          s_noise=float(hp["s_noise"]), generator=generator)

    def network_calls(self) -> int:
        method = "euler" if self.hparams["sampler"] == "euler" else "heun"
        return network_calls("edm", int(self.hparams["steps"]), method)


