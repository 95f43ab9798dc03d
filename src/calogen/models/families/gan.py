"""The conditional GAN (family ``"gan"``).

``"gan"``: a conditional GAN (Goodfellow et al., arXiv:1406.2661; Mirza & Osindero,
arXiv:1411.1784) with the non-saturating loss, as used for the ALICE ZDC (Dubinski et al.,
arXiv:2306.13606). Two phases, ``("discriminator", "generator")``, one optimiser each. Options
(hparams; ``r1_gamma`` and ``instance_noise`` on by default, the rest off):

* ``r1_gamma``: zero-centred gradient penalty on real data, ``gamma / 2 * E ||grad_x D(x)||^2``
  (Mescheder et al., "Which Training Methods for GANs do actually Converge?", arXiv:1801.04406);
  default ``1.0``: without it the discriminator overpowers the generator within a few dozen
  steps on small CPU runs;
* ``l2_weight``: mean squared error between ``G(z, c_i)`` and the real image ``x_i`` of the same
  row (same condition) of the batch;
* ``aux_hottest``: weight of an auxiliary regressor head on the discriminator predicting the
  hottest pixel's position ``(row / (H - 1), col / (W - 1))``; trained on real images in the
  discriminator phase, applied to ``G(z, c_i)`` against the hottest pixel of ``x_i`` in the
  generator phase;
* ``instance_noise``: standard deviation of Gaussian noise added to every image the
  discriminator sees, real and generated (``log1p`` space; Sønderby et al., arXiv:1610.04490;
  Arjovsky & Bottou, arXiv:1701.04862). Real ``log1p`` images take discrete values (integer
  counts, exact zeros in most fibres) that a discriminator can learn to check pixel by pixel
  long before the generator matches the shower; the noise blurs that giveaway;
* ``postprocess_scale``: a scalar ``s`` multiplying the generator output in ``log1p`` space at
  sampling (:meth:`ConditionalGAN.decode`), fitted during training as a running ratio of real to
  generated mean log intensity (or at once with :meth:`ConditionalGAN.fit_postprocess_scale`);
  stored in :meth:`ConditionalGAN.extra_state_dict`.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from calogen.models.generator import ImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.backbones import BACKBONE_DEFAULTS, make_decoder
from calogen.models.nn.discriminator import ConditionalDiscriminator
from calogen.models.registry import register_family

__all__ = ["ConditionalGAN", "group_diversity", "hottest_position"]



def hottest_position(x: Tensor) -> Tensor:
    """Position of the hottest pixel of each image ``(B, 1, H, W)`` as ``(row, col)`` scaled to
    ``[0, 1]`` by ``(H - 1, W - 1)``: ``(B, 2)`` float (first maximum on ties)."""
    h, w = x.shape[-2], x.shape[-1]
    idx = x.flatten(1).argmax(dim=1)
    row = torch.div(idx, w, rounding_mode="floor").float() / max(h - 1, 1)
    col = (idx % w).float() / max(w - 1, 1)
    return torch.stack([row, col], dim=1)


def group_diversity(x: Tensor, condition_id: Tensor, fallback: float = 1.0) -> Tensor:
    """Per-row diversity weight of the training responses of each row's condition group.

    For each group with ``>= 2`` rows in the batch: the mean over pixels of the (unbiased)
    standard deviation across its rows of ``x`` (``log1p`` space); these are normalised by their
    mean over such groups. Rows of singleton groups (and every row when no group has two rows)
    get ``fallback``. Returns ``(B,)`` float, no gradient.
    """
    with torch.no_grad():
        flat = x.detach().flatten(1).float()
        uniq, inverse, counts = torch.unique(condition_id, return_inverse=True, return_counts=True)
        n_groups = len(uniq)
        sums = torch.zeros(n_groups, flat.shape[1], device=x.device).index_add_(0, inverse, flat)
        sq = torch.zeros_like(sums).index_add_(0, inverse, flat * flat)
        n = counts.to(flat.dtype)[:, None]
        var = (sq - sums * sums / n) / (n - 1).clamp(min=1)
        spread = var.clamp(min=0).sqrt().mean(dim=1)
        multi = counts >= 2
        out = torch.full((len(x),), float(fallback), device=x.device)
        if bool(multi.any()):
            scale = spread[multi].mean().clamp(min=1e-8)
            rows = multi[inverse]
            out[rows] = spread[inverse][rows] / scale
        return out


@register_family
class ConditionalGAN(ImageGenerator):
    """Conditional non-saturating GAN; hparams (defaults in :attr:`defaults`):

    ``latent_dim`` (10), ``r1_gamma`` (1.0; 0 = off), ``l2_weight`` (0 = off), ``aux_hottest``
    (0 = off), ``instance_noise`` (0.3; 0 = off), ``postprocess_scale`` (False),
    ``postprocess_momentum`` (0.99), plus the backbone keys of
    :data:`calogen.models.nn.backbones.BACKBONE_DEFAULTS` (shared by generator and discriminator;
    the generator's ``output`` defaults to ``"relu"`` here, so that it can draw exact zeros).
    On voxels (``(n_voxels,)`` energies in MeV) the backbone defaults to the MLP, the only one
    that takes flat showers.
    """

    family: ClassVar[str] = "gan"
    category: ClassVar[str] = "adversarial"
    phases: ClassVar[tuple[str, ...]] = ("discriminator", "generator")
    one_step: ClassVar[bool] = True
    shapes: ClassVar[frozenset[str]] = frozenset({"image", "voxels"})
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"voxels": {"backbone": "mlp"}}
    """On voxels both networks are MLPs over the flat ``log1p`` energies (MeV)."""
    legacy_state_keys: ClassVar[dict[str, str]] = ConditionalDiscriminator.legacy_keys(
        "discriminator")
    optimizer_defaults: ClassVar[dict[str, Any]] = {"lr": 2e-4, "betas": (0.5, 0.9)}
    """Adam settings usual for GANs (Radford et al., arXiv:1511.06434: lr 2e-4, beta1 0.5)."""
    defaults: ClassVar[dict[str, Any]] = {
        **BACKBONE_DEFAULTS, "output": "relu", "latent_dim": 10, "r1_gamma": 1.0,
        "l2_weight": 0.0,
        "aux_hottest": 0.0, "instance_noise": 0.3, "postprocess_scale": False,
        "postprocess_momentum": 0.99,
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp, cd = self.hparams, int(self.hparams["cond_dim"])
        if spec.kind == "voxels" and float(hp["aux_hottest"]) > 0:
            raise ValueError(f"{self.family}: hparam 'aux_hottest' regresses the hottest pixel's "
                             f"(row, col) of an image; voxel showers have none: leave it 0")
        # generator
        self.g_embed = self.condition_embedding()
        self.generator = make_decoder(hp, int(hp["latent_dim"]), cd, self.shower_shape)
        self.discriminator = ConditionalDiscriminator(
            self.condition_embedding(), hp, self.shower_shape,
            aux_outputs=2 if float(hp["aux_hottest"]) > 0 else 0)
        self.output_scale = 1.0

    # -- networks ---------------------------------------------------------------------------

    def _species(self, batch: TrainBatch) -> Tensor | None:
        return batch.species if self.hparams["use_species"] else None

    def _generate(self, noise: Tensor, cond: Tensor, species: Tensor | None) -> Tensor:
        """Raw generator output (``log1p`` image, no post-processing scale)."""
        return self.activate(self.generator(noise, self.g_embed(cond, species)))

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from noise and standardised conditions, times the
        post-processing scale (1 unless ``postprocess_scale``)."""
        y = self._generate(noise, cond, species)
        return y * self.output_scale if self.hparams["postprocess_scale"] else y

    def discriminate(self, x: Tensor, cond: Tensor,
                     species: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Logit ``(B,)`` (real > 0) and the hottest-pixel regression ``(B, 2)`` (or None).
        During training, ``instance_noise`` is added to ``x`` first."""
        return self.discriminator(x, cond, species, float(self.hparams["instance_noise"]))

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """``"discriminator"``: condition embedding, trunk and heads of D; ``"generator"``:
        condition embedding and decoder of G."""
        if phase == "discriminator":
            mods: list[nn.Module | None] = [self.discriminator]
        elif phase == "generator":
            mods = [self.g_embed, self.generator]
        else:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [p for m in mods if m is not None for p in m.parameters() if p.requires_grad]

    # -- losses -----------------------------------------------------------------------------

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        if phase == "discriminator":
            return self._discriminator_loss(batch)
        if phase == "generator":
            return self._generator_loss(batch)
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")

    def _discriminator_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        species = self._species(batch)
        with torch.no_grad():
            fake = self._generate(self.noise(len(batch), device=batch.x.device), batch.cond,
                                  species)
        # no penalty where gradients are off (e.g. a validation loss under torch.no_grad)
        gamma = float(self.hparams["r1_gamma"]) if torch.is_grad_enabled() else 0.0
        real = batch.x.detach().requires_grad_(gamma > 0)
        # R1 needs a double backward, which the fused CPU attention kernels lack (ViT trunk)
        with sdpa_kernel(SDPBackend.MATH) if gamma > 0 else contextlib.nullcontext():
            logit_r, aux_r = self.discriminate(real, batch.cond, species)
        logit_f, _ = self.discriminate(fake, batch.cond, species)
        adv = F.softplus(-logit_r).mean() + F.softplus(logit_f).mean()
        loss, logs = adv, {"d_adv": adv.item(), "d_real": logit_r.mean().item(),
                           "d_fake": logit_f.mean().item()}
        if gamma > 0:
            (grad,) = torch.autograd.grad(logit_r.sum(), real, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            loss = loss + 0.5 * gamma * r1
            logs["r1"] = r1.item()
        if aux_r is not None:
            aux = F.mse_loss(aux_r, hottest_position(batch.x))
            loss = loss + float(self.hparams["aux_hottest"]) * aux
            logs["d_aux"] = aux.item()
        logs["loss"] = loss.item()
        return loss, logs

    def _generator_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        species = self._species(batch)
        z = self.noise(len(batch), device=batch.x.device)
        fake = self._generate(z, batch.cond, species)  # row i: condition i, in batch order
        logit_f, aux_f = self.discriminate(fake, batch.cond, species)
        adv = F.softplus(-logit_f).mean()
        loss, logs = adv, {"g_adv": adv.item()}
        w_l2 = float(self.hparams["l2_weight"])
        if w_l2 > 0:
            l2 = (fake - batch.x).pow(2).mean()
            loss = loss + w_l2 * l2
            logs["l2"] = l2.item()
        if aux_f is not None:
            aux = F.mse_loss(aux_f, hottest_position(batch.x))
            loss = loss + float(self.hparams["aux_hottest"]) * aux
            logs["g_aux"] = aux.item()
        extra, extra_logs = self._extra_generator_loss(batch, z, fake, species)
        if extra is not None:
            loss = loss + extra
            logs.update(extra_logs)
        if self.hparams["postprocess_scale"] and self.training and torch.is_grad_enabled():
            self._update_postprocess_scale(batch.x, fake)
            logs["postprocess_scale"] = self.output_scale
        logs["loss"] = loss.item()
        return loss, logs

    def _extra_generator_loss(self, batch: TrainBatch, z: Tensor, fake: Tensor,
                              species: Tensor | None) -> tuple[Tensor | None, dict[str, float]]:
        """Hook for subclasses: an extra generator-loss term (None for the plain GAN)."""
        return None, {}

    # -- post-processing scale --------------------------------------------------------------

    @staticmethod
    def _scale_ratio(real: Tensor, fake: Tensor) -> float:
        return float(real.detach().mean() / fake.detach().mean().clamp(min=1e-6))

    def _update_postprocess_scale(self, real: Tensor, fake: Tensor) -> None:
        m = float(self.hparams["postprocess_momentum"])
        self.output_scale = m * self.output_scale + (1 - m) * self._scale_ratio(real, fake)

    @torch.no_grad()
    def fit_postprocess_scale(self, x: Tensor, cond: Tensor, species: Tensor | None = None,
                              generator: torch.Generator | None = None) -> float:
        """Set the post-processing scale to ``mean(x) / mean(G(z, cond))`` in ``log1p`` space
        (real images ``x`` and their standardised conditions) and return it."""
        was = self.training
        self.eval()
        fake = self._generate(self.noise(len(cond), generator, cond.device), cond,
                              species if self.hparams["use_species"] else None)
        self.train(was)
        self.output_scale = self._scale_ratio(x, fake)
        return self.output_scale

    def extra_state_dict(self) -> dict[str, Any]:
        return {"postprocess_scale": float(self.output_scale)}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        self.output_scale = float(state.get("postprocess_scale", 1.0))
