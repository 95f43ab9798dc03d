"""Preprocessing of layered voxel showers for flows and diffusion, fitted on the training split
and saved with the model (:meth:`VoxelPreprocessing.to_dict`).

Following CaloFlow (Krause & Shih, arXiv:2106.05285, Sec. II B) and iCaloFlow (Buckley, Krause,
Pang, Shih, arXiv:2305.11934):

* **training noise**: every voxel gets ``U[0, noise_mev)`` added before the transforms below
  (smooths the point mass at zero); after sampling, every voxel below
  ``max(threshold_mev, noise_mev)`` is set to 0, which removes the noise and applies the
  detector threshold in one step.
* **layer energies** ``E_1 … E_L`` (MeV) become the *energy fractions*

      u_0 = E_tot / (s E_inc),     u_k = E_k / (E_k + … + E_L)   (k = 1 … L - 1),

  each in ``[0, 1]`` (``s`` is fitted so that ``u_0 < 1`` on the training set), an exact
  bijection with ``(E_1 … E_L)`` given ``E_inc``.
* **voxels** become their share of the layer energy, ``f_i = x_i / E_layer(i)`` (0 in an empty
  layer), so each layer's shares sum to 1.
* both go through the logit with margin ``alpha``
  (:class:`~calogen.models.nn.flow_preprocessing.LogitTransform`; CaloFlow: 1e-6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.models.nn.flow_preprocessing import LogitTransform

__all__ = ["VoxelPreprocessing"]

_TINY = 1e-12


@dataclass(frozen=True)
class VoxelPreprocessing:
    """Fitted voxel preprocessing (see the module docstring). ``layer_sizes`` are the voxels per
    layer in voxel order; energies in MeV."""

    layer_sizes: tuple[int, ...]
    u0_scale: float = 1.0
    alpha: float = 1e-6
    noise_mev: float = 0.0
    threshold_mev: float = 0.0

    def __post_init__(self) -> None:
        if not self.layer_sizes or min(self.layer_sizes) < 1:
            raise ValueError(f"VoxelPreprocessing: layer_sizes must be positive, got "
                             f"{self.layer_sizes}")
        if not self.u0_scale > 0 or self.noise_mev < 0 or self.threshold_mev < 0:
            raise ValueError("VoxelPreprocessing: u0_scale must be > 0, noise_mev and "
                             "threshold_mev >= 0")
        LogitTransform(self.alpha)  # validates alpha

    # -- fitting and persistence -------------------------------------------------------------
    @classmethod
    def fit(cls, showers: Tensor, e_inc_mev: Tensor, geometry: LayeredVoxelGeometry | Sequence[int],
            *, alpha: float = 1e-6, noise_mev: float = 1e-3, threshold_mev: float | None = None,
            margin: float = 1.05) -> VoxelPreprocessing:
        """Fit on training showers ``(N, n_voxels)`` (MeV) and incident energies ``(N,)`` (MeV).

        ``threshold_mev=None`` takes the data's own threshold: the smallest positive voxel
        energy of the training set (15.15 keV in CaloChallenge datasets 2 and 3). ``u0_scale``
        is ``margin`` times the largest ``E_tot / E_inc`` (at least 1e-6)."""
        sizes = (tuple(s.stop - s.start for s in geometry.layer_slices())
                 if isinstance(geometry, LayeredVoxelGeometry) else tuple(int(v) for v in geometry))
        x = torch.as_tensor(showers).double()
        e = torch.as_tensor(e_inc_mev).double().reshape(-1)
        if x.ndim != 2 or x.shape[1] != sum(sizes) or len(e) != len(x) or len(x) == 0:
            raise ValueError(f"VoxelPreprocessing.fit: expected showers (N, {sum(sizes)}) and "
                             f"e_inc (N,), got {tuple(x.shape)} and {tuple(e.shape)}")
        if bool((e <= 0).any()) or bool((x < 0).any()):
            raise ValueError("VoxelPreprocessing.fit: energies must be >= 0 (E_inc > 0)")
        ratio = float((x.sum(1) / e).max())
        positive = x[x > 0]
        if threshold_mev is None:
            threshold_mev = float(positive.min()) if positive.numel() else 0.0
        return cls(sizes, max(margin * ratio, 1e-6), alpha, float(noise_mev),
                   float(threshold_mev))

    def to_dict(self) -> dict[str, Any]:
        return {"layer_sizes": list(self.layer_sizes), "u0_scale": self.u0_scale,
                "alpha": self.alpha, "noise_mev": self.noise_mev,
                "threshold_mev": self.threshold_mev}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoxelPreprocessing:
        try:
            return cls(tuple(int(v) for v in d["layer_sizes"]), float(d["u0_scale"]),
                       float(d["alpha"]), float(d["noise_mev"]), float(d["threshold_mev"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"voxel preprocessing: malformed entry ({exc})") from None

    # -- pieces ------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def n_voxels(self) -> int:
        return sum(self.layer_sizes)

    @property
    def logit(self) -> LogitTransform:
        return LogitTransform(self.alpha)

    def _layer_index(self, device: torch.device) -> Tensor:
        return torch.repeat_interleave(torch.arange(self.n_layers, device=device),
                                       torch.tensor(self.layer_sizes, device=device))

    def add_noise(self, showers: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Training noise: ``x + U[0, noise_mev)`` per voxel."""
        if self.noise_mev == 0:
            return showers
        u = torch.rand(showers.shape, generator=generator, device=showers.device,
                       dtype=showers.dtype)
        return showers + self.noise_mev * u

    def layer_energies(self, showers: Tensor) -> Tensor:
        """``(N, n_layers)`` layer sums of ``(N, n_voxels)`` showers."""
        out = showers.new_zeros((showers.shape[0], self.n_layers))
        return out.index_add_(1, self._layer_index(showers.device), showers)

    def energy_fractions(self, layer_energies: Tensor, e_inc_mev: Tensor) -> Tensor:
        """CaloFlow's ``u`` ``(N, n_layers)`` in ``[0, 1]`` from layer energies and E_inc."""
        e = layer_energies.clamp(min=0)
        tail = e.flip(1).cumsum(1).flip(1)  # E_k + ... + E_L
        u0 = tail[:, :1] / (self.u0_scale * e_inc_mev.reshape(-1, 1))
        head, rest = e[:, :-1], tail[:, :-1]
        uk = torch.where(rest > _TINY, head / rest.clamp(min=_TINY), torch.zeros_like(head))
        return torch.cat([u0, uk], dim=1).clamp(0, 1)

    def layer_energies_from_fractions(self, u: Tensor, e_inc_mev: Tensor) -> Tensor:
        """Inverse of :meth:`energy_fractions` (``u`` is clamped to ``[0, 1]``)."""
        u = u.clamp(0, 1)
        remaining = u[:, 0] * self.u0_scale * e_inc_mev.reshape(-1)
        out = []
        for k in range(1, self.n_layers):
            take = remaining * u[:, k]
            out.append(take)
            remaining = remaining - take
        out.append(remaining)
        return torch.stack(out, dim=1)

    def shares(self, showers: Tensor, layer_energies: Tensor | None = None) -> Tensor:
        """Each voxel's share of its layer's energy, ``(N, n_voxels)``; 0 in empty layers."""
        e = self.layer_energies(showers) if layer_energies is None else layer_energies
        per_voxel = e[:, self._layer_index(showers.device)]
        return torch.where(per_voxel > _TINY, showers / per_voxel.clamp(min=_TINY),
                           torch.zeros_like(showers))

    def showers_from(self, shares: Tensor, layer_energies: Tensor) -> Tensor:
        """Voxel energies from shares (clamped at 0 and renormalised per layer) and layer
        energies, then :meth:`postprocess`."""
        f = shares.clamp(min=0)
        index = self._layer_index(f.device)
        total = f.new_zeros((f.shape[0], self.n_layers)).index_add_(1, index, f)
        f = f / total.clamp(min=_TINY)[:, index]
        return self.postprocess(f * layer_energies.clamp(min=0)[:, index])

    def postprocess(self, showers: Tensor) -> Tensor:
        """After sampling: voxels below ``max(threshold_mev, noise_mev)`` (and negatives) -> 0."""
        cut = max(self.threshold_mev, self.noise_mev)
        return torch.where(showers >= cut, showers, torch.zeros_like(showers)) if cut > 0 \
            else showers.clamp(min=0)

    # -- the whole chain ---------------------------------------------------------------------
    def forward(self, showers: Tensor, e_inc_mev: Tensor,
                generator: torch.Generator | None = None, *, noise: bool = True
                ) -> tuple[Tensor, Tensor]:
        """Training input: ``(logit u, logit shares)`` of noisy showers, ``(N, n_layers)`` and
        ``(N, n_voxels)``."""
        x = self.add_noise(showers, generator) if noise else showers
        e = self.layer_energies(x)
        return (self.logit.forward(self.energy_fractions(e, e_inc_mev)),
                self.logit.forward(self.shares(x, e).clamp(0, 1)))

    def inverse(self, logit_u: Tensor, logit_shares: Tensor, e_inc_mev: Tensor) -> Tensor:
        """Showers ``(N, n_voxels)`` MeV from network outputs (thresholded)."""
        e = self.layer_energies_from_fractions(self.logit.inverse(logit_u), e_inc_mev)
        return self.showers_from(self.logit.inverse(logit_shares), e)
