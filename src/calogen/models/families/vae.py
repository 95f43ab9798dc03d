"""Conditional variational autoencoder (family ``"vae"``).

Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114, conditioned on the
particle features as in the ZDC VAE (Dubinski et al., "Machine Learning methods for simulating
particle response in the Zero Degree Calorimeter at the ALICE experiment", arXiv:2306.13606;
whose setting is ``recon_loss="mse", beta=0.7, prior="normal"``; calogen's default is
``beta = 1``).

* encoder ``q(z | x, c) = N(mu, diag sigma^2)``, decoder ``p(x | z, c)`` (Gaussian with unit
  variance in ``log1p`` space, i.e. a squared-error reconstruction);
* loss per shower: ``sum_pixels (x - x_hat)^2 + beta_t * KL(q || N(0, 1))`` with ``beta_t`` the
  hparam ``beta`` ramped linearly from 0 over ``kl_warmup`` training steps (Bowman et al.,
  arXiv:1511.06349); the step counter is a buffer, so it survives save/load and resume.
  ``recon_reduction="mean"`` averages the squared error over pixels instead (the paper's
  literal ``MSE``; weaker reconstructions at ``beta = 0.7``). ``recon_loss="poisson"`` replaces
  the squared error by the photon-count likelihood of :mod:`calogen.models.nn.losses` (the
  ``log1p`` squared error biases decoded photon sums low where showers fluctuate).
* sampling draws ``z ~ N(0, 1)`` (the prior) and runs the decoder once: one-step.
* ``prior="flow"`` replaces the fixed ``N(0, 1)`` by a learned conditional prior ``p(z | c)``,
  a coupling flow (:mod:`calogen.models.nn.flows`) trained jointly; the KL term becomes the
  one-sample estimate ``log q(z | x, c) - log p(z | c)`` at the reparametrised ``z`` (a learned
  prior as in VampPrior / flow-prior VAEs, e.g. Tomczak & Welling arXiv:1705.07120). With the
  fixed prior the encoder stores condition information (energy) in ``z``, and ``z ~ N(0, 1)``
  then decodes the wrong showers for a given condition: in 3-minute CPU trials on 30k ZN
  responses reconstructions were unbiased but prior samples above 1 TeV had half the photons.
  Sampling stays one pass: ``decoder(flow(noise, c), c)``.
* ``rate_noise="fit"`` (images with the Poisson readout): after training, the spread of a
  log-normal factor on the expected counts (a Cox readout,
  :mod:`calogen.models.nn.rate_noise`) is fitted on the training split so that the high-level
  observables of the counts match (the decoder's expectation averages away where sub-shower
  cores land). It is applied in :meth:`sample`; the ONNX export (:meth:`decode`) returns the
  expected counts, and :attr:`rate_noise` holds what a host readout must apply.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from calogen.models.generator import (
    VOXEL_DEFAULTS,
    ImageGenerator,
    ModelSpec,
    TrainBatch,
)
from calogen.models.nn.backbones import BACKBONE_DEFAULTS, make_decoder, make_encoder
from calogen.models.nn.condition_features import shift_images
from calogen.models.nn.flows import ConditionalCouplingFlow
from calogen.models.nn.losses import RECON_LOSSES, reconstruction_loss
from calogen.models.nn.rate_noise import FittedRateNoise
from calogen.models.registry import register_family

__all__ = ["ConditionalVAE"]


@register_family
class ConditionalVAE(FittedRateNoise, ImageGenerator):
    """Conditional VAE; hparams (defaults in :attr:`defaults`).

    The defaults are the measured best on the ZN reference: the ELBO of a Poisson readout
    (``beta = 1``) with a flow prior, sampled with Poisson readout. The ALICE O2 VAE
    (arXiv:2306.13606) is ``recon_loss="mse"``, ``beta=0.7``, ``prior="normal"``,
    ``readout="round"``.

    ``latent_dim`` (32), ``beta`` (1.0), ``kl_warmup`` (steps, 0 = off),
    ``recon_reduction`` (``"sum"`` over pixels or ``"mean"``), ``recon_loss`` (``"mse"`` or
    ``"poisson"``), ``prior`` (``"normal"`` or ``"flow"``, with ``flow_layers`` coupling layers
    of width ``flow_hidden``), ``event_weight`` (0: the ELBO; p > 0 weighs each response's
    ELBO by ``(1 + photons / 100)^-p``, normalised to mean 1 over the batch, so that soft
    responses, whose likelihood is small beside a neutron's thousands of photons, shape the
    decoder too), ``rate_noise`` (``"fit"`` or ``"off"``, see above), ``recentre`` (ZDC images:
    the encoder sees each image moved so that the impact point sits at the centre, and the
    decoder draws the shower there before it is moved back, in whole fibres: the networks
    learn one shower shape instead of one per impact point; ``"auto"``: where possible), plus
    the backbone keys of
    :data:`calogen.models.nn.backbones.BACKBONE_DEFAULTS`.
    """

    family: ClassVar[str] = "vae"
    step: Tensor
    category: ClassVar[str] = "autoencoder"
    phases: ClassVar[tuple[str, ...]] = ("main",)
    one_step: ClassVar[bool] = True
    shapes: ClassVar[frozenset[str]] = frozenset({"image", "voxels"})
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"voxels": VOXEL_DEFAULTS}
    defaults: ClassVar[dict[str, Any]] = {
        **BACKBONE_DEFAULTS, "latent_dim": 32, "beta": 1.0, "kl_warmup": 0,
        "recon_reduction": "sum", "recon_loss": "poisson", "prior": "flow", "flow_layers": 6,
        "flow_hidden": 128, "readout": "poisson", "rate_noise": "fit",
        "event_weight": 0.0, "recentre": "auto",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        if self.hparams["recon_reduction"] not in ("sum", "mean"):
            raise ValueError("vae: hparam 'recon_reduction' must be 'sum' or 'mean'")
        if self.hparams["recon_loss"] not in RECON_LOSSES:
            raise ValueError(f"vae: hparam 'recon_loss' must be one of {RECON_LOSSES}")
        hp, d = self.hparams, int(self.hparams["latent_dim"])
        self.cond_embed = self.condition_embedding()
        self.encoder = make_encoder(hp, self.shower_shape, int(hp["cond_dim"]), 2 * d)
        self.decoder = make_decoder(hp, d, int(hp["cond_dim"]), self.shower_shape)
        if self.hparams["prior"] == "flow":
            self.prior_embed = self.condition_embedding()
            self.prior_flow: ConditionalCouplingFlow | None = ConditionalCouplingFlow(
                d, int(hp["cond_dim"]), int(hp["flow_layers"]), int(hp["flow_hidden"]))
        elif self.hparams["prior"] == "normal":
            self.prior_flow = None
        else:
            raise ValueError(f"vae: hparam 'prior' must be 'normal' or 'flow', "
                             f"got {self.hparams['prior']!r}")
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.check_rate_noise()
        features = getattr(self.cond_embed, "features", None)
        possible = spec.kind == "image" and features is not None
        if self.hparams["recentre"] not in ("auto", True, False):
            raise ValueError(f"vae: hparam 'recentre' must be 'auto', true or false, got "
                             f"{self.hparams['recentre']!r}")
        if self.hparams["recentre"] is True and not possible:
            raise ValueError("vae: hparam 'recentre' needs ZDC images and the ZDC condition "
                             "features (condition_features 'auto' or 'zdc' with the columns "
                             "E, vx, vy, vz, px, py, pz)")
        self.recentred = possible if self.hparams["recentre"] == "auto" else \
            bool(self.hparams["recentre"])

    def pixel_shift(self, cond: Tensor) -> Tensor | None:
        """``recentre``: the whole-pixel move ``(B, 2)`` (rows, columns) from the image centre
        to the impact point (rows run along -y, columns along +x, as ZDC images are
        stored); ``None`` otherwise."""
        if not self.recentred:
            return None
        impact = self.cond_embed.features.impact_cm(cond)  # type: ignore[union-attr,operator]
        pitch = self.spec.geometry.pitch_cm
        return torch.stack([-impact[:, 1] / pitch[0], impact[:, 0] / pitch[1]], 1)

    def _to_shower_frame(self, x: Tensor, cond: Tensor, shift: Tensor | None = None) -> Tensor:
        shift = self.pixel_shift(cond) if shift is None else shift
        return x if shift is None else shift_images(x, -shift)

    def _to_image_frame(self, y: Tensor, cond: Tensor, shift: Tensor | None = None) -> Tensor:
        shift = self.pixel_shift(cond) if shift is None else shift
        return y if shift is None else shift_images(y, shift)

    def encode(self, x: Tensor, cond: Tensor,
               species: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance ``(B, latent_dim)`` each."""
        mu, logvar = self.encoder(self._to_shower_frame(x, cond),
                                  self.cond_embed(cond, species)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from standard-normal ``noise`` and standardised
        conditions (through the prior flow first when ``prior="flow"``)."""
        if self.prior_flow is not None:
            noise = self.prior_flow(noise, self.prior_embed(cond, species))
        return self.decode_latent(noise, cond, species)

    def decode_latent(self, z: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from a latent ``z`` (decoder only)."""
        return self._to_image_frame(
            self.activate(self.decoder(z, self.cond_embed(cond, species))), cond)

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
        shift = self.pixel_shift(batch.cond)  # once per batch, for both frames
        mu, logvar = self.encoder(self._to_shower_frame(batch.x, batch.cond, shift),
                                  c).chunk(2, dim=1)
        logvar = logvar.clamp(-12.0, 8.0)
        eps = torch.randn_like(mu)
        z = mu + eps * torch.exp(0.5 * logvar)
        x_hat = self._to_image_frame(self.activate(self.decoder(z, c)), batch.cond, shift)
        sq = (x_hat - batch.x).pow(2).flatten(1)
        recon = reconstruction_loss(x_hat, batch.x, str(self.hparams["recon_loss"]))
        if self.hparams["recon_reduction"] == "mean":
            recon = recon / sq.shape[1]
        if self.prior_flow is None:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        else:  # one-sample estimate of KL(q(z | x, c) || p(z | c))
            log_q = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            kl = log_q - self.prior_flow.log_prob(z, self.prior_embed(batch.cond, species))
        beta = self.kl_weight()
        per_event = recon + beta * kl
        power = float(self.hparams["event_weight"])
        if power > 0:  # soft responses weigh more: w ~ (1 + photons / 100)^-power, mean 1
            photons = torch.expm1(batch.x.detach().clamp(max=20.0)).flatten(1).sum(1)
            w = (1.0 + photons / 100.0).pow(-power)
            per_event = per_event * (w / w.mean())
        loss = per_event.mean()
        if self.training and torch.is_grad_enabled():  # training steps only, not validation
            self.step += 1
        return loss, {"loss": loss.item(), "mse": sq.mean().item(), "kl": kl.mean().item(),
                      "beta": beta}
