"""EPiC-GAN on point-cloud showers (family ``"epic-gan"``).

The generator and discriminator are stacks of equivariant point-cloud layers
(:mod:`calogen.models.nn.epic`; Buhmann, Kasieczka & Thaler, arXiv:2301.08128), both
conditioned on the standardised conditions (the incident energy) and on the number of points.
The generator maps per-point Gaussian noise and a global noise vector to the points; a fake
cloud has as many points as the real cloud of the same row of the batch.

Loss: least squares (LSGAN; Mao et al., arXiv:1611.04076), as the EPiC-GAN paper trains:
``D: (D(real) - 1)^2 + D(fake)^2``, ``G: (D(fake) - 1)^2``, averaged over the showers.

Point features in network space: ``x`` and ``y`` relative to the volume's centre over its
half-width, ``z`` mapped from the layer range to ``[-1, 1]``, and ``log E`` (MeV) standardised
with a mean and a standard deviation fitted on the first training batch (as is the
standardisation of ``log(1 + N)`` fed to both networks). Sampled points are clamped to the
volume; energies are ``exp`` of the output, so ``> 0`` MeV.

Number of points at sampling: ``log(1 + N)`` is modelled as a normal law whose mean is linear in
the standardised conditions and whose standard deviation is the residual one, a least-squares
fit whose sums (count, ``X^T X``, ``X^T y``, ``y^T y``) are accumulated over every training batch
(a small ridge term keeps it defined for few showers); ``N`` is rounded and clamped to
``[0, largest N seen]``. These statistics and the feature standardisation are the model's extra
state (:meth:`EPiCGAN.extra_state_dict`), saved with the model and in checkpoints. They are not
buffers because the trainer's EMA averages floating-point buffers: the EMA weights would then
carry a standardisation lagging the one the networks were trained with.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from calogen.geometry.points import PointCloudVolume
from calogen.models.generator import Generator, ModelSpec, TrainBatch
from calogen.models.nn.backbones import resolve_hparams
from calogen.models.nn.epic import EPiCDiscriminator, EPiCGenerator
from calogen.models.registry import register_family

__all__ = ["EPiCGAN"]

E_FLOOR_MEV = 1e-6
"""Energies are floored here before their logarithm (a zero-energy point has none)."""
LOG_E_MAX = 30.0
"""Largest ``log E`` (MeV) a sampled point may have (guards ``exp`` against overflow)."""
STD_FLOOR = 0.1
"""Smallest standard deviation of the fitted ``log E`` and ``log(1 + N)`` standardisations."""
RIDGE = 1e-3
"""Ridge term (per shower) on the slopes of the fit of ``log(1 + N)`` on the conditions."""
PADDED_POINTS = 1 << 18
"""Largest number of padded points (showers x largest shower) generated in one pass."""


def shower_chunks(counts: np.ndarray, batch_size: int, budget: int = PADDED_POINTS
                  ) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of showers with at most ``batch_size`` showers and
    at most ``budget`` padded points (rows times the largest count; a single shower may
    exceed it)."""
    out: list[tuple[int, int]] = []
    start, widest = 0, 0
    for i, n in enumerate(np.asarray(counts, dtype=np.int64).tolist()):
        wider = max(widest, n)
        if i > start and (i - start >= batch_size or (i + 1 - start) * wider > budget):
            out.append((start, i))
            start, wider = i, n
        widest = wider
    if start < len(counts):
        out.append((start, len(counts)))
    return out


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@register_family
class EPiCGAN(Generator):
    """EPiC-GAN for point clouds (see the module docstring); hparams (defaults in
    :attr:`defaults`, practical on a CPU; the paper uses ``hidden`` 128 and 3 to 6 layers):

    ``hidden`` (64): width of the point features; ``global_dim`` (10): width of the global
    noise and attribute vector; ``point_noise_dim`` (4): noise per point; ``g_layers`` /
    ``d_layers`` (3): EPiC layers of generator / discriminator; ``sum_scale`` (0.01): factor of
    the summed features in the pooling; ``weight_norm`` (True): weight normalisation of every
    linear map, as the paper.
    """

    family: ClassVar[str] = "epic-gan"
    category: ClassVar[str] = "adversarial"
    shapes: ClassVar[frozenset[str]] = frozenset({"points"})
    phases: ClassVar[tuple[str, ...]] = ("discriminator", "generator")
    one_step: ClassVar[bool] = True
    validate_by_sampling: ClassVar[bool] = False
    optimizer_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-4, "betas": (0.5, 0.9)}
    """Adam settings usual for GANs (a small learning rate, beta1 0.5)."""
    defaults: ClassVar[dict[str, Any]] = {
        "hidden": 64, "global_dim": 10, "point_noise_dim": 4, "g_layers": 3, "d_layers": 3,
        "sum_scale": 0.01, "weight_norm": True,
    }

    def __init__(self, spec: ModelSpec, **hparams: Any) -> None:
        hp = resolve_hparams(self.family, self.defaults, hparams)
        for key in ("hidden", "global_dim", "point_noise_dim", "g_layers", "d_layers"):
            if not _positive_int(hp[key]):
                raise ValueError(f"{self.family}: hparam {key!r} must be an integer >= 1, "
                                 f"got {hp[key]!r}")
        scale = hp["sum_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"{self.family}: hparam 'sum_scale' must be a number > 0, "
                             f"got {scale!r}")
        if not isinstance(hp["weight_norm"], bool):
            raise ValueError(f"{self.family}: hparam 'weight_norm' must be true or false, "
                             f"got {hp['weight_norm']!r}")
        super().__init__(spec, **hp)
        if spec.kind != "points" or not isinstance(spec.geometry, PointCloudVolume):
            raise ValueError(f"{self.family}: needs a point-cloud volume, got a {spec.kind} "
                             f"geometry")
        self.volume: PointCloudVolume = spec.geometry
        context = spec.n_conditions + 1  # the conditions and the standardised log(1 + N)
        common: dict[str, Any] = {"hidden": int(hp["hidden"]), "sum_scale": float(scale),
                                  "normed": bool(hp["weight_norm"])}
        self.generator = EPiCGenerator(int(hp["point_noise_dim"]), int(hp["global_dim"]),
                                       context, 4, layers=int(hp["g_layers"]), **common)
        self.discriminator = EPiCDiscriminator(4, context, global_dim=int(hp["global_dim"]),
                                               layers=int(hp["d_layers"]), **common)
        self._norm: dict[str, float] = {}
        k = spec.n_conditions + 1
        self._n_sums: dict[str, Any] = {"count": 0.0, "xtx": np.zeros((k, k)),
                                        "xty": np.zeros(k), "yty": 0.0, "max_points": 0}

    # -- network space ----------------------------------------------------------------------

    def _norm_value(self, key: str) -> float:
        return self._norm.get(key, 1.0 if key.endswith("_std") else 0.0)

    def _fit_normalisation(self, x: Tensor, mask: Tensor) -> None:
        """Fit the ``log E`` and ``log(1 + N)`` standardisations on a batch (once, on the
        first training batch holding a point)."""
        log_e = torch.log(x[..., 3][mask].double().clamp(min=E_FLOOR_MEV))
        if self._norm or len(log_e) == 0:
            return
        log_n = torch.log1p(mask.sum(dim=1).double())
        self._norm = {
            "log_e_mean": float(log_e.mean()),
            "log_e_std": max(float(log_e.std()) if len(log_e) > 1 else 0.0, STD_FLOOR),
            "log_n_mean": float(log_n.mean()),
            "log_n_std": max(float(log_n.std()) if len(log_n) > 1 else 0.0, STD_FLOOR),
        }

    def to_network(self, x: Tensor) -> Tensor:
        """Points ``(..., 4)`` ``(x, y, z, E)`` in mm and MeV -> network features."""
        v = self.volume
        (x0, x1), (y0, y1) = v.x_range_mm, v.y_range_mm
        z0, z1 = v.layer_edges_mm[0], v.layer_edges_mm[-1]
        log_e = torch.log(x[..., 3].clamp(min=E_FLOOR_MEV))
        return torch.stack([
            (x[..., 0] - 0.5 * (x0 + x1)) / (0.5 * (x1 - x0)),
            (x[..., 1] - 0.5 * (y0 + y1)) / (0.5 * (y1 - y0)),
            2.0 * (x[..., 2] - z0) / (z1 - z0) - 1.0,
            (log_e - self._norm_value("log_e_mean")) / self._norm_value("log_e_std"),
        ], dim=-1)

    def to_physical(self, y: Tensor) -> np.ndarray:
        """Network features ``(P, 4)`` -> float32 points in mm and MeV, inside the volume."""
        v = self.volume
        (x0, x1), (y0, y1) = v.x_range_mm, v.y_range_mm
        z0, z1 = v.layer_edges_mm[0], v.layer_edges_mm[-1]
        u = y.double().cpu().numpy()
        w = np.clip(u[:, :3], -1.0, 1.0)
        log_e = self._norm_value("log_e_mean") + self._norm_value("log_e_std") * u[:, 3]
        out = np.column_stack([0.5 * (x0 + x1) + 0.5 * (x1 - x0) * w[:, 0],
                               0.5 * (y0 + y1) + 0.5 * (y1 - y0) * w[:, 1],
                               z0 + 0.5 * (z1 - z0) * (w[:, 2] + 1.0),
                               np.exp(np.minimum(log_e, LOG_E_MAX))]).astype(np.float32)
        for col, (lo, hi) in enumerate(((x0, x1), (y0, y1), (z0, z1))):  # upper edges excluded
            top = np.nextafter(np.float32(hi), np.float32(lo))
            out[:, col] = np.clip(out[:, col], np.float32(lo), top)
        return out

    def context(self, cond: Tensor, n_points: Tensor) -> Tensor:
        """Per-cloud context ``(B, k + 1)``: standardised conditions and ``log(1 + N)``."""
        log_n = (torch.log1p(n_points.to(cond.dtype)) - self._norm_value("log_n_mean")) \
            / self._norm_value("log_n_std")
        return torch.cat([cond, log_n.unsqueeze(-1)], dim=-1)

    def generate(self, mask: Tensor, cond: Tensor, generator: torch.Generator | None = None
                 ) -> Tensor:
        """Network features ``(B, P, 4)`` of clouds with the points of ``mask`` (zero
        elsewhere) for standardised conditions ``cond``."""
        b, p = mask.shape
        hp = self.hparams
        point_noise = torch.randn((b, p, int(hp["point_noise_dim"])), generator=generator,
                                  device=cond.device)
        global_noise = torch.randn((b, int(hp["global_dim"])), generator=generator,
                                   device=cond.device)
        return self.generator(point_noise, global_noise, mask,
                              self.context(cond, mask.sum(dim=1)))

    def discriminate(self, y: Tensor, mask: Tensor, cond: Tensor) -> Tensor:
        """Scores ``(B,)`` of clouds in network space (real near 1, fake near 0)."""
        return self.discriminator(y, mask, self.context(cond, mask.sum(dim=1)))

    # -- training ---------------------------------------------------------------------------

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """``"discriminator"``: the discriminator's weights; ``"generator"``: the
        generator's."""
        if phase == "discriminator":
            module: nn.Module = self.discriminator
        elif phase == "generator":
            module = self.generator
        else:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        return [p for p in module.parameters() if p.requires_grad]

    def loss(self, batch: TrainBatch, phase: str) -> tuple[Tensor, dict[str, float]]:
        if phase not in self.phases:
            raise ValueError(f"{self.family}: unknown phase {phase!r}; phases {self.phases}")
        if batch.mask is None or batch.x.ndim != 3 or batch.x.shape[-1] != 4:
            raise ValueError(f"{self.family}: expected a point-cloud batch (x (B, P, 4) with a "
                             f"mask), got x {tuple(batch.x.shape)}")
        mask = batch.mask.bool()
        learning = self.training and torch.is_grad_enabled()
        if learning:
            self._fit_normalisation(batch.x, mask)
            if phase == self.phases[0]:
                self._accumulate_counts(batch.cond, mask.sum(dim=1))
        real = self.to_network(batch.x)
        if phase == "discriminator":
            with torch.no_grad():
                fake = self.generate(mask, batch.cond)
            d_real = self.discriminate(real, mask, batch.cond)
            d_fake = self.discriminate(fake, mask, batch.cond)
            loss = (d_real - 1.0).pow(2).mean() + d_fake.pow(2).mean()
            return loss, {"loss": loss.item(), "d_real": d_real.mean().item(),
                          "d_fake": d_fake.mean().item()}
        d_fake = self.discriminate(self.generate(mask, batch.cond), mask, batch.cond)
        loss = (d_fake - 1.0).pow(2).mean()
        return loss, {"loss": loss.item(), "d_fake": d_fake.mean().item()}

    # -- the number of points ---------------------------------------------------------------

    def _accumulate_counts(self, cond: Tensor, counts: Tensor) -> None:
        """Add a batch to the least-squares sums of ``log(1 + N)`` on ``[1, cond]``."""
        design = torch.cat([torch.ones(len(cond), 1, dtype=torch.float64, device=cond.device),
                            cond.detach().double()], dim=1).cpu().numpy()
        y = np.log1p(counts.detach().double().cpu().numpy())
        s = self._n_sums
        s["count"] += float(len(y))
        s["xtx"] = s["xtx"] + design.T @ design
        s["xty"] = s["xty"] + design.T @ y
        s["yty"] += float(y @ y)
        if len(y):
            s["max_points"] = max(int(s["max_points"]), int(counts.max()))

    def count_model(self) -> tuple[np.ndarray, float]:
        """Coefficients ``(k + 1,)`` (intercept first) of the mean of ``log(1 + N)`` on the
        standardised conditions, and the residual standard deviation (zeros before
        training)."""
        s = self._n_sums
        k = len(s["xty"])
        if s["count"] <= 0:
            return np.zeros(k), 0.0
        ridge = RIDGE * s["count"] * np.eye(k)
        ridge[0, 0] = 0.0
        coef = np.linalg.solve(s["xtx"] + ridge + 1e-12 * np.eye(k), s["xty"])
        sse = s["yty"] - 2.0 * coef @ s["xty"] + coef @ s["xtx"] @ coef
        return coef, math.sqrt(max(float(sse) / s["count"], 0.0))

    def sample_counts(self, cond: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Points per shower ``(B,)`` int64 for standardised conditions ``cond (B, k)``."""
        coef, std = self.count_model()
        design = torch.cat([torch.ones(len(cond), 1, dtype=torch.float64, device=cond.device),
                            cond.double()], dim=1)
        mean = design @ torch.as_tensor(coef, dtype=torch.float64, device=cond.device)
        eps = torch.randn(len(cond), generator=generator, device=cond.device,
                          dtype=torch.float64)
        n = torch.expm1((mean + std * eps).clamp(max=math.log1p(1e9))).round()
        return n.clamp(0, int(self._n_sums["max_points"])).to(torch.int64)

    # -- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample_points(self, conditions: ArrayLike | Tensor, pdg: ArrayLike | Tensor,
                      generator: torch.Generator | None = None, *, batch_size: int = 4096,
                      counts: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Showers for physical conditions (the model's condition columns): ``(P, 4)`` float32
        points ``(x, y, z, E)`` (mm, MeV) one shower after the other, and ``(N,)`` int64
        points per shower.

        ``counts`` (``(N,)`` non-negative integers) fixes the points per shower; by default
        they are drawn from the fitted model of the number of points (:meth:`sample_counts`),
        for all showers first. The points are generated ``batch_size`` showers at a time
        (fewer when their padded points exceed :data:`PADDED_POINTS`)."""
        if batch_size < 1:
            raise ValueError(f"{self.family}: batch_size must be >= 1, got {batch_size}")
        cond = self.spec.transforms.conditions(conditions)
        k = self.spec.n_conditions
        if cond.ndim != 2 or cond.shape[1] != k:
            raise ValueError(f"{self.family}: conditions must have shape (N, {k}) (columns "
                             f"{list(self.spec.transforms.condition_columns)}), found "
                             f"{tuple(cond.shape)}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        cond = cond.to(device)
        if counts is None:
            n_points = self.sample_counts(cond, generator)
        else:
            given = np.asarray(counts)
            if given.shape != (len(cond),) or not np.issubdtype(given.dtype, np.integer) \
                    or (given < 0).any():
                raise ValueError(f"{self.family}: counts must be ({len(cond)},) non-negative "
                                 f"integers (one per shower), found {given.dtype} "
                                 f"{given.shape}")
            n_points = torch.as_tensor(given.astype(np.int64), device=device)
        parts = [np.zeros((0, 4), np.float32)]
        for start, stop in shower_chunks(n_points.cpu().numpy(), batch_size):
            n = n_points[start:stop]
            mask = torch.arange(int(n.max()), device=device)[None, :] < n[:, None]
            y = self.generate(mask, cond[start:stop], generator)
            parts.append(self.to_physical(y[mask]))
        self.train(was_training)
        return np.concatenate(parts), n_points.cpu().numpy().astype(np.int64)

    # -- extra state ------------------------------------------------------------------------

    def extra_state_dict(self) -> dict[str, Any]:
        s = self._n_sums
        return {"normalisation": dict(self._norm),
                "count_sums": {"count": float(s["count"]), "xtx": s["xtx"].tolist(),
                               "xty": s["xty"].tolist(), "yty": float(s["yty"]),
                               "max_points": int(s["max_points"])}}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        norm = state.get("normalisation", {})
        keys = {"log_e_mean", "log_e_std", "log_n_mean", "log_n_std"}
        if norm and set(norm) != keys:
            raise ValueError(f"'normalisation' must hold {sorted(keys)} (or nothing), found "
                             f"{sorted(norm)}")
        values = {key: float(v) for key, v in norm.items()}
        if any(not math.isfinite(v) for v in values.values()) \
                or any(values[key] <= 0 for key in values if key.endswith("_std")):
            raise ValueError("'normalisation': expected finite values and positive std")
        sums = state.get("count_sums")
        k = self.spec.n_conditions + 1
        if sums is None:
            loaded: dict[str, Any] = {"count": 0.0, "xtx": np.zeros((k, k)),
                                      "xty": np.zeros(k), "yty": 0.0, "max_points": 0}
        else:
            loaded = {"count": float(sums["count"]), "yty": float(sums["yty"]),
                      "xtx": np.asarray(sums["xtx"], dtype=np.float64),
                      "xty": np.asarray(sums["xty"], dtype=np.float64),
                      "max_points": int(sums["max_points"])}
            if loaded["xtx"].shape != (k, k) or loaded["xty"].shape != (k,):
                raise ValueError(f"'count_sums': expected xtx ({k}, {k}) and xty ({k},) for "
                                 f"{k - 1} conditions, found {loaded['xtx'].shape} and "
                                 f"{loaded['xty'].shape}")
            if not (np.isfinite(loaded["xtx"]).all() and np.isfinite(loaded["xty"]).all()
                    and math.isfinite(loaded["count"]) and loaded["count"] >= 0
                    and loaded["max_points"] >= 0):
                raise ValueError("'count_sums': expected finite sums and non-negative counts")
        self._norm = values
        self._n_sums = loaded
