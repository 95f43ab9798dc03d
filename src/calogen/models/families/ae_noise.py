"""Autoencoder plus a conditional noise-to-latent generator (family ``"ae-noise"``).

The ZDC studies (Dubinski et al., arXiv:2306.13606; MODELS.md "AE + noise generator") pair a
deterministic autoencoder with a small generator that maps noise and conditions into the
autoencoder's latent space, so that sampling is one pass: ``decoder(latent_gen(z, c), c)``.

Two phases, one optimiser each:

* ``"autoencoder"``: encoder ``E(x, c) -> code`` and decoder ``D(code, c)`` trained for
  reconstruction (hparam ``recon_loss``: ``"mse"``, squared error in ``log1p`` space as in the
  paper, or ``"poisson"``, the photon-count likelihood of :mod:`calogen.models.nn.losses`, unbiased
  in photon space) plus ``code_reg * mean(code^2)`` to keep the codes bounded;
* ``"latent"``: an MLP ``L(z, c) -> code`` trained to match the encoder's code distribution given
  the conditions by the maximum mean discrepancy (Gretton et al., JMLR 13 (2012) 723; used as a
  generator loss by Li et al., arXiv:1502.02761) between the joint samples
  ``[E(x_i, c_i), s * c_i]`` and ``[L(z_i, c_i), s * c_i]`` (codes standardised by the batch's
  real codes; a mixture of Gaussian kernels). The encoder is frozen (no gradient) in this phase.

  With ``latent_prior="flow"`` the latent generator is instead a conditional affine-coupling
  flow (:class:`calogen.models.nn.flows.ConditionalCouplingFlow`) trained by maximum likelihood
  of the encoder's codes, ``-log p(E(x, c) | c)``; its noise has the code's size.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from calogen.models.generator import VOXEL_DEFAULTS, ImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.backbones import BACKBONE_DEFAULTS, make_decoder, make_encoder
from calogen.models.nn.flows import ConditionalCouplingFlow
from calogen.models.nn.losses import RECON_LOSSES, mmd2, reconstruction_loss
from calogen.models.registry import register_family

__all__ = ["AENoise"]

@register_family
class AENoise(ImageGenerator):
    """Autoencoder + conditional latent generator; hparams (defaults in :attr:`defaults`).

    The defaults are the measured best on the ZN reference (Poisson likelihood, flow prior,
    Poisson readout); the paper's variant (arXiv:2306.13606) is ``recon_loss="mse"``,
    ``latent_prior="mmd"``, ``readout="round"``.

    ``latent_dim`` (noise size, 10), ``code_dim`` (autoencoder code size, 16), ``gen_hidden``
    (latent generator width, 128), ``code_reg`` (1e-3), ``mmd_cond_scale`` (weight ``s`` of the
    conditions in the joint MMD, 1.0), ``recon_loss`` (``"mse"`` or ``"poisson"``),
    ``latent_prior`` (``"mmd"``: MLP trained by MMD; ``"flow"``: conditional coupling flow
    with ``flow_layers`` layers of width ``gen_hidden``, noise size ``code_dim``), plus the
    backbone keys of :data:`calogen.models.nn.backbones.BACKBONE_DEFAULTS`.

    Images and voxels: on voxels the showers are flat vectors (the MLP backbone, a squared
    error in ``log1p`` energy: :data:`~calogen.models.generator.VOXEL_DEFAULTS`).
    """

    family: ClassVar[str] = "ae-noise"
    category: ClassVar[str] = "autoencoder"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "latent")
    one_step: ClassVar[bool] = True
    shapes: ClassVar[frozenset[str]] = frozenset({"image", "voxels"})
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"voxels": VOXEL_DEFAULTS}
    defaults: ClassVar[dict[str, Any]] = {
        **BACKBONE_DEFAULTS, "latent_dim": 10, "code_dim": 16, "gen_hidden": 128,
        "code_reg": 1e-3, "mmd_cond_scale": 1.0, "recon_loss": "poisson",
        "latent_prior": "flow", "flow_layers": 6, "readout": "poisson",
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if hp["recon_loss"] not in RECON_LOSSES:
            raise ValueError(f"ae-noise: hparam 'recon_loss' must be one of {RECON_LOSSES}")
        cd, code, hidden = int(hp["cond_dim"]), int(hp["code_dim"]), int(hp["gen_hidden"])
        # autoencoder
        self.cond_embed = self.condition_embedding()
        self.encoder = make_encoder(hp, self.shower_shape, cd, code)
        self.decoder = make_decoder(hp, code, cd, self.shower_shape)
        # latent generator
        self.latent_embed = self.condition_embedding()
        if hp["latent_prior"] == "flow":
            self.latent_gen: nn.Module = ConditionalCouplingFlow(
                code, cd, int(hp["flow_layers"]), hidden)
        elif hp["latent_prior"] == "mmd":
            self.latent_gen = nn.Sequential(
                nn.Linear(int(hp["latent_dim"]) + cd, hidden), nn.SiLU(),
                nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, code))
        else:
            raise ValueError("ae-noise: hparam 'latent_prior' must be 'mmd' or 'flow', "
                             f"got {hp['latent_prior']!r}")

    @property
    def latent_dim(self) -> int:
        """Noise size: ``code_dim`` for the flow prior, else the hparam ``latent_dim``."""
        if self.hparams["latent_prior"] == "flow":
            return int(self.hparams["code_dim"])
        return int(self.hparams["latent_dim"])

    def _species(self, batch: TrainBatch) -> Tensor | None:
        return batch.species if self.hparams["use_species"] else None

    def encode(self, x: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Autoencoder code ``(B, code_dim)``."""
        return self.encoder(x, self.cond_embed(cond, species))

    def generate_code(self, noise: Tensor, cond: Tensor,
                      species: Tensor | None = None) -> Tensor:
        """Latent generator: code ``(B, code_dim)`` from noise and standardised conditions."""
        c = self.latent_embed(cond, species)
        if isinstance(self.latent_gen, ConditionalCouplingFlow):
            return self.latent_gen(noise, c)
        return self.latent_gen(torch.cat([noise, c], dim=1))

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
            recon = reconstruction_loss(x_hat, batch.x, str(self.hparams["recon_loss"]))
            reg = code.pow(2).mean()
            loss = recon.mean() + float(self.hparams["code_reg"]) * reg
            mse = (x_hat - batch.x).pow(2).mean()
            return loss, {"loss": loss.item(), "mse": mse.item(), "code_sq": reg.item()}
        if phase == "latent":
            with torch.no_grad():
                real = self.encode(batch.x, batch.cond, species)
            if isinstance(self.latent_gen, ConditionalCouplingFlow):
                nll = -self.latent_gen.log_prob(real, self.latent_embed(batch.cond, species))
                loss = nll.mean() / real.shape[1]
                return loss, {"loss": loss.item(), "nll_per_dim": loss.item()}
            mean, std = real.mean(0), real.std(0).clamp(min=1e-4)
            noise = self.noise(len(batch), device=batch.x.device)
            fake = self.generate_code(noise, batch.cond, species)
            c = float(self.hparams["mmd_cond_scale"]) * batch.cond
            loss = mmd2(torch.cat([(real - mean) / std, c], 1),
                        torch.cat([(fake - mean) / std, c], 1))
            return loss, {"loss": loss.item(), "mmd2": loss.item()}
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
