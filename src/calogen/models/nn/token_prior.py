"""Causal transformer prior over discrete image tokens given the conditions.

The prior of a vector-quantised generator (VQGAN, Esser et al., "Taming Transformers for
High-Resolution Image Synthesis", arXiv:2012.09841; for calorimeter showers Calo-VQ, Liu et al.,
arXiv:2405.06605): a decoder-only transformer (Vaswani et al., "Attention Is All You Need",
arXiv:1706.03762) models the codebook indices of an image autoregressively,

    p(x_1 .. x_N | c) = prod_i p(x_i | c, x_1 .. x_{i-1}),

over the sequence ``[condition tokens, image tokens]``:

* condition tokens: each standardised condition scalar ``c_k`` becomes one token
  ``c_k * w_k + b_k`` (a per-condition linear embedding, ``w_k, b_k`` learned vectors of the
  model width), followed by a learned species token when the model has a species embedding;
* image tokens: the embedding of the codebook index plus a learned position embedding;
* pre-LayerNorm blocks (LayerNorm before attention and MLP, residual around each) with causal
  multi-head self-attention (:func:`torch.nn.functional.scaled_dot_product_attention`); a final
  LayerNorm and a linear head give the logits of the next image token. The output at the last
  condition token predicts ``x_1``, the output at ``x_i`` predicts ``x_{i+1}``.

Training is teacher forcing: one pass over ``[conditions, x_1 .. x_{N-1}]`` and the
cross-entropy of ``x_1 .. x_N`` (:meth:`TokenPrior.loss`). Sampling (:meth:`TokenPrior.sample`)
generates one token per step, reusing the keys and values of earlier positions from a cache
(:class:`KVCache`), so each step costs one token's worth of work per layer. Each token is drawn
from the logits divided by ``temperature`` (0: greedy argmax), optionally restricted to the
``top_k`` most likely tokens (Fan et al., "Hierarchical Neural Story Generation",
arXiv:1805.04833) and/or to the nucleus, the smallest set of most likely tokens whose
probability reaches ``top_p`` (Holtzman et al., "The Curious Case of Neural Text
Degeneration", arXiv:1904.09751).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KVCache", "TokenPrior", "check_sampling_options", "filter_logits", "sample_token"]


# --------------------------------------------------------------------------------------------
# Sampling options
# --------------------------------------------------------------------------------------------


def check_sampling_options(temperature: float, top_k: int, top_p: float) -> None:
    """``ValueError`` unless ``temperature >= 0`` (finite), ``top_k`` is an integer ``>= 0``
    (0 = off) and ``0 < top_p <= 1`` (1 = off)."""
    t = float(temperature)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got "
                         f"{temperature!r}")
    if isinstance(top_k, bool) or int(top_k) != top_k or int(top_k) < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    p = float(top_p)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> Tensor:
    """Logits ``(..., V)`` divided by ``temperature > 0``, with every token outside the
    ``top_k`` most likely (when ``top_k > 0``) and outside the nucleus of probability ``top_p``
    (when ``top_p < 1``; computed after the temperature and the top-k cut) set to ``-inf``.

    The nucleus is the smallest set of most likely tokens whose total probability reaches
    ``top_p``; it always contains the most likely token. Ties at the top-k boundary are kept.
    """
    check_sampling_options(temperature, top_k, top_p)
    if temperature == 0:
        raise ValueError("filter_logits: temperature 0 is greedy decoding (use sample_token)")
    out = logits / float(temperature) if temperature != 1 else logits
    k = int(top_k)
    if 0 < k < out.shape[-1]:
        kth = torch.topk(out, k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= float(top_p)
        drop_sorted[..., 0] = False  # the most likely token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_token(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """One token per row of ``logits (B, V)``: ``(B,)`` int64.

    ``temperature == 0`` is greedy decoding (argmax; ``top_k``/``top_p`` cannot change it, as
    both always keep the most likely token); otherwise a draw from
    ``softmax(filter_logits(logits, temperature, top_k, top_p))`` with ``generator``.
    """
    if float(temperature) == 0.0:
        check_sampling_options(temperature, top_k, top_p)
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p).float(), dim=-1)
    # inverse-CDF draw with one uniform per row (torch.multinomial draws one exponential per
    # token, 20x slower here): the first token whose cumulative probability exceeds u * total;
    # keeping the value below the total means tokens of zero probability are never chosen
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=cdf.dtype)
    value = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, value, right=True)[:, 0]


# --------------------------------------------------------------------------------------------
# Transformer pieces
# --------------------------------------------------------------------------------------------


@dataclass
class KVCache:
    """Keys and values of every layer for positions ``0 .. capacity - 1``, laid out for
    batched matrix products: ``keys[l]`` and ``values[l]`` are ``(B * heads, capacity,
    head_dim)``. Position ``t`` is written when the token at ``t`` is processed and read by
    every later position.
    """

    keys: list[Tensor]
    values: list[Tensor]

    @classmethod
    def empty(cls, layers: int, batch: int, heads: int, capacity: int, head_dim: int,
              like: Tensor) -> KVCache:
        """Zero cache with ``like``'s dtype and device (unwritten positions are masked out, and
        zeros keep them finite)."""
        shape = (batch * heads, capacity, head_dim)
        return cls([like.new_zeros(shape) for _ in range(layers)],
                   [like.new_zeros(shape) for _ in range(layers)])

    @property
    def capacity(self) -> int:
        """Number of positions the cache holds."""
        return int(self.values[0].shape[1])


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache.

    Without a cache the whole sequence attends causally (training). With a cache, the ``T`` new
    tokens at positions ``start .. start + T - 1`` write their keys and values and attend to all
    positions up to their own: either the first chunk (``start == 0``, causal within it) or one
    token at a time (``T == 1``).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = int(heads)
        self.head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                start: int = 0) -> Tensor:
        """``x (B, T, width)`` -> ``(B, T, width)``."""
        b, t, width = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if cache is None or start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif t != 1:
            raise ValueError("CausalSelfAttention: with a cache, process the first chunk "
                             "(start=0) or one token at a time")
        if cache is not None:
            end = start + t
            bh = b * self.heads
            cache.keys[layer][:, start:end] = k.reshape(bh, t, self.head_dim)
            cache.values[layer][:, start:end] = v.reshape(bh, t, self.head_dim)
            if start > 0:
                # one new token against the whole cache (batched products over full, contiguous
                # buffers are faster on CPU than over slices), later positions masked out
                mask = x.new_zeros(1, 1, cache.capacity)
                mask[..., end:] = float("-inf")
                scores = torch.baddbmm(mask.expand(bh, 1, -1), q.reshape(bh, 1, self.head_dim),
                                       cache.keys[layer].transpose(1, 2),
                                       alpha=self.head_dim ** -0.5)
                y = torch.bmm(torch.softmax(scores, dim=-1), cache.values[layer])
                y = y.view(b, self.heads, 1, self.head_dim)
        return self.proj(y.transpose(1, 2).reshape(b, t, width))


class PreLNBlock(nn.Module):
    """``x + attn(LN(x))`` then ``x + MLP(LN(x))`` (pre-LayerNorm transformer block; GELU MLP
    of width ``mlp_ratio * width``)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                start: int = 0) -> Tensor:
        x = x + self.attn(self.norm1(x), cache, layer, start)
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------------------------
# The prior
# --------------------------------------------------------------------------------------------


class TokenPrior(nn.Module):
    """Autoregressive prior ``p(tokens | conditions)`` (see the module docstring).

    Args:
        n_conditions: number of standardised condition scalars ``k`` (one token each).
        n_codes: codebook size ``V`` (token vocabulary).
        n_tokens: image tokens per shower ``N``.
        width: model width.
        depth: number of transformer blocks.
        heads: attention heads (``width`` must be a multiple).
        mlp_ratio: MLP width as a multiple of ``width``.
        n_species: number of species indices for a learned species token after the condition
            tokens (0: no species token; then ``species`` is ignored).
    """

    def __init__(self, n_conditions: int, n_codes: int, n_tokens: int, width: int = 128,
                 depth: int = 2, heads: int = 4, mlp_ratio: int = 4, n_species: int = 0) -> None:
        super().__init__()
        for name, value, least in (("n_codes", n_codes, 2), ("n_tokens", n_tokens, 1),
                                   ("width", width, 1), ("depth", depth, 1), ("heads", heads, 1),
                                   ("mlp_ratio", mlp_ratio, 1), ("n_conditions", n_conditions, 0),
                                   ("n_species", n_species, 0)):
            if int(value) < least:
                raise ValueError(f"TokenPrior: {name} must be >= {least}, got {value}")
        if width % heads:
            raise ValueError(f"TokenPrior: width {width} must be a multiple of heads {heads}")
        self.n_conditions, self.n_codes, self.n_tokens = int(n_conditions), int(n_codes), \
            int(n_tokens)
        self.use_species = int(n_species) > 0
        self.n_prefix = self.n_conditions + int(self.use_species)
        if self.n_prefix < 1:
            raise ValueError("TokenPrior: needs at least one condition or a species token to "
                             "predict the first image token from")
        self.width, self.heads, self.depth = int(width), int(heads), int(depth)
        self.cond_weight = nn.Parameter(torch.randn(self.n_conditions, width) * 0.02)
        self.cond_bias = nn.Parameter(torch.randn(self.n_conditions, width) * 0.02)
        self.species = nn.Embedding(int(n_species), width) if self.use_species else None
        self.token_embed = nn.Embedding(self.n_codes, width)
        self.pos = nn.Parameter(torch.randn(self.n_tokens, width) * 0.02)
        self.blocks = nn.ModuleList(PreLNBlock(width, heads, int(mlp_ratio))
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.n_codes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """GPT-2 style initialisation: weights N(0, 0.02^2), zero biases."""
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    # -- sequence pieces ----------------------------------------------------------------------

    def prefix(self, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Condition (and species) tokens ``(B, n_prefix, width)`` from standardised
        conditions ``(B, k)`` and species indices ``(B,)``."""
        if cond.ndim != 2 or cond.shape[1] != self.n_conditions:
            raise ValueError(f"TokenPrior: cond must be (B, {self.n_conditions}), got "
                             f"{tuple(cond.shape)}")
        h = cond[:, :, None] * self.cond_weight + self.cond_bias
        if self.species is not None:
            if species is None:
                raise ValueError("TokenPrior built with a species token: pass species (B,)")
            h = torch.cat([h, self.species(species.long())[:, None]], dim=1)
        return h

    def _blocks(self, x: Tensor, cache: KVCache | None = None, start: int = 0) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, start)
        return x

    def logits_of(self, h: Tensor) -> Tensor:
        """Final LayerNorm and head: hidden states ``(..., width)`` -> logits ``(..., V)``."""
        return self.head(self.norm(h))

    def _check_tokens(self, tokens: Tensor) -> None:
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.n_tokens:
            raise ValueError(f"TokenPrior: tokens must be (B, n) with 1 <= n <= "
                             f"{self.n_tokens}, got {tuple(tokens.shape)}")

    # -- training ------------------------------------------------------------------------------

    def forward(self, tokens: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Teacher-forced logits ``(B, n, V)``: ``logits[:, i]`` is ``p(x_i | c, x_<i)`` for the
        given tokens ``(B, n)`` (int64 codebook indices, ``n <= n_tokens``). One causal pass
        over ``[condition tokens, x_1 .. x_{n-1}]``."""
        self._check_tokens(tokens)
        n = tokens.shape[1]
        seq = self.prefix(cond, species)
        if n > 1:
            seq = torch.cat([seq, self.token_embed(tokens[:, :n - 1]) + self.pos[:n - 1]], dim=1)
        h = self._blocks(seq)
        return self.logits_of(h[:, self.n_prefix - 1:])

    def loss(self, tokens: Tensor, cond: Tensor,
             species: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy per token (nats) and the fraction of tokens whose argmax
        prediction is right (no gradient), for tokens ``(B, N)``."""
        logits = self(tokens, cond, species)
        loss = F.cross_entropy(logits.reshape(-1, self.n_codes), tokens.reshape(-1).long())
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == tokens).float().mean()
        return loss, accuracy

    # -- sampling ------------------------------------------------------------------------------

    @overload
    def sample(self, cond: Tensor, species: Tensor | None = None, *, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
               return_logits: Literal[False] = False) -> Tensor: ...

    @overload
    def sample(self, cond: Tensor, species: Tensor | None = None, *, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
               return_logits: Literal[True]) -> tuple[Tensor, Tensor]: ...

    def sample(self, cond: Tensor, species: Tensor | None = None, *, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
               return_logits: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Image tokens ``(B, N)`` int64 drawn autoregressively with a key/value cache.

        One pass over the condition tokens, then one token per step (``N`` network calls in
        all); ``temperature``, ``top_k``, ``top_p`` as in :func:`sample_token`. With
        ``return_logits`` also the unfiltered logits of every step ``(B, N, V)`` (for tests).
        Runs under :func:`torch.inference_mode`; the outputs are ordinary tensors.
        """
        check_sampling_options(temperature, top_k, top_p)
        b = cond.shape[0]
        with torch.inference_mode():
            seq = self.prefix(cond, species)
            cache = KVCache.empty(self.depth, b, self.heads, self.n_prefix + self.n_tokens - 1,
                                  self.width // self.heads, like=seq)
            h = self._blocks(seq, cache, 0)[:, -1]
            tokens = torch.empty(b, self.n_tokens, dtype=torch.int64, device=cond.device)
            all_logits: list[Tensor] | None = [] if return_logits else None
            for i in range(self.n_tokens):
                logits = self.logits_of(h)
                if all_logits is not None:
                    all_logits.append(logits)
                tok = sample_token(logits, temperature, top_k, top_p, generator)
                tokens[:, i] = tok
                if i + 1 < self.n_tokens:
                    x = (self.token_embed(tok) + self.pos[i])[:, None]
                    h = self._blocks(x, cache, self.n_prefix + i)[:, 0]
        tokens = tokens.clone()  # an ordinary tensor outside inference mode
        if all_logits is not None:
            return tokens, torch.stack(all_logits, dim=1).clone()
        return tokens
