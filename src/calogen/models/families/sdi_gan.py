"""SDI-GAN (family ``"sdi-gan"``; Dubinski et al., "Selectively increasing the diversity of
GAN-generated samples", arXiv:2207.01561).

The conditional GAN of :mod:`calogen.models.families.gan` plus a diversity term in the
generator loss: for two noise vectors
``z1, z2`` and the same condition ``c_i``,

    L_div = mean_i( w_i * mean|z1_i - z2_i| / mean|G(z1_i, c_i) - G(z2_i, c_i)| ),

so minimising it maximises ``|G(z1, c) - G(z2, c)| / |z1 - z2|``, weighted per condition by how
diverse the training responses of that condition are. Here ``w_i`` is measured in the batch: rows
sharing a ``condition_id`` are repeats of one particle; a group with >= 2 rows gets the mean
per-pixel standard deviation of its images (``log1p`` space), normalised by the mean over such
groups in the batch; rows of singleton groups get the hparam ``div_fallback`` (1 = average
diversity). The conditions fed to ``G`` are the batch's own conditions in their own order: the
public SDI-GAN code shuffled the generator's conditions but compared auxiliary losses against
unshuffled ones (MODELS.md); every auxiliary term here pairs row ``i``'s output with row ``i``'s
condition, image and group.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.families.gan import ConditionalGAN, group_diversity
from calogen.models.generator import TrainBatch
from calogen.models.registry import register_family

__all__ = ["SDIGAN"]


@register_family
class SDIGAN(ConditionalGAN):
    """SDI-GAN (arXiv:2207.01561): :class:`ConditionalGAN` plus the diversity term (module
    docstring). Extra hparams: ``div_weight`` (weight of ``L_div``, 0.1), ``div_fallback``
    (weight of rows whose group has one row in the batch, 1.0), ``div_eps`` (1e-3, added to
    the image distance)."""

    family: ClassVar[str] = "sdi-gan"
    defaults: ClassVar[dict[str, Any]] = {
        **ConditionalGAN.defaults, "div_weight": 0.1, "div_fallback": 1.0, "div_eps": 1e-3,
    }

    def diversity_terms(self, batch: TrainBatch, z1: Tensor, z2: Tensor,
                        fake1: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-row ratio ``mean|z1_i - z2_i| / mean|G(z1_i, c_i) - G(z2_i, c_i)|`` and per-row
        weight ``w_i`` (:func:`group_diversity` of row i's group), both ``(B,)``. ``G`` sees
        ``batch.cond`` in batch order for both noise vectors."""
        species = self._species(batch)
        if fake1 is None:
            fake1 = self._generate(z1, batch.cond, species)
        fake2 = self._generate(z2, batch.cond, species)
        dz = (z1 - z2).abs().flatten(1).mean(1)
        dx = (fake1 - fake2).abs().flatten(1).mean(1)
        ratio = dz / (dx + float(self.hparams["div_eps"]))
        weight = group_diversity(batch.x, batch.condition_id, float(self.hparams["div_fallback"]))
        return ratio, weight

    def _extra_generator_loss(self, batch: TrainBatch, z: Tensor, fake: Tensor,
                              species: Tensor | None) -> tuple[Tensor | None, dict[str, float]]:
        w = float(self.hparams["div_weight"])
        if w <= 0:
            return None, {}
        ratio, weight = self.diversity_terms(batch, z, torch.randn_like(z), fake)
        div = (weight * ratio).mean()
        return w * div, {"div": div.item()}
