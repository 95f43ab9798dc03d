"""The PointWise Net of CaloClouds II (Buhmann et al., arXiv:2309.05704, Sec. 3): every point
of a cloud is denoised independently given a per-shower context, with EDM preconditioning
(Karras et al., arXiv:2206.00364).

Network space of a point ``(x, y, z, E)`` (mm, MeV) in a volume with ``L`` layers
(:class:`PointScaler`):

* x, y: relative to the volume's centre, in units of its half-width;
* z: passive material removed: ``2 (l + t) / L - 1`` with ``l`` the layer index and ``t`` in
  ``[0, 1)`` the position inside the layer, so the layers tile ``[-1, 1]``;
* E: ``(log(max(E, 1e-6 MeV)) - mu) / s``, with ``mu``, ``s`` the mean and std of the log
  energies of the first training batch (buffers). Generated energies ``exp(.)`` are > 0.

:class:`PointWiseNet` is a stack of concat-squash linear layers (Grathwohl et al., FFJORD,
arXiv:1810.01367; as in PointFlow and CaloClouds): ``h' = (W h + b) * sigmoid(G c + g) + H c``
with the context ``c = [Fourier features of c_noise, conditions, standardised log(1 + N)]``,
LeakyReLU between layers; widths ``4 -> 128 -> 256 -> 512 -> 256 -> 128 -> 4`` by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume
from calogen.models.nn.samplers import edm_preconditioning
from calogen.models.nn.shower_flow import layer_index

__all__ = ["MIN_ENERGY_MEV", "ConcatSquashLinear", "PointScaler", "PointWiseNet",
           "fourier_features", "per_row_noise"]

MIN_ENERGY_MEV = 1e-6
"""Energies are clamped to at least this before the log (MeV)."""

FOURIER_MAX_FREQUENCY = 64.0
"""Largest angular frequency of the noise-level Fourier features (smallest: 1)."""


def fourier_features(c_noise: Tensor, dim: int) -> Tensor:
    """``(P, dim)`` sines and cosines of ``c_noise (P,)`` at ``dim / 2`` angular frequencies
    spaced geometrically from 1 to :data:`FOURIER_MAX_FREQUENCY` (``dim`` even)."""
    if dim < 2 or dim % 2:
        raise ValueError(f"fourier_features: dim must be even and >= 2, got {dim}")
    freqs = torch.exp(torch.linspace(0.0, math.log(FOURIER_MAX_FREQUENCY), dim // 2,
                                     device=c_noise.device, dtype=c_noise.dtype))
    angle = c_noise[:, None] * freqs
    return torch.cat([torch.sin(angle), torch.cos(angle)], 1)


class ConcatSquashLinear(nn.Module):
    """``(W x + b) * sigmoid(G c + g) + H c`` (see the module docstring)."""

    def __init__(self, dim_in: int, dim_out: int, dim_ctx: int) -> None:
        super().__init__()
        self.layer = nn.Linear(dim_in, dim_out)
        self.gate = nn.Linear(dim_ctx, dim_out)
        self.hyper_bias = nn.Linear(dim_ctx, dim_out, bias=False)

    def forward(self, x: Tensor, ctx: Tensor, rows: Tensor | None = None) -> Tensor:
        """``x (P, dim_in)``; ``ctx (P, dim_ctx)`` per point, or with ``rows (P,)`` int64
        ``ctx (R, dim_ctx)`` per row (shower) that point ``i`` takes row ``rows[i]`` of: the
        gate and hyper-bias are then computed once per row, not once per point."""
        gate, bias = torch.sigmoid(self.gate(ctx)), self.hyper_bias(ctx)
        if rows is not None and ctx.shape[0] == 1:  # one shower: fold the gate into W and b
            w, b = self.layer.weight, self.layer.bias
            return nn.functional.linear(x, (w * gate[0][:, None]).to(x.dtype),
                                        (b * gate[0] + bias[0]).to(x.dtype))
        if rows is not None:
            gate, bias = gate[rows], bias[rows]
        return torch.addcmul(bias, self.layer(x), gate)


class PointWiseNet(nn.Module):
    """``F(x, c_noise, cond, n)``: points ``(P, 4)`` in network space -> ``(P, 4)``.

    Args:
        n_conditions: width of the standardised conditions.
        widths: hidden widths (the paper: 128, 256, 512, 256, 128).
        time_dim: size of the Fourier features of ``c_noise`` (even).
    """

    def __init__(self, n_conditions: int, widths: Sequence[int] = (128, 256, 512, 256, 128),
                 time_dim: int = 64) -> None:
        super().__init__()
        if time_dim < 2 or time_dim % 2:
            raise ValueError(f"PointWiseNet: time_dim must be even and >= 2, got {time_dim}")
        self.time_dim = int(time_dim)
        ctx = self.time_dim + n_conditions + 1
        dims = [4, *(int(w) for w in widths), 4]
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b, ctx)
                                    for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor, n_scaled: Tensor,
                rows: Tensor | None = None) -> Tensor:
        """``x (P, 4)``, ``c_noise (P,)``, per-point conditions ``cond (P, k)`` and
        standardised log point counts ``n_scaled (P,)``; with ``rows (P,)`` (the shower of
        each point) ``c_noise``, ``cond`` and ``n_scaled`` are per shower ``(R, ...)`` and the
        context layers run once per shower (sampling)."""
        ctx = torch.cat([fourier_features(c_noise, self.time_dim), cond, n_scaled[:, None]], 1)
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, ctx.to(h.dtype) if torch.is_autocast_enabled() else ctx, rows)
            if i < len(self.layers) - 1:
                h = nn.functional.leaky_relu(h)
        return h

    def denoise(self, x: Tensor, sigma: Tensor, cond: Tensor, n_scaled: Tensor,
                sigma_data: float, rows: Tensor | None = None) -> Tensor:
        """EDM denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)`` per point
        (``sigma (P,)``; Karras et al., Table 1). With ``rows`` (see :meth:`forward`) every
        point must share one noise level (as in sampling)."""
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sigma_data)
        if rows is not None:
            c_noise = per_row_noise(c_noise, len(cond))
        return c_skip[:, None] * x + c_out[:, None] * self(c_in[:, None] * x, c_noise, cond,
                                                         n_scaled, rows)


def per_row_noise(c_noise: Tensor, n_rows: int) -> Tensor:
    """The common ``c_noise`` of all points as ``(n_rows,)``; ``ValueError`` if the points
    have different noise levels (the per-shower context needs one level per call)."""
    if c_noise.numel() == 0:
        return c_noise.new_zeros(n_rows)
    first = c_noise[:1]
    if not bool((c_noise == first).all()):
        raise ValueError("a per-shower context needs one noise level for all points")
    return first.expand(n_rows)


class PointScaler(nn.Module):
    """Physical points <-> network space (see the module docstring); the log-energy mean and
    std are buffers fitted by :meth:`fit`."""

    log_e_mean: Tensor
    log_e_std: Tensor
    edges: Tensor
    middles: Tensor
    centre: Tensor
    half_width: Tensor

    def __init__(self, volume: PointCloudVolume) -> None:
        super().__init__()
        self.volume = volume
        self.n_layers = volume.n_layers
        edges = torch.tensor(volume.layer_edges_mm, dtype=torch.float64)
        self.register_buffer("edges", edges.float(), persistent=False)
        self.register_buffer("middles", ((edges[1:] + edges[:-1]) / 2).float(),
                             persistent=False)
        self.register_buffer("centre", torch.tensor(
            [(volume.x_range_mm[0] + volume.x_range_mm[1]) / 2,
             (volume.y_range_mm[0] + volume.y_range_mm[1]) / 2]), persistent=False)
        self.register_buffer("half_width", torch.tensor(
            [(volume.x_range_mm[1] - volume.x_range_mm[0]) / 2,
             (volume.y_range_mm[1] - volume.y_range_mm[0]) / 2]), persistent=False)
        self.register_buffer("log_e_mean", torch.zeros(()))
        self.register_buffer("log_e_std", torch.ones(()))

    @torch.no_grad()
    def fit(self, energies: Tensor) -> None:
        """Fit the log-energy standardisation on point energies ``(P,)`` MeV (kept as is
        for fewer than 2 points)."""
        if energies.numel() < 2:
            return
        log_e = torch.log(energies.clamp(min=MIN_ENERGY_MEV))
        std = log_e.std(unbiased=False)
        self.log_e_mean.copy_(log_e.mean())
        self.log_e_std.copy_(std if std > 1e-3 else torch.ones_like(std))

    def to_network(self, points: Tensor) -> Tensor:
        """``(P, 4)`` physical points -> network space."""
        xy = (points[:, :2] - self.centre) / self.half_width
        z = points[:, 2]
        layer = layer_index(z, self.volume)
        lo, hi = self.edges[layer], self.edges[layer + 1]
        t = ((z - lo) / (hi - lo)).clamp(0.0, 1.0)
        zn = 2 * (layer.to(z.dtype) + t) / self.n_layers - 1
        e = (torch.log(points[:, 3].clamp(min=MIN_ENERGY_MEV)) - self.log_e_mean) / self.log_e_std
        return torch.cat([xy, zn[:, None], e[:, None]], 1)

    def xy_energy(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Physical ``(x, y)`` ``(P, 2)`` mm and energies ``(P,)`` MeV (> 0) of network-space
        points; their z is placed by the caller (points are assigned to layers)."""
        xy = y[:, :2] * self.half_width + self.centre
        e = torch.exp((y[:, 3] * self.log_e_std + self.log_e_mean).clamp(max=30.0))
        return xy, e
