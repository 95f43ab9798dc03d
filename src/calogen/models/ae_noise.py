"""Autoencoder plus a conditional noise-to-latent generator (family ``"ae-noise"``).

The ZDC studies (Dubinski et al., arXiv:2306.13606; MODELS.md "AE + noise generator") pair a
deterministic autoencoder with a small generator that maps noise and conditions into the
autoencoder's latent space, so that sampling is one pass: ``decoder(latent_gen(z, c), c)``.

Two phases, one optimiser each:

* ``"autoencoder"``: encoder ``E(x, c) -> code`` and decoder ``D(code, c)`` trained for
  reconstruction, ``sum_pixels (x - D(E(x, c), c))^2`` per shower (``log1p`` space) plus
  ``code_reg * mean(code^2)`` to keep the codes bounded;
* ``"latent"``: an MLP ``L(z, c) -> code`` trained to match the encoder's code distribution given
  the conditions by the maximum mean discrepancy (Gretton et al., JMLR 13 (2012) 723; used as a
  generator loss by Li et al., arXiv:1502.02761) between the joint samples
  ``[E(x_i, c_i), s * c_i]`` and ``[L(z_i, c_i), s * c_i]`` (codes standardised by the batch's
  real codes; a mixture of Gaussian kernels). The encoder is frozen (no gradient) in this phase.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from calogen.models.backbones import BACKBONE_DEFAULTS, ImageGenerator, make_decoder, make_encoder
from calogen.models.base import ModelSpec, TrainBatch, register_family

__all__ = ["AENoise", "mmd2"]

_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Gaussian kernel widths of the MMD, in units of sqrt(dimension) of standardised vectors."""


def mmd2(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] = _BANDWIDTHS) -> Tensor:
    """Biased (V-statistic) squared MMD between samples ``a (N, d)`` and ``b (M, d)`` with a
    sum of Gaussian kernels ``exp(-|u - v|^2 / (2 s^2 d))`` over widths ``s``."""
    d = a.shape[1]
    xy = torch.cat([a, b])
    dist = torch.cdist(xy, xy).pow(2)
    k = sum(torch.exp(-dist / (2 * s * s * d)) for s in bandwidths)
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


@register_family
class AENoise(ImageGenerator):
    """Autoencoder + conditional latent generator; hparams (defaults in :attr:`defaults`):

    ``latent_dim`` (noise size, 10), ``code_dim`` (autoencoder code size, 16), ``gen_hidden``
    (latent generator width, 128), ``code_reg`` (1e-3), ``mmd_cond_scale`` (weight ``s`` of the
    conditions in the joint MMD, 1.0), plus the backbone keys of
    :data:`calogen.models.backbones.BACKBONE_DEFAULTS`.
    """

    family: ClassVar[str] = "ae-noise"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "latent")
    one_step: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        **BACKBONE_DEFAULTS, "latent_dim": 10, "code_dim": 16, "gen_hidden": 128,
        "code_reg": 1e-3, "mmd_cond_scale": 1.0,
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        cd, code, hidden = int(hp["cond_dim"]), int(hp["code_dim"]), int(hp["gen_hidden"])
        # autoencoder
        self.cond_embed = self.condition_embedding()
        self.encoder = make_encoder(hp, self.shape, cd, code)
        self.decoder = make_decoder(hp, code, cd, self.shape)
        # latent generator
        self.latent_embed = self.condition_embedding()
        self.latent_gen = nn.Sequential(
            nn.Linear(int(hp["latent_dim"]) + cd, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, code))

    def _species(self, batch: TrainBatch) -> Tensor | None:
        return batch.species if self.hparams["use_species"] else None

    def encode(self, x: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Autoencoder code ``(B, code_dim)``."""
        return self.encoder(x, self.cond_embed(cond, species))

    def generate_code(self, noise: Tensor, cond: Tensor,
                      species: Tensor | None = None) -> Tensor:
        """Latent generator: code ``(B, code_dim)`` from noise and standardised conditions."""
        return self.latent_gen(torch.cat([noise, self.latent_embed(cond, species)], dim=1))

    def decode_code(self, code: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Decoder: log image ``(B, 1, H, W)`` from a code."""
        return self.activate(self.decoder(code, self.cond_embed(cond, species)))

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """``decoder(latent_gen(noise, cond), cond)``: one network pass."""
        return self.decode_code(self.generate_code(noise, cond, species), cond, species)

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """``"autoencoder"``: condition embedding, encoder, decoder; ``"latent"``: the latent
        generator and its own condition embedding."""
        if phase == "autoencoder":
            mods: list[nn.Module] = [self.cond_embed, self.encoder, self.decoder]
        elif phase == "latent":
            mods = [self.latent_embed, self.latent_gen]
        else:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        species = self._species(batch)
        if phase == "autoencoder":
            code = self.encode(batch.x, batch.cond, species)
            x_hat = self.decode_code(code, batch.cond, species)
            sq = (x_hat - batch.x).pow(2).flatten(1)
            reg = code.pow(2).mean()
            loss = sq.sum(1).mean() + float(self.hparams["code_reg"]) * reg
            return loss, {"loss": loss.item(), "mse": sq.mean().item(), "code_sq": reg.item()}
        if phase == "latent":
            with torch.no_grad():
                real = self.encode(batch.x, batch.cond, species)
                mean, std = real.mean(0), real.std(0).clamp(min=1e-4)
            noise = self.noise(len(batch), device=batch.x.device)
            fake = self.generate_code(noise, batch.cond, species)
            c = float(self.hparams["mmd_cond_scale"]) * batch.cond
            loss = mmd2(torch.cat([(real - mean) / std, c], 1),
                        torch.cat([(fake - mean) / std, c], 1))
            return loss, {"loss": loss.item(), "mmd2": loss.item()}
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
