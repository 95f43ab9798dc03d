"""The vector-quantised generator with an autoregressive token prior (family ``"vq-vae"``).

Design (the ZDC VQ study in MODELS.md: codebook of 256 entries, cosine lookup in 32 dims, 36
tokens, an autoregressive transformer prior over [condition tokens + image tokens] sampled with
temperature / top-k / top-p; VQ-GAN adds a discriminator; for calorimeter showers see also
Calo-VQ, Liu et al., arXiv:2405.06605):

* **Encoder** (:class:`TokenEncoder`): a vision transformer (the
  :class:`~calogen.models.nn.backbones.ViTEncoder` of the backbones, conditioned through its
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
  ``H x W`` (the :class:`~calogen.models.nn.backbones.ViTDecoder` geometry). It sees the
  conditions, so the tokens only have to carry what the conditions do not fix: the shape of
  this shower.
* **Reconstruction** loss :func:`calogen.models.nn.losses.reconstruction_loss` (``"poisson"`` by
  default, the photon-count likelihood) and Poisson readout at sampling, as the VAE.
* **Prior** (:class:`calogen.models.nn.token_prior.TokenPrior`): a causal transformer over
  ``[one token per condition, (species), image tokens]``, trained every step on the batch's
  current tokens (encoder output, no gradient to the autoencoder), as ``ae-noise`` trains its
  latent generator alongside the autoencoder.
* **Sampling**: ``N`` prior steps with a key/value cache (``temperature``, ``top_k``, ``top_p``
  are sampling options, changeable after training with :meth:`VQVAE.configure_sampling`) and one
  decoder pass; ``network_calls() == N + 1``. Not exportable to ONNX (the prior is a loop).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from calogen.models.generator import (
    ImageGenerator,
    ModelSpec,
    SamplingOption,
    SamplingOptions,
    TrainBatch,
)
from calogen.models.nn.backbones import TokenDecoder, TokenEncoder
from calogen.models.nn.codebook import CosineCodebook, Quantized
from calogen.models.nn.losses import RECON_LOSSES, reconstruction_loss
from calogen.models.nn.token_prior import TokenPrior, check_sampling_options
from calogen.models.registry import register_family

__all__ = ["VQVAE", "VQ_DEFAULTS", "non_negative_number"]



# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


VQ_DEFAULTS: dict[str, Any] = {
    "cond_dim": 64,             # width of the condition embedding (encoder and decoder)
    "use_species": False,       # learned species embedding (condition embedding + prior token)
    "readout": "poisson",       # counts at sampling (Generator.sample)
    "output": "softplus",       # decoder output in log1p space
    "recon_loss": "poisson",    # calogen.models.nn.losses: "poisson" or "mse"
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

_INT_KEYS = ("vit_patch", "vit_heads", "vit_width", "vit_depth", "decoder_width",
             "decoder_depth", "n_codes", "code_dim", "prior_width", "prior_depth", "prior_heads",
             "prior_mlp_ratio", "cond_dim")


def non_negative_number(value: Any) -> bool:
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
    category: ClassVar[str] = "token"
    phases: ClassVar[tuple[str, ...]] = ("autoencoder", "prior")
    one_step: ClassVar[bool] = False
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (
        SamplingOption("temperature", float, "prior temperature (0 = greedy)"),
        SamplingOption("top_k", int, "sample among the k most likely tokens (0 = off)"),
        SamplingOption("top_p", float, "nucleus sampling mass (1 = off)"))
    defaults = dict(VQ_DEFAULTS)

    step: Tensor

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
            if not non_negative_number(hp[key]):
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
