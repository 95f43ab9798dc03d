"""Inductive CaloFlow, layer by layer (family ``"icaloflow"``; Buckley, Krause, Pang, Shih,
arXiv:2305.11934), for voxel geometries whose layers all have the same binning (CaloChallenge
2022 datasets 2 and 3: 45 layers of 16 angular x 9 radial bins).

Preprocessing (:class:`~calogen.models.nn.voxel_preprocessing.VoxelPreprocessing`, fitted at the
first training step and saved with the model): training noise ``U[0, noise_mev)`` per voxel,
the layer energies as CaloFlow's energy fractions ``u``, each voxel's share of its layer, both
through the logit (margin ``alpha``) and standardised. A layer's ``M`` shares sum to 1, so one
position (the *anchor*, the same in every layer: the largest mean share of the first training
batch) is left out and recovered as ``1 - sum(others)``; with it the map from voxels to
``(u, shares)`` is a bijection and the likelihood is exact. Three conditional flows:

* **flow I**: ``u`` (``L`` values) given the conditions and ``log E_inc`` (standardised);
* **flow II**: the first layer's ``M - 1`` shares given ``u`` and the conditions;
* **flow III**: *one* flow shared by the layers ``n = 1 … L - 1``: layer ``n``'s shares given
  layer ``n - 1``'s, the one-hot layer index, ``log(1 + E_n)`` and ``log(1 + E_{n-1})`` (MeV,
  standardised per layer) and the conditions. Training treats every pair ``(n - 1, n)`` of a
  shower as a sample (one batched pass); sampling goes layer by layer.

The density of the noisy showers ``v`` (MeV^-V) follows by the change of variables

    log p(v | c) = log p_I + log p_II + sum_n log p_III(n)
                   - (M - 1) sum_n log E_n - log(s E_inc) - sum_{k < L-1} log R_k
                   + sum log|d logit / d f| - sum log sigma

(``R_k = E_k + … + E_{L-1}``; ``s`` the fitted ``u_0`` scale; ``sigma`` the standardisation
scales): :meth:`ICaloFlow.log_likelihood` returns it per shower.

Incident energies come from the condition column ``E_inc`` (GeV; ``E`` when there is none) and
are clamped below at the smallest one of the batch the preprocessing was fitted on (``u_0``
divides by ``E_inc``, which must be positive). Sampling returns energies (MeV) with every voxel
below ``max(threshold, noise_mev)`` set to 0; the threshold is the smallest positive voxel
energy of the fitting batch unless the hparam ``threshold_mev`` is given.

``icaloflow`` is the MAF teacher (exact likelihood in one pass, sampling ``M - 1`` passes per
flow layer and calorimeter layer); ``icaloflow-student`` distils IAF flows II and III from it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.models.generator import ImageGenerator, ModelSpec, TrainBatch
from calogen.models.nn.flow_preprocessing import LogitTransform
from calogen.models.nn.flows import ELEMENTWISE, ConditionalFlow
from calogen.models.nn.voxel_preprocessing import VoxelPreprocessing
from calogen.models.registry import register_family

__all__ = ["ARCHITECTURE_KEYS", "ENERGY_COLUMNS", "ICaloFlow", "uniform_layer_shape"]

ENERGY_COLUMNS: tuple[str, ...] = ("E_inc", "E")
"""Incident-energy condition columns (GeV), in order of preference."""

ARCHITECTURE_KEYS: tuple[str, ...] = (
    "flow1_layers", "flow1_hidden", "flow1_elementwise", "bins", "flow2_layers",
    "flow2_hidden", "flow3_layers", "flow3_hidden", "flow23_elementwise", "passes", "alpha",
    "noise_mev", "threshold_mev")
"""Hparams a student shares with its teacher (everything but the arrangement)."""

_GEV = 1000.0  # MeV per GeV


def uniform_layer_shape(spec: ModelSpec, family: str) -> tuple[int, int]:
    """``(layers L, voxels per layer M)`` of a voxel geometry whose layers share one binning;
    ``ValueError`` naming the expectation otherwise."""
    geometry = spec.geometry
    if not isinstance(geometry, LayeredVoxelGeometry):
        raise ValueError(f"{family}: needs a layered voxel geometry, got "
                         f"{type(geometry).__name__}")
    bins = {(layer.n_alpha, layer.n_r) for layer in geometry.layers}
    if len(bins) != 1:
        raise ValueError(f"{family}: geometry {geometry.name!r}: every layer must have the same "
                         f"angular x radial binning (as CaloChallenge datasets 2 and 3); found "
                         f"(n_alpha, n_r) = {sorted(bins)}")
    (n_alpha, n_r), = bins
    if geometry.n_layers < 2 or n_alpha * n_r < 2:
        raise ValueError(f"{family}: geometry {geometry.name!r}: needs >= 2 layers of >= 2 "
                         f"voxels, got {geometry.n_layers} x {n_alpha * n_r}")
    return geometry.n_layers, n_alpha * n_r


@register_family
class ICaloFlow(ImageGenerator):
    """Three conditional flows, layer by layer (module docstring). Hparams: ``flow1_layers``
    (6), ``flow1_hidden`` ([64, 64]), ``flow1_elementwise`` (``"spline"``), ``bins`` (8),
    ``arrangement`` (``"maf"``), ``flow2_layers`` (4), ``flow2_hidden`` ([256, 256]),
    ``flow3_layers`` (4), ``flow3_hidden`` ([256, 256]), ``flow23_elementwise``
    (``"affine"``), ``passes`` (0 = fully autoregressive sampling of flows II/III; ``k``
    blocks), ``alpha`` (logit margin, 1e-6), ``noise_mev`` (training noise, 1e-3 MeV),
    ``threshold_mev`` (``None``: fitted from the data)."""

    family: ClassVar[str] = "icaloflow"
    category: ClassVar[str] = "flow"
    shapes: ClassVar[frozenset[str]] = frozenset({"voxels"})
    one_step: ClassVar[bool] = False
    validate_by_sampling: ClassVar[bool] = False   # MAF flows sample voxel by voxel
    defaults = {
        "flow1_layers": 6, "flow1_hidden": [64, 64], "flow1_elementwise": "spline", "bins": 8,
        "arrangement": "maf", "flow2_layers": 4, "flow2_hidden": [256, 256],
        "flow3_layers": 4, "flow3_hidden": [256, 256], "flow23_elementwise": "affine",
        "passes": 0, "alpha": 1e-6, "noise_mev": 1e-3, "threshold_mev": None,
        "readout": "round", "output": "linear",
    }
    allowed_arrangements: ClassVar[tuple[str, ...]] = ("maf",)
    flow1_arrangement: ClassVar[str] = "maf"

    initialised: Tensor
    keep: Tensor
    anchor: Tensor
    u_mean: Tensor
    u_scale: Tensor
    x_mean: Tensor
    x_scale: Tensor
    le_mean: Tensor
    le_scale: Tensor
    loge_stats: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        super().__init__(spec, **hparams)
        hp = self.hparams
        if hp["arrangement"] not in self.allowed_arrangements:
            raise ValueError(f"{self.family}: hparam 'arrangement' must be one of "
                             f"{self.allowed_arrangements}, got {hp['arrangement']!r}")
        for key in ("flow1_elementwise", "flow23_elementwise"):
            if hp[key] not in ELEMENTWISE:
                raise ValueError(f"{self.family}: hparam {key!r} must be one of {ELEMENTWISE}")
        if not float(hp["noise_mev"]) >= 0 or (hp["threshold_mev"] is not None
                                               and not float(hp["threshold_mev"]) >= 0):
            raise ValueError(f"{self.family}: hparams 'noise_mev' and 'threshold_mev' must be "
                             f">= 0 (threshold_mev None: fitted)")
        self.logit = LogitTransform(float(hp["alpha"]))
        n_layers, per_layer = uniform_layer_shape(spec, self.family)
        self.n_layers, self.per_layer = n_layers, per_layer
        self.energy_index = self._energy_column(spec)
        k = spec.n_conditions + 1
        m1 = per_layer - 1
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        self.register_buffer("anchor", torch.zeros((), dtype=torch.int64))
        self.register_buffer("keep", torch.arange(1, per_layer, dtype=torch.int64))
        self.register_buffer("u_mean", torch.zeros(n_layers))
        self.register_buffer("u_scale", torch.ones(n_layers))
        self.register_buffer("x_mean", torch.zeros(n_layers, m1))
        self.register_buffer("x_scale", torch.ones(n_layers, m1))
        self.register_buffer("le_mean", torch.zeros(n_layers))
        self.register_buffer("le_scale", torch.ones(n_layers))
        self.register_buffer("loge_stats", torch.tensor([0.0, 1.0]))
        self._prep: VoxelPreprocessing | None = None
        self._e_min_mev = 0.0
        arrangement, kind, bins = str(hp["arrangement"]), str(hp["flow23_elementwise"]), \
            int(hp["bins"])
        passes = int(hp["passes"]) or None
        self.flow1 = ConditionalFlow(n_layers, k, int(hp["flow1_layers"]), hp["flow1_hidden"],
                                     self.flow1_arrangement, str(hp["flow1_elementwise"]),
                                     bins)
        self.flow2 = ConditionalFlow(m1, k + n_layers, int(hp["flow2_layers"]),
                                     hp["flow2_hidden"], arrangement, kind, bins, passes)
        self.flow3 = ConditionalFlow(m1, k + (n_layers - 1) + 2 + m1, int(hp["flow3_layers"]),
                                     hp["flow3_hidden"], arrangement, kind, bins, passes)

    def _energy_column(self, spec: ModelSpec) -> int:
        columns = list(spec.transforms.condition_columns)
        for name in ENERGY_COLUMNS:
            if name in columns:
                return columns.index(name)
        raise ValueError(f"{self.family}: the conditions need an incident-energy column (one of "
                         f"{list(ENERGY_COLUMNS)}, GeV); found {columns}")

    # -- sizes --------------------------------------------------------------------------------

    @property
    def n_voxels(self) -> int:
        return self.n_layers * self.per_layer

    @property
    def latent_dim(self) -> int:
        """Noise size: ``L`` energy fractions + ``L (M - 1)`` shares = the voxel count."""
        return self.n_voxels

    def network_calls(self) -> int:
        """Hyper-network passes per sampled shower."""
        calls1 = int(self.hparams["flow1_layers"]) * (1 if self.flow1.fast_sampling
                                                      else self.n_layers)
        passes = 1 if self.flow2.fast_sampling else (int(self.hparams["passes"])
                                                     or self.per_layer - 1)
        return (calls1 + int(self.hparams["flow2_layers"]) * passes
                + int(self.hparams["flow3_layers"]) * passes * (self.n_layers - 1))

    @property
    def preprocessing(self) -> VoxelPreprocessing:
        """The fitted preprocessing; ``RuntimeError`` before the first training step."""
        if self._prep is None or int(self.initialised) == 0:
            raise RuntimeError(f"{self.family}: not trained yet (the preprocessing is fitted at "
                               f"the first training step)")
        return self._prep

    def extra_state_dict(self) -> dict[str, Any]:
        """The fitted preprocessing (:meth:`VoxelPreprocessing.to_dict`) and the smallest
        incident energy (MeV) the conditions are clamped to."""
        if self._prep is None:
            return {}
        return {"preprocessing": self._prep.to_dict(), "e_inc_min_mev": self._e_min_mev}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if "preprocessing" in state:
            self._prep = VoxelPreprocessing.from_dict(state["preprocessing"])
            if self._prep.layer_sizes != (self.per_layer,) * self.n_layers:
                raise ValueError(f"{self.family}: saved preprocessing has layer sizes "
                                 f"{self._prep.layer_sizes}, the geometry "
                                 f"{(self.per_layer,) * self.n_layers}")
            self._e_min_mev = float(state.get("e_inc_min_mev", 0.0))

    # -- preprocessing ------------------------------------------------------------------------

    def e_inc_mev(self, cond: Tensor) -> Tensor:
        """Incident energies ``(B,)`` float64 (MeV) from standardised conditions, clamped below
        at the fitted smallest incident energy."""
        t = self.spec.transforms
        j = self.energy_index
        e = (cond[:, j].double() * t.condition_std[j] + t.condition_mean[j]) * _GEV
        return e.clamp(min=self._e_min_mev) if self._e_min_mev > 0 else e

    def _showers(self, batch: TrainBatch) -> Tensor:
        """Voxel energies ``(B, V)`` float64 (MeV) from the batch's ``log1p`` values."""
        return torch.expm1(batch.x.double().flatten(1)).clamp(min=0.0)

    def _initialise(self, x: Tensor, cond: Tensor) -> None:
        """Fit the preprocessing, anchor and standardisation on the first training batch."""
        hp = self.hparams
        with torch.no_grad():
            t = self.spec.transforms
            j = self.energy_index
            e_raw = (cond[:, j].double() * t.condition_std[j] + t.condition_mean[j]) * _GEV
            positive = e_raw[e_raw > 0]
            if positive.numel() == 0:
                raise ValueError(f"{self.family}: no positive incident energy "
                                 f"({t.condition_columns[j]!r}, GeV) in the first batch")
            self._e_min_mev = float(positive.min())
            e_inc = e_raw.clamp(min=self._e_min_mev)
            threshold = hp["threshold_mev"]
            self._prep = VoxelPreprocessing.fit(
                x.cpu(), e_inc.cpu(), (self.per_layer,) * self.n_layers,
                alpha=float(hp["alpha"]), noise_mev=float(hp["noise_mev"]),
                threshold_mev=None if threshold is None else float(threshold))
            v = self._prep.add_noise(x)
            share = self._prep.shares(v).view(len(v), self.n_layers, self.per_layer)
            anchor = share.mean((0, 1)).argmax()
            self.anchor.copy_(anchor)
            keep = torch.arange(self.per_layer, device=x.device)
            self.keep.copy_(keep[keep != anchor])
            self.initialised.fill_(1)
            yu, xs, le, loge, _ = self._to_network(v, e_inc, standardise=False)
            self.u_mean.copy_(yu.mean(0))
            self.x_mean.copy_(xs.mean(0))
            self.le_mean.copy_(le.mean(0))
            self.loge_stats[0] = loge.mean()
            if len(v) > 1:
                self.u_scale.copy_(yu.std(0).clamp(min=1e-3))
                self.x_scale.copy_(xs.std(0).clamp(min=1e-3))
                self.le_scale.copy_(le.std(0).clamp(min=1e-3))
                self.loge_stats[1] = loge.std().clamp(min=1e-3)

    def _to_network(self, v: Tensor, e_inc: Tensor, standardise: bool = True
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Noisy showers ``v (B, V)`` MeV and ``E_inc (B,)`` MeV -> flow I values ``(B, L)``,
        non-anchor shares ``(B, L, M - 1)``, ``log(1 + E_n)`` ``(B, L)``, ``log E_inc (B,)``
        (the flows' dtype, standardised when asked) and ``log |d(u, shares) / dv|`` ``(B,)``
        (float64)."""
        prep = self.preprocessing
        b = len(v)
        energy = prep.layer_energies(v)
        u = prep.energy_fractions(energy, e_inc)
        yu = self.logit.forward(u)
        tail = energy.flip(1).cumsum(1).flip(1)
        f = prep.shares(v, energy).view(b, self.n_layers, self.per_layer)[:, :, self.keep]
        f = f.clamp(0.0, 1.0)
        xs = self.logit.forward(f)
        logdet = (self.logit.log_abs_det_jacobian(u).sum(1)
                  + self.logit.log_abs_det_jacobian(f).sum((1, 2))
                  - (self.per_layer - 1) * torch.log(energy.clamp(min=1e-300)).sum(1)
                  - torch.log(prep.u0_scale * e_inc)
                  - torch.log(tail[:, :-1].clamp(min=1e-300)).sum(1))
        le = torch.log1p(energy)
        loge = torch.log(e_inc)
        if standardise:
            yu = (yu - self.u_mean) / self.u_scale
            xs = (xs - self.x_mean) / self.x_scale
            le = (le - self.le_mean) / self.le_scale
            loge = (loge - self.loge_stats[0]) / self.loge_stats[1]
            logdet = (logdet - torch.log(self.u_scale.double()).sum()
                      - torch.log(self.x_scale.double()).sum())
        dtype = self.u_mean.dtype  # the flows' (float32 unless the model was cast)
        return yu.to(dtype), xs.to(dtype), le.to(dtype), loge.to(dtype), logdet

    # -- contexts -----------------------------------------------------------------------------

    def _context1(self, cond: Tensor, loge: Tensor) -> Tensor:
        return torch.cat([cond.to(loge.dtype), loge[:, None]], 1)

    def _context2(self, c1: Tensor, yu: Tensor) -> Tensor:
        return torch.cat([c1, yu], 1)

    def _context3(self, c1: Tensor, prev: Tensor, le: Tensor, layers: Tensor) -> Tensor:
        """Flow III context of layers ``layers`` (``(P,)`` indices 1..L-1): the one-hot index,
        the standardised ``log(1 + E)`` of the layer and the one before, the previous layer's
        shares ``prev (B, P, M - 1)`` and the conditions ``c1 (B, k + 1)``; ``(B * P, ...)``."""
        b, p = prev.shape[:2]
        onehot = torch.nn.functional.one_hot(layers - 1, self.n_layers - 1).to(prev)
        parts = [c1[:, None].expand(b, p, c1.shape[1]), onehot[None].expand(b, p, -1),
                 le[:, layers, None], le[:, layers - 1, None], prev]
        return torch.cat(parts, 2).reshape(b * p, -1)

    # -- likelihood ---------------------------------------------------------------------------

    def log_prob_noisy(self, v: Tensor, cond: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``log p(v | c)`` (nats, float64) of noisy showers ``v (B, V)`` MeV and its flow terms
        ``(log p_I, log p_II, log p_III)``."""
        e_inc = self.e_inc_mev(cond)
        yu, xs, le, loge, logdet = self._to_network(v, e_inc)
        c1 = self._context1(cond, loge)
        lp1 = self.flow1.log_prob(yu, c1)
        lp2 = self.flow2.log_prob(xs[:, 0], self._context2(c1, yu))
        layers = torch.arange(1, self.n_layers, device=v.device)
        c3 = self._context3(c1, xs[:, :-1], le, layers)
        lp3 = self.flow3.log_prob(xs[:, 1:].reshape(-1, self.per_layer - 1), c3)
        lp3 = lp3.view(len(v), self.n_layers - 1).sum(1)
        total = lp1.double() + lp2.double() + lp3.double() + logdet
        return total, lp1, lp2, lp3

    def _noisy(self, batch: TrainBatch) -> Tensor:
        x = self._showers(batch)
        if int(self.initialised) == 0:
            if not (self.training and torch.is_grad_enabled()):
                raise RuntimeError(f"{self.family}: not trained yet (the preprocessing is "
                                   f"fitted at the first training step)")
            self._initialise(x, batch.cond)
        return self.preprocessing.add_noise(x)

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        """Negative log-likelihood of the noisy showers, nats per voxel."""
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        v = self._noisy(batch)
        lp, lp1, lp2, lp3 = self.log_prob_noisy(v, batch.cond)
        loss = (-lp.mean() / self.n_voxels).float()
        return loss, {"loss": loss.item(), "nll_flow1": -lp1.mean().item(),
                      "nll_flow2": -lp2.mean().item(), "nll_flow3": -lp3.mean().item()}

    @torch.no_grad()
    def log_likelihood(self, showers: ArrayLike | Tensor, conditions: ArrayLike | Tensor,
                       pdg: ArrayLike | Tensor | None = None, *, draws: int = 4,
                       batch_size: int = 1024, generator: torch.Generator | None = None
                       ) -> np.ndarray:
        """Per-shower ``log mean_j p(x + n_j | c)`` (nats; a density in MeV^-V) of showers
        ``(N, V)`` MeV over ``draws`` draws ``n_j`` of the training noise (the signature of
        :meth:`calogen.models.families.caloflow.CaloFlow.log_likelihood`; ``pdg`` is unused).
        float64 ``(N,)``."""
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        prep = self.preprocessing
        was_training = self.training
        self.eval()
        device = self.anchor.device
        x = torch.as_tensor(np.asarray(showers, dtype=np.float64)).reshape(-1, self.n_voxels)
        cond = self.spec.transforms.conditions(conditions).to(device)
        if len(x) != len(cond):
            raise ValueError(f"{len(x)} showers but {len(cond)} conditions")
        if bool((x < 0).any()):
            raise ValueError(f"{self.family}: voxel energies must be >= 0 (MeV)")
        out = []
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            lps = torch.stack([
                self.log_prob_noisy(prep.add_noise(x[rows].to(device), generator), cond[rows])[0]
                for _ in range(draws)])
            out.append((torch.logsumexp(lps, 0) - math.log(draws)).cpu())
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)

    # -- sampling -----------------------------------------------------------------------------

    def generate(self, noise: Tensor, cond: Tensor) -> Tensor:
        """Showers ``(B, V)`` float64 MeV (thresholded) from standard-normal noise ``(B, V)``:
        flow I from the first ``L`` columns, then flow II and flow III layer by layer."""
        prep = self.preprocessing
        b, n_layers, m1 = len(noise), self.n_layers, self.per_layer - 1
        e_inc = self.e_inc_mev(cond)
        dtype = self.u_mean.dtype
        loge = ((torch.log(e_inc) - self.loge_stats[0]) / self.loge_stats[1]).to(dtype)
        c1 = self._context1(cond, loge)
        yu = self.flow1.sample(noise[:, :n_layers].to(dtype), c1)
        u = self.logit.inverse(yu.double() * self.u_scale + self.u_mean)
        energy = prep.layer_energies_from_fractions(u, e_inc)
        le = ((torch.log1p(energy) - self.le_mean) / self.le_scale).to(dtype)
        z = noise[:, n_layers:].reshape(b, n_layers, m1).to(dtype)
        xs = [self.flow2.sample(z[:, 0], self._context2(c1, yu))]
        for n in range(1, n_layers):
            layer = torch.tensor([n], device=noise.device)
            c3 = self._context3(c1, xs[-1][:, None], le, layer)
            xs.append(self.flow3.sample(z[:, n], c3))
        f = self.logit.inverse(torch.stack(xs, 1).double() * self.x_scale + self.x_mean)
        total = f.sum(2, keepdim=True)
        shrink = 1.0 / total.clamp(min=1.0)
        share = f.new_zeros(b, n_layers, self.per_layer)
        share[:, :, self.keep] = f * shrink
        share[:, :, self.anchor] = (1.0 - total * shrink).squeeze(2).clamp(min=0.0)
        return prep.showers_from(share.reshape(b, -1), energy)

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """``log1p`` voxel energies ``(B, V)`` (float64) for standardised conditions."""
        self.preprocessing  # noqa: B018 (raises before training)
        noise = torch.randn(len(cond), self.latent_dim, generator=generator,
                            device=cond.device)
        return torch.log1p(self.generate(noise, cond))
