"""Conditional variational autoencoder (family ``"vae"``).

Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114, conditioned on the
particle features as in the ZDC VAE (Dubinski et al., "Machine Learning methods for simulating
particle response in the Zero Degree Calorimeter at the ALICE experiment", arXiv:2306.13606;
latent 10, loss ``MSE + 0.7 KL``).

* encoder ``q(z | x, c) = N(mu, diag sigma^2)``, decoder ``p(x | z, c)`` (Gaussian with unit
  variance in ``log1p`` space, i.e. a squared-error reconstruction);
* loss per shower: ``sum_pixels (x - x_hat)^2 + beta_t * KL(q || N(0, 1))`` with ``beta_t`` the
  hparam ``beta`` ramped linearly from 0 over ``kl_warmup`` training steps (Bowman et al.,
  arXiv:1511.06349); the step counter is a buffer, so it survives save/load and resume.
  ``recon_reduction="mean"`` averages the squared error over pixels instead (the paper's
  literal ``MSE``; weaker reconstructions at ``beta = 0.7``).
* sampling draws ``z ~ N(0, 1)`` (the prior) and runs the decoder once: one-step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.backbones import BACKBONE_DEFAULTS, ImageGenerator, make_decoder, make_encoder
from calogen.models.base import ModelSpec, TrainBatch, register_family

__all__ = ["ConditionalVAE"]


@register_family
class ConditionalVAE(ImageGenerator):
    """Conditional VAE; hparams (defaults in :attr:`defaults`):

    ``latent_dim`` (10), ``beta`` (0.7), ``kl_warmup`` (steps, 0 = off),
    ``recon_reduction`` (``"sum"`` over pixels or ``"mean"``), plus the backbone keys of
    :data:`calogen.models.backbones.BACKBONE_DEFAULTS`.
    """

    family: ClassVar[str] = "vae"
    phases: ClassVar[tuple[str, ...]] = ("main",)
    one_step: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        **BACKBONE_DEFAULTS, "latent_dim": 10, "beta": 0.7, "kl_warmup": 0,
        "recon_reduction": "sum",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if self.hparams["recon_reduction"] not in ("sum", "mean"):
            raise ValueError("vae: hparam 'recon_reduction' must be 'sum' or 'mean'")
        hp, d = self.hparams, int(self.hparams["latent_dim"])
        self.cond_embed = self.condition_embedding()
        self.encoder = make_encoder(hp, self.shape, int(hp["cond_dim"]), 2 * d)
        self.decoder = make_decoder(hp, d, int(hp["cond_dim"]), self.shape)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def encode(self, x: Tensor, cond: Tensor,
               species: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance ``(B, latent_dim)`` each."""
        mu, logvar = self.encoder(x, self.cond_embed(cond, species)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from latent ``noise`` (prior ``N(0, 1)``) and
        standardised conditions."""
        return self.activate(self.decoder(noise, self.cond_embed(cond, species)))

    def kl_weight(self) -> float:
        """``beta`` times the linear warm-up factor at the current step."""
        warm = int(self.hparams["kl_warmup"])
        ramp = 1.0 if warm <= 0 else min(1.0, float(self.step) / warm)
        return float(self.hparams["beta"]) * ramp

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """``recon + beta_t * KL`` per shower, averaged over the batch."""
        if phase not in self.phases:
            raise ValueError(f"vae: unknown phase {phase!r}; phases {self.phases}")
        species = batch.species if self.hparams["use_species"] else None
        c = self.cond_embed(batch.cond, species)
        mu, logvar = self.encoder(batch.x, c).chunk(2, dim=1)
        logvar = logvar.clamp(-12.0, 8.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        x_hat = self.activate(self.decoder(z, c))
        sq = (x_hat - batch.x).pow(2).flatten(1)
        recon = sq.sum(1) if self.hparams["recon_reduction"] == "sum" else sq.mean(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        beta = self.kl_weight()
        loss = (recon + beta * kl).mean()
        if self.training and torch.is_grad_enabled():  # training steps only, not validation
            self.step += 1
        return loss, {"loss": loss.item(), "mse": sq.mean().item(), "kl": kl.mean().item(),
                      "beta": beta}
