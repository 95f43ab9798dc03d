"""The conditional discriminator shared by the adversarial families (``gan``, ``sdi-gan``,
``vq-gan``).

``D(x, c) = head(silu(trunk(x, embed(c))))``: a condition embedding, an encoder backbone of
:mod:`calogen.models.nn.backbones` as trunk (the conditional GAN of Mirza & Osindero,
arXiv:1411.1784), a linear logit head (real > 0) and an optional auxiliary regression head on
the same features. Optional instance noise (Sønderby et al., arXiv:1610.04490) is added to every
image it sees during training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.models.nn.backbones import ConditionEmbedding, make_encoder

__all__ = ["DISC_FEATURES", "ConditionalDiscriminator"]

DISC_FEATURES = 128
"""Width of the trunk's output features (before the logit and auxiliary heads)."""


class ConditionalDiscriminator(nn.Module):
    """Conditional discriminator over log images ``(B, 1, H, W)``.

    Args:
        embed: the condition embedding (standardised conditions [+ species] -> vector).
        hparams: backbone keys of the trunk (``backbone``, ``channels``, ``groups``, ...; see
            :func:`calogen.models.nn.backbones.make_encoder`) and ``cond_dim``.
        shape: image shape ``(H, W)``, or ``(n_voxels,)`` with the MLP trunk.
        aux_outputs: width of the auxiliary regression head (0 = none).
        zero_bias: start the logit bias at 0 (a warm-up loss ``0 * bias`` then touches only it).
    """

    def __init__(self, embed: ConditionEmbedding, hparams: Mapping[str, Any],
                 shape: tuple[int, ...], aux_outputs: int = 0, zero_bias: bool = False) -> None:
        super().__init__()
        self.embed = embed
        self.trunk = make_encoder(hparams, shape, int(hparams["cond_dim"]), DISC_FEATURES)
        self.head = nn.Linear(DISC_FEATURES, 1)
        self.aux = nn.Linear(DISC_FEATURES, aux_outputs) if aux_outputs > 0 else None
        if zero_bias:
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor, cond: Tensor, species: Tensor | None = None,
                instance_noise: float = 0.0) -> tuple[Tensor, Tensor | None]:
        """Logit ``(B,)`` of ``x`` being real for these conditions, and the auxiliary output
        ``(B, aux_outputs)`` (or None). ``instance_noise`` (a standard deviation) is added to
        ``x`` first when positive and in training mode."""
        if instance_noise > 0 and self.training:
            x = x + instance_noise * torch.randn_like(x)
        f = F.silu(self.trunk(x, self.embed(cond, species)))
        aux = self.aux(f) if self.aux is not None else None
        return self.head(f)[:, 0], aux

    @staticmethod
    def legacy_keys(prefix: str) -> dict[str, str]:
        """State-dict prefixes of the discriminators saved before this module existed
        (``d_embed``, ``disc``, ``d_head``, ``aux_head`` on the family) mapped to the keys under
        the attribute ``prefix``."""
        return {"d_embed.": f"{prefix}.embed.", "disc.": f"{prefix}.trunk.",
                "d_head.": f"{prefix}.head.", "aux_head.": f"{prefix}.aux."}
