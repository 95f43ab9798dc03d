"""Vector-quantised generators with an autoregressive token prior (families ``"vq-vae"`` and
``"vq-gan"``).

Design (the ZDC VQ study in MODELS.md: codebook of 256 entries, cosine lookup in 32 dims, 36
tokens, an autoregressive transformer prior over [condition tokens + image tokens] sampled with
temperature / top-k / top-p; VQ-GAN adds a discriminator; for calorimeter showers see also
Calo-VQ, Liu et al., arXiv:2405.06605):

* **Encoder** (:class:`TokenEncoder`): a vision transformer (the
  :class:`~calogen.models.backbones.ViTEncoder` of the backbones, conditioned through its
  condition token) pads the ``log1p`` image centrally to a multiple of the patch size and maps
  every patch to one token vector of ``code_dim`` dimensions: 44x44 -> 48x48 -> 6x6 = 36 tokens
  with 8x8 patches.
* **Codebook** (:class:`CosineCodebook`; van den Oord et al., "Neural Discrete Representation
  Learning", arXiv:1711.00937): ``n_codes`` entries in a low-dimensional lookup space
  (``code_dim`` = 32) where encoder vectors and entries are l2-normalised and matched by cosine
  similarity (ViT-VQGAN, Yu et al., "Vector-quantized Image Modeling with Improved VQGAN",
  arXiv:2110.04627); the straight-through estimator passes the decoder's gradient to the
  encoder; codebook and commitment losses with ``beta`` = 0.25. Entries unused for
  ``restart_after`` training steps are re-initialised to encoder vectors of the current batch
  (dead-code restarts), so the codebook does not collapse onto a few entries.
* **Decoder** (:class:`TokenDecoder`): a transformer over the quantised tokens (projected up to
  its width) plus a condition token, each patch token mapped linearly to its pixels, cropped to
  ``H x W`` (the :class:`~calogen.models.backbones.ViTDecoder` geometry). It sees the
  conditions, so the tokens only have to carry what the conditions do not fix: the shape of
  this shower.
* **Reconstruction** loss :func:`calogen.models.losses.reconstruction_loss` (``"poisson"`` by
  default, the photon-count likelihood) and Poisson readout at sampling, as the VAE.
* **Prior** (:class:`calogen.models.token_prior.TokenPrior`): a causal transformer over
  ``[one token per condition, (species), image tokens]``, trained every step on the batch's
  current tokens (encoder output, no gradient to the autoencoder), as ``ae-noise`` trains its
  latent generator alongside the autoencoder.
* **Sampling**: ``N`` prior steps with a key/value cache (``temperature``, ``top_k``, ``top_p``
  are sampling options, changeable after training with :meth:`VQVAE.configure_sampling`) and one
  decoder pass; ``network_calls() == N + 1``. Not exportable to ONNX (the prior is a loop).

``"vq-gan"`` (Esser et al., "Taming Transformers for High-Resolution Image Synthesis",
arXiv:2012.09841) adds a conditional discriminator ``D(x, c)`` (an encoder backbone as trunk,
as in :mod:`calogen.models.gan`) that judges real images against reconstructions with the
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

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.models.backbones import BACKBONE_DEFAULTS, ImageGenerator, ViTDecoder, ViTEncoder
from calogen.models.backbones import make_encoder as make_backbone_encoder
from calogen.models.base import ModelSpec, TrainBatch, register_family
from calogen.models.diffusion import SamplingOptions
from calogen.models.losses import RECON_LOSSES, reconstruction_loss
from calogen.models.token_prior import TokenPrior, check_sampling_options

__all__ = ["VQGAN", "VQVAE", "CosineCodebook", "Quantized", "TokenDecoder", "TokenEncoder"]

_DISC_FEATURES = 128
"""Width of the discriminator trunk's output features (before the logit)."""


# --------------------------------------------------------------------------------------------
# Codebook
# --------------------------------------------------------------------------------------------


@dataclass
class Quantized:
    """Output of :class:`CosineCodebook`.

    Attributes:
        z_q: quantised vectors ``(B, N, dim)`` (unit length), straight-through: the value of
            the chosen entries, the gradient of the encoder vectors.
        indices: chosen entries ``(B, N)`` int64.
        codebook_loss: ``sum_tokens |sg(z) - e|^2`` per shower ``(B,)`` (moves the entries).
        commitment_loss: ``sum_tokens |z - sg(e)|^2`` per shower ``(B,)`` (moves the encoder).
        usage: fraction of the entries chosen at least once in the batch.
        perplexity: ``exp(entropy)`` of the batch's entry frequencies (1 .. n_codes).
        restarted: entries re-initialised before this lookup.
    """

    z_q: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    usage: float
    perplexity: float
    restarted: int


class CosineCodebook(nn.Module):
    """Codebook with cosine lookup, straight-through gradients and dead-code restarts.

    Encoder vectors ``z`` and entries ``e_j`` are l2-normalised; each vector takes the entry of
    largest cosine similarity (equivalently the nearest on the unit sphere, where
    ``|z - e|^2 = 2 - 2 cos``), in a low-dimensional lookup space (Yu et al.,
    arXiv:2110.04627). Losses as van den Oord et al. (arXiv:1711.00937), on the normalised
    vectors; the caller weights the commitment loss by ``beta``.

    During training (``update=True``) the buffer ``unused_steps`` counts, per entry, the
    training lookups since it was last chosen and ``counts`` how often it was chosen in all;
    before a lookup, entries unused for ``restart_after`` lookups are set to randomly chosen
    encoder vectors of the current batch (0 = no restarts), which the lookup then assigns.

    Args:
        n_codes: number of entries.
        dim: lookup dimension.
        restart_after: training lookups without use before an entry is restarted (0 = off).
    """

    def __init__(self, n_codes: int, dim: int, restart_after: int = 100) -> None:
        super().__init__()
        if int(n_codes) < 2 or int(dim) < 1 or int(restart_after) < 0:
            raise ValueError(f"CosineCodebook: need n_codes >= 2, dim >= 1, restart_after >= 0; "
                             f"got {n_codes}, {dim}, {restart_after}")
        self.n_codes, self.dim, self.restart_after = int(n_codes), int(dim), int(restart_after)
        self.weight = nn.Parameter(F.normalize(torch.randn(self.n_codes, self.dim), dim=1))
        self.register_buffer("unused_steps", torch.zeros(self.n_codes, dtype=torch.int64))
        self.register_buffer("counts", torch.zeros(self.n_codes, dtype=torch.int64))

    def entries(self) -> Tensor:
        """The l2-normalised entries ``(n_codes, dim)``."""
        return F.normalize(self.weight, dim=1)

    def lookup(self, z: Tensor) -> Tensor:
        """Index ``(...,)`` of the entry most similar in cosine to each vector ``z (..., dim)``."""
        sim = F.normalize(z, dim=-1) @ self.entries().t()
        return sim.argmax(dim=-1)

    def embed(self, indices: Tensor) -> Tensor:
        """Normalised entries of ``indices (...)``: ``(..., dim)``."""
        return F.embedding(indices, self.entries())

    @torch.no_grad()
    def _restart_dead(self, z_flat: Tensor) -> int:
        if self.restart_after <= 0:
            return 0
        dead = torch.nonzero(self.unused_steps >= self.restart_after).flatten()
        n = int(dead.numel())
        if n == 0 or len(z_flat) == 0:
            return 0
        if n <= len(z_flat):
            pick = torch.randperm(len(z_flat), device=z_flat.device)[:n]
        else:
            pick = torch.randint(0, len(z_flat), (n,), device=z_flat.device)
        self.weight[dead] = z_flat[pick].to(self.weight.dtype)
        self.unused_steps[dead] = 0
        return n

    def forward(self, z: Tensor, update: bool = False) -> Quantized:
        """Quantise encoder vectors ``z (B, N, dim)``; ``update`` (training steps only) runs the
        dead-code restarts and the usage counters."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"CosineCodebook: vectors must have {self.dim} dims, "
                             f"got {z.shape[-1]}")
        z_n = F.normalize(z, dim=-1)
        restarted = self._restart_dead(z_n.detach().reshape(-1, self.dim)) if update else 0
        entries = self.entries()
        with torch.no_grad():
            indices = (z_n.detach() @ entries.t()).argmax(dim=-1)
        e = F.embedding(indices, entries)
        codebook_loss = (z_n.detach() - e).pow(2).flatten(1).sum(1)
        commitment_loss = (z_n - e.detach()).pow(2).flatten(1).sum(1)
        z_q = z_n + (e - z_n).detach()
        with torch.no_grad():
            hist = torch.bincount(indices.flatten(), minlength=self.n_codes)
            used = hist > 0
            p = hist.float() / hist.sum().clamp(min=1)
            perplexity = float(torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()))
            if update:
                self.unused_steps += 1
                self.unused_steps[used] = 0
                self.counts += hist
        return Quantized(z_q, indices, codebook_loss, commitment_loss,
                         float(used.float().mean()), perplexity, restarted)


# --------------------------------------------------------------------------------------------
# Encoder and decoder over a token grid
# --------------------------------------------------------------------------------------------


class TokenEncoder(ViTEncoder):
    """ViT encoder ``(image (B, 1, H, W), condition vector) -> token vectors (B, N, out_dim)``:
    the image is padded centrally to a multiple of ``patch``, one token per patch (``N =
    ceil(H / patch) * ceil(W / patch)``), and every patch token's output is projected to
    ``out_dim`` (the :class:`~calogen.models.backbones.ViTEncoder` reads only the condition
    token)."""

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        return self.head(self.tokens(x, c)[:, 1:])


class TokenDecoder(ViTDecoder):
    """ViT decoder ``(token vectors (B, N, code_dim), condition vector) -> log image
    pre-activation (B, 1, H, W)``: sequence = [condition token] + one token per patch (the
    token vector projected to the width plus a learned position), the condition embedding added
    to every position as in :class:`~calogen.models.backbones.ViTDecoder`; each patch token is
    mapped linearly to its ``patch x patch`` pixels and the padded grid cropped to ``H x W``."""

    def __init__(self, code_dim: int, cond_dim: int, shape: tuple[int, int], patch: int = 8,
                 width: int = 64, depth: int = 2, heads: int = 4) -> None:
        super().__init__(0, cond_dim, shape, patch, width, depth, heads)
        self.token_in = nn.Linear(code_dim, width)

    def forward(self, q: Tensor, c: Tensor | None) -> Tensor:  # type: ignore[override]
        if q.shape[1] != self.n_tokens:
            raise ValueError(f"TokenDecoder: expected {self.n_tokens} tokens, got {q.shape[1]}")
        if c is None:
            raise ValueError("TokenDecoder needs a condition vector")
        e = self.embed(c)[:, None, :]
        tokens = self.token_in(q)
        h = torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1) + self.pos + e
        h = self.norm(self.transformer(h))
        return self.unpatchify(self.head(h[:, 1:]))


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


VQ_DEFAULTS: dict[str, Any] = {
    "cond_dim": 64,             # width of the condition embedding (encoder and decoder)
    "use_species": False,       # learned species embedding (condition embedding + prior token)
    "readout": "poisson",       # counts at sampling (Generator.sample)
    "output": "softplus",       # decoder output in log1p space
    "recon_loss": "poisson",    # calogen.models.losses: "poisson" or "mse"
    "vit_patch": 8,             # patch size: 44x44 -> 48x48 -> 6x6 = 36 tokens
    "vit_heads": 4,             # heads of encoder and decoder
    "vit_width": 96,            # encoder width (training only)
    "vit_depth": 4,             # encoder depth
    "decoder_width": 64,        # decoder width (runs once per generated shower)
    "decoder_depth": 2,
    "n_codes": 256,             # codebook entries
    "code_dim": 32,             # lookup dimension
    "beta": 0.25,               # commitment weight (van den Oord et al.)
    "vq_weight": 1.0,           # weight of codebook + beta * commitment (per shower, summed)
    "restart_after": 100,       # training steps without use before a code restarts (0 = off)
    "prior_width": 64,          # the prior runs N steps per shower: sized for speed (see VQVAE)
    "prior_depth": 2,
    "prior_heads": 2,
    "prior_mlp_ratio": 2,
    "temperature": 1.0,         # sampling options (configure_sampling)
    "top_k": 0,
    "top_p": 1.0,
}
"""Hparams of ``vq-vae`` (``vq-gan`` adds :data:`GAN_DEFAULTS`); see :class:`VQVAE`."""

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

_INT_KEYS = ("vit_patch", "vit_heads", "vit_width", "vit_depth", "decoder_width",
             "decoder_depth", "n_codes", "code_dim", "prior_width", "prior_depth", "prior_heads",
             "prior_mlp_ratio", "cond_dim")


def _non_negative(value: Any) -> bool:
    """Whether ``value`` is a real number >= 0 (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@register_family
class VQVAE(SamplingOptions, ImageGenerator):
    """VQ-VAE with a cosine codebook and a causal transformer prior (module docstring).

    Hparams (defaults in :data:`VQ_DEFAULTS`): ``vit_patch`` (patch size, 8), ``vit_width``/
    ``vit_depth``/``vit_heads`` (encoder, 96/4/4), ``decoder_width``/``decoder_depth`` (64/2),
    ``n_codes`` (256), ``code_dim`` (32), ``beta`` (0.25), ``vq_weight`` (1.0),
    ``restart_after`` (100 steps; 0 = off), ``recon_loss`` (``"poisson"``/``"mse"``),
    ``prior_width``/``prior_depth``/``prior_heads``/``prior_mlp_ratio`` (64/2/2/2), sampling
    options ``temperature`` (1.0; 0 = greedy), ``top_k`` (0 = off), ``top_p`` (1.0 = off), and
    ``cond_dim``, ``use_species``, ``readout``, ``output`` as the other image families.

    The study's "256 x 256" codebook is read as 256 entries that live in the 32-dim lookup
    space and are projected up to the decoder width by its input layer (the factorised codes of
    ViT-VQGAN), which makes a separate table of wide embeddings redundant.

    The prior and decoder defaults are sized for generation speed: they run for every generated
    shower, the encoder only in training. On one CPU thread (AMD EPYC, batch 1000, 44x44 ZN)
    the defaults take about 0.45 ms per shower in the prior (36 steps) and 0.3 ms in the
    decoder; ``prior_depth=1, decoder_width=32, decoder_depth=1`` about halves that, a prior of
    width 128 with 4 heads and MLP ratio 4 triples the prior's time.
    """

    family: ClassVar[str] = "vq-vae"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "prior")
    one_step: ClassVar[bool] = False
    sampling_keys: ClassVar[tuple[str, ...]] = ("temperature", "top_k", "top_p")
    defaults: ClassVar[dict[str, Any]] = dict(VQ_DEFAULTS)

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        self._check_hparams(hp)
        self._check_sampling(hp)
        cd, code = int(hp["cond_dim"]), int(hp["code_dim"])
        self.cond_embed = self.condition_embedding()
        self.encoder = TokenEncoder(self.shape, cd, code, int(hp["vit_patch"]),
                                    int(hp["vit_width"]), int(hp["vit_depth"]),
                                    int(hp["vit_heads"]))
        self.quantizer = CosineCodebook(int(hp["n_codes"]), code, int(hp["restart_after"]))
        self.decoder = TokenDecoder(code, cd, self.shape, int(hp["vit_patch"]),
                                    int(hp["decoder_width"]), int(hp["decoder_depth"]),
                                    int(hp["vit_heads"]))
        n_species = self.spec.n_species if hp["use_species"] else 0
        self.prior = TokenPrior(self.spec.n_conditions, int(hp["n_codes"]), self.n_tokens,
                                int(hp["prior_width"]), int(hp["prior_depth"]),
                                int(hp["prior_heads"]), int(hp["prior_mlp_ratio"]), n_species)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    # -- hparams -------------------------------------------------------------------------------

    def _check_hparams(self, hp: dict[str, Any]) -> None:
        f = self.family
        for key in _INT_KEYS:
            value = hp[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f}: hparam {key!r} must be an integer >= 1, got {value!r}")
        if hp["n_codes"] < 2:
            raise ValueError(f"{f}: hparam 'n_codes' must be >= 2, got {hp['n_codes']}")
        for key in ("vit_width", "decoder_width"):
            if hp[key] % hp["vit_heads"]:
                raise ValueError(f"{f}: hparam {key!r} ({hp[key]}) must be a multiple of "
                                 f"'vit_heads' ({hp['vit_heads']})")
        if hp["prior_width"] % hp["prior_heads"]:
            raise ValueError(f"{f}: hparam 'prior_width' ({hp['prior_width']}) must be a "
                             f"multiple of 'prior_heads' ({hp['prior_heads']})")
        if hp["recon_loss"] not in RECON_LOSSES:
            raise ValueError(f"{f}: hparam 'recon_loss' must be one of {RECON_LOSSES}, "
                             f"got {hp['recon_loss']!r}")
        for key in ("beta", "vq_weight"):
            if not _non_negative(hp[key]):
                raise ValueError(f"{f}: hparam {key!r} must be a number >= 0, got {hp[key]!r}")
        ra = hp["restart_after"]
        if isinstance(ra, bool) or not isinstance(ra, int) or ra < 0:
            raise ValueError(f"{f}: hparam 'restart_after' must be an integer >= 0 (0 = no "
                             f"restarts), got {ra!r}")

    def _check_sampling(self, opts: dict[str, Any]) -> None:
        try:
            check_sampling_options(opts["temperature"], opts["top_k"], opts["top_p"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.family}: {exc}") from None

    # -- networks ------------------------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """Image tokens per shower (patches of the padded image)."""
        return int(self.encoder.n_tokens)

    def _species(self, species: Tensor | None) -> Tensor | None:
        return species if self.hparams["use_species"] else None

    def encode(self, x: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Codebook indices ``(B, N)`` of images ``x (B, 1, H, W)`` (``log1p``)."""
        c = self.cond_embed(cond, self._species(species))
        return self.quantizer.lookup(self.encoder(x, c))

    def decode_tokens(self, tokens: Tensor, cond: Tensor,
                      species: Tensor | None = None) -> Tensor:
        """Log image ``(B, 1, H, W)`` from codebook indices ``(B, N)``."""
        c = self.cond_embed(cond, self._species(species))
        return self.activate(self.decoder(self.quantizer.embed(tokens), c))

    def sample_tokens(self, cond: Tensor, species: Tensor | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
        """Tokens ``(B, N)`` from the prior with the current sampling options."""
        hp = self.hparams
        return self.prior.sample(cond, self._species(species), temperature=float(
            hp["temperature"]), top_k=int(hp["top_k"]), top_p=float(hp["top_p"]),
            generator=generator)

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Tokens from the prior, decoded once: ``log1p`` image ``(B, 1, H, W)``, >= 0."""
        tokens = self.sample_tokens(cond, species, generator)
        return self.decode_tokens(tokens, cond, species).clamp(min=0)

    def network_calls(self) -> int:
        """Prior steps (one per token) plus the decoder pass."""
        return self.n_tokens + 1

    def exportable(self) -> bool:
        return False

    # -- training ------------------------------------------------------------------------------

    def _modules_of(self, phase: str) -> list[nn.Module]:
        if phase == "autoencoder":
            return [self.cond_embed, self.encoder, self.quantizer, self.decoder]
        if phase == "prior":
            return [self.prior]
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """``"autoencoder"``: condition embedding, encoder, codebook, decoder; ``"prior"``:
        the token prior."""
        return [p for m in self._modules_of(phase) for p in m.parameters() if p.requires_grad]

    def _training_step(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        if phase == "autoencoder":
            return self._autoencoder_loss(batch)
        if phase == "prior":
            return self._prior_loss(batch)
        raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")

    def _reconstruct(self, batch: TrainBatch) -> tuple[Tensor, Tensor, Quantized]:
        c = self.cond_embed(batch.cond, self._species(batch.species))
        q = self.quantizer(self.encoder(batch.x, c), update=self._training_step())
        return self.activate(self.decoder(q.z_q, c)), c, q

    def _autoencoder_terms(self, batch: TrainBatch
                           ) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """Reconstructions, mean reconstruction loss, total VQ loss, scalars to log."""
        x_hat, _, q = self._reconstruct(batch)
        recon = reconstruction_loss(x_hat, batch.x, str(self.hparams["recon_loss"])).mean()
        vq = (q.codebook_loss + float(self.hparams["beta"]) * q.commitment_loss).mean()
        logs = {"recon": recon.item(), "mse": (x_hat - batch.x).pow(2).mean().item(),
                "codebook": q.codebook_loss.mean().item(),
                "commitment": q.commitment_loss.mean().item(), "code_usage": q.usage,
                "perplexity": q.perplexity, "restarted": float(q.restarted)}
        return x_hat, recon, vq, logs

    def _autoencoder_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        _, recon, vq, logs = self._autoencoder_terms(batch)
        loss = recon + float(self.hparams["vq_weight"]) * vq
        logs["loss"] = loss.item()
        return loss, logs

    def _prior_loss(self, batch: TrainBatch) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the batch's current tokens (no gradient to the autoencoder); the
        last phase of a step, so it advances the ``step`` counter in training."""
        with torch.no_grad():
            tokens = self.encode(batch.x, batch.cond, batch.species)
        loss, accuracy = self.prior.loss(tokens, batch.cond, self._species(batch.species))
        if self._training_step():
            self.step += 1
        return loss, {"loss": loss.item(), "nll_per_token": loss.item(),
                      "accuracy": accuracy.item()}


@register_family
class VQGAN(VQVAE):
    """:class:`VQVAE` plus a conditional discriminator on reconstructions (module docstring).

    Extra hparams (:data:`GAN_DEFAULTS`): ``gan_weight`` (0.1), ``gan_adaptive`` (True: times
    ``|grad recon| / |grad adv|`` at the decoder's output layer, Esser et al. eq. 7),
    ``disc_start`` (500 training steps), and the discriminator trunk's backbone keys
    ``backbone``, ``channels``, ``groups``, ``mlp_hidden`` (vit keys shared with the encoder)
    as in :data:`calogen.models.backbones.BACKBONE_DEFAULTS`. The phase ``"discriminator"``
    trains the discriminator's condition embedding, trunk and head.

    The ``step`` buffer counts completed training steps (advanced by the last phase,
    ``"prior"``), is saved with the model and restored on resume; at ``step < disc_start`` the
    adversarial term is off and the discriminator loss is an exact zero.
    """

    family: ClassVar[str] = "vq-gan"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "discriminator", "prior")
    optimizer_defaults: ClassVar[dict[str, Any]] = {"betas": (0.5, 0.9)}
    """Adam betas used by VQGAN (Esser et al.)."""
    defaults: ClassVar[dict[str, Any]] = {**VQ_DEFAULTS, **GAN_DEFAULTS}

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if not _non_negative(hp["gan_weight"]):
            raise ValueError(f"vq-gan: hparam 'gan_weight' must be a number >= 0, got "
                             f"{hp['gan_weight']!r}")
        ds = hp["disc_start"]
        if isinstance(ds, bool) or not isinstance(ds, int) or ds < 0:
            raise ValueError(f"vq-gan: hparam 'disc_start' must be an integer >= 0, got {ds!r}")
        if not isinstance(hp["gan_adaptive"], bool):
            raise ValueError(f"vq-gan: hparam 'gan_adaptive' must be true or false, got "
                             f"{hp['gan_adaptive']!r}")
        self.d_embed = self.condition_embedding()
        self.disc = make_backbone_encoder(hp, self.shape, int(hp["cond_dim"]), _DISC_FEATURES)
        self.d_head = nn.Linear(_DISC_FEATURES, 1)
        nn.init.zeros_(self.d_head.bias)  # the warm-up's zero loss touches only this bias
        self.register_buffer("gan_scale", torch.ones(()))

    def disc_active(self) -> bool:
        """Whether the discriminator is in use (``step >= disc_start``)."""
        return int(self.step) >= int(self.hparams["disc_start"])

    def discriminate(self, x: Tensor, cond: Tensor, species: Tensor | None) -> Tensor:
        """Logit ``(B,)`` of ``x`` being a real image for these conditions."""
        f = F.silu(self.disc(x, self.d_embed(cond, self._species(species))))
        return self.d_head(f)[:, 0]

    def _modules_of(self, phase: str) -> list[nn.Module]:
        if phase == "discriminator":
            return [self.d_embed, self.disc, self.d_head]
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
            zero = 0.0 * self.d_head.bias.sum()
            return zero, {"loss": 0.0, "active": 0.0}
        with torch.no_grad():  # reconstructions of this batch, no bookkeeping
            fake = self.decode_tokens(self.encode(batch.x, batch.cond, batch.species),
                                      batch.cond, batch.species)
        logit_r = self.discriminate(batch.x, batch.cond, batch.species)
        logit_f = self.discriminate(fake, batch.cond, batch.species)
        loss = F.softplus(-logit_r).mean() + F.softplus(logit_f).mean()
        return loss, {"loss": loss.item(), "active": 1.0, "d_real": logit_r.mean().item(),
                      "d_fake": logit_f.mean().item()}
