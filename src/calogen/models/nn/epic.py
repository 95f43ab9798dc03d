"""Equivariant point-cloud (EPiC) layers, generator and discriminator (Buhmann, Kasieczka &
Thaler, "EPiC-GAN: Equivariant Point Cloud Generation for Particle Jets", arXiv:2301.08128).

An EPiC layer keeps a *global attribute vector* per cloud beside the per-point features. It
first updates the global vector from the masked mean and (scaled) sum of the point features and
the previous global vector, then updates each point from its own features and the new global
vector; both updates are two-layer residual MLPs with leaky ReLU. Points interact only through
the pooled global vector, so the layer is permutation equivariant in the points, and it costs
``O(points)``, not ``O(points^2)`` as attention does.

Clouds are ragged: tensors are ``(B, P, d)`` padded to the largest cloud, with a ``(B, P)``
bool mask true for real points. Padded points never enter a pooled quantity and their outputs
are zero, so the padding changes nothing. A context vector per cloud (the standardised
conditions and the number of points) is appended to every global and local update.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["EPiCDiscriminator", "EPiCGenerator", "EPiCLayer", "masked_pool"]

LEAK = 0.01
"""Negative slope of the leaky ReLU (PyTorch's default)."""


def masked_pool(h: Tensor, mask: Tensor, sum_scale: float) -> Tensor:
    """Mean and ``sum_scale`` times the sum of the real points' features: ``(B, 2 d)`` from
    ``h (B, P, d)`` and ``mask (B, P)``; zeros for an empty cloud."""
    m = mask.unsqueeze(-1).to(h.dtype)
    total = (h * m).sum(dim=1)
    n = m.sum(dim=1).clamp(min=1.0)
    return torch.cat([total / n, total * sum_scale], dim=-1)


def _linear(n_in: int, n_out: int, normed: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return weight_norm(layer) if normed else layer


class EPiCLayer(nn.Module):
    """One EPiC layer: global update from pooled points, then a local update per point.

    Args:
        hidden: width of the point features.
        global_dim: width of the global attribute vector.
        context_dim: width of the per-cloud context appended to both updates (0: none).
        sum_scale: factor of the summed features in the pooling (keeps large clouds in range).
        normed: weight normalisation of the linear maps (as the paper).
    """

    def __init__(self, hidden: int, global_dim: int, context_dim: int = 0,
                 sum_scale: float = 0.01, normed: bool = True) -> None:
        super().__init__()
        self.sum_scale = float(sum_scale)
        self.global1 = _linear(2 * hidden + global_dim + context_dim, hidden, normed)
        self.global2 = _linear(hidden, global_dim, normed)
        self.local1 = _linear(hidden + global_dim + context_dim, hidden, normed)
        self.local2 = _linear(hidden, hidden, normed)

    def forward(self, h: Tensor, g: Tensor, mask: Tensor, context: Tensor
                ) -> tuple[Tensor, Tensor]:
        """``h (B, P, hidden)``, ``g (B, global_dim)``, ``mask (B, P)``, ``context (B, c)`` ->
        updated ``(h, g)``; padded points of ``h`` are zero on output."""
        pooled = masked_pool(h, mask, self.sum_scale)
        u = F.leaky_relu(self.global1(torch.cat([pooled, g, context], dim=-1)), LEAK)
        g = F.leaky_relu(self.global2(u) + g, LEAK)
        per_point = torch.cat([g, context], dim=-1).unsqueeze(1).expand(-1, h.shape[1], -1)
        v = F.leaky_relu(self.local1(torch.cat([h, per_point], dim=-1)), LEAK)
        h = F.leaky_relu(self.local2(v) + h, LEAK)
        return h * mask.unsqueeze(-1).to(h.dtype), g


class EPiCGenerator(nn.Module):
    """Per-point noise and a global noise vector -> point features, equivariantly.

    Args:
        point_noise_dim: width of the Gaussian noise of each point.
        global_dim: width of the global noise and attribute vector.
        context_dim: width of the per-cloud context (conditions, number of points).
        out_dim: features per generated point.
        hidden, layers, sum_scale, normed: the EPiC layers (:class:`EPiCLayer`).
    """

    def __init__(self, point_noise_dim: int, global_dim: int, context_dim: int, out_dim: int,
                 hidden: int = 64, layers: int = 3, sum_scale: float = 0.01,
                 normed: bool = True) -> None:
        super().__init__()
        self.point_noise_dim, self.global_dim = int(point_noise_dim), int(global_dim)
        self.local_in = _linear(point_noise_dim + context_dim, hidden, normed)
        self.global_in = _linear(global_dim + context_dim, global_dim, normed)
        self.layers = nn.ModuleList(EPiCLayer(hidden, global_dim, context_dim, sum_scale, normed)
                                    for _ in range(layers))
        self.out = _linear(hidden, out_dim, normed)

    def forward(self, point_noise: Tensor, global_noise: Tensor, mask: Tensor,
                context: Tensor) -> Tensor:
        """``(B, P, point_noise_dim)``, ``(B, global_dim)``, ``(B, P)`` bool, ``(B, c)`` ->
        ``(B, P, out_dim)`` (zero at padded points)."""
        per_point = context.unsqueeze(1).expand(-1, point_noise.shape[1], -1)
        h = F.leaky_relu(self.local_in(torch.cat([point_noise, per_point], dim=-1)), LEAK)
        h = h * mask.unsqueeze(-1).to(h.dtype)
        g = F.leaky_relu(self.global_in(torch.cat([global_noise, context], dim=-1)), LEAK)
        for layer in self.layers:
            h, g = layer(h, g, mask, context)
        return self.out(h) * mask.unsqueeze(-1).to(h.dtype)


class EPiCDiscriminator(nn.Module):
    """Point features of a cloud -> one score, invariant to the order of the points.

    Args:
        in_dim: features per point.
        context_dim: width of the per-cloud context (conditions, number of points).
        hidden, global_dim, layers, sum_scale, normed: the EPiC layers (:class:`EPiCLayer`).
    """

    def __init__(self, in_dim: int, context_dim: int, hidden: int = 64, global_dim: int = 10,
                 layers: int = 3, sum_scale: float = 0.01, normed: bool = True) -> None:
        super().__init__()
        self.sum_scale = float(sum_scale)
        self.local_in = _linear(in_dim + context_dim, hidden, normed)
        self.global_in = _linear(2 * hidden + context_dim, global_dim, normed)
        self.layers = nn.ModuleList(EPiCLayer(hidden, global_dim, context_dim, sum_scale, normed)
                                    for _ in range(layers))
        self.head1 = _linear(2 * hidden + global_dim + context_dim, hidden, normed)
        self.head2 = _linear(hidden, 1, normed)

    def forward(self, x: Tensor, mask: Tensor, context: Tensor) -> Tensor:
        """``x (B, P, in_dim)``, ``mask (B, P)`` bool, ``context (B, c)`` -> scores ``(B,)``.
        Values at padded points are ignored (even NaN)."""
        keep = mask.unsqueeze(-1)
        x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        per_point = context.unsqueeze(1).expand(-1, x.shape[1], -1)
        h = F.leaky_relu(self.local_in(torch.cat([x, per_point], dim=-1)), LEAK) * keep
        g = F.leaky_relu(self.global_in(torch.cat([masked_pool(h, mask, self.sum_scale),
                                                    context], dim=-1)), LEAK)
        for layer in self.layers:
            h, g = layer(h, g, mask, context)
        pooled = masked_pool(h, mask, self.sum_scale)
        u = F.leaky_relu(self.head1(torch.cat([pooled, g, context], dim=-1)), LEAK)
        return self.head2(u).squeeze(-1)
