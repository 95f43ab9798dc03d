"""Fast, exact Poisson readout of expected photon counts.

Photon counts ``n ~ Poisson(rate)`` per fibre, made cheap for sparse images (on ZN ~94 % of the
1936 fibres are empty and most rates are << 1) without one random number per fibre:

* fibres with ``rate >= LOW_RATE`` are drawn with numpy's Poisson sampler;
* a fibre with ``rate < LOW_RATE`` is read by inversion of its CDF with a uniform ``u``
  (``n = 0`` iff ``u < exp(-rate)``). Write ``u`` as the event ``S = [u >= 1 - q]`` (Bernoulli
  ``q``) and, when ``S`` holds, ``u = 1 - q + q v`` with ``v`` uniform. Because
  ``LOW_RATE = -log(1 - q)``, ``exp(-rate) > 1 - q``: without ``S`` the count is 0. The fibres
  where ``S`` holds are found by geometric gaps between them (about ``q`` per fibre), and only
  they get ``v`` and the exact inversion in float64.

Both parts are exact draws from the Poisson law (the split only changes which random numbers
are used). The cost is a comparison and an index pass over the rates plus random numbers for
about ``q + P(rate >= LOW_RATE)`` of the fibres. Random numbers come from a numpy PCG64
generator seeded from one draw of the ``torch.Generator`` given (or of torch's default
generator), so a seed gives the same counts. CUDA tensors are drawn with ``torch.poisson``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["LOW_RATE", "SELECT_PROBABILITY", "poisson_counts"]

SELECT_PROBABILITY = 1.0 / 64.0
"""``q``: the probability that a low-rate fibre is looked at (a speed setting)."""

LOW_RATE = -math.log1p(-SELECT_PROBABILITY)
"""Rates below this (~0.0157) are read by the selection-and-inversion route."""


def poisson_counts(rate: Tensor, generator: torch.Generator | None = None, *,
                   select_probability: float = SELECT_PROBABILITY) -> Tensor:
    """Counts ``~ Poisson(rate)`` element by element, int32, of ``rate``'s shape and device.

    ``rate``: expected counts (float, >= 0; NaN and negative entries give 0). The counts
    depend on the rates, ``select_probability`` (``q``, in (0, 1): a speed setting) and the
    generator's state only.
    """
    q = float(select_probability)
    if not 0.0 < q < 1.0:
        raise ValueError(f"poisson_counts: select_probability must be in (0, 1), got {q}")
    low_rate = -math.log1p(-q)
    if rate.device.type != "cpu":
        return torch.poisson(rate.float().clamp(min=0).nan_to_num(0.0),
                             generator=generator).to(torch.int32)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rng = np.random.Generator(np.random.PCG64(seed))
    r = rate.detach().float().contiguous().numpy().reshape(-1)
    counts = np.zeros(r.shape, np.int32)
    if r.size:
        high = np.flatnonzero(r >= low_rate)            # NaN compares false: count 0
        if high.size:
            counts[high] = rng.poisson(r[high]).astype(np.int32)
        chosen = _selected(r.size, q, rng)
        chosen = chosen[r[chosen] < low_rate]
        if chosen.size:
            u = 1.0 - q + q * rng.random(chosen.size)
            counts[chosen] = _invert(r[chosen].astype(np.float64), u)
    return torch.from_numpy(counts.reshape(tuple(rate.shape)))


def _selected(n: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Indices ``< n`` of iid Bernoulli(``q``) successes, from geometric gaps."""
    expected = n * q
    parts, last = [], -1
    while last < n:
        size = int(expected + 5.0 * math.sqrt(expected) + 16)
        pos = last + np.cumsum(rng.geometric(q, size))
        parts.append(pos)
        last = int(pos[-1])
    out = np.concatenate(parts)
    return out[out < n]


def _invert(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Smallest ``k`` with ``CDF_Poisson(k; lam) > u`` (float64 rates and uniforms)."""
    out = np.zeros(lam.shape, np.int32)
    where = np.arange(lam.size)
    p = np.exp(-lam)
    cdf = p.copy()
    k = 0
    active = np.flatnonzero(u >= cdf)
    while active.size:
        k += 1
        where, lam, u = where[active], lam[active], u[active]
        p = p[active] * lam / k
        cdf = cdf[active] + p
        out[where] = k
        active = np.flatnonzero(u >= cdf)
        if k > 1000:  # unreachable for small rates: the CDF reaches 1 - 1e-16 first
            raise RuntimeError("poisson_counts: inversion did not converge")
    return out
