"""DDPM (family ``"ddpm"``; Ho et al., arXiv:2006.11239) on the ``log1p`` photon image.

``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps``; the network (the conditional U-Net of
:class:`~calogen.models.generator.IterativeImageGenerator`) predicts ``v`` or ``eps`` (squared
error); sampling by DDIM (Song et al., arXiv:2010.02502) with ``steps`` network calls and
stochasticity ``eta``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.generator import (
    SAMPLER,
    STEPS,
    UNET_DEFAULTS,
    IterativeImageGenerator,
    ModelSpec,
    SamplingOption,
    TrainBatch,
)
from calogen.models.nn.samplers import (
    ddim_sample,
    ddpm_alpha_bar,
    network_calls,
)
from calogen.models.registry import register_family

__all__ = ["DDPM"]


PREDICTIONS: tuple[str, ...] = ("eps", "v")
"""What the DDPM network predicts (see :class:`DDPM`)."""


@register_family
class DDPM(IterativeImageGenerator):
    """DDPM trained on noise prediction, sampled by DDIM. Hparams: ``timesteps`` (1000),
    ``schedule`` (``"cosine"`` or ``"linear"``), sampling ``steps`` (50), ``eta`` (0 =
    deterministic DDIM, 1 = ancestral), ``sampler`` (``"ddim"``), ``x0_max`` (8.0: the
    predicted clean image is clamped to ``[0, x0_max]`` in network units while sampling, see
    :func:`calogen.models.nn.samplers.ddim_sample`; ``log1p`` of 8 is ~3000 photons per fibre),
    ``prediction`` (``"v"``, the default: the network predicts
    ``v = sqrt(abar) eps - sqrt(1 - abar) x``, Salimans & Ho, arXiv:2202.00512, well
    conditioned at every noise level; ``"eps"``: the noise, as Ho et al. and the ZDC DDPM),
    plus :data:`UNET_DEFAULTS`.
    (why ``"v"``: benchmarks/README.md)."""

    family: ClassVar[str] = "ddpm"
    category: ClassVar[str] = "diffusion"
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (
        STEPS, SAMPLER,
        SamplingOption("eta", float, "DDIM stochasticity (0 deterministic, 1 ancestral)"))
    samplers: ClassVar[tuple[str, ...]] = ("ddim",)
    defaults = {
        **UNET_DEFAULTS, "timesteps": 1000, "schedule": "cosine", "steps": 50, "eta": 0.0,
        "sampler": "ddim", "x0_max": 8.0, "prediction": "v",
    }

    alpha_bar: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        abar = ddpm_alpha_bar(int(self.hparams["timesteps"]), str(self.hparams["schedule"]))
        self.register_buffer("alpha_bar", abar.float(), persistent=False)
        self._alpha_bar_list = abar.tolist()  # Python floats: sampling loops stay exportable
        if self.hparams["prediction"] not in PREDICTIONS:
            raise ValueError(f"ddpm: prediction must be one of {PREDICTIONS}, "
                             f"got {self.hparams['prediction']!r}")

    def _check_sampling(self, opts: dict[str, Any]) -> None:
        super()._check_sampling(opts)
        if int(opts["steps"]) > int(opts["timesteps"]):
            raise ValueError(f"ddpm: steps ({opts['steps']}) exceed the {opts['timesteps']} "
                             f"training timesteps")
        if float(opts["eta"]) < 0:
            raise ValueError(f"ddpm: eta must be >= 0, got {opts['eta']}")

    def _output(self, x: Tensor, t_index: Tensor, c: Tensor) -> Tensor:
        return self.net(x, t_index.float() / float(self.hparams["timesteps"]), c)

    def _eps(self, x: Tensor, t_index: Tensor, c: Tensor) -> Tensor:
        """Predicted noise in ``x`` at ``t_index`` (from ``v`` with ``prediction="v"``:
        ``eps = sqrt(1 - abar) x + sqrt(abar) v``)."""
        out = self._output(x, t_index, c)
        if self.hparams["prediction"] == "eps":
            return out
        ab = self.alpha_bar[t_index].view(-1, 1, 1, 1).to(x.dtype)
        return (1 - ab).sqrt() * x + ab.sqrt() * out

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"ddpm: unknown phase {phase!r}; phases {self.phases}")
        x0 = batch.x / self._scale()
        t = torch.randint(0, int(self.hparams["timesteps"]), (x0.shape[0],), device=x0.device)
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(x0)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        c = self.cond_embed(batch.cond, self._species(batch))
        if self.hparams["prediction"] == "eps":
            target = eps
        else:
            target = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        loss = (self._output(xt, t, c) - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    def exportable(self) -> bool:
        return float(self.hparams["eta"]) == 0.0

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        return ddim_sample(lambda x, t: self._eps(x, t, c), noise, self._alpha_bar_list,
                           int(self.hparams["steps"]), float(self.hparams["eta"]), generator,
                           clip=(0.0, float(self.hparams["x0_max"])))

    def network_calls(self) -> int:
        return network_calls("ddim", int(self.hparams["steps"]))


