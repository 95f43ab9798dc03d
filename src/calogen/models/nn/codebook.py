"""A codebook with cosine lookup, straight-through gradients and dead-code restarts (the
quantiser of the vector-quantised families)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CosineCodebook", "Quantized"]


@dataclass
class Quantized:
    """Output of :class:`CosineCodebook`.

    Attributes:
        z_q: quantised vectors ``(B, N, dim)`` (unit length), straight-through: the value of
            the chosen entries, the gradient of the encoder vectors.
        indices: chosen entries ``(B, N)`` int64.
        codebook_loss: ``sum_tokens |sg(z) - e|^2`` per shower ``(B,)`` (moves the entries).
        commitment_loss: ``sum_tokens |z - sg(e)|^2`` per shower ``(B,)`` (moves the encoder).
        usage: fraction of the entries chosen at least once in the batch.
        perplexity: ``exp(entropy)`` of the batch's entry frequencies (1 .. n_codes).
        restarted: entries re-initialised before this lookup.
    """

    z_q: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    usage: float
    perplexity: float
    restarted: int


class CosineCodebook(nn.Module):
    """Codebook with cosine lookup, straight-through gradients and dead-code restarts.

    Encoder vectors ``z`` and entries ``e_j`` are l2-normalised; each vector takes the entry of
    largest cosine similarity (equivalently the nearest on the unit sphere, where
    ``|z - e|^2 = 2 - 2 cos``), in a low-dimensional lookup space (Yu et al.,
    arXiv:2110.04627). Losses as van den Oord et al. (arXiv:1711.00937), on the normalised
    vectors; the caller weights the commitment loss by ``beta``.

    During training (``update=True``) the buffer ``unused_steps`` counts, per entry, the
    training lookups since it was last chosen and ``counts`` how often it was chosen in all;
    before a lookup, entries unused for ``restart_after`` lookups are set to randomly chosen
    encoder vectors of the current batch (0 = no restarts), which the lookup then assigns.

    Args:
        n_codes: number of entries.
        dim: lookup dimension.
        restart_after: training lookups without use before an entry is restarted (0 = off).
    """

    unused_steps: Tensor
    counts: Tensor

    def __init__(self, n_codes: int, dim: int, restart_after: int = 100) -> None:
        super().__init__()
        if int(n_codes) < 2 or int(dim) < 1 or int(restart_after) < 0:
            raise ValueError(f"CosineCodebook: need n_codes >= 2, dim >= 1, restart_after >= 0; "
                             f"got {n_codes}, {dim}, {restart_after}")
        self.n_codes, self.dim, self.restart_after = int(n_codes), int(dim), int(restart_after)
        self.weight = nn.Parameter(F.normalize(torch.randn(self.n_codes, self.dim), dim=1))
        self.register_buffer("unused_steps", torch.zeros(self.n_codes, dtype=torch.int64))
        self.register_buffer("counts", torch.zeros(self.n_codes, dtype=torch.int64))

    def entries(self) -> Tensor:
        """The l2-normalised entries ``(n_codes, dim)``."""
        return F.normalize(self.weight, dim=1)

    def lookup(self, z: Tensor) -> Tensor:
        """Index ``(...,)`` of the entry most similar in cosine to each vector ``z (..., dim)``."""
        sim = F.normalize(z, dim=-1) @ self.entries().t()
        return sim.argmax(dim=-1)

    def embed(self, indices: Tensor) -> Tensor:
        """Normalised entries of ``indices (...)``: ``(..., dim)``."""
        return F.embedding(indices, self.entries())

    @torch.no_grad()
    def _restart_dead(self, z_flat: Tensor) -> int:
        if self.restart_after <= 0:
            return 0
        dead = torch.nonzero(self.unused_steps >= self.restart_after).flatten()
        n = int(dead.numel())
        if n == 0 or len(z_flat) == 0:
            return 0
        if n <= len(z_flat):
            pick = torch.randperm(len(z_flat), device=z_flat.device)[:n]
        else:
            pick = torch.randint(0, len(z_flat), (n,), device=z_flat.device)
        self.weight[dead] = z_flat[pick].to(self.weight.dtype)
        self.unused_steps[dead] = 0
        return n

    def forward(self, z: Tensor, update: bool = False) -> Quantized:
        """Quantise encoder vectors ``z (B, N, dim)``; ``update`` (training steps only) runs the
        dead-code restarts and the usage counters."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"CosineCodebook: vectors must have {self.dim} dims, "
                             f"got {z.shape[-1]}")
        z_n = F.normalize(z, dim=-1)
        restarted = self._restart_dead(z_n.detach().reshape(-1, self.dim)) if update else 0
        entries = self.entries()
        with torch.no_grad():
            indices = (z_n.detach() @ entries.t()).argmax(dim=-1)
        e = F.embedding(indices, entries)
        codebook_loss = (z_n.detach() - e).pow(2).flatten(1).sum(1)
        commitment_loss = (z_n - e.detach()).pow(2).flatten(1).sum(1)
        z_q = z_n + (e - z_n).detach()
        with torch.no_grad():
            hist = torch.bincount(indices.flatten(), minlength=self.n_codes)
            used = hist > 0
            p = hist.float() / hist.sum().clamp(min=1)
            perplexity = float(torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()))
            if update:
                self.unused_steps += 1
                self.unused_steps[used] = 0
                self.counts += hist
        return Quantized(z_q, indices, codebook_loss, commitment_loss,
                         float(used.float().mean()), perplexity, restarted)
