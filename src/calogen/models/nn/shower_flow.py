"""The Shower Flow of CaloClouds II (Buhmann et al., arXiv:2309.05704, Sec. 3): a conditional
normalizing flow of a point cloud's summary features given the incident energy.

Features of a cloud in a :class:`~calogen.geometry.points.PointCloudVolume` with ``L`` layers
(``D = 2 L + 4``), each transformed to the real line and standardised:

* ``log(1 + N)``: total number of points, dequantised (``N + u``, ``u ~ U(0, 1)``) in training;
  sampled ``N = floor(exp(y) - 1) >= 0``;
* ``log(1 + E)``: visible energy (sum of point energies), MeV;
* ``log(f_l + alpha)`` for the fraction of points in layer ``l`` (counts dequantised per layer:
  ``f_l = (n_l + u_l) / sum_m (n_m + u_m)``), then the same for the fraction of energy;
  sampled fractions are ``max(exp(y) - alpha, 0)`` renormalised to sum 1 (all on the largest
  when every one is 0), so they are >= 0 and sum to 1;
* centre of gravity (energy-weighted mean) in x and y relative to the volume's centre, in
  units of its half-width.

A point's layer is :meth:`PointCloudVolume.layer_of` of its z, points before the first layer
counted in the first and beyond the last in the last. The standardisation (mean, std per
feature) is fitted once, on the first training batch, and kept as buffers. The flow is
:class:`~calogen.models.nn.flows.ConditionalCouplingFlow` (affine couplings) on the
standardised conditions; the paper stacks 10 blocks of 7 coupling layers (``layers=70``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume
from calogen.models.nn.flows import ConditionalCouplingFlow

__all__ = ["CloudSummary", "FlowSample", "ShowerFlow", "summarise_clouds"]

MAX_LOG_COUNT = math.log(1e7)
"""Upper clamp of a sampled ``log(1 + N)`` and ``log(1 + E)`` (guards ``exp`` overflow)."""


@dataclass
class CloudSummary:
    """Per-shower sums of padded clouds: points per layer ``(B, L)`` (float), energy per layer
    ``(B, L)`` MeV and the energy-weighted centre of gravity ``(B, 2)`` in mm (0 for a shower
    without energy)."""

    layer_counts: Tensor
    layer_energy: Tensor
    cog: Tensor


@dataclass
class FlowSample:
    """Features drawn from the Shower Flow, in physical units: ``n_points (B,)`` int64,
    ``energy (B,)`` MeV, ``point_fractions``/``energy_fractions`` ``(B, L)`` (>= 0, rows
    summing to 1), ``cog (B, 2)`` mm."""

    n_points: Tensor
    energy: Tensor
    point_fractions: Tensor
    energy_fractions: Tensor
    cog: Tensor

    @property
    def layer_energy(self) -> Tensor:
        """Energy per layer ``(B, L)``, MeV."""
        return self.energy[:, None] * self.energy_fractions


def layer_index(z: Tensor, volume: PointCloudVolume) -> Tensor:
    """Layer of each z (mm), clipped into ``[0, L - 1]`` (int64, ``z``'s shape)."""
    inner = torch.as_tensor(volume.layer_edges_mm[1:-1], dtype=z.dtype, device=z.device)
    return torch.bucketize(z.contiguous(), inner, right=True)


def summarise_clouds(x: Tensor, mask: Tensor, volume: PointCloudVolume) -> CloudSummary:
    """:class:`CloudSummary` of padded clouds ``x (B, P, 4)`` (mm, MeV) with ``mask (B, P)``."""
    b, n_layers = x.shape[0], volume.n_layers
    m = mask.to(x.dtype)
    layer = layer_index(x[..., 2], volume)
    flat = (torch.arange(b, device=x.device)[:, None] * n_layers + layer).reshape(-1)
    counts = x.new_zeros(b * n_layers).index_add_(0, flat, m.reshape(-1))
    e = x[..., 3] * m
    energy = x.new_zeros(b * n_layers).index_add_(0, flat, e.reshape(-1))
    total = e.sum(1)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    cog = (x[..., :2] * e[..., None]).sum(1) / safe[:, None]
    cog = torch.where((total > 0)[:, None], cog, torch.zeros_like(cog))
    return CloudSummary(counts.view(b, n_layers), energy.view(b, n_layers), cog)


class ShowerFlow(nn.Module):
    """Conditional flow over the ``2 L + 4`` cloud features (see the module docstring).

    Args:
        volume: the point-cloud volume (its layers and transverse extent).
        n_conditions: width of the standardised condition vector.
        layers, hidden: coupling layers and their hidden width.
        alpha: offset of the log of the fractions.
    """

    mean: Tensor
    std: Tensor
    centre: Tensor
    half_width: Tensor

    def __init__(self, volume: PointCloudVolume, n_conditions: int, layers: int = 12,
                 hidden: int = 128, alpha: float = 1e-4) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"ShowerFlow: alpha must be > 0, got {alpha!r}")
        self.volume = volume
        self.n_layers = volume.n_layers
        self.alpha = float(alpha)
        self.dim = 2 * self.n_layers + 4
        self.flow = ConditionalCouplingFlow(self.dim, n_conditions, layers, hidden)
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("std", torch.ones(self.dim))
        centre = [(volume.x_range_mm[0] + volume.x_range_mm[1]) / 2,
                  (volume.y_range_mm[0] + volume.y_range_mm[1]) / 2]
        half = [(volume.x_range_mm[1] - volume.x_range_mm[0]) / 2,
                (volume.y_range_mm[1] - volume.y_range_mm[0]) / 2]
        self.register_buffer("centre", torch.tensor(centre), persistent=False)
        self.register_buffer("half_width", torch.tensor(half), persistent=False)

    # -- features ---------------------------------------------------------------------------

    def raw_features(self, summary: CloudSummary, generator: torch.Generator | None = None,
                     dequantise: bool = True) -> Tensor:
        """Unstandardised features ``(B, D)`` of clouds; integer counts get uniform noise
        when ``dequantise``."""
        counts = summary.layer_counts
        n = counts.sum(1)
        if dequantise:
            u = torch.rand((counts.shape[0], self.n_layers + 1), generator=generator,
                           device=counts.device, dtype=counts.dtype)
            n = n + u[:, 0]
            counts = counts + u[:, 1:]
        c_total = counts.sum(1, keepdim=True)
        pf = counts / torch.where(c_total > 0, c_total, torch.ones_like(c_total))
        e_l = summary.layer_energy.clamp(min=0)
        e = e_l.sum(1, keepdim=True)
        ef = e_l / torch.where(e > 0, e, torch.ones_like(e))
        cog = (summary.cog - self.centre) / self.half_width
        return torch.cat([torch.log1p(n)[:, None], torch.log1p(e), torch.log(pf + self.alpha),
                          torch.log(ef + self.alpha), cog], 1)

    @torch.no_grad()
    def fit_standardisation(self, raw: Tensor) -> None:
        """Set the per-feature mean and std from raw features ``(B, D)`` (std 1 where a
        feature is constant)."""
        if raw.shape[0] == 0:
            return
        mean = raw.mean(0)
        std = raw.std(0, unbiased=False) if raw.shape[0] > 1 else torch.ones_like(mean)
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-3, std, torch.ones_like(std)))

    def standardise(self, raw: Tensor) -> Tensor:
        return (raw - self.mean) / self.std

    def log_prob(self, summary: CloudSummary, cond: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        """``log p`` of the standardised, dequantised features ``(B,)`` (nats)."""
        return self.flow.log_prob(self.standardise(self.raw_features(summary, generator)), cond)

    def standardised_log_count(self, n: Tensor) -> Tensor:
        """``(log(1 + N) - mean) / std`` of the count feature (the PointWise Net's context)."""
        return (torch.log1p(n.to(self.mean.dtype)) - self.mean[0]) / self.std[0]

    # -- sampling ---------------------------------------------------------------------------

    def decode(self, features: Tensor) -> FlowSample:
        """Physical features from standardised ones ``(B, D)``."""
        y = features * self.std + self.mean
        n_layers = self.n_layers
        n = torch.floor(torch.expm1(y[:, 0].clamp(max=MAX_LOG_COUNT))).clamp(min=0)
        e = torch.expm1(y[:, 1].clamp(max=MAX_LOG_COUNT)).clamp(min=0)
        pf = self._fractions(y[:, 2:2 + n_layers])
        ef = self._fractions(y[:, 2 + n_layers:2 + 2 * n_layers])
        cog = y[:, -2:] * self.half_width + self.centre
        return FlowSample(n.to(torch.int64), e, pf, ef, cog)

    def _fractions(self, y: Tensor) -> Tensor:
        f = (torch.exp(y.clamp(max=1.0)) - self.alpha).clamp(min=0)
        total = f.sum(1, keepdim=True)
        top = nn.functional.one_hot(y.argmax(1), y.shape[1]).to(f.dtype)
        return torch.where(total > 0, f / torch.where(total > 0, total, torch.ones_like(total)),
                           top)

    def sample(self, cond: Tensor, generator: torch.Generator | None = None) -> FlowSample:
        """Features of ``len(cond)`` showers for standardised conditions ``cond (B, k)``."""
        z = torch.randn((cond.shape[0], self.dim), generator=generator, device=cond.device,
                        dtype=cond.dtype)
        return self.decode(self.flow(z, cond))
