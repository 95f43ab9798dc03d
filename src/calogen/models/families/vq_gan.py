"""VQ-GAN (family ``"vq-gan"``; Esser et al., "Taming Transformers for High-Resolution Image
Synthesis", arXiv:2012.09841): the VQ-VAE of :mod:`calogen.models.families.vq_vae` plus the
conditional discriminator of :mod:`calogen.models.nn.discriminator`, which judges real images
against reconstructions with the
non-saturating loss (Goodfellow et al., arXiv:1406.2661); the autoencoder loss gains
``gan_weight * lambda * softplus(-D(x_hat, c))`` once ``disc_start`` training steps are done,
with VQGAN's adaptive weight ``lambda = |grad recon| / |grad adv|`` at the decoder's last layer
(``gan_adaptive``; else ``lambda = 1``). Before that, the discriminator's loss is an exact zero
that touches only its zero-initialised output bias, so the trainer's AdamW step changes
nothing, with or without weight decay (in one process; under data parallelism the trainer
gives every parameter a zero gradient, and weight decay then shrinks the discriminator's
weights during the warm-up).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.models.families.vq_vae import VQ_DEFAULTS, VQVAE, non_negative_number
from calogen.models.generator import ModelSpec, TrainBatch
from calogen.models.nn.backbones import BACKBONE_DEFAULTS
from calogen.models.nn.discriminator import ConditionalDiscriminator
from calogen.models.registry import register_family

__all__ = ["GAN_DEFAULTS", "VQGAN"]

GAN_DEFAULTS: dict[str, Any] = {
    "backbone": "cnn",          # discriminator trunk: "cnn", "vit" or "mlp" (backbones)
    "channels": list(BACKBONE_DEFAULTS["channels"]),
    "groups": BACKBONE_DEFAULTS["groups"],
    "mlp_hidden": list(BACKBONE_DEFAULTS["mlp_hidden"]),
    "gan_weight": 0.1,          # weight of the adversarial term in the autoencoder loss
    "gan_adaptive": True,       # times VQGAN's adaptive weight |grad recon| / |grad adv|
    "disc_start": 500,          # training steps before the discriminator is used
}
"""Extra hparams of ``vq-gan``."""


@register_family
class VQGAN(VQVAE):
    """:class:`VQVAE` plus a conditional discriminator on reconstructions (module docstring).

    Extra hparams (:data:`GAN_DEFAULTS`): ``gan_weight`` (0.1), ``gan_adaptive`` (True: times
    ``|grad recon| / |grad adv|`` at the decoder's output layer, Esser et al. eq. 7),
    ``disc_start`` (500 training steps), and the discriminator trunk's backbone keys
    ``backbone``, ``channels``, ``groups``, ``mlp_hidden`` (vit keys shared with the encoder)
    as in :data:`calogen.models.nn.backbones.BACKBONE_DEFAULTS`. The phase ``"discriminator"``
    trains the discriminator's condition embedding, trunk and head.

    The ``step`` buffer counts completed training steps (advanced by the last phase,
    ``"prior"``), is saved with the model and restored on resume; at ``step < disc_start`` the
    adversarial term is off and the discriminator loss is an exact zero.
    """

    family: ClassVar[str] = "vq-gan"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "discriminator", "prior")
    legacy_state_keys: ClassVar[dict[str, str]] = ConditionalDiscriminator.legacy_keys(
        "discriminator")
    optimizer_defaults: ClassVar[dict[str, Any]] = {"betas": (0.5, 0.9)}
    """Adam betas used by VQGAN (Esser et al.)."""
    defaults = {**VQ_DEFAULTS, **GAN_DEFAULTS}

    gan_scale: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if not non_negative_number(hp["gan_weight"]):
            raise ValueError(f"vq-gan: hparam 'gan_weight' must be a number >= 0, got "
                             f"{hp['gan_weight']!r}")
        ds = hp["disc_start"]
        if isinstance(ds, bool) or not isinstance(ds, int) or ds < 0:
            raise ValueError(f"vq-gan: hparam 'disc_start' must be an integer >= 0, got {ds!r}")
        if not isinstance(hp["gan_adaptive"], bool):
            raise ValueError(f"vq-gan: hparam 'gan_adaptive' must be true or false, got "
                             f"{hp['gan_adaptive']!r}")
        # zero logit bias: the warm-up's zero loss touches only it
        self.discriminator = ConditionalDiscriminator(self.condition_embedding(), hp, self.shape,
                                                      zero_bias=True)
        self.register_buffer("gan_scale", torch.ones(()))

    def disc_active(self) -> bool:
        """Whether the discriminator is in use (``step >= disc_start``)."""
        return int(self.step) >= int(self.hparams["disc_start"])

    def discriminate(self, x: Tensor, cond: Tensor, species: Tensor | None) -> Tensor:
        """Logit ``(B,)`` of ``x`` being a real image for these conditions."""
        return self.discriminator(x, cond, self._species(species))[0]

    def _modules_of(self, phase: str) -> list[nn.Module]:
        if phase == "discriminator":
            return [self.discriminator]
        return super()._modules_of(phase)

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        if phase == "discriminator":
            return self._discriminator_loss(batch)
        return super().loss(batch, phase)

    def _adaptive_scale(self, recon: Tensor, adv: Tensor) -> Tensor:
        """``|grad recon| / |grad adv|`` at the decoder's output layer (clamped to
        ``[0, 1e4]``, no gradient); outside training steps the last training value."""
        if not (self.hparams["gan_adaptive"] and self._training_step()):
            return self.gan_scale.clone() if self.hparams["gan_adaptive"] else \
                torch.ones((), device=recon.device)
        last = self.decoder.head.weight
        g_rec = torch.autograd.grad(recon, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
        scale = (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach()
        self.gan_scale.copy_(scale)
        return scale

    def _autoencoder_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        x_hat, recon, vq, logs = self._autoencoder_terms(batch)
        loss = recon + float(self.hparams["vq_weight"]) * vq
        weight = 0.0
        if self.disc_active() and float(self.hparams["gan_weight"]) > 0:
            adv = F.softplus(-self.discriminate(x_hat, batch.cond, batch.species)).mean()
            scale = self._adaptive_scale(recon, adv)
            weight = float(self.hparams["gan_weight"]) * float(scale)
            loss = loss + weight * adv
            logs["g_adv"] = adv.item()
        logs["gan_weight"] = weight
        logs["loss"] = loss.item()
        return loss, logs

    def _discriminator_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        """Non-saturating loss on real images vs reconstructions; before ``disc_start`` an
        exact zero that depends only on the zero-initialised output bias (zero gradient)."""
        if not self.disc_active():
            zero = 0.0 * self.discriminator.head.bias.sum()
            return zero, {"loss": 0.0, "active": 0.0}
        with torch.no_grad():  # reconstructions of this batch, no bookkeeping
            fake = self.decode_tokens(self.encode(batch.x, batch.cond, batch.species),
                                      batch.cond, batch.species)
        logit_r = self.discriminate(batch.x, batch.cond, batch.species)
        logit_f = self.discriminate(fake, batch.cond, batch.species)
        loss = F.softplus(-logit_r).mean() + F.softplus(logit_f).mean()
        return loss, {"loss": loss.item(), "active": 1.0, "d_real": logit_r.mean().item(),
                      "d_fake": logit_f.mean().item()}
