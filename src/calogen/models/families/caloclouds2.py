"""CaloClouds II (family ``"caloclouds2"``; Buhmann et al., arXiv:2309.05704): point-cloud
showers from a Shower Flow and an EDM PointWise Net, with calibrations fitted after training.

Training: one loss, the Shower Flow's negative log-likelihood per feature
(:mod:`calogen.models.nn.shower_flow`) plus the EDM loss of the PointWise Net
(:mod:`calogen.models.nn.pointwise`; ``ln sigma ~ N(p_mean, p_std^2)`` per point, padded
points excluded); the two have independent parameters. The standardisations of both are fitted
on the first training batch. EMA of the weights is recommended (the paper samples with one).

Sampling (:meth:`CaloClouds2.sample_points`), per shower:

1. the Shower Flow gives ``N_uncal``, the visible energy, the fractions of points and of energy
   per layer and the centre of gravity in x, y;
2. calibrations (:mod:`calogen.models.nn.point_calibration`; the identity until
   :meth:`calibrate` ran): ``N = N_cal(N_uncal)``, the layer energies scaled per layer, the
   centre of gravity mapped affinely;
3. points per layer: the fractions times ``N``, rounded by largest remainder to sum to ``N``;
4. the PointWise Net generates ``N`` points (Heun, ``steps`` = 13 by default: 25 calls);
5. the points are sorted by their generated z and given to the layers in order, to match the
   per-layer counts; their z is the middle of the layer (the Geant4 engine writes the middle of
   the Si layer, which is the volume's layer);
6. the energies in each layer are rescaled to the layer energy of step 2;
7. x, y are shifted so that the energy-weighted centre of gravity is the one of step 2.

The same sampling with a one-step consistency student is ``caloclouds2-cm``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume
from calogen.models.generator import (
    STEPS,
    CalibrationData,
    Generator,
    ModelSpec,
    SamplingOption,
    SamplingOptions,
    TrainBatch,
)
from calogen.models.nn.backbones import resolve_hparams
from calogen.models.nn.point_calibration import (
    HALF_MIP_MEV,
    CogCalibration,
    LayerEnergyCalibration,
    NumberCalibration,
    PointCalibrations,
    cloud_statistics,
)
from calogen.models.nn.pointwise import PointScaler, PointWiseNet
from calogen.models.nn.samplers import edm_loss, edm_sample, karras_sigma_list, network_calls
from calogen.models.nn.shower_flow import FlowSample, ShowerFlow, summarise_clouds
from calogen.models.registry import register_family

__all__ = ["ARCHITECTURE_KEYS", "PAPER_WIDTHS", "CaloClouds2", "largest_remainder"]

ARCHITECTURE_KEYS: tuple[str, ...] = (
    "pointwise_widths", "time_dim", "flow_layers", "flow_hidden", "fraction_alpha",
    "sigma_data", "sigma_min", "sigma_max", "rho", "max_points")
"""Hparams a distilled student shares with its teacher."""

PAPER_WIDTHS: tuple[int, ...] = (128, 256, 512, 256, 128)
"""The PointWise Net widths of CaloClouds II (``pointwise_widths``; MODELS.md). The default
halves them: a quarter of the cost per point, for CPU training budgets and one-thread speed."""

DEFAULTS: dict[str, Any] = {
    # concat-squash widths; the paper's are PAPER_WIDTHS (4x the multiply-adds per point)
    "pointwise_widths": [64, 128, 256, 128, 64],
    "train_points": 256,       # points per shower in a training step (random subset; 0: all)
    "time_dim": 64,            # Fourier features of c_noise
    "flow_layers": 12,         # coupling layers of the Shower Flow (the paper: 70 = 10 x 7)
    "flow_hidden": 128,
    "fraction_alpha": 1e-4,    # offset of log(fraction)
    "sigma_data": 0.5, "p_mean": -1.2, "p_std": 1.2,
    "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
    "steps": 13, "sampler": "heun",
    "sampling_dtype": "float32",  # or "bfloat16": the PointWise Net under autocast
    "max_points": 10000,       # upper clamp of a shower's number of points
    "points_per_call": 262144,  # points per PointWise Net call when sampling (memory)
    "calibration_showers": 128,  # generated showers fitted by the number calibration
    "calibration_data": 20000,   # training showers used by the calibrations (at most)
}


def largest_remainder(fractions: Tensor, totals: Tensor) -> Tensor:
    """Integer counts ``(B, L)`` >= 0 summing to ``totals (B,)`` and closest to
    ``fractions * totals`` (Hamilton's largest-remainder rounding; fractions rows sum to 1)."""
    want = fractions * totals[:, None].to(fractions.dtype)
    base = torch.floor(want)
    left = (totals - base.sum(1).to(totals.dtype)).clamp(min=0)
    order = torch.argsort(want - base, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(fractions.shape[1], device=fractions.device)
                  .expand_as(order).contiguous())
    return base.to(torch.int64) + (rank < left[:, None]).to(torch.int64)


SAMPLING_DTYPES: tuple[str, ...] = ("float32", "bfloat16")
"""Values of the hparam ``sampling_dtype``."""


@register_family
class CaloClouds2(SamplingOptions, Generator):
    """CaloClouds II (see the module docstring). Hparams: :data:`DEFAULTS`."""

    family: ClassVar[str] = "caloclouds2"
    category: ClassVar[str] = "diffusion"
    shapes: ClassVar[frozenset[str]] = frozenset({"points"})
    one_step: ClassVar[bool] = False
    validate_by_sampling: ClassVar[bool] = False
    samplers: ClassVar[tuple[str, ...]] = ("heun", "euler")
    sampling_options: ClassVar[tuple[SamplingOption, ...]] = (
        STEPS, SamplingOption("sampler", str, "the integration method"),
        SamplingOption("sampling_dtype", str, "float32, or bfloat16 for the PointWise Net"))
    optimizer_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-4}
    defaults: ClassVar[dict[str, Any]] = DEFAULTS

    initialised: Tensor

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        hp = resolve_hparams(self.family, self.defaults, hparams)
        super().__init__(spec, **hp)
        if not isinstance(spec.geometry, PointCloudVolume):
            raise ValueError(f"{self.family}: needs a point-cloud volume geometry")
        self.volume: PointCloudVolume = spec.geometry
        if int(hp["max_points"]) < 1 or int(hp["points_per_call"]) < 1:
            raise ValueError(f"{self.family}: max_points and points_per_call must be >= 1")
        if int(hp["train_points"]) < 0:
            raise ValueError(f"{self.family}: train_points must be >= 0 (0: all points), got "
                             f"{hp['train_points']}")
        self.flow = ShowerFlow(self.volume, spec.n_conditions, int(hp["flow_layers"]),
                               int(hp["flow_hidden"]), float(hp["fraction_alpha"]))
        self.net = self.make_net()
        self.scaler = PointScaler(self.volume)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int64))
        self.calibrations = PointCalibrations.identity(self.volume.n_layers)
        self._check_sampling(hp)

    def make_net(self) -> PointWiseNet:
        """A new PointWise Net built from the hparams."""
        return PointWiseNet(self.spec.n_conditions, [int(w) for w in
                                                     self.hparams["pointwise_widths"]],
                            int(self.hparams["time_dim"]))

    # -- training ---------------------------------------------------------------------------

    def _flat(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """Real points ``(P, 4)`` and their shower index ``(P,)``. In training (with
        gradients) at most ``train_points`` random points per shower (0: all): the points are
        denoised independently given their shower's context, so a subset is an unbiased
        estimate of the loss at a fraction of the cost (ILD showers hold ~10^3 points)."""
        if batch.mask is None:
            raise ValueError(f"{self.family}: a point-cloud batch needs its mask")
        mask = batch.mask
        limit = int(self.hparams["train_points"])
        if limit and self.training and torch.is_grad_enabled() and mask.shape[1] > limit:
            keys = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, 2.0)
            rank = keys.argsort(1).argsort(1)
            mask = mask & (rank < limit)
        idx = torch.arange(len(batch), device=batch.x.device)[:, None].expand_as(mask)
        return batch.x[mask], idx[mask]

    @torch.no_grad()
    def _fit_standardisations(self, batch: TrainBatch) -> None:
        assert batch.mask is not None
        summary = summarise_clouds(batch.x, batch.mask, self.volume)
        self.flow.fit_standardisation(self.flow.raw_features(summary))
        self.scaler.fit(batch.x[batch.mask][:, 3])
        self.initialised.fill_(1)

    def point_context(self, batch: TrainBatch, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Per-point conditions and standardised log point counts of a batch."""
        assert batch.mask is not None
        n = batch.mask.sum(1)
        return batch.cond[idx], self.flow.standardised_log_count(n)[idx]

    def loss(self, batch: TrainBatch, phase: str = "main") -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if batch.mask is None:
            raise ValueError(f"{self.family}: a point-cloud batch needs its mask")
        if self.training and torch.is_grad_enabled() and int(self.initialised) == 0:
            self._fit_standardisations(batch)
        summary = summarise_clouds(batch.x, batch.mask, self.volume)
        nll = -self.flow.log_prob(summary, batch.cond).mean() / self.flow.dim
        points, idx = self._flat(batch)
        logs = {"flow_nll": float(nll.detach())}
        if len(points):
            x0 = self.scaler.to_network(points)
            cond, n_scaled = self.point_context(batch, idx)
            hp = self.hparams
            sd = float(hp["sigma_data"])
            edm, err = edm_loss(lambda x, s: self.net.denoise(x, s, cond, n_scaled, sd), x0,
                                float(hp["p_mean"]), float(hp["p_std"]), sd)
            logs["edm"], logs["mse"] = float(edm.detach()), float(err.detach().mean())
        else:
            edm = nll.new_zeros(())
            logs["edm"] = 0.0
        loss = nll + edm
        logs["loss"] = float(loss.detach())
        return loss, logs

    # -- sampling ---------------------------------------------------------------------------

    def _check_sampling(self, opts: dict[str, Any]) -> None:
        super()._check_sampling(opts)
        if opts["sampling_dtype"] not in SAMPLING_DTYPES:
            raise ValueError(f"{self.family}: sampling_dtype must be one of {SAMPLING_DTYPES}, "
                             f"got {opts['sampling_dtype']!r}")

    def sigmas(self) -> list[float]:
        hp = self.hparams
        return karras_sigma_list(int(hp["steps"]), float(hp["sigma_min"]),
                                 float(hp["sigma_max"]), float(hp["rho"]))

    def network_calls(self) -> int:
        return network_calls("edm", int(self.hparams["steps"]), str(self.hparams["sampler"]))

    def generate_network_points(self, noise: Tensor, cond: Tensor, n_scaled: Tensor,
                                generator: torch.Generator | None, rows: Tensor) -> Tensor:
        """Network-space points ``(P, 4)`` from standard-normal ``noise (P, 4)``, the context
        per shower (``cond (R, k)``, ``n_scaled (R,)``) and the shower of each point ``rows
        (P,)`` (EDM sampler with the current options)."""
        sd = float(self.hparams["sigma_data"])
        with self.pointwise_autocast():
            return edm_sample(lambda x, s: self.net.denoise(x, s, cond, n_scaled, sd, rows),
                              noise, self.sigmas(), heun=self.hparams["sampler"] == "heun")

    def pointwise_autocast(self) -> Any:
        """Autocast to bfloat16 for the PointWise Net when the hparam ``sampling_dtype`` is
        ``"bfloat16"`` (faster on CPUs with bf16 units; fidelity to be measured per model),
        else a no-op."""
        if self.hparams["sampling_dtype"] == "bfloat16":
            device = next(self.parameters()).device.type
            return torch.autocast(device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _calibrated_features(self, flow: FlowSample, calibrated: bool
                             ) -> tuple[Tensor, Tensor, Tensor]:
        """Points per layer ``(B, L)`` int64, energy per layer ``(B, L)`` and centre of
        gravity ``(B, 2)`` (float64 tensors on the flow's device)."""
        device = flow.n_points.device
        n = flow.n_points.cpu().numpy()
        layer_e = flow.layer_energy.double().cpu().numpy()
        cog = flow.cog.double().cpu().numpy()
        if calibrated:
            n = self.calibrations.number(n)
            layer_e = self.calibrations.layer_energy(layer_e)
            cog = self.calibrations.cog(cog)
        n_t = torch.as_tensor(n, device=device).clamp(0, int(self.hparams["max_points"]))
        counts = largest_remainder(flow.point_fractions.double(), n_t)
        return counts, torch.as_tensor(layer_e, device=device), torch.as_tensor(cog,
                                                                                device=device)

    def _generate(self, cond: Tensor, generator: torch.Generator | None,
                  calibrated: bool = True) -> tuple[Tensor, Tensor]:
        """Clouds for standardised conditions ``(B, k)``: points ``(P, 4)`` float64 and
        counts ``(B,)`` int64 (sampling steps 1-7 of the module docstring)."""
        flow = self.flow.sample(cond, generator)
        layer_counts, layer_energy, cog = self._calibrated_features(flow, calibrated)
        b, n_layers = layer_counts.shape
        counts = layer_counts.sum(1)
        total = int(counts.sum())
        device = cond.device
        shower = torch.repeat_interleave(torch.arange(b, device=device), counts)
        noise = torch.randn((total, 4), generator=generator, device=device, dtype=cond.dtype)
        n_scaled = self.flow.standardised_log_count(counts).to(cond.dtype)
        chunk = int(self.hparams["points_per_call"])
        parts = [self.generate_network_points(noise[s:s + chunk], cond, n_scaled, generator,
                                              shower[s:s + chunk])
                 for s in range(0, total, chunk)]
        y = torch.cat(parts) if parts else noise
        xy, energy = self.scaler.xy_energy(y)
        # sort by shower, then generated z; hand the layers out in order
        order = torch.argsort(shower.double() * 4 + y[:, 2].double().clamp(-1.5, 1.5))
        xy, energy = xy[order].double(), energy[order].double()
        layer = torch.repeat_interleave(
            torch.arange(n_layers, device=device).repeat(b), layer_counts.reshape(-1))
        z = self.scaler.middles.double()[layer]
        key = shower * n_layers + layer
        sums = torch.zeros(b * n_layers, dtype=torch.float64, device=device).index_add_(
            0, key, energy)
        target = layer_energy.reshape(-1).clamp(min=0)
        scale = torch.where(sums > 0, target / torch.where(sums > 0, sums, 1.0), 0.0)
        energy = energy * scale[key]
        e_tot = torch.zeros(b, dtype=torch.float64, device=device).index_add_(0, shower, energy)
        moment = torch.zeros((b, 2), dtype=torch.float64, device=device).index_add_(
            0, shower, xy * energy[:, None])
        has = e_tot > 0
        current = moment / torch.where(has, e_tot, 1.0)[:, None]
        shift = torch.where(has[:, None], cog - current, 0.0)
        xy = xy + shift[shower]
        return torch.cat([xy, z[:, None], energy[:, None]], 1), counts

    @torch.no_grad()
    def sample_points(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
                      generator: torch.Generator | None = None, *, batch_size: int = 4096,
                      calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Clouds for physical conditions: ``(P, 4)`` float32 points ``(x, y, z, E)`` (mm,
        MeV; energies >= 0) and ``(N,)`` int64 counts; ``batch_size`` showers at a time.
        ``calibrated=False`` skips the calibrations (used to fit them)."""
        if batch_size < 1:
            raise ValueError(f"{self.family}: batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        if was_training:  # (eval() walks every module: skipped when already in eval mode)
            self.eval()
        device = next(self.parameters()).device
        cond = self.spec.transforms.conditions(conditions).to(device)
        self.spec.transforms.species(pdg)  # checks the particles
        points, counts = [], []
        try:
            for start in range(0, len(cond), batch_size):
                p, n = self._generate(cond[start:start + batch_size], generator, calibrated)
                points.append(p.float().cpu())
                counts.append(n.cpu())
        finally:
            if was_training:
                self.train()
        if not points:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        return (torch.cat(points).numpy().astype(np.float32),
                torch.cat(counts).numpy().astype(np.int64))

    # -- calibrations -----------------------------------------------------------------------

    @torch.no_grad()
    def calibrate(self, data: CalibrationData, generator: torch.Generator) -> dict[str, float]:
        """Fit the calibrations (:mod:`calogen.models.nn.point_calibration`) on up to
        ``calibration_data`` training showers: energy per layer and centre of gravity against
        the Shower Flow sampled for their conditions, then the number of points against
        ``calibration_showers`` clouds generated for training conditions with those two
        calibrations and without the number calibration."""
        if data.counts is None:
            raise ValueError(f"{self.family}: calibration needs point clouds (counts)")
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                 device=generator.device))
        rng = np.random.default_rng(seed)
        n_data = len(data)
        if n_data == 0:
            return {}
        take = np.sort(rng.permutation(n_data)[:int(self.hparams["calibration_data"])])
        offsets = np.concatenate([[0], np.cumsum(data.counts)])
        rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in take]
                              ).astype(np.int64)
        stats = cloud_statistics(data.showers[rows], data.counts[take], self.volume,
                                 HALF_MIP_MEV)
        device = next(self.parameters()).device
        cond = self.spec.transforms.conditions(data.conditions[take]).to(device)
        flow = self.flow.sample(cond, generator)
        layer_energy = LayerEnergyCalibration.fit(stats.layer_energy,
                                                  flow.layer_energy.double().cpu().numpy())
        has = np.isfinite(stats.cog).all(1)
        flow_has = (flow.energy > 0).cpu().numpy()
        cog = CogCalibration.fit(stats.cog[has], flow.cog.double().cpu().numpy()[flow_has])
        self.calibrations = PointCalibrations(NumberCalibration(), layer_energy, cog, True)
        gen_rows = np.sort(rng.permutation(n_data)[:int(self.hparams["calibration_showers"])])
        gen_points, gen_counts = self.sample_points(data.conditions[gen_rows],
                                                    data.pdg[gen_rows], generator)
        gen = cloud_statistics(gen_points, gen_counts, self.volume, HALF_MIP_MEV)
        number = NumberCalibration.fit(stats.n_points, stats.n_cells, gen.n_points, gen.n_cells)
        self.calibrations = PointCalibrations(number, layer_energy, cog, True)
        ok = stats.n_points > 0
        return {"calib_cells_per_point_data": float(np.mean(stats.n_cells[ok] / stats.n_points[ok]))
                if ok.any() else 0.0,
                "calib_layer_energy_mean_factor": float(np.mean(layer_energy.factors))}

    def extra_state_dict(self) -> dict[str, Any]:
        return {"calibrations": self.calibrations.to_dict()}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if "calibrations" in state:
            self.calibrations = PointCalibrations.from_dict(state["calibrations"],
                                                            self.volume.n_layers)


def _modules(model: CaloClouds2) -> nn.ModuleList:
    """The flow, PointWise Net and scaler (what a student copies)."""
    return nn.ModuleList([model.flow, model.net, model.scaler])
