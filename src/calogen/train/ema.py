"""Exponential moving average (EMA) of a model's weights.

``shadow <- decay * shadow + (1 - decay) * weights`` after every training step (Polyak &
Juditsky 1992; as used for generative models e.g. by Karras et al., "Elucidating the Design
Space of Diffusion-Based Generative Models", NeurIPS 2022). With ``warmup`` the decay used at
update ``t`` is ``min(decay, (1 + t) / (10 + t))`` (the TensorFlow ``ExponentialMovingAverage``
``num_updates`` rule), so early weights are forgotten quickly. Floating-point parameters *and*
buffers are averaged; integer buffers (e.g. batch-norm counters) are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """EMA of ``model``'s state (parameters and buffers), keyed like ``model.state_dict()``.

    Args:
        model: the model to follow; the shadow starts as a copy of its current weights.
        decay: the EMA decay in ``[0, 1)``.
        warmup: use the ``(1 + t) / (10 + t)`` decay warm-up.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone()
                                          for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if not self.warmup:
            return self.decay
        t = self.num_updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model``'s current weights."""
        d = self.current_decay()
        state = model.state_dict()
        if state.keys() != self.shadow.keys():
            raise ValueError("EMA: the model's state keys changed since the EMA was created")
        for key, value in state.items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - d)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (loadable with ``weights_only=True``)."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; the shadow keys must match."""
        shadow = state["shadow"]
        if shadow.keys() != self.shadow.keys():
            missing = sorted(set(self.shadow) - set(shadow))[:5]
            extra = sorted(set(shadow) - set(self.shadow))[:5]
            raise ValueError(f"EMA state does not match the model (missing {missing}, "
                             f"unexpected {extra})")
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for k, v in shadow.items():
            self.shadow[k].copy_(v)

    def state_for_model(self) -> dict[str, Tensor]:
        """The averaged weights as a model state dict (e.g. for ``save_model``)."""
        return {k: v.detach().clone() for k, v in self.shadow.items()}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the averaged ones."""
        model.load_state_dict(self.shadow, strict=True)

    @contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the EMA weights; its own are restored after."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                model.load_state_dict(backup, strict=True)
