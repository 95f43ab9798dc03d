"""Building blocks of the cell-level BIB-AE (family ``bib-ae``): the projection of padded point
clouds onto a cell grid in torch, its inverse (one point per cell), 3-d convolutional encoder,
decoder and critics over ``(B, 1, n_layers, n_y, n_x)`` cell tensors, and the WGAN-GP, KLD and
MMD terms of the loss (Buhmann et al., "Getting High", arXiv:2005.05334).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume

__all__ = ["CellCritic", "CellDecoder", "CellEncoder", "CellGrid", "LatentCritic",
           "gaussian_kld", "gradient_penalty", "mmd_to_normal"]

POOLED = (2, 4, 4)
"""Size ``(layers, y, x)`` every encoder and critic pools its features to before the linear
head, so that one network takes any grid (30 x 30 x 30 for ILD, 3 x 20 x 20 for the toy)."""


class CellGrid(nn.Module):
    """A :class:`PointCloudVolume`'s cell grid in torch: padded clouds -> cells and cells ->
    one point per cell. Edges are buffers (float64, not saved: they come from the volume)."""

    layer_edges: Tensor
    x_edges: Tensor
    y_edges: Tensor
    centres: Tensor

    def __init__(self, volume: PointCloudVolume) -> None:
        super().__init__()
        self.volume = volume
        self.shape: tuple[int, int, int] = volume.grid_shape
        layer = torch.as_tensor(volume.layer_edges_mm, dtype=torch.float64)
        # the volume's own cell edges, so that projecting here equals PointCloudVolume.project
        x_edges = torch.as_tensor(volume.cell_edges(0), dtype=torch.float64)
        y_edges = torch.as_tensor(volume.cell_edges(1), dtype=torch.float64)
        self.register_buffer("layer_edges", layer, persistent=False)
        self.register_buffer("x_edges", x_edges, persistent=False)
        self.register_buffer("y_edges", y_edges, persistent=False)
        # point of each cell: the middle of its part inside the volume, and the layer middle
        xlo, xhi = volume.x_range_mm
        ylo, yhi = volume.y_range_mm
        xc = (x_edges[:-1].clamp(min=xlo) + x_edges[1:].clamp(max=xhi)) / 2
        yc = (y_edges[:-1].clamp(min=ylo) + y_edges[1:].clamp(max=yhi)) / 2
        zc = (layer[:-1] + layer[1:]) / 2
        self.register_buffer("centres", torch.stack(torch.meshgrid(zc, yc, xc, indexing="ij"),
                                                    dim=-1), persistent=False)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def project(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Cell energies ``(B, n_layers, n_y, n_x)`` float32 (MeV) of padded clouds ``x``
        ``(B, P, 4)`` ``(x, y, z, E)`` (mm, MeV); ``mask`` ``(B, P)`` marks the real points
        (all when ``None``). Points outside the volume are dropped, as
        :meth:`PointCloudVolume.project` does (no threshold here)."""
        if x.ndim != 3 or x.shape[-1] != 4:
            raise ValueError(f"point clouds must have shape (B, P, 4), found {tuple(x.shape)}")
        b, p = x.shape[:2]
        n_layers, ny, nx = self.shape
        pts = x.reshape(-1, 4).to(torch.float64)
        keep = torch.ones(b * p, dtype=torch.bool, device=x.device) if mask is None \
            else mask.reshape(-1).to(torch.bool)
        layer = torch.searchsorted(self.layer_edges, pts[:, 2].contiguous(), right=True) - 1
        ix = torch.searchsorted(self.x_edges, pts[:, 0].contiguous(), right=True) - 1
        iy = torch.searchsorted(self.y_edges, pts[:, 1].contiguous(), right=True) - 1
        xlo, xhi = self.volume.x_range_mm
        ylo, yhi = self.volume.y_range_mm
        keep = (keep & (layer >= 0) & (layer < n_layers) & (ix >= 0) & (ix < nx) & (iy >= 0)
                & (iy < ny) & (pts[:, 0] >= xlo) & (pts[:, 0] < xhi) & (pts[:, 1] >= ylo)
                & (pts[:, 1] < yhi))
        shower = torch.arange(b, device=x.device).repeat_interleave(p)
        flat = ((shower * n_layers + layer) * ny + iy) * nx + ix
        sums = torch.zeros(b * self.n_cells, dtype=torch.float64, device=x.device)
        sums.index_add_(0, flat[keep], pts[keep, 3])
        return sums.reshape(b, n_layers, ny, nx).to(torch.float32)

    def to_points(self, cells: Tensor, threshold_mev: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
        """One point per cell of ``cells`` ``(N, n_layers, n_y, n_x)`` (MeV) at or above
        ``threshold_mev`` (and above 0): ``(P, 4)`` float32 ``(x, y, z, E)`` at the cell's
        middle (inside the volume) and layer middle, the showers one after the other, and
        ``(N,)`` int64 counts. Projecting them onto this grid gives ``cells`` back (cells
        below the threshold as 0)."""
        c = cells.detach().to(self.centres.device).reshape(len(cells), -1)
        hit = (c > 0) & (c >= threshold_mev)
        counts = hit.sum(dim=1).to(torch.int64)
        row, col = hit.nonzero(as_tuple=True)
        where = self.centres.reshape(-1, 3)[col]  # (z, y, x)
        points = torch.stack([where[:, 2], where[:, 1], where[:, 0],
                              c[row, col].to(torch.float64)], dim=1)
        return (points.to(torch.float32).cpu().numpy(), counts.cpu().numpy())


def _strides(shape: Sequence[int], levels: int) -> list[tuple[int, int, int]]:
    """Per-level strides: 2 along each axis of ``(layers, y, x)`` still >= 8 cells long, else 1."""
    out, size = [], list(shape)
    for _ in range(levels):
        stride = tuple(2 if s >= 8 else 1 for s in size)
        size = [(s + st - 1) // st for s, st in zip(size, stride, strict=True)]
        out.append((int(stride[0]), int(stride[1]), int(stride[2])))
    return out


class _ConvTrunk(nn.Module):
    """3-d convolutions (kernel 3, LeakyReLU 0.2, stride 2 where the grid allows), then adaptive
    average pooling to :data:`POOLED` and flattening: ``(B, C_in, L, Y, X) -> (B, features)``."""

    def __init__(self, in_channels: int, channels: Sequence[int], shape: Sequence[int],
                 norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_prev = in_channels
        for c, stride in zip(channels, _strides(shape, len(channels)), strict=True):
            layers.append(nn.Conv3d(c_prev, c, 3, stride=stride, padding=1))
            if norm:
                layers.append(nn.GroupNorm(1, c))
            layers.append(nn.LeakyReLU(0.2))
            c_prev = c
        layers.append(nn.AdaptiveAvgPool3d(POOLED))
        self.net = nn.Sequential(*layers)
        self.features = c_prev * math.prod(POOLED)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class CellEncoder(nn.Module):
    """``N_E``: ``log1p`` cells ``(B, 1, L, Y, X)`` and a condition vector ``(B, c)`` ->
    posterior mean and log-variance ``(B, latent)`` each."""

    def __init__(self, shape: Sequence[int], channels: Sequence[int], cond_dim: int,
                 latent: int, hidden: int) -> None:
        super().__init__()
        self.trunk = _ConvTrunk(1, channels, shape, norm=True)
        self.head = nn.Sequential(nn.Linear(self.trunk.features + cond_dim, hidden),
                                  nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * latent))

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(torch.cat([self.trunk(x), c], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class CellDecoder(nn.Module):
    """``D_E``: latent ``(B, latent)`` and condition vector ``(B, c)`` -> ``log1p`` cells
    ``(B, 1, L, Y, X)``, unbounded (a ReLU here dies on sparse showers: clamp at 0 when
    sampling). A linear map to a coarse grid, then per level an
    upsampling to the next grid size (trilinear) and a 3-d convolution plus a per-channel bias
    projected from the condition."""

    def __init__(self, shape: Sequence[int], channels: Sequence[int], cond_dim: int,
                 latent: int) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        strides = _strides(self.shape, len(channels))
        sizes = [self.shape]
        for st in strides:
            sizes.append(tuple((s + k - 1) // k for s, k in zip(sizes[-1], st, strict=True)))
        self.sizes = sizes[::-1]  # coarse -> full
        top = list(channels)[::-1]
        self.c0 = top[0]
        self.inp = nn.Linear(latent + cond_dim, self.c0 * math.prod(self.sizes[0]))
        self.convs = nn.ModuleList()
        self.cond = nn.ModuleList()
        c_prev = self.c0
        for c in [*top[1:], top[-1]]:
            self.convs.append(nn.Conv3d(c_prev, c, 3, padding=1))
            self.cond.append(nn.Linear(cond_dim, c))
            c_prev = c
        self.out = nn.Conv3d(c_prev, 1, 3, padding=1)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = F.leaky_relu(self.inp(torch.cat([z, c], dim=1)), 0.2)
        h = h.reshape(len(z), self.c0, *self.sizes[0])
        for size, conv, cond in zip(self.sizes[1:], self.convs, self.cond, strict=True):
            h = F.interpolate(h, size=size, mode="trilinear", align_corners=False)
            h = F.leaky_relu(conv(h) + cond(c)[:, :, None, None, None], 0.2)
        return self.out(h)


class CellCritic(nn.Module):
    """Wasserstein critic over cell tensors ``(B, C_in, L, Y, X)`` and a condition vector:
    ``(B,)`` scores (no normalisation layers, as the gradient penalty requires)."""

    def __init__(self, in_channels: int, shape: Sequence[int], channels: Sequence[int],
                 cond_dim: int, hidden: int) -> None:
        super().__init__()
        self.trunk = _ConvTrunk(in_channels, channels, shape, norm=False)
        self.head = nn.Sequential(nn.Linear(self.trunk.features + cond_dim, hidden),
                                  nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.head(torch.cat([self.trunk(x), c], dim=1))[:, 0]


class LatentCritic(nn.Module):
    """``C_L``: Wasserstein critic telling encoded latents from ``N(0, 1)`` samples, given the
    condition vector: ``(B, latent), (B, c) -> (B,)``."""

    def __init__(self, latent: int, cond_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent + cond_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        return self.net(torch.cat([z, c], dim=1))[:, 0]


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, c: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP term ``E[(||grad C(x_hat)|| - 1)^2]`` at random interpolates ``x_hat`` of
    ``real`` and ``fake`` (Gulrajani et al., arXiv:1704.00028)."""
    shape = (len(real),) + (1,) * (real.ndim - 1)
    t = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    mixed = (t * real.detach() + (1 - t) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, c).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def gaussian_kld(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` summed over latent dimensions, batch mean."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1).mean()


def mmd_to_normal(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Squared maximum mean discrepancy between the rows of ``z`` ``(B, d)`` and as many
    ``N(0, 1)`` samples, with an inverse multiquadric kernel ``C / (C + |a - b|^2)``,
    ``C = 2 d`` (as in Wasserstein autoencoders, Tolstikhin et al., arXiv:1711.01558);
    the unbiased estimate (diagonals left out), 0 for fewer than two rows."""
    n, d = z.shape
    if n < 2:
        return z.sum() * 0.0
    prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    scale = 2.0 * d

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return scale / (scale + torch.cdist(a, b).pow(2))

    off = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    k_zz = (kernel(z, z) * off).sum() / (n * (n - 1))
    k_pp = (kernel(prior, prior) * off).sum() / (n * (n - 1))
    return k_zz + k_pp - 2 * kernel(z, prior).mean()
