"""Conditional U-Net for diffusion and flow-matching image models of calorimeter showers.

:class:`ConditionalUNet` maps a (noisy) image ``x (B, C_in, H, W)``, a per-row noise level and
an already-embedded condition vector to an image-shaped output ``(B, C_out, H, W)`` (a noise,
velocity or denoised-image prediction, as the caller's objective defines it). It works for any
image size ``H x W >= 4`` (ZN 44x44, ZP 56x30, tiny test images): the input is zero-padded
centrally to a multiple of ``2 ** (len(channels) - 1)`` and the output cropped back.

Architecture:

* U-Net (Ronneberger et al., "U-Net", arXiv:1505.04597): an encoder with one level per entry
  of ``channels`` and a stride-2 convolution between levels, a middle section at the lowest
  resolution (residual block, multi-head self-attention, residual block), and a mirrored
  decoder that concatenates the encoder activations of the same level and upsamples with
  nearest-neighbour ``x2`` plus a 3x3 convolution.
* Time-conditioned residual blocks as in DDPM (Ho et al., arXiv:2006.11239) and ADM (Dhariwal &
  Nichol, "Diffusion Models Beat GANs", arXiv:2105.05233): GroupNorm -> SiLU -> conv3x3, then
  GroupNorm modulated by a scale and shift from the embedding (``h * (1 + scale) + shift``,
  FiLM-style) -> SiLU -> conv3x3, plus a 1x1 convolution on the skip path when the width
  changes. The modulation projections are zero-initialised (every block starts unmodulated),
  and so is the output convolution: the untrained network returns exactly 0.
* Noise-level embedding (:class:`SinusoidalEmbedding`): sinusoidal features of
  ``1000 * noise_level`` at ``time_dim / 2`` frequencies spaced geometrically from 1 to 1e-4
  (Vaswani et al., arXiv:1706.03762; DDPM's integer-timestep convention). In units of the raw
  ``noise_level`` the angular frequencies thus cover 1000 down to 0.1, so ``t`` in ``[0, 1]``
  resolves to ~1e-3 and ``log(sigma) / 4`` in ``[-5, 5]`` stays unambiguous (the slowest
  feature turns by only 1 rad over that range). An MLP maps the features to ``time_dim``; a
  linear projection of ``cond`` is added, giving the one embedding ``emb`` every block uses.

``torch.export`` / ONNX export keeps the batch size symbolic: attention uses
:func:`torch.nn.functional.scaled_dot_product_attention` and no size is read from the batch
dimension (it only appears as ``-1`` in reshapes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.models.nn.backbones import _groups, _pad_center, crop_center

__all__ = ["AttentionBlock", "ConditionalUNet", "SinusoidalEmbedding", "TimeResBlock"]

NOISE_LEVEL_SCALE = 1000.0
"""``noise_level`` is multiplied by this before the sinusoidal features (see module doc)."""

MAX_PERIOD = 10000.0
"""Ratio of the fastest to the slowest sinusoidal frequency."""


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal features ``[sin(s * f_k), cos(s * f_k)]`` of ``s = 1000 * noise_level``.

    ``f_k = MAX_PERIOD ** (-k / half)`` for ``k = 0 .. half - 1`` (``half = dim / 2``), i.e.
    angular frequencies 1000 .. ~0.1 per unit of ``noise_level``. Input ``(B,)`` float (any
    real number, e.g. ``t`` in ``[0, 1]`` or ``log(sigma) / 4``) -> ``(B, dim)``.
    """

    freqs: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"SinusoidalEmbedding: dim must be even and >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs * NOISE_LEVEL_SCALE, persistent=False)

    def forward(self, noise_level: Tensor) -> Tensor:
        """``noise_level (B,)`` -> ``(B, dim)``."""
        args = noise_level.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeResBlock(nn.Module):
    """Residual block with scale-shift modulation from an embedding (DDPM / ADM style).

    ``GroupNorm -> SiLU -> conv3x3 -> GroupNorm -> h * (1 + scale) + shift -> SiLU -> conv3x3``
    plus the input (through a 1x1 convolution when ``c_in != c_out``). ``scale, shift`` are a
    zero-initialised linear projection of ``SiLU(emb)``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.modulation = nn.Linear(emb_dim, 2 * c_out)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x (B, c_in, h, w)``, ``emb (B, emb_dim)`` -> ``(B, c_out, h, w)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.modulation(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all pixels, with GroupNorm and a residual connection.

    Uses :func:`torch.nn.functional.scaled_dot_product_attention` (exports to ONNX with a
    symbolic batch); the batch dimension only ever appears as ``-1`` in reshapes.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8) -> None:
        super().__init__()
        if heads < 1 or channels % heads:
            raise ValueError(f"AttentionBlock: channels {channels} must be a multiple of "
                             f"heads {heads}")
        self.heads = int(heads)
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> ``(B, C, h, w)``."""
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        d = c // self.heads
        qkv = self.qkv(self.norm(x)).reshape(-1, 3, self.heads, d, h * w)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).unbind(0)  # each (B, heads, h*w, d)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.permute(0, 1, 3, 2).reshape(-1, c, h, w)
        return x + self.proj(out)


class ConditionalUNet(nn.Module):
    """Conditional U-Net ``(x, noise_level, cond) -> (B, out_channels, H, W)``.

    Args:
        shape: image shape ``(H, W)`` (each ``>= 1``; any size, padded internally).
        cond_dim: width of the already-embedded condition vector (0: unconditional; ``cond``
            is then ignored).
        channels: widths per resolution level, full resolution first; the image is halved
            ``len(channels) - 1`` times.
        groups: GroupNorm groups (reduced to a divisor of each width).
        attention: multi-head self-attention at the lowest resolution.
        heads: attention heads (must divide ``channels[-1]``).
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        time_dim: width of the noise-level embedding and of the joint embedding ``emb``
            (even).
    """

    def __init__(self, shape: tuple[int, int], cond_dim: int,
                 channels: Sequence[int] = (32, 64, 96), groups: int = 8,
                 attention: bool = True, heads: int = 4, in_channels: int = 1,
                 out_channels: int = 1, time_dim: int = 128) -> None:
        super().__init__()
        widths = [int(c) for c in channels]
        if not widths or min(widths) < 1:
            raise ValueError(f"ConditionalUNet: channels must be positive, got {channels}")
        self.shape = (int(shape[0]), int(shape[1]))
        if min(self.shape) < 1:
            raise ValueError(f"ConditionalUNet: shape must be positive, got {shape}")
        self.cond_dim = int(cond_dim)
        mult = 2 ** (len(widths) - 1)
        self.padded = (math.ceil(self.shape[0] / mult) * mult,
                       math.ceil(self.shape[1] / mult) * mult)

        self.time_embed = nn.Sequential(SinusoidalEmbedding(time_dim),
                                        nn.Linear(time_dim, time_dim), nn.SiLU(),
                                        nn.Linear(time_dim, time_dim))
        self.cond_proj = nn.Linear(self.cond_dim, time_dim) if self.cond_dim > 0 else None

        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = widths[0]
        for i, c in enumerate(widths):
            self.down_blocks.append(TimeResBlock(prev, c, time_dim, groups))
            if i < len(widths) - 1:
                self.downs.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            prev = c

        bottom = widths[-1]
        self.mid1 = TimeResBlock(bottom, bottom, time_dim, groups)
        self.attn = AttentionBlock(bottom, heads, groups) if attention else None
        self.mid2 = TimeResBlock(bottom, bottom, time_dim, groups)

        # decoder, coarsest level first: block i takes [h, skip of level i] -> widths[i]
        self.up_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        prev = bottom
        for i in reversed(range(len(widths))):
            self.up_blocks.append(TimeResBlock(prev + widths[i], widths[i], time_dim, groups))
            if i > 0:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(widths[i], widths[i - 1], 3, padding=1)))
                prev = widths[i - 1]

        self.out_norm = nn.GroupNorm(_groups(widths[0], groups), widths[0])
        self.out_conv = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        assert self.out_conv.bias is not None  # Conv2d has a bias by default
        nn.init.zeros_(self.out_conv.bias)

    def embedding(self, noise_level: Tensor, cond: Tensor | None) -> Tensor:
        """Joint embedding ``emb = MLP(sinusoid(noise_level)) + Linear(cond)``, ``(B, time_dim)``.

        A 0-d ``noise_level`` gives a ``(1, time_dim)`` embedding that broadcasts over the batch.
        """
        emb = self.time_embed(noise_level)
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError("ConditionalUNet built with cond_dim > 0 needs cond (B, cond_dim)")
            emb = emb + self.cond_proj(cond)
        return emb

    def forward(self, x: Tensor, noise_level: Tensor, cond: Tensor) -> Tensor:
        """Predict an image-shaped output.

        Args:
            x: (noisy) images ``(B, in_channels, H, W)``, in whatever units the model's data
                transform uses (e.g. standardised ``log1p(photons)``).
            noise_level: ``(B,)`` float, one real number per row that identifies the noise
                level, e.g. flow-matching time ``t`` in ``[0, 1]`` or ``log(sigma) / 4``.
            cond: ``(B, cond_dim)`` already-embedded condition vector.

        Returns:
            ``(B, out_channels, H, W)``; exactly 0 for an untrained network.
        """
        emb = self.embedding(noise_level, cond)
        h = self.stem(_pad_center(x, self.padded))
        skips: list[Tensor] = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        h = self.mid1(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, emb)
        for i, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.ups):
                h = self.ups[i](h)
        h = self.out_conv(F.silu(self.out_norm(h)))
        return crop_center(h, self.shape)
