"""Conditional normalizing flows built from zuko's transforms, with access to every layer.

zuko (Rozet et al., https://github.com/probabilists/zuko) provides the masked autoregressive
transform (MADE hyper-network; Germain et al. arXiv:1502.03509), coupling transforms and the
monotonic rational-quadratic splines (Durkan et al., "Neural Spline Flows", arXiv:1906.04032).
:class:`ConditionalFlow` stacks them in one of three arrangements:

``"maf"`` (Papamakarios et al., "Masked Autoregressive Flow", arXiv:1705.07057)
    data -> noise is one network pass per layer (exact log-likelihood of a batch in one pass);
    noise -> data is sequential: ``passes`` passes per layer (``features`` when fully
    autoregressive), so sampling a 1936-pixel image costs thousands of passes.
``"iaf"`` (Kingma et al., "Inverse Autoregressive Flow", arXiv:1606.04934)
    the same layers inverted: sampling is one pass per layer, the log-likelihood of given data
    is sequential. Used as the fast student of a MAF teacher (CaloFlow II, Krause & Shih,
    arXiv:2110.11377).
``"coupling"`` (Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803; CaloINN,
    Ernst et al. arXiv:2312.09290)
    half of the features (a fixed random split per layer, the complement in the next) are
    transformed given the other half: one pass either way.

Every layer's elementwise transform is ``"affine"`` (zuko's monotonic affine map, bounded log
scale) or ``"spline"`` (rational-quadratic spline with ``bins`` bins on ``[-5, 5]``, identity
outside, as CaloFlow). Layers alternate the autoregressive order (reversed every other layer).

The flow maps data ``x (B, features)`` given context ``c (B, context)`` to standard-normal
noise ``z``; :meth:`ConditionalFlow.to_noise` and :meth:`ConditionalFlow.to_data` return the
intermediate values after every layer as well, which the teacher-student distillation matches.

:class:`ConditionalCouplingFlow` is the small Real NVP of the latent priors (``vae``,
``ae-noise``): affine couplings with alternating parity masks, SiLU hyper-networks initialised
at the identity and a log-scale bounded by ``SCALE_BOUND * tanh(s / SCALE_BOUND)``
(``u_b' = u_b exp(s(u_a, c)) + t(u_a, c)``; Dinh et al.; conditioned as the conditional INNs of
Ardizzone et al., arXiv:1907.02392). It is one pass either way and exports to ONNX as plain
tensor algebra. The ``"coupling"`` arrangement of :class:`ConditionalFlow` (zuko's
transforms, random masks, ReLU hyper-networks) is the CaloINN stage II; the two parametrise and
initialise their layers differently, so trained models of either would change if one replaced
the other.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor, nn
from zuko.flows import (
    GeneralCouplingTransform,
    LazyInverse,
    LazyTransform,
    MaskedAutoregressiveTransform,
)
from zuko.transforms import MonotonicAffineTransform, MonotonicRQSTransform

__all__ = ["ARRANGEMENTS", "ELEMENTWISE", "SCALE_BOUND", "ConditionalCouplingFlow",
           "distillation_losses",
           "ConditionalFlow", "standard_normal_log_prob"]

ARRANGEMENTS: tuple[str, ...] = ("maf", "iaf", "coupling")
ELEMENTWISE: tuple[str, ...] = ("affine", "spline")


def _elementwise(kind: str, bins: int) -> dict[str, Any]:
    if kind == "affine":
        return {"univariate": MonotonicAffineTransform, "shapes": ((), ())}
    if kind == "spline":
        if bins < 2:
            raise ValueError(f"spline flows need bins >= 2, got {bins}")
        return {"univariate": MonotonicRQSTransform,
                "shapes": ((bins,), (bins,), (bins - 1,))}
    raise ValueError(f"elementwise transform must be one of {ELEMENTWISE}, got {kind!r}")


class ConditionalFlow(nn.Module):
    """A conditional flow ``x <-> z`` over ``features`` dimensions (see the module docstring).

    Args:
        features: dimension of ``x`` (>= 2).
        context: dimension of the conditioning vector.
        layers: number of transforms.
        hidden: widths of each layer's hyper-network (ReLU MLP).
        arrangement: ``"maf"``, ``"iaf"`` or ``"coupling"``.
        elementwise: ``"affine"`` or ``"spline"``; ``bins`` for splines.
        passes: autoregressive layers only: sequential passes of the slow direction
            (``None`` = ``features``, fully autoregressive).
        seed: seed of the coupling masks (so a rebuilt flow has the same masks).
    """

    def __init__(self, features: int, context: int, layers: int, hidden: list[int],
                 arrangement: str = "maf", elementwise: str = "affine", bins: int = 8,
                 passes: int | None = None, seed: int = 0) -> None:
        super().__init__()
        if features < 2:
            raise ValueError(f"ConditionalFlow: features must be >= 2, got {features}")
        if layers < 1:
            raise ValueError(f"ConditionalFlow: layers must be >= 1, got {layers}")
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"ConditionalFlow: arrangement must be one of {ARRANGEMENTS}, "
                             f"got {arrangement!r}")
        self.features, self.context, self.arrangement = features, context, arrangement
        kind = _elementwise(elementwise, bins)
        hidden_features = [int(h) for h in hidden]
        gen = torch.Generator().manual_seed(seed)
        transforms: list[LazyTransform] = []
        for i in range(layers):
            if arrangement == "coupling":
                perm = torch.randperm(features, generator=gen)
                mask = perm % 2 == 0
                transforms.append(GeneralCouplingTransform(
                    features, context, mask=mask, hidden_features=hidden_features, **kind))
                continue
            order = torch.arange(features)
            if i % 2:
                order = order.flip(0)
            made = MaskedAutoregressiveTransform(
                features, context, passes=passes, order=order,
                hidden_features=hidden_features, **kind)
            transforms.append(LazyInverse(made) if arrangement == "iaf" else made)
        self.layers = nn.ModuleList(transforms)

    @property
    def fast_sampling(self) -> bool:
        """Whether noise -> data is one pass per layer (``"iaf"`` and ``"coupling"``)."""
        return self.arrangement != "maf"

    def to_noise(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Data -> noise: ``(z, log|det dz/dx| (B,), values after each layer)``."""
        ladj = x.new_zeros(x.shape[0])
        states = []
        for layer in self.layers:
            x, step = layer(c).call_and_ladj(x)
            ladj = ladj + step
            states.append(x)
        return x, ladj, states

    def to_data(self, z: Tensor, c: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Noise -> data: ``(x, values before each layer, in layer order)``; ``states[k]`` is
        the input of layer ``k`` (so ``states[0]`` is ``x``) and matches ``to_noise``'s
        ``states[k - 1]``."""
        states = []
        for layer in reversed(self.layers):
            z = layer(c).inv(z)
            states.append(z)
        states.reverse()
        return z, states

    def log_prob(self, x: Tensor, c: Tensor) -> Tensor:
        """``log p(x | c)`` per row, in nats (standard-normal base)."""
        z, ladj, _ = self.to_noise(x, c)
        return standard_normal_log_prob(z) + ladj

    def sample(self, noise: Tensor, c: Tensor) -> Tensor:
        """Data from standard-normal ``noise (B, features)``."""
        return self.to_data(noise, c)[0]


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * math.log(2 * math.pi))


SCALE_BOUND = 3.0
"""Bound ``k`` of every coupling layer's log-scale (``|s| < k``)."""


class _Coupling(nn.Module):
    """One conditional affine coupling layer with a fixed mask (1 = passed through)."""

    mask: Tensor

    def __init__(self, mask: Tensor, cond_dim: int, hidden: int) -> None:
        super().__init__()
        dim = len(mask)
        self.register_buffer("mask", mask.float())
        trunk = [nn.Linear(dim + cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                 nn.SiLU()]
        out = nn.Linear(hidden, 2 * dim)
        self.net = nn.Sequential(*trunk, out)
        nn.init.zeros_(out.weight)  # start at the identity
        nn.init.zeros_(out.bias)

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
            u, ld = cast(_Coupling, layer).inverse(u, cond)
            logdet = logdet + ld
        base = -0.5 * (u.pow(2).sum(dim=1) + self.dim * math.log(2 * math.pi))
        return base + logdet


def distillation_losses(teacher: ConditionalFlow, student: ConditionalFlow, x: Tensor,
                        context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """CaloFlow II's three mean squared errors of an IAF ``student`` against its MAF
    ``teacher`` on data ``x`` with ``context``: x-space (the teacher's noise of ``x`` mapped
    back by the student), intermediate values (every layer's input) and z-space (the teacher's
    noise of the student's samples against the noise drawn)."""
    with torch.no_grad():
        z_t, _, states_t = teacher.to_noise(x, context)
    x_s, states_s = student.to_data(z_t, context)
    loss_x = (x_s - x).pow(2).mean()
    loss_states = x.new_zeros(())
    for got, want in zip(states_s[1:], states_t[:-1], strict=True):
        loss_states = loss_states + (got - want).pow(2).mean()
    z = torch.randn_like(z_t)
    x_own, _ = student.to_data(z, context)
    z_back, _, _ = teacher.to_noise(x_own, context)
    return loss_x, loss_states, (z_back - z).pow(2).mean()
