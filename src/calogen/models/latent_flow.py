"""A small conditional normalizing flow for low-dimensional latent codes.

Affine coupling layers (Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803),
each conditioned on a condition vector as in conditional INNs (Ardizzone et al.,
arXiv:1907.02392): the code ``u`` is split by a fixed binary mask into ``(u_a, u_b)`` and

    u_b' = u_b * exp(s(u_a, c)) + t(u_a, c),      s = k * tanh(s_raw / k)

with ``k`` = :data:`SCALE_BOUND` keeping every layer's log-scale bounded (training stability).
Masks alternate between layers, so every coordinate is transformed. The base distribution is a
standard normal, so sampling is one pass ``code = f(z; c)`` from Gaussian noise ``z``: it fits the
ALICE O2 one-step signature (noise + conditions) and exports to ONNX (plain tensor algebra).
The log-density is exact: ``log p(u | c) = log N(f^{-1}(u; c)) + log |det d f^{-1} / d u|``.

Used as the latent prior of the AE + noise family (:mod:`calogen.models.ae_noise`); a
pixel-level flow family is separate work.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SCALE_BOUND", "ConditionalCouplingFlow"]

SCALE_BOUND = 3.0
"""Bound ``k`` of every coupling layer's log-scale (``|s| < k``)."""


class _Coupling(nn.Module):
    """One conditional affine coupling layer with a fixed mask (1 = passed through)."""

    def __init__(self, mask: Tensor, cond_dim: int, hidden: int) -> None:
        super().__init__()
        dim = len(mask)
        self.register_buffer("mask", mask.float())
        self.net = nn.Sequential(
            nn.Linear(dim + cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)  # start at the identity
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, u_a: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(torch.cat([u_a, cond], dim=1)).chunk(2, dim=1)
        free = 1.0 - self.mask
        s = SCALE_BOUND * torch.tanh(s / SCALE_BOUND) * free
        return s, t * free

    def forward(self, z: Tensor, cond: Tensor) -> Tensor:
        """Sampling direction (noise side -> code side)."""
        s, t = self._scale_shift(z * self.mask, cond)
        return z * torch.exp(s) + t

    def inverse(self, u: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """Density direction (code side -> noise side) and ``log |det|`` of it, ``(B,)``."""
        s, t = self._scale_shift(u * self.mask, cond)
        return (u - t) * torch.exp(-s), -s.sum(dim=1)


class ConditionalCouplingFlow(nn.Module):
    """Flow ``code = f(z; c)`` over ``dim`` features with ``layers`` coupling layers.

    Args:
        dim: number of features (>= 2).
        cond_dim: width of the condition vector.
        layers: coupling layers (alternating masks; even numbers transform each coordinate
            equally often).
        hidden: width of each layer's two hidden layers.
    """

    def __init__(self, dim: int, cond_dim: int, layers: int = 6, hidden: int = 128) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"coupling flow needs dim >= 2, got {dim}")
        half = torch.arange(dim) % 2 == 0
        self.dim = dim
        self.layers = nn.ModuleList(
            _Coupling(half if i % 2 == 0 else ~half, cond_dim, hidden) for i in range(layers))

    def forward(self, z: Tensor, cond: Tensor) -> Tensor:
        """Codes ``(B, dim)`` from standard-normal noise ``z (B, dim)`` and conditions."""
        for layer in self.layers:
            z = layer(z, cond)
        return z

    def log_prob(self, u: Tensor, cond: Tensor) -> Tensor:
        """Exact ``log p(u | c)`` per row, ``(B,)`` (nats)."""
        logdet = torch.zeros(len(u), device=u.device, dtype=u.dtype)
        for layer in reversed(self.layers):
            u, ld = layer.inverse(u, cond)
            logdet = logdet + ld
        base = -0.5 * (u.pow(2).sum(dim=1) + self.dim * math.log(2 * math.pi))
        return base + logdet
