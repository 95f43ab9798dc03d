"""The two-stage normalizing flow with an exact likelihood (family ``"caloflow"``).

The CaloFlow design (Krause & Shih, arXiv:2106.05285; teacher-student CaloFlow II,
arXiv:2110.11377) for ZDC images:

* **preprocessing** (:mod:`calogen.models.nn.flow_preprocessing`): photon counts ``n`` get uniform
  dequantisation noise, ``v = n + delta u`` (hparam ``dequantisation``, ``delta``; ``floor``
  undoes it exactly after sampling). ``delta`` well below 1 (default 0.1) keeps the noise of
  the mostly empty fibres a factor ``1 / delta`` away from the first photon (see
  benchmarks/README.md).
* **stage I**: the energy split, here the 5 PMT channel sums ``s_k = sum_{i in k} v_i``
  (:mod:`calogen.geometry.channels`; images of other shapes are cut into the same common /
  four-quadrant pattern), as ``y = log s`` standardised, given the conditions. A 5-dimensional
  spline MAF: cheap both ways.
* **stage II**: the normalised image given stage I and the conditions: each pixel's share
  ``f_i = v_i / s_k`` of its channel, logit-transformed (margin ``alpha``) and standardised.
  The shares of a channel sum to 1, so one pixel per channel (its *anchor*, the pixel with the
  largest mean share in the first training batch) is left out and recovered as
  ``1 - sum(others)``; with it, ``v <-> (s, f)`` is a bijection and the likelihood is exact.

The density of the dequantised counts follows by the change of variables

    log p(v | c) = log p_I(y~ | c) + log p_II(x~ | y~, c) - sum_k m_k log s_k
                   - sum log sigma_y - sum log sigma_x + sum_i log |dx_i / df_i|

(``m_k`` pixels in channel ``k``: ``-(m_k - 1) log s_k`` from ``v -> (s, f)``, ``-log s_k``
from ``y = log s``; ``sigma`` are the standardisation scales), and ``log P(n | c) >= E_u
log p(n + delta u | c) + P log delta`` (dequantisation bound, ``P`` pixels).
:meth:`CaloFlow.log_likelihood` returns it per shower.

The family ``caloflow`` (the teacher) has a MAF stage II (``stage2_arrangement="maf"``):
exact likelihood of a batch in one pass, sampling one pixel after the other (``P`` passes per
layer). ``calo-inn`` and ``caloflow-student`` build on it (their own modules).

Sampling returns ``log1p(v - delta / 2)``, which the ``"round"`` readout turns into the count
of the nearest dequantisation cell ``[n, n + delta)`` (``floor(v)`` inside a cell; also after an
ONNX export, where the host framework rounds); the per-channel shares are
renormalised when the sampled non-anchor shares exceed 1 (the anchor then gets 0), so channel
sums equal stage I's up to rounding.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.data.transforms import Transforms
from calogen.geometry.channels import N_CHANNELS, channel_masks
from calogen.geometry.zdc import FibreGrid, get_grid
from calogen.models.generator import ImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.flow_preprocessing import LogitTransform, dequantise
from calogen.models.nn.flows import ELEMENTWISE, ConditionalFlow
from calogen.models.registry import register_family

__all__ = ["ARCHITECTURE_KEYS", "CaloFlow", "pixel_channels"]

STAGE2_ARRANGEMENTS: tuple[str, ...] = ("maf", "coupling", "iaf")
ARCHITECTURE_KEYS: tuple[str, ...] = (
    "stage1_layers", "stage1_hidden", "stage1_elementwise", "bins", "stage2_layers",
    "stage2_hidden", "stage2_elementwise", "stage2_passes", "alpha", "dequantisation",
    "cond_dim", "use_species")
"""Hparams a student shares with its teacher (everything but the stage II arrangement)."""


def pixel_channels(shape: tuple[int, int], detector: str) -> Tensor:
    """Channel index (0..4, order of :func:`calogen.geometry.channels.channel_names`) of every
    pixel, row-major ``(H * W,)`` int64. The detector's grid when the shape is its own, else
    the same common / four-quadrant pattern on ``shape`` (split at the middle)."""
    try:
        grid = get_grid(detector)
    except ValueError:
        grid = None
    if grid is None or tuple(grid.shape) != tuple(shape):
        h, w = shape
        if h < 2 or w < 2:
            raise ValueError(f"flows need images of at least 2 x 2 pixels, got {shape}")
        grid = FibreGrid(name=str(detector), shape=(h, w), pitch_cm=(1.0, 1.0), depth_cm=1.0,
                         quadrant_split=(h // 2, w // 2))
    masks = channel_masks(grid)
    return torch.as_tensor(np.argmax(masks.reshape(N_CHANNELS, -1), axis=0), dtype=torch.int64)


@register_family
class CaloFlow(ImageGenerator):
    """Two-stage conditional flow (module docstring). Hparams: ``stage1_layers`` (6),
    ``stage1_hidden`` ([64, 64]), ``stage1_elementwise`` (``"spline"``), ``bins`` (8),
    ``stage2_arrangement`` (``"maf"``; ``"coupling"``), ``stage2_layers`` (3),
    ``stage2_hidden`` ([256, 256]), ``stage2_elementwise`` (``"affine"``; splines cost
    ``3 bins - 1`` outputs per pixel), ``stage2_passes`` (0 = fully autoregressive; ``k``
    groups the pixels into ``k`` blocks sampled in ``k`` passes), ``alpha`` (logit margin,
    1e-6), ``dequantisation`` (noise width ``delta`` in photons, 0.1), ``cond_dim``
    (condition embedding width, 32), ``use_species``."""

    family: ClassVar[str] = "caloflow"
    category: ClassVar[str] = "flow"
    one_step: ClassVar[bool] = False
    validate_by_sampling: ClassVar[bool] = False   # a MAF samples pixel by pixel
    defaults = {
        "stage1_layers": 6, "stage1_hidden": [64, 64], "stage1_elementwise": "spline",
        "bins": 8, "stage2_arrangement": "maf", "stage2_layers": 3,
        "stage2_hidden": [256, 256], "stage2_elementwise": "affine", "stage2_passes": 0,
        "alpha": 1e-6, "dequantisation": 0.1, "cond_dim": 32, "use_species": False,
        "readout": "round",
        "output": "linear",
    }
    allowed_arrangements: ClassVar[tuple[str, ...]] = ("maf", "coupling")
    onnx_tolerance: ClassVar[float] = 2e-3
    """ONNX parity tolerance of the log image: counts are ``share * exp(y)``, so float32
    rounding of the shares (1e-7 relative) moves faint fibres of a 10^4-photon channel by
    ~1e-3 photons, i.e. ~1e-3 in ``log1p`` space; far below the rounding to integers."""

    pixel_channel: Tensor
    assignment: Tensor
    channel_size: Tensor
    anchor: Tensor
    keep: Tensor
    y_mean: Tensor
    y_scale: Tensor
    x_mean: Tensor
    x_scale: Tensor
    initialised: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if hp["stage2_arrangement"] not in self.allowed_arrangements:
            raise ValueError(f"{self.family}: hparam 'stage2_arrangement' must be one of "
                             f"{self.allowed_arrangements}, got {hp['stage2_arrangement']!r}")
        for key in ("stage1_elementwise", "stage2_elementwise"):
            if hp[key] not in ELEMENTWISE:
                raise ValueError(f"{self.family}: hparam {key!r} must be one of {ELEMENTWISE}")
        if hp["readout"] != "round":
            raise ValueError(f"{self.family}: the flow's counts are its dequantised sample "
                             f"rounded to a cell; hparam 'readout' must be 'round', got "
                             f"{hp['readout']!r}")
        self.logit = LogitTransform(float(hp["alpha"]))
        self.width = float(hp["dequantisation"])
        if not 0.0 < self.width <= 1.0:
            raise ValueError(f"{self.family}: hparam 'dequantisation' must be in (0, 1], got "
                             f"{self.width}")
        channels = pixel_channels(self.shape, spec.detector)
        n_pix = channels.numel()
        self.register_buffer("pixel_channel", channels, persistent=False)
        self.register_buffer("assignment", nn.functional.one_hot(channels, N_CHANNELS).float(),
                             persistent=False)
        self.register_buffer("channel_size", self.assignment.sum(0), persistent=False)
        if bool((self.channel_size < 1).any()):
            raise ValueError(f"{self.family}: every channel needs a pixel; shape {self.shape}")
        n2 = n_pix - N_CHANNELS
        self.register_buffer("anchor", torch.zeros(N_CHANNELS, dtype=torch.int64))
        self.register_buffer("keep", torch.arange(n2, dtype=torch.int64))
        self.register_buffer("y_mean", torch.zeros(N_CHANNELS))
        self.register_buffer("y_scale", torch.ones(N_CHANNELS))
        self.register_buffer("x_mean", torch.zeros(n2))
        self.register_buffer("x_scale", torch.ones(n2))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        d = int(hp["cond_dim"])
        self.embed1 = self.condition_embedding()
        self.embed2 = self.condition_embedding()
        self.stage1 = ConditionalFlow(N_CHANNELS, d, int(hp["stage1_layers"]),
                                      hp["stage1_hidden"], "maf", str(hp["stage1_elementwise"]),
                                      int(hp["bins"]))
        passes = int(hp["stage2_passes"]) or None
        self.stage2 = ConditionalFlow(n2, d + N_CHANNELS, int(hp["stage2_layers"]),
                                      hp["stage2_hidden"], str(hp["stage2_arrangement"]),
                                      str(hp["stage2_elementwise"]), int(hp["bins"]), passes)

    # -- sizes ------------------------------------------------------------------------------

    @property
    def n_pixels(self) -> int:
        return int(self.pixel_channel.numel())

    @property
    def latent_dim(self) -> int:
        """Noise size: 5 channel values + the ``P - 5`` non-anchor shares."""
        return self.n_pixels

    def network_calls(self) -> int:
        """Hyper-network passes per sampled shower (stage I is fully autoregressive)."""
        calls1 = int(self.hparams["stage1_layers"]) * N_CHANNELS
        n2, layers2 = self.n_pixels - N_CHANNELS, int(self.hparams["stage2_layers"])
        if self.stage2.fast_sampling:
            return calls1 + layers2
        return calls1 + layers2 * (int(self.hparams["stage2_passes"]) or n2)

    def exportable(self) -> bool:
        """Exportable when stage II samples in one pass per layer (coupling, IAF)."""
        return self.stage2.fast_sampling and int(self.initialised) == 1

    # -- preprocessing ----------------------------------------------------------------------

    def _initialise(self, v: Tensor) -> None:
        """Anchors and standardisation from the first training batch of dequantised counts."""
        with torch.no_grad():
            share = v / (v @ self.assignment)[:, self.pixel_channel]
            mean_share = share.mean(0)
            anchor = torch.stack([torch.where(self.pixel_channel == k, mean_share,
                                              torch.full_like(mean_share, -1.0)).argmax()
                                  for k in range(N_CHANNELS)])
            self.anchor.copy_(anchor)
            is_anchor = torch.zeros(self.n_pixels, dtype=torch.bool, device=v.device)
            is_anchor[anchor] = True
            self.keep.copy_(torch.nonzero(~is_anchor).squeeze(1))
            y, x, _ = self._to_network(v, standardise=False)
            self.y_mean.copy_(y.mean(0))
            self.x_mean.copy_(x.mean(0))
            if v.shape[0] > 1:
                self.y_scale.copy_(y.std(0).clamp(min=1e-3))
                self.x_scale.copy_(x.std(0).clamp(min=1e-3))
        self.initialised.fill_(1)

    def _to_network(self, v: Tensor, standardise: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Dequantised counts ``v (B, P)`` -> stage-I values ``y (B, 5)``, stage-II values
        ``x (B, P - 5)`` and ``log |d(y, x) / dv|`` per shower (nats)."""
        s = v @ self.assignment
        y = torch.log(s)
        f = v[:, self.keep] / s[:, self.pixel_channel[self.keep]]
        x = self.logit.forward(f.clamp(0.0, 1.0))
        logdet = (-(self.channel_size * y).sum(1)
                  + self.logit.log_abs_det_jacobian(f.clamp(0.0, 1.0)).sum(1))
        if standardise:
            y = (y - self.y_mean) / self.y_scale
            x = (x - self.x_mean) / self.x_scale
            logdet = logdet - torch.log(self.y_scale).sum() - torch.log(self.x_scale).sum()
        return y, x, logdet

    def _context1(self, cond: Tensor, species: Tensor | None) -> Tensor:
        """Stage-I context: the condition embedding."""
        return self.embed1(cond, species if self.hparams["use_species"] else None)

    def _context2(self, cond: Tensor, species: Tensor | None, y: Tensor) -> Tensor:
        """Stage-II context: a second condition embedding and the standardised stage-I
        values."""
        s = species if self.hparams["use_species"] else None
        return torch.cat([self.embed2(cond, s), y], dim=1)

    def _counts(self, batch: TrainBatch) -> Tensor:
        """Photon counts ``(B, P)`` back from the batch's ``log1p`` images (exact integers)."""
        return Transforms.inverse_showers(batch.x.flatten(1)).round()

    # -- likelihood -------------------------------------------------------------------------

    def log_prob_dequantised(self, v: Tensor, cond: Tensor,
                             species: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``log p(v | c)`` of dequantised counts ``v (B, P)`` and its two stage terms
        (``log p_I``, ``log p_II``; the rest is the preprocessing Jacobian), nats."""
        y, x, logdet = self._to_network(v)
        lp1 = self.stage1.log_prob(y, self._context1(cond, species))
        lp2 = self.stage2.log_prob(x, self._context2(cond, species, y))
        return lp1 + lp2 + logdet, lp1, lp2

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """Negative log-likelihood of the dequantised counts, nats per pixel."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        v = dequantise(self._counts(batch), width=self.width)
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError(f"{self.family}: not trained yet (the standardisation is "
                                   f"fitted at the first training step)")
            self._initialise(v)
        lp, lp1, lp2 = self.log_prob_dequantised(v, batch.cond, batch.species)
        loss = -lp.mean() / self.n_pixels
        return loss, {"loss": loss.item(), "nll_stage1": -lp1.mean().item(),
                      "nll_stage2": -lp2.mean().item()}

    @torch.no_grad()
    def log_likelihood(self, photons: ArrayLike | Tensor, conditions: ArrayLike | Tensor,
                       pdg: ArrayLike | Tensor, *, draws: int = 4, batch_size: int = 1024,
                       generator: torch.Generator | None = None) -> np.ndarray:
        """Per-shower lower bound on ``log P(n | c)`` (nats) of photon counts ``(N, H, W)``:
        ``log mean_j p(n + delta u_j | c) + P log delta`` over ``draws`` dequantisation draws
        (a bound that tightens with more draws; Burda et al. arXiv:1509.00519). float64
        ``(N,)``."""
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        if int(self.initialised) == 0:
            raise RuntimeError(f"{self.family}: not trained yet")
        was_training = self.training
        self.eval()
        device = self.anchor.device
        n = torch.as_tensor(np.asarray(photons)).reshape(-1, self.n_pixels)
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        if len(n) != len(cond):
            raise ValueError(f"{len(n)} showers but {len(cond)} conditions")
        out = []
        for start in range(0, len(n), batch_size):
            rows = slice(start, start + batch_size)
            counts = n[rows].to(device)
            lps = torch.stack([
                self.log_prob_dequantised(dequantise(counts, generator, self.width), cond[rows],
                                          species[rows])[0].double()
                for _ in range(draws)])
            bound = torch.logsumexp(lps, 0) - math.log(draws)
            out.append((bound + self.n_pixels * math.log(self.width)).cpu())
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)

    # -- sampling ---------------------------------------------------------------------------

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``log1p(v - delta / 2)`` ``(B, 1, H, W)`` (rounded by the readout to the
        nearest dequantisation cell) from standard-normal noise
        ``(B, P)``: stage I from the first 5 columns, stage II from the rest."""
        y = self.stage1.sample(noise[:, :N_CHANNELS], self._context1(cond, species))
        x = self.stage2.sample(noise[:, N_CHANNELS:], self._context2(cond, species, y))
        return self._to_image(y, x)

    def _to_image(self, y: Tensor, x: Tensor) -> Tensor:
        """Standardised stage values -> ``log1p(max(v - delta / 2, 0))`` ``(B, 1, H, W)``."""
        s = torch.exp((y * self.y_scale + self.y_mean).clamp(max=30.0))
        f = self.logit.inverse(x * self.x_scale + self.x_mean)
        kept_channel = self.pixel_channel[self.keep]
        total = f @ self.assignment[self.keep]                     # (B, 5) shares but anchors
        shrink = 1.0 / total.clamp(min=1.0)
        f = f * shrink[:, kept_channel]
        share = torch.zeros(y.shape[0], self.n_pixels, dtype=f.dtype, device=f.device)
        share = share.index_copy(1, self.keep, f)
        share = share.index_copy(1, self.anchor, (1.0 - total * shrink).clamp(min=0.0))
        # the dequantised density is a comb of teeth [n, n + delta); rounding v - delta / 2
        # picks the nearest tooth (exactly n inside one; a flow smooths the comb, and floor(v)
        # would push every value between two teeth down: ZN photon sums 11 % low with
        # delta = 0.1). Returned continuous so that the readout ("round", here or in the host
        # framework after an ONNX export) rounds, and exported graphs compare smoothly
        expected = (share * s[:, self.pixel_channel] - 0.5 * self.width).clamp(min=0.0)
        return torch.log1p(expected).view(-1, 1, *self.shape)

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        if int(self.initialised) == 0:
            raise RuntimeError(f"{self.family}: not trained yet")
        return super().sample_network(cond, species, generator)
