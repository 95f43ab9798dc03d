"""Preprocessing of integer photon counts for normalizing flows, invertible after sampling.

A flow models a continuous density, photon counts are integers: adding uniform noise
``u ~ U[0, 1)`` to each count (*dequantisation*; Uria et al., arXiv:1306.0186; Theis et al.,
arXiv:1511.01844) gives a continuous variable whose density ``p(n + u)`` integrates over the unit
cell to a lower bound of the discrete probability,
``log P(n) >= E_u[log p(n + u)]``; ``floor`` recovers the counts exactly.

Fractions in ``[0, 1]`` (e.g. a pixel's share of the image's photons, CaloFlow's normalised
layer energies; Krause & Shih, arXiv:2106.05285) are mapped to the real line by the logit
transform with a margin ``alpha`` that keeps 0 and 1 finite:

    x = logit(alpha + (1 - 2 alpha) f),     f = (sigmoid(x) - alpha) / (1 - 2 alpha),

whose log-Jacobian ``log(1 - 2 alpha) - log(p) - log(1 - p)`` with ``p = alpha + (1 - 2
alpha) f`` enters the likelihood of the original variable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LogitTransform", "dequantise", "quantise"]


def dequantise(counts: Tensor, generator: torch.Generator | None = None,
               width: float = 1.0) -> Tensor:
    """``counts + width * u`` with ``u ~ U[0, 1)`` per element, as float32 (exactly
    invertible by :func:`quantise` for counts below 2^24). ``ValueError`` for negative or
    non-integer counts (the input must be photon counts) or a width outside ``(0, 1]``.

    A width ``delta < 1`` keeps the cell's noise away from the next count: the density of
    ``v = n + delta u`` integrates to ``P(n)`` over ``[n, n + delta)``, so
    ``log P(n) >= E_u log p(n + delta u) + log delta`` per element."""
    if not 0.0 < width <= 1.0:
        raise ValueError(f"dequantise: width must be in (0, 1], got {width}")
    counts = torch.as_tensor(counts)
    if counts.is_floating_point():
        if not torch.equal(counts, counts.floor()):
            raise ValueError("dequantise: counts must be integers (photon counts)")
    if bool((counts < 0).any()):
        raise ValueError("dequantise: counts must be >= 0")
    noise = width * torch.rand(counts.shape, generator=generator, device=counts.device)
    n = counts.to(torch.float32)
    # in float32, n + u rounds up to n + 1 when u is within half a spacing of 1 (spacing 6e-5
    # at 1000 photons): keep every value strictly below n + 1 so that floor() is exact
    below_next = torch.nextafter(n + 1.0, n)
    return torch.minimum(n + noise, below_next)


def quantise(values: Tensor) -> Tensor:
    """Counts from dequantised values: ``floor``, clamped at 0, int64 (exact inverse of
    :func:`dequantise` on its output)."""
    return values.floor().clamp(min=0).to(torch.int64)


@dataclass(frozen=True)
class LogitTransform:
    """``f in [0, 1] -> x = logit(alpha + (1 - 2 alpha) f)`` and back (see the module
    docstring); ``alpha`` in ``(0, 0.5)`` (CaloFlow: 1e-6)."""

    alpha: float = 1e-6

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"LogitTransform: alpha must be in (0, 0.5), got {self.alpha}")

    def _p(self, f: Tensor) -> Tensor:
        return self.alpha + (1.0 - 2.0 * self.alpha) * f

    def forward(self, f: Tensor) -> Tensor:
        """Fractions -> real line. Values outside [0, 1] raise ``ValueError``."""
        if bool(((f < 0) | (f > 1)).any()):
            raise ValueError("LogitTransform: fractions must lie in [0, 1]")
        p = self._p(f)
        return torch.log(p) - torch.log1p(-p)

    def inverse(self, x: Tensor) -> Tensor:
        """Real line -> fractions, clamped to [0, 1] (sampled values beyond the margin)."""
        return ((torch.sigmoid(x) - self.alpha) / (1.0 - 2.0 * self.alpha)).clamp(0.0, 1.0)

    def log_abs_det_jacobian(self, f: Tensor) -> Tensor:
        """``log |dx/df|`` per element (add to the flow's log-density of ``x`` to get the
        log-density of ``f``)."""
        p = self._p(f)
        return math.log(1.0 - 2.0 * self.alpha) - torch.log(p) - torch.log1p(-p)
