"""Network backbones shared by the image families (encoders, decoders, condition embedding).

Every backbone works for any image size ``H x W`` (ZN 44x44, ZP 56x30, tiny test images) and
any device; sizes are derived from the shape, never hard-coded.

* :class:`ConditionEmbedding`: standardised conditions (+ optional learned species embedding)
  to a vector.
* Residual CNN (:class:`ResidualDecoder`, :class:`ResidualEncoder`): residual blocks with
  GroupNorm/SiLU (He et al., "Deep Residual Learning", arXiv:1512.03385) and FiLM conditioning
  per block (Perez et al., "FiLM", arXiv:1709.07871).
* Vision transformer (:class:`ViTDecoder`, :class:`ViTEncoder`; Dosovitskiy et al.,
  arXiv:2010.11929): the image is padded to a multiple of the patch size and cut into patches,
  with a learned positional embedding and the condition as an extra token, as in the ZDC papers
  (Dubinski et al., arXiv:2306.13606: 44x44 padded to 48x48, 8x8 patches, width 96, 4 heads,
  4 layers).

Decoders map ``(z [B, latent], condition vector [B, cond_dim])`` to a log image ``(B, 1, H, W)``
in ``log1p(photons)`` space; encoders map ``(image [B, 1, H, W], condition vector)`` to a
vector (an encoder is also the trunk of a GAN discriminator). :func:`make_decoder` and
:func:`make_encoder` pick the backbone from ``hparams["backbone"]`` (``"cnn"`` or ``"vit"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BACKBONE_DEFAULTS", "ConditionEmbedding", "ResidualBlock", "ResidualDecoder",
    "ResidualEncoder", "TokenDecoder", "TokenEncoder", "ViTDecoder", "ViTEncoder", "crop_center",
    "make_decoder", "make_encoder", "output_activation", "resolve_hparams",
]

BACKBONES: tuple[str, ...] = ("cnn", "vit", "mlp")
"""Selectable backbones: residual CNN, ViT with a condition token, fast MLP."""

OUTPUTS: tuple[str, ...] = ("softplus", "relu", "linear")
"""Decoder output non-linearities (:func:`output_activation`)."""

BACKBONE_DEFAULTS: dict[str, Any] = {
    "backbone": "cnn",          # "cnn", "vit" or "mlp"
    "mlp_hidden": [256, 512],   # MLP widths from the latent side to the image side
    "channels": [8, 16, 32],    # CNN widths from full resolution to the coarsest grid
    "groups": 8,                # GroupNorm groups (reduced to a divisor of the width)
    "cond_dim": 64,             # width of the condition embedding
    "use_species": False,       # learned species embedding (not in the ALICE O2 signature)
    "condition_features": "auto",  # + log E and the ZDC impact point ("auto", "zdc", "raw")
    "readout": "round",         # counts at sampling: "round" or "poisson" (see Generator.sample)
    "output": "softplus",       # decoder output in log1p space: "softplus", "relu" or "linear"
    "vit_patch": 8,
    "vit_width": 96,
    "vit_depth": 4,
    "vit_heads": 4,
}
"""Backbone hyperparameters shared by the image families (CPU-friendly defaults)."""


def resolve_hparams(family: str, defaults: Mapping[str, Any],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by ``given``; ``ValueError`` naming unknown keys.

    The result is JSON-friendly (tuples become lists) so that a saved model's ``hparams``
    rebuild the same network.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{family}: unknown hparams {unknown}; known: {sorted(defaults)}")
    out = {**defaults, **given}
    for key, value in out.items():
        if isinstance(value, tuple):
            out[key] = list(value)
    if out.get("backbone", "cnn") not in BACKBONES:
        raise ValueError(f"{family}: hparam 'backbone' must be one of {BACKBONES}, "
                         f"got {out['backbone']!r}")
    if out.get("output", "softplus") not in OUTPUTS:
        raise ValueError(f"{family}: hparam 'output' must be one of {OUTPUTS}, "
                         f"got {out['output']!r}")
    return out


def output_activation(y: Tensor, kind: str) -> Tensor:
    """Decoder output non-linearity in ``log1p`` space: ``softplus`` keeps it > 0 (smooth, but
    never exactly 0); ``relu`` keeps it >= 0 and can output exact zeros, as most fibres of a
    ZDC response are (a discriminator can otherwise tell fakes by their faint everywhere-positive
    background); ``linear`` leaves it unconstrained (clamped at sampling)."""
    if kind == "softplus":
        return F.softplus(y)
    return F.relu(y) if kind == "relu" else y


def _groups(channels: int, groups: int) -> int:
    """Largest divisor of ``channels`` not above ``groups`` (GroupNorm needs a divisor)."""
    return math.gcd(channels, max(1, groups))


def crop_center(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """Crop ``(B, C, H', W')`` centrally to ``shape`` (``H' >= H``, ``W' >= W``)."""
    h, w = shape
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def _pad_center(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """Zero-pad ``(B, C, H, W)`` centrally to ``shape`` (inverse of :func:`crop_center`)."""
    dh, dw = shape[0] - x.shape[-2], shape[1] - x.shape[-1]
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class ConditionEmbedding(nn.Module):
    """MLP of standardised conditions (plus an optional learned species embedding) -> vector.

    Args:
        n_conditions: number of condition columns ``k`` (ZDC: 9).
        n_species: number of species indices (``Transforms.n_species``).
        dim: output width.
        use_species: add a learned embedding of the species index; when false ``species``
            is ignored and may be ``None`` (the ALICE O2 ONNX signature has no species).
        features: optional module appending derived columns to the conditions (e.g.
            :class:`calogen.models.nn.condition_features.ZDCConditionFeatures`; its
            ``n_extra`` columns widen the first layer).
    """

    def __init__(self, n_conditions: int, n_species: int, dim: int, use_species: bool,
                 features: nn.Module | None = None) -> None:
        super().__init__()
        self.use_species = bool(use_species)
        self.features = features
        n_in = n_conditions + int(getattr(features, "n_extra", 0))
        self.net = nn.Sequential(nn.Linear(n_in, dim), nn.SiLU(), nn.Linear(dim, dim),
                                 nn.SiLU())
        self.species = nn.Embedding(max(1, n_species), dim) if self.use_species else None

    def forward(self, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """``cond (B, k)`` standardised, ``species (B,)`` int64 -> ``(B, dim)``."""
        h = self.net(cond if self.features is None else self.features(cond))
        if self.species is not None:
            if species is None:
                raise ValueError("this model was built with use_species=True: pass species "
                                 "indices (B,) int64")
            h = h + self.species(species.long())
        return h


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with FiLM modulation from a style vector, plus the identity.

    FiLM (Perez et al., arXiv:1709.07871): ``h <- h * (1 + gamma(s)) + beta(s)``, with the
    projection zero-initialised so every block starts as the identity-plus-convolution.
    """

    def __init__(self, channels: int, style_dim: int, groups: int = 8) -> None:
        super().__init__()
        g = _groups(channels, groups)
        self.norm1 = nn.GroupNorm(g, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(g, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(style_dim, 2 * channels) if style_dim > 0 else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, style: Tensor | None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.film is not None and style is not None:
            gamma, beta = self.film(style)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + gamma) + beta
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class ResidualDecoder(nn.Module):
    """Residual CNN decoder ``(z, condition vector) -> log image (B, 1, H, W)``.

    Starts from a ``ceil(H / 2^n) x ceil(W / 2^n)`` grid (``n = len(channels) - 1``), then per
    stage a FiLM residual block and a nearest-neighbour ``x2`` upsampling with a convolution;
    the result is cropped centrally to exactly ``H x W``. The FiLM style vector is
    ``[z, condition vector]``. Output is the pre-activation (see :func:`output_activation`).

    Args:
        latent_dim: size of ``z``.
        cond_dim: size of the condition vector (0: unconditional).
        shape: output image shape ``(H, W)``.
        channels: widths from full resolution to the coarsest grid (the decoder walks them in
            reverse), e.g. ``(16, 32, 64)`` for 44x44 starts from an 11x11 grid of 64 channels.
        groups: GroupNorm groups.
    """

    def __init__(self, latent_dim: int, cond_dim: int, shape: tuple[int, int],
                 channels: Sequence[int] = (16, 32, 64), groups: int = 8) -> None:
        super().__init__()
        self.shape = (int(shape[0]), int(shape[1]))
        widths = [int(c) for c in reversed(list(channels))]
        if not widths:
            raise ValueError("ResidualDecoder: channels must not be empty")
        n_up = len(widths) - 1
        self.grid = (math.ceil(self.shape[0] / 2 ** n_up), math.ceil(self.shape[1] / 2 ** n_up))
        style_dim = latent_dim + cond_dim
        self.stem = nn.Linear(style_dim, widths[0] * self.grid[0] * self.grid[1])
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, c in enumerate(widths):
            self.blocks.append(ResidualBlock(c, style_dim, groups))
            if i < n_up:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, widths[i + 1], 3, padding=1)))
        self.head = nn.Sequential(nn.GroupNorm(_groups(widths[-1], groups), widths[-1]),
                                  nn.SiLU(), nn.Conv2d(widths[-1], 1, 3, padding=1))

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        """``z (B, latent)``, ``c (B, cond_dim)`` -> pre-activation ``(B, 1, H, W)``."""
        style = z if c is None else torch.cat([z, c], dim=1)
        h = self.stem(style).view(z.shape[0], -1, *self.grid)
        for i, block in enumerate(self.blocks):
            h = block(h, style)
            if i < len(self.ups):
                h = self.ups[i](h)
        return crop_center(self.head(h), self.shape)


class ResidualEncoder(nn.Module):
    """Residual CNN encoder ``(image (B, 1, H, W), condition vector) -> (B, out_dim)``.

    A convolution at full resolution, then per stage a FiLM residual block (conditioned on the
    condition vector) and a stride-2 convolution; the final grid is flattened (keeping position
    information, e.g. for the hottest-pixel regressor), projected, concatenated with the
    condition vector and mapped by a small MLP to ``out_dim``. Also the GAN discriminator trunk.

    Args:
        shape: input image shape ``(H, W)``.
        cond_dim: size of the condition vector (0: unconditional).
        out_dim: output size.
        channels: widths from full resolution to the coarsest grid.
        groups: GroupNorm groups.
        hidden: width of the final MLP.
    """

    def __init__(self, shape: tuple[int, int], cond_dim: int, out_dim: int,
                 channels: Sequence[int] = (16, 32, 64), groups: int = 8,
                 hidden: int = 128) -> None:
        super().__init__()
        widths = [int(c) for c in channels]
        if not widths:
            raise ValueError("ResidualEncoder: channels must not be empty")
        self.cond_dim = int(cond_dim)
        self.stem = nn.Conv2d(1, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        h, w = int(shape[0]), int(shape[1])
        for i, c in enumerate(widths):
            self.blocks.append(ResidualBlock(c, self.cond_dim, groups))
            if i < len(widths) - 1:
                self.downs.append(nn.Conv2d(c, widths[i + 1], 3, stride=2, padding=1))
                h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.proj = nn.Sequential(nn.GroupNorm(_groups(widths[-1], groups), widths[-1]),
                                  nn.SiLU(), nn.Flatten(), nn.Linear(widths[-1] * h * w, hidden))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden + self.cond_dim, hidden), nn.SiLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        """``x (B, 1, H, W)``, ``c (B, cond_dim)`` -> ``(B, out_dim)``."""
        h = self.stem(x)
        for i, block in enumerate(self.blocks):
            h = block(h, c)
            if i < len(self.downs):
                h = self.downs[i](h)
        h = self.proj(h)
        if self.cond_dim > 0 and c is not None:
            h = torch.cat([h, c], dim=1)
        return self.out(h)


class _ViTBase(nn.Module):
    """Patch geometry and transformer stack shared by the ViT encoder and decoder."""

    def __init__(self, shape: tuple[int, int], patch: int, width: int, depth: int,
                 heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"ViT: width {width} must be a multiple of heads {heads}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.patch = int(patch)
        self.padded = (math.ceil(self.shape[0] / patch) * patch,
                       math.ceil(self.shape[1] / patch) * patch)
        self.grid = (self.padded[0] // patch, self.padded[1] // patch)
        self.n_tokens = self.grid[0] * self.grid[1]
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def patchify(self, x: Tensor) -> Tensor:
        """``(B, 1, H, W)`` -> ``(B, n_tokens, patch^2)`` after central zero-padding."""
        x = _pad_center(x, self.padded)
        p, (gh, gw) = self.patch, self.grid
        b = x.shape[0]  # a symbolic size under torch.export (len() would fix the batch)
        return x.reshape(b, gh, p, gw, p).permute(0, 1, 3, 2, 4).reshape(b, gh * gw, p * p)

    def unpatchify(self, t: Tensor) -> Tensor:
        """``(B, n_tokens, patch^2)`` -> ``(B, 1, H, W)`` (central crop of the padded grid)."""
        p, (gh, gw) = self.patch, self.grid
        x = t.reshape(len(t), gh, gw, p, p).permute(0, 1, 3, 2, 4).reshape(len(t), 1,
                                                                           gh * p, gw * p)
        return crop_center(x, self.shape)


class ViTDecoder(_ViTBase):
    """ViT decoder ``(z, condition vector) -> log image (B, 1, H, W)``.

    Sequence = [condition token (projection of ``[z, c]``)] + one query token per patch (learned
    positional embedding plus the same projection); after the transformer each patch token is
    mapped linearly to its ``patch x patch`` pixels. Output is the pre-activation.
    """

    def __init__(self, latent_dim: int, cond_dim: int, shape: tuple[int, int], patch: int = 8,
                 width: int = 96, depth: int = 4, heads: int = 4) -> None:
        super().__init__(shape, patch, width, depth, heads)
        self.embed = nn.Sequential(nn.Linear(latent_dim + cond_dim, width), nn.SiLU(),
                                   nn.Linear(width, width))
        self.head = nn.Linear(width, self.patch * self.patch)

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        style = z if c is None else torch.cat([z, c], dim=1)
        e = self.embed(style)[:, None, :]
        tokens = self.pos.expand(z.shape[0], -1, -1) + e
        h = self.norm(self.transformer(tokens))
        return self.unpatchify(self.head(h[:, 1:]))


class ViTEncoder(_ViTBase):
    """ViT encoder ``(image, condition vector) -> (B, out_dim)``; the output is read from the
    condition token (a learned class token when ``cond_dim == 0``)."""

    def __init__(self, shape: tuple[int, int], cond_dim: int, out_dim: int, patch: int = 8,
                 width: int = 96, depth: int = 4, heads: int = 4) -> None:
        super().__init__(shape, patch, width, depth, heads)
        self.cond_dim = int(cond_dim)
        self.patch_embed = nn.Linear(self.patch * self.patch, width)
        self.cond_token = (nn.Linear(self.cond_dim, width) if self.cond_dim > 0
                           else nn.Parameter(torch.zeros(1, 1, width)))
        self.head = nn.Linear(width, out_dim)

    def tokens(self, x: Tensor, c: Tensor | None) -> Tensor:
        """Normalised transformer outputs ``(B, 1 + patches, width)``: the condition token,
        then one token per patch."""
        patches = self.patch_embed(self.patchify(x))
        if isinstance(self.cond_token, nn.Linear):
            if c is None:
                raise ValueError(f"{type(self).__name__} built with cond_dim > 0 needs a "
                                 f"condition vector")
            first = self.cond_token(c)[:, None, :]
        else:
            first = self.cond_token.expand(x.shape[0], -1, -1)
        return self.norm(self.transformer(torch.cat([first, patches], dim=1) + self.pos))

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        return self.head(self.tokens(x, c)[:, 0])


class MLPDecoder(nn.Module):
    """Fully connected decoder ``(z, condition vector) -> (B, 1, H, W)`` for an image shape
    ``(H, W)``, or ``(B, n)`` for a flat shape ``(n,)`` (voxels): the fast backbone.

    A few hundred thousand multiply-adds per image, so it trains at tens of steps per second on
    a laptop CPU where the residual CNN manages about one; it has no translation prior, which
    the conditions (impact point) make up for on the fixed ZDC grids.
    """

    def __init__(self, latent_dim: int, cond_dim: int, shape: tuple[int, ...],
                 hidden: Sequence[int]) -> None:
        super().__init__()
        self.out_shape = (1, *shape) if len(shape) == 2 else tuple(shape)
        layers: list[nn.Module] = []
        width = latent_dim + cond_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.LayerNorm(int(h)), nn.SiLU()]
            width = int(h)
        layers.append(nn.Linear(width, math.prod(shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        h = z if c is None else torch.cat([z, c], dim=1)
        return self.net(h).view(z.shape[0], *self.out_shape)


class MLPEncoder(nn.Module):
    """Fully connected encoder ``(image or voxels, condition vector) -> (B, out_dim)``."""

    def __init__(self, shape: tuple[int, ...], cond_dim: int, out_dim: int,
                 hidden: Sequence[int]) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        layers: list[nn.Module] = []
        width = math.prod(shape) + cond_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.LayerNorm(int(h)), nn.SiLU()]
            width = int(h)
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        h = x.flatten(1)
        if self.cond_dim > 0 and c is not None:
            h = torch.cat([h, c], dim=1)
        return self.net(h)


def _image_shape(hp: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[int, int]:
    """``shape`` as ``(H, W)``; ``ValueError`` for a flat shape, which only the MLP takes."""
    if len(shape) != 2:
        raise ValueError(f"backbone {hp['backbone']!r} needs images (H, W); showers of shape "
                         f"{tuple(shape)} (voxels) need backbone 'mlp'")
    return (int(shape[0]), int(shape[1]))


def make_decoder(hp: Mapping[str, Any], latent_dim: int, cond_dim: int,
                 shape: tuple[int, ...]) -> nn.Module:
    """Decoder chosen by ``hp["backbone"]`` (keys as in :data:`BACKBONE_DEFAULTS`) for showers
    of ``shape``: ``(H, W)`` (any backbone) or ``(n_voxels,)`` (the MLP only)."""
    if hp["backbone"] == "mlp":
        return MLPDecoder(latent_dim, cond_dim, shape, hp["mlp_hidden"])
    image = _image_shape(hp, shape)
    if hp["backbone"] == "vit":
        return ViTDecoder(latent_dim, cond_dim, image, int(hp["vit_patch"]), int(hp["vit_width"]),
                          int(hp["vit_depth"]), int(hp["vit_heads"]))
    return ResidualDecoder(latent_dim, cond_dim, image, hp["channels"], int(hp["groups"]))


def make_encoder(hp: Mapping[str, Any], shape: tuple[int, ...], cond_dim: int,
                 out_dim: int) -> nn.Module:
    """Encoder chosen by ``hp["backbone"]`` (keys as in :data:`BACKBONE_DEFAULTS`) for showers
    of ``shape``: ``(H, W)`` (any backbone) or ``(n_voxels,)`` (the MLP only)."""
    if hp["backbone"] == "mlp":
        return MLPEncoder(shape, cond_dim, out_dim, list(reversed(hp["mlp_hidden"])))
    image = _image_shape(hp, shape)
    if hp["backbone"] == "vit":
        return ViTEncoder(image, cond_dim, out_dim, int(hp["vit_patch"]), int(hp["vit_width"]),
                          int(hp["vit_depth"]), int(hp["vit_heads"]))
    return ResidualEncoder(image, cond_dim, out_dim, hp["channels"], int(hp["groups"]))


class TokenEncoder(ViTEncoder):
    """ViT encoder ``(image (B, 1, H, W), condition vector) -> token vectors (B, N, out_dim)``:
    the image is padded centrally to a multiple of ``patch``, one token per patch (``N =
    ceil(H / patch) * ceil(W / patch)``), and every patch token's output is projected to
    ``out_dim`` (the :class:`~calogen.models.nn.backbones.ViTEncoder` reads only the condition
    token)."""

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        return self.head(self.tokens(x, c)[:, 1:])


class TokenDecoder(ViTDecoder):
    """ViT decoder ``(token vectors (B, N, code_dim), condition vector) -> log image
    pre-activation (B, 1, H, W)``: sequence = [condition token] + one token per patch (the
    token vector projected to the width plus a learned position), the condition embedding added
    to every position as in :class:`~calogen.models.nn.backbones.ViTDecoder`; each patch token is
    mapped linearly to its ``patch x patch`` pixels and the padded grid cropped to ``H x W``."""

    def __init__(self, code_dim: int, cond_dim: int, shape: tuple[int, int], patch: int = 8,
                 width: int = 64, depth: int = 2, heads: int = 4) -> None:
        super().__init__(0, cond_dim, shape, patch, width, depth, heads)
        self.token_in = nn.Linear(code_dim, width)

    def forward(self, q: Tensor, c: Tensor | None) -> Tensor:
        if q.shape[1] != self.n_tokens:
            raise ValueError(f"TokenDecoder: expected {self.n_tokens} tokens, got {q.shape[1]}")
        if c is None:
            raise ValueError("TokenDecoder needs a condition vector")
        e = self.embed(c)[:, None, :]
        tokens = self.token_in(q)
        h = torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1) + self.pos + e
        h = self.norm(self.transformer(h))
        return self.unpatchify(self.head(h[:, 1:]))
