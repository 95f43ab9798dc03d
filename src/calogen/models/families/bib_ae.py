"""The Bounded-Information-Bottleneck autoencoder on projected cells (family ``"bib-ae"``).

BIB-AE (Voloshynovskiy et al., arXiv:1912.00830), as used for the first generation of photon
showers in the 27k cells of an ILD-like ECAL (Buhmann et al., "Getting High",
arXiv:2005.05334): a conditional VAE over the cells whose loss adds adversarial and latent
terms. With ``x`` the ``log1p`` cells, ``N_E`` the encoder, ``D_E`` the decoder and
``x~ = D_E(z)``, ``z ~ N_E(x)``, the autoencoder ("main" phase) minimises::

    beta_rec  * |x~ - x|^2              reconstruction (squared error summed over cells)
  - beta_CL   * E[C_L(z)]               latent critic: z against N(0, 1)
  - beta_C    * E[C(x~)]                critic: reconstructed against real showers
  - beta_CD   * E[C_D(x, x~ - x)]       difference critic: (x, x~ - x) against (x, 0)
  + beta_KLD  * KL(N_E(x) || N(0, 1))
  + beta_MMD  * MMD(z, N(0, 1))

and the three Wasserstein critics, each with a gradient penalty, are trained in the "critics"
phase (one optimiser each phase, as the ``gan`` family). The difference critic sees the input
shower beside the difference to its reconstruction, so it learns a distance between a shower
and its reconstruction that the decoder is trained to shrink. Generation decodes ``z ~ N(0, 1)``
with the incident energy. The paper's post-processor (a second network sharpening the cell
energy spectrum) is not included.

Point clouds are the interface: the model is trained on each batch's clouds projected onto the
geometry's cell grid (:class:`calogen.models.nn.bib_ae.CellGrid`; 30 x 30 x 30 for the ILD-like
ECAL) and returns one point per generated cell above ``threshold_mev`` (the cell's middle in x
and y, the layer middle in z, the cell energy), so that projecting its output onto the same
grid gives its cells back and it is evaluated with the point-cloud metrics.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume
from calogen.models.generator import Generator, ModelSpec, TrainBatch
from calogen.models.nn.backbones import ConditionEmbedding, resolve_hparams
from calogen.models.nn.bib_ae import (
    CellCritic,
    CellDecoder,
    CellEncoder,
    CellGrid,
    LatentCritic,
    gaussian_kld,
    gradient_penalty,
    mmd_to_normal,
)
from calogen.models.registry import register_family

__all__ = ["BIBAE", "GETTING_HIGH_SIZES", "HALF_MIP_MEV"]

HALF_MIP_MEV = 0.1
"""Cell threshold in MeV: half the most probable energy of a MIP in the ILD ECAL silicon
(the CaloClouds II and "Getting High" convention)."""

GETTING_HIGH_SIZES: dict[str, Any] = {
    "channels": [32, 64, 128, 128], "critic_channels": [32, 64, 128], "latent_dim": 512,
    "hidden": 512, "cond_dim": 64,
}
"""Network sizes of the scale of the paper's BIB-AE (3-d convolutions up to 128 channels, a
512-wide latent space); ``sizes="getting-high"`` selects them. Too slow for CPU training."""


@register_family
class BIBAE(Generator):
    """Conditional BIB-AE over the cells of a point-cloud volume; hparams (defaults in
    :attr:`defaults`): ``sizes`` (``"cpu"``, or ``"getting-high"`` for
    :data:`GETTING_HIGH_SIZES` under the given keys), ``channels`` (encoder widths; the
    decoder mirrors them), ``critic_channels``, ``latent_dim``, ``hidden`` (width of the
    linear heads), ``cond_dim``, ``use_species``, the loss weights ``beta_rec``, ``beta_latent``,
    ``beta_critic``, ``beta_difference``, ``beta_kld``, ``beta_mmd``, the gradient-penalty
    weight ``gp_weight``, and ``threshold_mev`` (cells below it are not emitted; 0.1 MeV)."""

    family: ClassVar[str] = "bib-ae"
    category: ClassVar[str] = "autoencoder"
    shapes: ClassVar[frozenset[str]] = frozenset({"points"})
    phases: ClassVar[tuple[str, ...]] = ("critics", "main")
    one_step: ClassVar[bool] = True
    optimizer_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-4, "betas": (0.5, 0.9)}
    """Adam settings usual for Wasserstein critics with gradient penalty (arXiv:1704.00028
    uses beta1 = 0.5, beta2 = 0.9)."""
    defaults: ClassVar[dict[str, Any]] = {
        "sizes": "cpu", "channels": [8, 16, 32], "critic_channels": [8, 16], "latent_dim": 24,
        "hidden": 64, "cond_dim": 32, "use_species": False,
        "beta_rec": 1.0, "beta_latent": 0.1, "beta_critic": 0.1, "beta_difference": 0.1,
        "beta_kld": 0.1, "beta_mmd": 10.0, "gp_weight": 10.0, "threshold_mev": HALF_MIP_MEV,
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        sizes = hparams.get("sizes", "cpu")
        if sizes not in ("cpu", "getting-high"):
            raise ValueError(f"bib-ae: hparam 'sizes' must be 'cpu' or 'getting-high', "
                             f"got {sizes!r}")
        preset = GETTING_HIGH_SIZES if sizes == "getting-high" else {}
        hp = resolve_hparams(self.family, self.defaults, {**preset, **hparams})
        super().__init__(spec, **hp)
        if not isinstance(spec.geometry, PointCloudVolume):
            raise ValueError(f"bib-ae: the geometry must be a point-cloud volume, got "
                             f"{type(spec.geometry).__name__}")
        if not (float(hp["threshold_mev"]) >= 0):
            raise ValueError(f"bib-ae: hparam 'threshold_mev' must be >= 0 (MeV), got "
                             f"{hp['threshold_mev']!r}")
        for key in ("channels", "critic_channels"):
            if not hp[key] or any(int(c) < 1 for c in hp[key]):
                raise ValueError(f"bib-ae: hparam {key!r} must be a non-empty list of "
                                 f"positive widths, got {hp[key]!r}")
        self.grid = CellGrid(spec.geometry)
        shape = self.grid.shape
        cd, latent, hidden = int(hp["cond_dim"]), int(hp["latent_dim"]), int(hp["hidden"])
        channels = [int(c) for c in hp["channels"]]
        critic_channels = [int(c) for c in hp["critic_channels"]]
        self.embed = self._embedding()
        self.encoder = CellEncoder(shape, channels, cd, latent, hidden)
        self.decoder = CellDecoder(shape, channels, cd, latent)
        self.critic_embed = self._embedding()
        self.latent_critic = LatentCritic(latent, cd, hidden)
        self.critic = CellCritic(1, shape, critic_channels, cd, hidden)
        self.difference_critic = CellCritic(2, shape, critic_channels, cd, hidden)

    def _embedding(self) -> ConditionEmbedding:
        return ConditionEmbedding(self.spec.n_conditions, self.spec.n_species,
                                  int(self.hparams["cond_dim"]), bool(self.hparams["use_species"]))

    # -- networks ---------------------------------------------------------------------------

    def cells(self, batch: TrainBatch) -> Tensor:
        """``log1p`` of the batch's clouds projected onto the grid: ``(B, 1, L, Y, X)``."""
        return torch.log1p(self.grid.project(batch.x, batch.mask))[:, None]

    def _species(self, species: Tensor) -> Tensor | None:
        return species if self.hparams["use_species"] else None

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """``log1p`` cells ``(B, 1, L, Y, X)`` from latent noise and standardised conditions,
        clamped at 0."""
        s = self._species(species) if species is not None else None
        return self.decoder(noise, self.embed(cond, s)).clamp(min=0)

    def _autoencode(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Posterior mean and log-variance, a latent drawn from it and its reconstruction."""
        mu, logvar = self.encoder(x, c)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return mu, logvar, z, self.decoder(z, c)

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """``"critics"``: the three critics and their condition embedding; ``"main"``: the
        encoder, the decoder and their condition embedding."""
        if phase == "critics":
            mods: list[nn.Module] = [self.critic_embed, self.latent_critic, self.critic,
                                     self.difference_critic]
        elif phase == "main":
            mods = [self.embed, self.encoder, self.decoder]
        else:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    # -- losses -----------------------------------------------------------------------------

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        if batch.x.ndim != 3:
            raise ValueError(f"{self.family}: expected point clouds (B, P, 4) with a mask, "
                             f"got x of shape {tuple(batch.x.shape)}")
        if phase == "critics":
            return self._critics_loss(batch)
        if phase == "main":
            return self._main_loss(batch)
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")

    def _critics_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        x = self.cells(batch)
        species = self._species(batch.species)
        with torch.no_grad():
            _, _, z, recon = self._autoencode(x, self.embed(batch.cond, species))
        cc = self.critic_embed(batch.cond, species)
        prior = torch.randn_like(z)
        zero = torch.zeros_like(x)
        pairs = {
            "latent": (self.latent_critic, prior, z),
            "critic": (self.critic, x, recon),
            "difference": (self.difference_critic, torch.cat([x, zero], 1),
                           torch.cat([x, recon - x], 1)),
        }
        gp = float(self.hparams["gp_weight"]) if torch.is_grad_enabled() else 0.0
        loss = x.new_zeros(())
        logs: dict[str, float] = {}
        for name, (critic, real, fake) in pairs.items():
            distance = critic(real, cc).mean() - critic(fake, cc).mean()
            loss = loss - distance
            logs[f"w_{name}"] = distance.item()
            if gp > 0:
                penalty = gradient_penalty(critic, real, fake, cc)
                loss = loss + gp * penalty
                logs[f"gp_{name}"] = penalty.item()
        logs["loss"] = loss.item()
        return loss, logs

    def _main_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        hp = self.hparams
        x = self.cells(batch)
        species = self._species(batch.species)
        mu, logvar, z, recon = self._autoencode(x, self.embed(batch.cond, species))
        cc = self.critic_embed(batch.cond, species)
        terms = {
            "rec": (float(hp["beta_rec"]), (recon - x).pow(2).flatten(1).sum(1).mean()),
            "latent": (-float(hp["beta_latent"]), self.latent_critic(z, cc).mean()),
            "critic": (-float(hp["beta_critic"]), self.critic(recon, cc).mean()),
            "difference": (-float(hp["beta_difference"]),
                           self.difference_critic(torch.cat([x, recon - x], 1), cc).mean()),
            "kld": (float(hp["beta_kld"]), gaussian_kld(mu, logvar)),
            "mmd": (float(hp["beta_mmd"]), mmd_to_normal(z)),
        }
        loss = sum((w * v for w, v in terms.values() if w != 0), x.new_zeros(()))
        logs = {name: v.item() for name, (_, v) in terms.items()}
        logs["loss"] = loss.item()
        return loss, logs

    # -- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample_cells(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
                     generator: torch.Generator | None = None, *, batch_size: int = 4096
                     ) -> Tensor:
        """Cell energies ``(N, L, Y, X)`` float32 (MeV) for physical conditions, cells below
        ``threshold_mev`` set to 0."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        out = []
        for start in range(0, len(cond), batch_size):
            c = cond[start:start + batch_size]
            z = self.noise(len(c), generator, device)
            y = self.decode(z, c, species[start:start + batch_size])
            out.append(torch.expm1(y[:, 0]).clamp(min=0).float().cpu())
        self.train(was_training)
        cells = torch.cat(out) if out else torch.zeros((0, *self.grid.shape))
        threshold = float(self.hparams["threshold_mev"])
        return torch.where(cells >= threshold, cells, torch.zeros_like(cells))

    def sample_points(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
                      generator: torch.Generator | None = None, *, batch_size: int = 4096
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Showers as one point per cell above ``threshold_mev`` (:meth:`sample_cells`):
        ``(P, 4)`` float32 ``(x, y, z, E)`` (mm, MeV) and ``(N,)`` int64 counts."""
        cells = self.sample_cells(conditions, pdg, generator, batch_size=batch_size)
        return self.grid.to_points(cells, float(self.hparams["threshold_mev"]))
