"""Losses shared by the families: reconstruction losses of the autoencoders, the MMD.

Both compare a decoded image ``x_hat`` with the real image ``x``, both in network space
(``log1p`` of photon counts, ``(B, 1, H, W)``), and return one value per shower ``(B,)``:

* ``"mse"``: ``sum_pixels (x_hat - x)^2``, a unit-variance Gaussian in ``log1p`` space (the ZDC
  VAE/AE papers, Dubinski et al., arXiv:2306.13606). Its optimum is the conditional mean of
  ``log1p(counts)``, which sits *below* ``log1p`` of the mean count wherever the response
  fluctuates (Jensen's inequality): decoded photon sums come out low, the more so the larger the
  shower-to-shower spread.
* ``"poisson"``: the Poisson negative log-likelihood of the observed counts ``k = expm1(x)``
  given the expected counts ``r = expm1(x_hat)``, ``sum_pixels r - k log(r + eps) +
  log Gamma(k + 1)``. The photon-counting readout *is* Poisson given the light reaching each
  fibre, so this is the model's likelihood when sampling with ``readout="poisson"``; its optimum
  is the conditional mean of the counts, unbiased in photon space.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

__all__ = ["RECON_LOSSES", "mmd2", "reconstruction_loss"]

RECON_LOSSES: tuple[str, ...] = ("mse", "poisson")
"""Names accepted by :func:`reconstruction_loss`."""

_RATE_EPS = 1e-3
"""Floor of the expected count (photons) inside the logarithm of the Poisson likelihood."""


def reconstruction_loss(x_hat: Tensor, x: Tensor, kind: str) -> Tensor:
    """Per-shower reconstruction loss ``(B,)`` of ``kind`` (see the module docstring)."""
    if kind == "mse":
        return (x_hat - x).pow(2).flatten(1).sum(1)
    if kind == "poisson":
        rate = torch.expm1(x_hat.clamp(min=0.0, max=20.0))
        counts = torch.expm1(x).round()
        nll = rate - counts * torch.log(rate + _RATE_EPS) + torch.lgamma(counts + 1.0)
        return nll.flatten(1).sum(1)
    raise ValueError(f"reconstruction loss must be one of {RECON_LOSSES}, got {kind!r}")


_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Gaussian kernel widths of the MMD, in units of sqrt(dimension) of standardised vectors."""


def mmd2(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] = _BANDWIDTHS) -> Tensor:
    """Biased (V-statistic) squared MMD between samples ``a (N, d)`` and ``b (M, d)`` with a
    sum of Gaussian kernels ``exp(-|u - v|^2 / (2 s^2 d))`` over widths ``s``."""
    d = a.shape[1]
    xy = torch.cat([a, b])
    dist = torch.cdist(xy, xy).pow(2)
    k = cast(Tensor, sum(torch.exp(-dist / (2 * s * s * d)) for s in bandwidths))
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
