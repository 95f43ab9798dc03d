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

**Voxels** (layered geometries such as the CaloChallenge 2022 datasets; the same classes
choose this design from ``spec.kind``; CaloFlow's home ground, arXiv:2106.05285 Sec. II,
with the preprocessing of :class:`~calogen.models.nn.voxel_preprocessing.VoxelPreprocessing`):

* energies ``x`` (MeV) get training noise ``U[0, voxel_noise_mev)`` (default 1 keV, as
  CaloFlow) instead of the dequantisation of counts;
* stage I models the ``L`` layer energy fractions ``u`` (an exact bijection with the layer
  energies given ``E_inc``), logit-transformed and standardised, given ``log10 E_inc``
  (standardised on the first training batch) and the condition embedding: a small MAF;
* stage II models the logit per-layer shares given stage I's values, ``log10 E_inc`` and the
  conditions. One *anchor* voxel per layer is dropped (as one pixel per channel above), so
  ``x <-> (u, f)`` is a bijection and the likelihood is exact:

      log p(x | c) = log p_I + log p_II + sum logit'(u) - log(s E_inc) - sum_{k<L} log T_k
                     - sum_k (m_k - 1) log E_k + sum_i logit'(f_i) - sum log sigma

  (``T_k = E_k + ... + E_L``, ``s`` the fitted ``u_0`` scale, ``m_k`` voxels in layer ``k``);
  :meth:`CaloFlow.log_likelihood` returns ``log mean_j p(x + delta u_j | c) + n log delta``
  with ``delta = voxel_noise_mev`` (the same bound as for counts).
* sampling renormalises the shares of a layer when the sampled non-anchor shares exceed 1,
  multiplies by the layer energies, and sets every voxel below ``max(threshold, noise)`` to 0
  (threshold: the smallest positive voxel of the first training batch, or the hparam
  ``voxel_threshold_mev``). Voxel models are not exported to ONNX (that signature is ALICE
  O2's images).

Without a condition column ``E_inc`` (GeV), ``u_0`` is the total energy over the fitted
scale alone (``E_inc = 1 MeV``) and the ``log10 E_inc`` context is constant.

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
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.geometry.zdc import FibreGrid, get_grid
from calogen.models.generator import ImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.flow_preprocessing import LogitTransform, dequantise
from calogen.models.nn.flows import ELEMENTWISE, ConditionalFlow
from calogen.models.nn.voxel_preprocessing import VoxelPreprocessing
from calogen.models.registry import register_family

__all__ = ["ARCHITECTURE_KEYS", "CaloFlow", "pixel_channels"]

E_INC = "E_inc"
"""The incident-energy condition column of a calorimeter gun (GeV; calogen.particles)."""

U0_MARGIN = 1.2
"""``u_0 = E_tot / (s E_inc)`` with ``s`` this margin times the largest ratio of the first
training batch: later batches may hold larger ratios (``u_0`` is clamped at 1 beyond)."""

STAGE2_ARRANGEMENTS: tuple[str, ...] = ("maf", "coupling", "iaf")
ARCHITECTURE_KEYS: tuple[str, ...] = (
    "stage1_layers", "stage1_hidden", "stage1_elementwise", "bins", "stage2_layers",
    "stage2_hidden", "stage2_elementwise", "stage2_passes", "alpha", "dequantisation",
    "cond_dim", "use_species", "voxel_noise_mev", "voxel_threshold_mev")
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
    (condition embedding width, 32), ``use_species``; on voxels ``voxel_noise_mev`` (training
    noise width, MeV, 1e-3) and ``voxel_threshold_mev`` (``None``: the data's smallest positive
    voxel)."""

    family: ClassVar[str] = "caloflow"
    category: ClassVar[str] = "flow"
    shapes: ClassVar[frozenset[str]] = frozenset({"image", "voxels"})
    one_step: ClassVar[bool] = False
    validate_by_sampling: ClassVar[bool] = False   # a MAF samples pixel by pixel
    defaults = {
        "stage1_layers": 6, "stage1_hidden": [64, 64], "stage1_elementwise": "spline",
        "bins": 8, "stage2_arrangement": "maf", "stage2_layers": 3,
        "stage2_hidden": [256, 256], "stage2_elementwise": "affine", "stage2_passes": 0,
        "alpha": 1e-6, "dequantisation": 0.1, "cond_dim": 32, "use_species": False,
        "voxel_noise_mev": 1e-3, "voxel_threshold_mev": None, "readout": "round",
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
    vox_u0_scale: Tensor
    vox_threshold: Tensor
    le_mean: Tensor
    le_scale: Tensor
    e_inc_column: int | None = None

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
        self.voxels = spec.kind == "voxels"
        channels = self._voxel_layers() if self.voxels else pixel_channels(self.shape,
                                                                            spec.detector)
        groups = int(channels.max()) + 1
        n_pix = channels.numel()
        self.register_buffer("pixel_channel", channels, persistent=False)
        self.register_buffer("assignment", nn.functional.one_hot(channels, groups).float(),
                             persistent=False)
        self.register_buffer("channel_size", self.assignment.sum(0), persistent=False)
        if bool((self.channel_size < 1).any()):
            raise ValueError(f"{self.family}: every channel / layer needs a pixel / voxel; "
                             f"shape {self.spec.shape}")
        n2 = n_pix - groups
        if n2 < 2:
            raise ValueError(f"{self.family}: stage II needs at least 2 shares beyond one "
                             f"anchor per layer; {n_pix} voxels in {groups} layers")
        self.register_buffer("anchor", torch.zeros(groups, dtype=torch.int64))
        self.register_buffer("keep", torch.arange(n2, dtype=torch.int64))
        self.register_buffer("y_mean", torch.zeros(groups))
        self.register_buffer("y_scale", torch.ones(groups))
        self.register_buffer("x_mean", torch.zeros(n2))
        self.register_buffer("x_scale", torch.ones(n2))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        extra = 0  # context columns beyond the embedding: standardised log10 E_inc (voxels)
        if self.voxels:
            self._init_voxels()
            extra = 1
        d = int(hp["cond_dim"])
        self.embed1 = self.condition_embedding()
        self.embed2 = self.condition_embedding()
        self.stage1 = ConditionalFlow(groups, d + extra, int(hp["stage1_layers"]),
                                      hp["stage1_hidden"], "maf", str(hp["stage1_elementwise"]),
                                      int(hp["bins"]))
        passes = int(hp["stage2_passes"]) or None
        self.stage2 = ConditionalFlow(n2, d + extra + groups, int(hp["stage2_layers"]),
                                      hp["stage2_hidden"], str(hp["stage2_arrangement"]),
                                      str(hp["stage2_elementwise"]), int(hp["bins"]), passes)

    def _voxel_layers(self) -> Tensor:
        """Layer index of every voxel ``(n_voxels,)`` int64 (voxel geometries)."""
        geometry = self.spec.geometry
        if not isinstance(geometry, LayeredVoxelGeometry):
            raise ValueError(f"{self.family}: voxel showers need a layered voxel geometry, got "
                             f"{type(geometry).__name__}")
        sizes = [s.stop - s.start for s in geometry.layer_slices()]
        return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))

    def _init_voxels(self) -> None:
        """Voxel hparams, the ``E_inc`` column and the buffers of the fitted preprocessing."""
        hp = self.hparams
        noise = float(hp["voxel_noise_mev"])
        if not noise > 0:
            raise ValueError(f"{self.family}: hparam 'voxel_noise_mev' must be > 0 on voxels "
                             f"(empty layers need it for an exact likelihood), got {noise}")
        threshold = hp["voxel_threshold_mev"]
        if threshold is not None and not float(threshold) >= 0:
            raise ValueError(f"{self.family}: hparam 'voxel_threshold_mev' must be >= 0 or "
                             f"None (the data's own), got {threshold!r}")
        columns = list(self.spec.transforms.condition_columns)
        self.e_inc_column = columns.index(E_INC) if E_INC in columns else None
        self.register_buffer("vox_u0_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("vox_threshold", torch.zeros((), dtype=torch.float64))
        self.register_buffer("le_mean", torch.zeros(()))
        self.register_buffer("le_scale", torch.ones(()))

    # -- sizes ------------------------------------------------------------------------------

    @property
    def n_pixels(self) -> int:
        return int(self.pixel_channel.numel())

    @property
    def n_groups(self) -> int:
        """Stage-I dimension: the 5 channels of an image, the layers of a voxel geometry."""
        return int(self.anchor.numel())

    @property
    def latent_dim(self) -> int:
        """Noise size: the stage-I values + the non-anchor shares (= pixels or voxels)."""
        return self.n_pixels

    def network_calls(self) -> int:
        """Hyper-network passes per sampled shower (stage I is fully autoregressive)."""
        calls1 = int(self.hparams["stage1_layers"]) * self.n_groups
        n2, layers2 = self.n_pixels - self.n_groups, int(self.hparams["stage2_layers"])
        if self.stage2.fast_sampling:
            return calls1 + layers2
        return calls1 + layers2 * (int(self.hparams["stage2_passes"]) or n2)

    def exportable(self) -> bool:
        """Exportable when stage II samples in one pass per layer (coupling, IAF); images only
        (the ONNX signature is ALICE O2's)."""
        return (not self.voxels and self.stage2.fast_sampling
                and int(self.initialised) == 1)

    # -- preprocessing ----------------------------------------------------------------------

    def _initialise(self, v: Tensor, cond: Tensor | None = None,
                    clean: Tensor | None = None) -> None:
        """Anchors and standardisation from the first training batch of dequantised counts
        (voxels: noisy energies ``v``, their conditions and the ``clean`` energies, from which
        the preprocessing's ``u_0`` scale and threshold are fitted first)."""
        with torch.no_grad():
            if self.voxels:
                assert cond is not None and clean is not None
                self._fit_voxel_preprocessing(clean, cond)
            share = v / (v @ self.assignment)[:, self.pixel_channel]
            mean_share = share.mean(0)
            anchor = torch.stack([torch.where(self.pixel_channel == k, mean_share,
                                              torch.full_like(mean_share, -1.0)).argmax()
                                  for k in range(self.n_groups)])
            self.anchor.copy_(anchor)
            is_anchor = torch.zeros(self.n_pixels, dtype=torch.bool, device=v.device)
            is_anchor[anchor] = True
            self.keep.copy_(torch.nonzero(~is_anchor).squeeze(1))
            y, x, _ = self._to_network(v, cond, standardise=False)
            self.y_mean.copy_(y.mean(0))
            self.x_mean.copy_(x.mean(0))
            if v.shape[0] > 1:
                self.y_scale.copy_(y.std(0).clamp(min=1e-3))
                self.x_scale.copy_(x.std(0).clamp(min=1e-3))
        self.initialised.fill_(1)

    def _to_network(self, v: Tensor, cond: Tensor | None = None, standardise: bool = True
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """Dequantised counts ``v (B, P)`` -> stage-I values ``y (B, 5)``, stage-II values
        ``x (B, P - 5)`` and ``log |d(y, x) / dv|`` per shower (nats). Voxels: noisy energies
        (MeV) and their standardised conditions ``cond`` -> logit energy fractions ``(B, L)``,
        logit non-anchor shares ``(B, n - L)`` and the log-Jacobian."""
        if self.voxels:
            if cond is None:
                raise ValueError(f"{self.family}: voxel showers need their conditions (E_inc)")
            y, x, logdet = self._voxels_to_network(v, self.e_inc_mev(cond))
        else:
            y, x, logdet = self._counts_to_network(v)
        if standardise:
            y = (y - self.y_mean) / self.y_scale
            x = (x - self.x_mean) / self.x_scale
            logdet = logdet - torch.log(self.y_scale).sum() - torch.log(self.x_scale).sum()
        return y, x, logdet

    def _counts_to_network(self, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unstandardised ``(log s, logit f, log-Jacobian)`` of dequantised counts."""
        s = v @ self.assignment
        y = torch.log(s)
        f = v[:, self.keep] / s[:, self.pixel_channel[self.keep]]
        x = self.logit.forward(f.clamp(0.0, 1.0))
        logdet = (-(self.channel_size * y).sum(1)
                  + self.logit.log_abs_det_jacobian(f.clamp(0.0, 1.0)).sum(1))
        return y, x, logdet

    # -- voxels -----------------------------------------------------------------------------

    @property
    def voxel_preprocessing(self) -> VoxelPreprocessing:
        """The fitted voxel preprocessing (its numbers are buffers, saved with the weights)."""
        if not self.voxels:
            raise ValueError(f"{self.family}: an image model has no voxel preprocessing")
        sizes = tuple(int(v) for v in self.channel_size.tolist())
        return VoxelPreprocessing(sizes, float(self.vox_u0_scale), float(self.hparams["alpha"]),
                                  float(self.hparams["voxel_noise_mev"]),
                                  float(self.vox_threshold))

    def e_inc_mev(self, cond: Tensor) -> Tensor:
        """Incident energies ``(B,)`` in MeV from standardised conditions (the ``E_inc``
        column, GeV); ones without that column."""
        j = self.e_inc_column
        if j is None:
            return cond.new_ones(cond.shape[0])
        t = self.spec.transforms
        e_gev = cond[:, j] * float(t.condition_std[j]) + float(t.condition_mean[j])
        return (1e3 * e_gev).clamp(min=1e-6)

    def _log_energy(self, cond: Tensor) -> Tensor:
        """Standardised ``log10 E_inc`` ``(B, 1)``."""
        return ((torch.log10(self.e_inc_mev(cond)) - self.le_mean) / self.le_scale)[:, None]

    def _fit_voxel_preprocessing(self, clean: Tensor, cond: Tensor) -> None:
        """``u_0`` scale, threshold and the ``log10 E_inc`` standardisation from clean
        training energies ``(B, n)`` MeV and their standardised conditions."""
        e_inc = self.e_inc_mev(cond)
        threshold = self.hparams["voxel_threshold_mev"]
        fitted = VoxelPreprocessing.fit(
            clean, e_inc, tuple(int(v) for v in self.channel_size.tolist()),
            alpha=float(self.hparams["alpha"]), noise_mev=float(self.hparams["voxel_noise_mev"]),
            threshold_mev=None if threshold is None else float(threshold),
            margin=U0_MARGIN)
        self.vox_u0_scale.fill_(fitted.u0_scale)
        self.vox_threshold.fill_(fitted.threshold_mev)
        le = torch.log10(e_inc)
        self.le_mean.fill_(float(le.mean()))
        self.le_scale.fill_(float(le.std().clamp(min=1e-3)) if len(le) > 1 else 1.0)

    def _voxels_to_network(self, v: Tensor, e_inc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unstandardised ``(logit u, logit f, log |d(y, x) / dv|)`` of noisy energies ``v``
        (MeV, all > 0) given ``E_inc`` (MeV); the Jacobian of the module docstring."""
        pre = self.voxel_preprocessing
        e_layer = v @ self.assignment                                  # (B, L)
        u = pre.energy_fractions(e_layer, e_inc)
        tail = e_layer.flip(1).cumsum(1).flip(1)                       # E_k + ... + E_L
        f = (v[:, self.keep] / e_layer[:, self.pixel_channel[self.keep]]).clamp(0.0, 1.0)
        y, x = self.logit.forward(u), self.logit.forward(f)
        logdet = (self.logit.log_abs_det_jacobian(u).sum(1)
                  - torch.log(pre.u0_scale * e_inc) - torch.log(tail[:, :-1]).sum(1)
                  - ((self.channel_size - 1) * torch.log(e_layer)).sum(1)
                  + self.logit.log_abs_det_jacobian(f).sum(1))
        return y, x, logdet

    def _noisy(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The flow's continuous input: dequantised counts, or energies plus training noise."""
        if self.voxels:
            u = torch.rand(clean.shape, generator=generator, device=clean.device)
            return clean + float(self.hparams["voxel_noise_mev"]) * u
        return dequantise(clean, generator, self.width)

    def _noise_width(self) -> float:
        """Width of the noise cell per pixel / voxel (photons or MeV)."""
        return float(self.hparams["voxel_noise_mev"]) if self.voxels else self.width

    def _context1(self, cond: Tensor, species: Tensor | None) -> Tensor:
        """Stage-I context: the condition embedding (voxels: and standardised
        ``log10 E_inc``)."""
        c = self.embed1(cond, species if self.hparams["use_species"] else None)
        return torch.cat([c, self._log_energy(cond)], dim=1) if self.voxels else c

    def _context2(self, cond: Tensor, species: Tensor | None, y: Tensor) -> Tensor:
        """Stage-II context: a second condition embedding (voxels: and standardised
        ``log10 E_inc``) and the standardised stage-I values."""
        s = species if self.hparams["use_species"] else None
        parts = [self.embed2(cond, s), *([self._log_energy(cond)] if self.voxels else []), y]
        return torch.cat(parts, dim=1)

    def _counts(self, batch: TrainBatch) -> Tensor:
        """Photon counts ``(B, P)`` back from the batch's ``log1p`` images (exact integers);
        voxel energies ``(B, n)`` MeV."""
        values = Transforms.inverse_showers(batch.x.flatten(1))
        return values if self.voxels else values.round()

    # -- likelihood -------------------------------------------------------------------------

    def log_prob_dequantised(self, v: Tensor, cond: Tensor,
                             species: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``log p(v | c)`` of dequantised counts ``v (B, P)`` and its two stage terms
        (``log p_I``, ``log p_II``; the rest is the preprocessing Jacobian), nats."""
        y, x, logdet = self._to_network(v, cond)
        lp1 = self.stage1.log_prob(y, self._context1(cond, species))
        lp2 = self.stage2.log_prob(x, self._context2(cond, species, y))
        return lp1 + lp2 + logdet, lp1, lp2

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """Negative log-likelihood of the dequantised counts, nats per pixel."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        clean = self._counts(batch)
        v = self._noisy(clean)
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError(f"{self.family}: not trained yet (the standardisation is "
                                   f"fitted at the first training step)")
            self._initialise(v, batch.cond, clean)
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
        ``(N,)``. Voxel models take energies ``(N, n_voxels)`` in MeV: the same bound on the
        probability of the cell ``x + [0, delta)^n`` with ``delta = voxel_noise_mev`` (the
        density in MeV^-n of the noisy energies, times ``delta^n``)."""
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        if int(self.initialised) == 0:
            raise RuntimeError(f"{self.family}: not trained yet")
        was_training = self.training
        self.eval()
        device = self.anchor.device
        n = torch.as_tensor(np.asarray(photons)).reshape(-1, self.n_pixels)
        if self.voxels and bool((n < 0).any()):
            raise ValueError(f"{self.family}: voxel energies must be >= 0 MeV")
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        if len(n) != len(cond):
            raise ValueError(f"{len(n)} showers but {len(cond)} conditions")
        out = []
        for start in range(0, len(n), batch_size):
            rows = slice(start, start + batch_size)
            counts = n[rows].to(device).float() if self.voxels else n[rows].to(device)
            lps = torch.stack([
                self.log_prob_dequantised(self._noisy(counts, generator), cond[rows],
                                          species[rows])[0].double()
                for _ in range(draws)])
            bound = torch.logsumexp(lps, 0) - math.log(draws)
            out.append((bound + self.n_pixels * math.log(self._noise_width())).cpu())
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)

    # -- sampling ---------------------------------------------------------------------------

    def decode(self, noise: Tensor, cond: Tensor, species: Tensor | None = None) -> Tensor:
        """Log image ``log1p(v - delta / 2)`` ``(B, 1, H, W)`` (rounded by the readout to the
        nearest dequantisation cell) from standard-normal noise
        ``(B, P)``: stage I from the first 5 columns, stage II from the rest. Voxels:
        ``log1p`` energies ``(B, n)`` (MeV, thresholded), stage I from the first ``L``."""
        g = self.n_groups
        y = self.stage1.sample(noise[:, :g], self._context1(cond, species))
        x = self.stage2.sample(noise[:, g:], self._context2(cond, species, y))
        return self._to_voxels(y, x, cond) if self.voxels else self._to_image(y, x)

    def _shares(self, x: Tensor) -> Tensor:
        """Standardised stage-II values -> every pixel's / voxel's share of its channel /
        layer ``(B, P)``: the non-anchor shares shrunk when they exceed 1, the anchor the
        remainder."""
        f = self.logit.inverse(x * self.x_scale + self.x_mean)
        kept_channel = self.pixel_channel[self.keep]
        total = f @ self.assignment[self.keep]              # (B, groups) shares but anchors
        shrink = 1.0 / total.clamp(min=1.0)
        f = f * shrink[:, kept_channel]
        share = torch.zeros(x.shape[0], self.n_pixels, dtype=f.dtype, device=f.device)
        share = share.index_copy(1, self.keep, f)
        return share.index_copy(1, self.anchor, (1.0 - total * shrink).clamp(min=0.0))

    def _to_voxels(self, y: Tensor, x: Tensor, cond: Tensor) -> Tensor:
        """Standardised stage values -> ``log1p`` voxel energies ``(B, n)`` (MeV), voxels below
        ``max(threshold, noise)`` set to 0."""
        pre = self.voxel_preprocessing
        u = self.logit.inverse(y * self.y_scale + self.y_mean)
        e_layer = pre.layer_energies_from_fractions(u, self.e_inc_mev(cond))
        energies = pre.postprocess(self._shares(x) * e_layer[:, self.pixel_channel])
        return torch.log1p(energies)

    def _to_image(self, y: Tensor, x: Tensor) -> Tensor:
        """Standardised stage values -> ``log1p(max(v - delta / 2, 0))`` ``(B, 1, H, W)``."""
        s = torch.exp((y * self.y_scale + self.y_mean).clamp(max=30.0))
        share = self._shares(x)
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

    @torch.no_grad()
    def sample(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
               generator: torch.Generator | None = None, *, batch_size: int = 4096,
               rounding: bool = True, precision: str | None = None) -> np.ndarray:
        """As :meth:`Generator.sample`; voxel energies that are not 0 are at least the
        threshold (undoing float32 round-off of ``expm1(log1p(.))`` at the cut)."""
        out = super().sample(conditions, pdg, generator, batch_size=batch_size,
                             rounding=rounding, precision=precision)
        if self.voxels and out.size:
            cut = np.float32(max(float(self.vox_threshold),
                                 float(self.hparams["voxel_noise_mev"])))
            out = np.where(out > 0, np.maximum(out, cut), out).astype(np.float32)
        return out
