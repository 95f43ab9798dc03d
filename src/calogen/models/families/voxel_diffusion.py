"""Voxel diffusion (family ``"voxel-diffusion"``): a geometry-aware EDM for layered voxel
showers, in the spirit of CaloDREAM (Favaro et al., arXiv:2405.09629: a transformer over the
calorimeter layers, few-step sampling) and CaloDiffusion (Amram & Pedro, arXiv:2308.03876:
convolutions on the (layer, angle, radius) cylinder with circular padding in angle).

Data space (:class:`~calogen.models.nn.voxel_preprocessing.VoxelPreprocessing`, fitted on the
first training batch and saved with the model): CaloFlow's energy fractions ``u`` (one per
layer) and every voxel's share of its layer energy, both in logit space, then standardised per
feature with the training mean and standard deviation. After sampling the chain is inverted
and voxels below the threshold are set to 0.

Network: one token per layer, a per-layer linear embedding of ``(u_k, shares of layer k)``
plus a learned layer embedding (layers may differ in size, as in CaloChallenge dataset 1); a
transformer over the layer tokens whose normalisations are modulated by the condition
(standardised conditions, ``log E_inc``, species) and the noise level (adaptive LayerNorm with
zero-initialised gates, Peebles & Xie, arXiv:2212.09748); per-layer linear heads back to the
features. On geometries whose layers are identical (datasets 2 and 3) ``conv_channels > 0``
adds a 3-d convolution block on the share cylinder, circular in angle, whose output is added to
the share prediction.

Objective and sampler: EDM (Karras et al., arXiv:2206.00364) with its preconditioning and loss
weight (:func:`~calogen.models.nn.samplers.edm_preconditioning`), sampled by Heun (``2 steps -
1`` network calls; 5 steps = 9 calls by default) or Euler (``steps`` calls).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.data.transforms import Transforms
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.models.generator import (
    SAMPLER,
    STEPS,
    Generator,
    ModelSpec,
    SamplingOption,
    SamplingOptions,
    TrainBatch,
)
from calogen.models.nn.backbones import ConditionEmbedding, resolve_hparams
from calogen.models.nn.samplers import (
    edm_loss,
    edm_preconditioning,
    edm_sample,
    karras_sigma_list,
    network_calls,
)
from calogen.models.nn.voxel_preprocessing import VoxelPreprocessing
from calogen.models.registry import register_family

__all__ = ["VoxelDiffusion", "LayerTransformer", "CylinderConv"]

GEV_TO_MEV = 1000.0
"""Condition column ``E_inc`` is in GeV (:func:`calogen.particles.gun_conditions`); the
preprocessing works in MeV."""

REFERENCE_ENERGY_GEV = 1.0
"""Incident energy assumed when the model's conditions have no energy column: the total
energy is then modelled on a fixed scale instead of relative to ``E_inc``."""


def _geometry_index(sizes: list[int]) -> tuple[Tensor, Tensor]:
    """Index tensors between the feature vector ``[u_1..u_L, shares (n_voxels)]`` and the
    padded per-layer grid ``(L, 1 + n_max)`` (column 0 is ``u_k``, then the layer's shares).

    Returns ``gather (L, 1 + n_max)`` positions in the features extended by one zero column
    (padding points at it) and ``scatter (L + n_voxels,)`` positions of each feature in the
    flattened grid."""
    n_layers, n_max, n_vox = len(sizes), max(sizes), sum(sizes)
    gather = torch.full((n_layers, 1 + n_max), n_layers + n_vox, dtype=torch.int64)
    scatter = torch.empty(n_layers + n_vox, dtype=torch.int64)
    start = 0
    for k, n in enumerate(sizes):
        gather[k, 0] = k
        scatter[k] = k * (1 + n_max)
        idx = torch.arange(n)
        gather[k, 1:1 + n] = n_layers + start + idx
        scatter[n_layers + start + idx] = k * (1 + n_max) + 1 + idx
        start += n
    return gather, scatter


class _AdaBlock(nn.Module):
    """Pre-norm transformer block whose LayerNorms are shifted, scaled and gated by a
    condition vector (adaLN-zero: the gates start at 0, so the block starts as the identity)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """``h (B, L, d)`` tokens, ``c (B, d)`` condition -> ``(B, L, d)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).unsqueeze(1).chunk(6, -1)
        a = self.norm1(h) * (1 + scale1) + shift1
        h = h + gate1 * self.attn(a, a, a, need_weights=False)[0]
        m = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(m)


class LayerTransformer(nn.Module):
    """Features ``(B, L + n_voxels)`` -> features, one token per calorimeter layer.

    Args:
        layer_sizes: voxels per layer (any sizes).
        width, depth, heads, mlp_ratio: the transformer.
    The condition ``c (B, width)`` modulates every block and the output normalisation."""

    gather: Tensor
    scatter: Tensor

    def __init__(self, layer_sizes: list[int], width: int, depth: int, heads: int,
                 mlp_ratio: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        gather, scatter = _geometry_index(layer_sizes)
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("scatter", scatter, persistent=False)
        n_layers, slots = gather.shape
        bound = 1 / math.sqrt(max(layer_sizes) + 1)
        self.embed_weight = nn.Parameter(torch.empty(n_layers, slots, width).uniform_(-bound,
                                                                                       bound))
        self.embed_bias = nn.Parameter(torch.zeros(n_layers, width))
        self.layer_embedding = nn.Parameter(0.02 * torch.randn(n_layers, width))
        self.blocks = nn.ModuleList(_AdaBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        nn.init.zeros_(self.out_modulation.weight)
        nn.init.zeros_(self.out_modulation.bias)
        self.head_weight = nn.Parameter(torch.zeros(n_layers, width, slots))
        self.head_bias = nn.Parameter(torch.zeros(n_layers, slots))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)[:, self.gather]  # (B, L, S)
        h = torch.einsum("bls,lsd->bld", padded, self.embed_weight) + self.embed_bias
        h = h + self.layer_embedding
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_modulation(c).unsqueeze(1).chunk(2, -1)
        h = self.norm_out(h) * (1 + scale) + shift
        out = torch.einsum("bld,lds->bls", h, self.head_weight) + self.head_bias
        return out.flatten(1)[:, self.scatter]


class CylinderConv(nn.Module):
    """3-d convolutions on the share cylinder ``(layer, angle, radius)`` of a geometry with
    identical layers: zero padding in layer and radius, circular padding in angle
    (CaloDiffusion, arXiv:2308.03876). ``(B, n_voxels)`` -> ``(B, n_voxels)``, starting at 0."""

    def __init__(self, shape: tuple[int, int, int], channels: int, cond_width: int) -> None:
        super().__init__()
        self.shape = shape
        self.conv_in = nn.Conv3d(1, channels, 3)
        self.cond = nn.Linear(cond_width, channels)
        self.conv_mid = nn.Conv3d(channels, channels, 3)
        self.conv_out = nn.Conv3d(channels, 1, 3, bias=False)
        nn.init.zeros_(self.conv_out.weight)

    @staticmethod
    def _pad(v: Tensor) -> Tensor:
        """Pad ``(B, C, L, A, R)`` by one: circular in angle, zeros in layer and radius."""
        v = torch.cat([v[:, :, :, -1:], v, v[:, :, :, :1]], dim=3)
        return F.pad(v, (1, 1, 0, 0, 1, 1))

    def forward(self, shares: Tensor, c: Tensor) -> Tensor:
        v = shares.reshape(-1, 1, *self.shape)
        v = F.silu(self.conv_in(self._pad(v)) + self.cond(c)[:, :, None, None, None])
        v = F.silu(self.conv_mid(self._pad(v)))
        return self.conv_out(self._pad(v)).flatten(1)


def _noise_features(c_noise: Tensor, width: int) -> Tensor:
    """Sinusoidal features ``(B, width)`` of the EDM noise input ``c_noise (B,)``."""
    half = width // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=c_noise.device))
    arg = c_noise.float()[:, None] * freqs
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


@register_family
class VoxelDiffusion(SamplingOptions, Generator):
    """Geometry-aware EDM on layered voxels (module docstring). Hparams: ``width`` (128),
    ``depth`` (3), ``heads`` (4), ``mlp_ratio`` (2), ``cond_dim`` (64), ``use_species``,
    ``conv_channels`` (0 = off; identical layers only), ``energy_column`` (``"E_inc"``, GeV),
    preprocessing ``alpha`` (1e-6), ``noise_mev`` (training noise width, 1e-3 MeV),
    ``threshold_mev`` (``None``: the smallest positive voxel of the first training batch);
    EDM ``sigma_data`` (1, the features are standardised), ``p_mean`` (-1.2), ``p_std`` (1.2),
    ``sigma_min`` (0.002), ``sigma_max`` (80), ``rho`` (7); sampling ``steps`` (5) and
    ``sampler`` (``"heun"``: 9 network calls; ``"euler"``)."""

    family: ClassVar[str] = "voxel-diffusion"
    category: ClassVar[str] = "diffusion"
    shapes: ClassVar[frozenset[str]] = frozenset({"voxels"})
    one_step: ClassVar[bool] = False
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (STEPS, SAMPLER)
    samplers: ClassVar[tuple[str, ...]] = ("heun", "euler")
    defaults: ClassVar[dict[str, Any]] = {
        "width": 128, "depth": 3, "heads": 4, "mlp_ratio": 2, "cond_dim": 64,
        "use_species": False, "conv_channels": 0, "energy_column": "E_inc",
        "alpha": 1e-6, "noise_mev": 1e-3, "threshold_mev": None,
        "sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2, "sigma_min": 0.002,
        "sigma_max": 80.0, "rho": 7.0, "steps": 5, "sampler": "heun",
    }

    initialised: Tensor
    feature_mean: Tensor
    feature_std: Tensor
    log_energy: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        hp = resolve_hparams(self.family, self.defaults, hparams)
        super().__init__(spec, **hp)
        geometry = spec.geometry
        if not isinstance(geometry, LayeredVoxelGeometry):
            raise ValueError(f"{self.family}: needs a layered voxel geometry, got "
                             f"{type(geometry).__name__}")
        self.layer_sizes = [s.stop - s.start for s in geometry.layer_slices()]
        self.n_layers = len(self.layer_sizes)
        self.n_features = self.n_layers + sum(self.layer_sizes)
        width, cond_dim = int(hp["width"]), int(hp["cond_dim"])
        for key in ("width", "depth", "heads", "mlp_ratio", "cond_dim"):
            if int(hp[key]) < 1:
                raise ValueError(f"{self.family}: hparam {key!r} must be >= 1, got {hp[key]}")
        if width % 2:
            raise ValueError(f"{self.family}: hparam 'width' must be even, got {width}")
        threshold = hp["threshold_mev"]
        if threshold is not None and not float(threshold) >= 0:
            raise ValueError(f"{self.family}: hparam 'threshold_mev' must be >= 0 or None")
        if not float(hp["noise_mev"]) >= 0:
            raise ValueError(f"{self.family}: hparam 'noise_mev' must be >= 0")
        columns = list(spec.transforms.condition_columns)
        self.energy_index = (columns.index(hp["energy_column"])
                             if hp["energy_column"] in columns else None)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        self.register_buffer("log_energy", torch.tensor([0.0, 1.0]))  # mean, std of ln E (GeV)
        self.preprocessing: VoxelPreprocessing | None = None
        n_cond = spec.n_conditions + (1 if self.energy_index is not None else 0)
        self.cond_embed = ConditionEmbedding(n_cond, spec.n_species, cond_dim,
                                             bool(hp["use_species"]))
        self.noise_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(),
                                         nn.Linear(width, width))
        self.cond_proj = nn.Linear(cond_dim, width)
        self.net = LayerTransformer(self.layer_sizes, width, int(hp["depth"]), int(hp["heads"]),
                                    int(hp["mlp_ratio"]))
        self.conv: CylinderConv | None = None
        if int(hp["conv_channels"]) > 0:
            layers = geometry.layers
            if len({(layer.r_edges_mm, layer.n_alpha) for layer in layers}) != 1:
                raise ValueError(f"{self.family}: hparam 'conv_channels' needs identical "
                                 f"layers (CaloChallenge datasets 2 and 3); this geometry's "
                                 f"layers differ: use conv_channels=0")
            shape = (self.n_layers, layers[0].n_alpha, layers[0].n_r)
            self.conv = CylinderConv(shape, int(hp["conv_channels"]), width)
        self._check_sampling(hp)

    # -- conditions and preprocessing -------------------------------------------------------

    def _energy_gev(self, cond: Tensor) -> Tensor:
        """Incident energies ``(B,)`` GeV from standardised conditions (the reference energy
        when the model has no energy column)."""
        if self.energy_index is None:
            return cond.new_full((cond.shape[0],), REFERENCE_ENERGY_GEV)
        t = self.spec.transforms
        i = self.energy_index
        e = cond[:, i] * float(t.condition_std[i]) + float(t.condition_mean[i])
        return e.clamp(min=1e-9)

    def _context(self, cond: Tensor, species: Tensor | None) -> Tensor:
        """Condition vector ``(B, width)`` (before the noise level is added)."""
        feats = cond
        if self.energy_index is not None:
            log_e = (self._energy_gev(cond).log() - self.log_energy[0]) / self.log_energy[1]
            feats = torch.cat([cond, log_e[:, None]], dim=1)
        s = species if self.hparams["use_species"] else None
        return self.cond_proj(self.cond_embed(feats, s))

    def _fit(self, showers: Tensor, e_mev: Tensor) -> None:
        """Fit the preprocessing and the feature standardisation on the first batch."""
        hp = self.hparams
        threshold = hp["threshold_mev"]
        self.preprocessing = VoxelPreprocessing.fit(
            showers, e_mev, self.layer_sizes, alpha=float(hp["alpha"]),
            noise_mev=float(hp["noise_mev"]),
            threshold_mev=None if threshold is None else float(threshold))
        with torch.no_grad():
            z = self._features(showers, e_mev, None, standardise=False)
            self.feature_mean.copy_(z.mean(0))
            if len(z) > 1:
                self.feature_std.copy_(z.std(0).clamp(min=1e-3))
                log_e = (e_mev / GEV_TO_MEV).log()
                self.log_energy.copy_(torch.stack([log_e.mean(),
                                                   log_e.std().clamp(min=1e-3)]).float())
            else:
                self.log_energy[0] = float((e_mev / GEV_TO_MEV).log().mean())
        self.initialised.fill_(1)

    def _features(self, showers: Tensor, e_mev: Tensor, generator: torch.Generator | None,
                  standardise: bool = True) -> Tensor:
        """Showers ``(B, n_voxels)`` MeV -> features ``(B, L + n_voxels)`` (noisy, logit,
        standardised), computed in float64."""
        assert self.preprocessing is not None
        u, s = self.preprocessing.forward(showers.double(), e_mev.double(), generator)
        z = torch.cat([u, s], dim=1).float()
        return (z - self.feature_mean) / self.feature_std if standardise else z

    def _showers(self, z: Tensor, e_mev: Tensor) -> Tensor:
        """Standardised features -> thresholded showers ``(B, n_voxels)`` MeV."""
        assert self.preprocessing is not None
        f = (z * self.feature_std + self.feature_mean).double()
        out = self.preprocessing.inverse(f[:, :self.n_layers], f[:, self.n_layers:],
                                         e_mev.double())
        return out.float()

    # -- the denoiser -----------------------------------------------------------------------

    def denoise(self, x: Tensor, sigma: Tensor, c: Tensor) -> Tensor:
        """Preconditioned denoiser ``D(x; sigma)`` on features ``(B, F)``, ``sigma (B,)``,
        condition vector ``c (B, width)``."""
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, float(self.hparams["sigma_data"]))
        cc = c + self.noise_embed(_noise_features(c_noise, int(self.hparams["width"])))
        x_in = c_in[:, None] * x
        f = self.net(x_in, cc)
        if self.conv is not None:
            f = torch.cat([f[:, :self.n_layers],
                           f[:, self.n_layers:] + self.conv(x_in[:, self.n_layers:], cc)], dim=1)
        return c_skip[:, None] * x + c_out[:, None] * f

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """EDM loss on the standardised features (per feature, averaged)."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        showers = Transforms.inverse_showers(batch.x)
        e_mev = self._energy_gev(batch.cond) * GEV_TO_MEV
        if int(self.initialised) == 0 or self.preprocessing is None:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError(f"{self.family}: not trained yet (the preprocessing is "
                                   f"fitted at the first training step)")
            self._fit(showers, e_mev)
        x0 = self._features(showers, e_mev, None)
        hp = self.hparams
        c = self._context(batch.cond, batch.species)
        loss, err = edm_loss(lambda noisy, sigma: self.denoise(noisy, sigma, c), x0,
                             float(hp["p_mean"]), float(hp["p_std"]), float(hp["sigma_data"]))
        return loss, {"loss": loss.item(), "mse": err.mean().item()}

    # -- sampling ---------------------------------------------------------------------------

    def sigmas(self) -> list[float]:
        """The Karras noise levels of the current sampling options."""
        hp = self.hparams
        return karras_sigma_list(int(hp["steps"]), float(hp["sigma_min"]),
                                 float(hp["sigma_max"]), float(hp["rho"]))

    def network_calls(self) -> int:
        return network_calls("edm", int(self.hparams["steps"]), str(self.hparams["sampler"]))

    def exportable(self) -> bool:
        return False

    def sample_showers(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Showers ``(B, n_voxels)`` MeV, thresholded, for standardised conditions."""
        if int(self.initialised) == 0 or self.preprocessing is None:
            raise RuntimeError(f"{self.family}: not trained yet")
        noise = torch.randn((cond.shape[0], self.n_features), generator=generator,
                            device=cond.device)
        c = self._context(cond, species)
        z = edm_sample(lambda x, s: self.denoise(x, s, c), noise, self.sigmas(),
                       heun=self.hparams["sampler"] == "heun", generator=generator)
        return self._showers(z, self._energy_gev(cond) * GEV_TO_MEV)

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """``log1p`` of :meth:`sample_showers` (the network space of voxel batches)."""
        return torch.log1p(self.sample_showers(cond, species, generator))

    @torch.no_grad()
    def sample(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
               generator: torch.Generator | None = None, *, batch_size: int = 4096,
               rounding: bool = True, precision: str | None = None) -> np.ndarray:
        """Voxel energies ``(N, n_voxels)`` float32 MeV for physical conditions; every voxel is
        0 or at least the threshold (``rounding`` is ignored: energies are never rounded;
        ``precision`` too: the diffusion runs in float32)."""
        was_training = self.training
        self.eval()
        device = self.feature_mean.device
        cond = self.spec.transforms.conditions(conditions).to(device)
        species = self.spec.transforms.species(pdg).to(device)
        out = [self.sample_showers(cond[i:i + batch_size], species[i:i + batch_size],
                                   generator).cpu()
               for i in range(0, len(cond), batch_size)]
        self.train(was_training)
        if not out:
            return np.zeros((0, *self.spec.shape), np.float32)
        return torch.cat(out).numpy()

    # -- persistence ------------------------------------------------------------------------

    def extra_state_dict(self) -> dict[str, Any]:
        return {} if self.preprocessing is None else {"preprocessing":
                                                      self.preprocessing.to_dict()}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if "preprocessing" not in state:
            self.preprocessing = None
            return
        prep = VoxelPreprocessing.from_dict(state["preprocessing"])
        if list(prep.layer_sizes) != self.layer_sizes:
            raise ValueError(f"preprocessing layer sizes {list(prep.layer_sizes)} differ from "
                             f"the geometry's {self.layer_sizes}")
        self.preprocessing = prep
