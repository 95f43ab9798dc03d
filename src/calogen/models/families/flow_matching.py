"""Conditional flow matching (family ``"flow-matching"``) on the ``log1p`` photon image.

Straight paths ``x_t = (1 - t) n + t x`` (Lipman et al., arXiv:2210.02747; Liu et al.,
arXiv:2209.03003); the network predicts the velocity ``x - n``; sampling by Euler, midpoint or
Heun with ``steps`` steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.generator import UNET_DEFAULTS, IterativeImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.samplers import (
    TIME_SAMPLINGS,
    flow_matching_pair,
    flow_matching_times,
    network_calls,
    ode_sample,
)
from calogen.models.registry import register_family

__all__ = ["FlowMatching"]


@register_family
class FlowMatching(IterativeImageGenerator):
    """Conditional flow matching with straight paths. Hparams: ``time_sampling``
    (``"uniform"`` or ``"logit-normal"``: ``t = sigmoid(N(0, 1))``, Esser et al.,
    arXiv:2403.03206), sampling ``steps`` (10) and ``sampler`` (``"euler"``, ``"midpoint"``,
    ``"heun"``; default midpoint), plus :data:`UNET_DEFAULTS`."""

    family: ClassVar[str] = "flow-matching"
    category: ClassVar[str] = "diffusion"
    samplers: ClassVar[tuple[str, ...]] = ("euler", "midpoint", "heun")
    defaults = {
        **UNET_DEFAULTS, "time_sampling": "logit-normal", "steps": 10, "sampler": "midpoint",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if self.hparams["time_sampling"] not in TIME_SAMPLINGS:
            raise ValueError(f"flow-matching: time_sampling must be one of {TIME_SAMPLINGS}")

    def velocity(self, x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        """Predicted velocity at ``x``, time ``t (B,)`` in [0, 1] (0 = noise, 1 = data)."""
        return self.net(x, t, c)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"flow-matching: unknown phase {phase!r}; phases {self.phases}")
        x1 = batch.x / self._scale()
        t = flow_matching_times(x1.shape[0], str(self.hparams["time_sampling"]), x1.device)
        xt, target = flow_matching_pair(x1, torch.randn_like(x1), t)
        c = self.cond_embed(batch.cond, self._species(batch))
        loss = (self.velocity(xt, t, c) - target).pow(2).mean()
        return loss, {"loss": loss.item()}

    def exportable(self) -> bool:
        return True

    def _integrate(self, noise: Tensor, c: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        return ode_sample(lambda x, t: self.velocity(x, t, c), noise,
                          int(self.hparams["steps"]), str(self.hparams["sampler"]))

    def network_calls(self) -> int:
        return network_calls("ode", int(self.hparams["steps"]), str(self.hparams["sampler"]))

