"""Fluctuations of the expected photon counts beyond Poisson: a fitted Cox readout.

A decoder trained on the Poisson likelihood returns the *expected* photons of each fibre given
its latent code; the shower-to-shower structure the code does not keep (where the sub-shower
cores land, fibre by fibre) is averaged into that expectation, so Poisson counts drawn from it
are too regular: the hottest fibre too cold, the light spread over too many fibres. A Cox
(doubly stochastic Poisson) readout restores over-dispersion,

    counts ~ Poisson(rate * exp(s * g - s^2 / 2)),   g ~ N(0, 1) per fibre,

whose variance is ``rate + rate^2 (exp(s^2) - 1)`` (a negative binomial's form) and whose
mean is ``rate``; the factors are then scaled so that each response keeps its expected photon
sum (the fluctuation moves light between fibres, it does not add any: the channel sums, which
the decoder already models, stay as they were on average). Softer responses are dominated by
few sub-showers, so the spread depends on the response's expected photon sum S:
``s = clip(a + b log10(S), 0, S_MAX)``. The pair ``(a, b)`` is fitted after training
(:func:`fit_rate_noise`) by matching the distributions of the high-level observables of
generated and training responses (mean W1 over observables in units of the training spread),
the same kind of post-training calibration CaloClouds II fits for its number of points
(arXiv:2309.05704, Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch import Tensor

__all__ = ["A_GRID", "B_GRID", "CALIBRATION_EVENTS", "NOISE_OBSERVABLES", "S_MAX",
           "FittedRateNoise", "RateNoise", "apply_to_log_image", "fit_model_rate_noise",
           "fit_rate_noise", "observable_distance"]

S_MAX = 2.0
"""Largest log-normal spread s."""

A_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)
B_GRID: tuple[float, ...] = (-0.3, -0.2, -0.1, 0.0)
"""The (a, b) grid :func:`fit_rate_noise` searches (b = 0: one spread for every response)."""


CALIBRATION_EVENTS = 4000
"""Training responses a model's rate-noise fit generates for (a random subset)."""

NOISE_OBSERVABLES: tuple[str, ...] = (
    "channel_common", "channel_TL", "channel_TR", "channel_BL", "channel_BR", "photon_sum",
    "width_x", "width_y", "lit_fibres", "hottest_value")
"""High-level ZDC observables (ALICE O2 channel names) the fit matches."""


@dataclass(frozen=True)
class RateNoise:
    """``s = clip(a + b log10(S), 0, S_MAX)`` per response (S: its expected photons);
    ``a = b = 0`` is the plain Poisson readout."""

    a: float = 0.0
    b: float = 0.0

    @property
    def active(self) -> bool:
        return self.a != 0.0 or self.b != 0.0

    def spread(self, expected_sum: Tensor) -> Tensor:
        """The spread s of each response, for its expected photon sum (any shape)."""
        return (self.a + self.b * torch.log10(expected_sum.clamp(min=1.0))).clamp(0.0, S_MAX)

    def apply(self, rate: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Rates ``(B, ...)`` (expected photons, >= 0) times the log-normal factors, rescaled
        per response to its expected photon sum."""
        if not self.active or rate.numel() == 0:
            return rate
        total = rate.flatten(1).sum(1)
        shape = (-1, *([1] * (rate.dim() - 1)))
        s = self.spread(total).view(shape)
        g = torch.randn(rate.shape, generator=generator, device=rate.device, dtype=rate.dtype)
        out = rate * torch.exp(s * g - 0.5 * s * s)
        kept = out.flatten(1).sum(1)
        return out * (total / torch.where(kept > 0, kept, 1.0)).view(shape)

    def to_dict(self) -> dict[str, float]:
        return {"a": float(self.a), "b": float(self.b)}

    @classmethod
    def from_dict(cls, d: Any) -> RateNoise:
        try:
            out = cls(float(d["a"]), float(d["b"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"rate_noise: expected {{'a': float, 'b': float}}, got {d!r} "
                             f"({exc})") from None
        if not (np.isfinite(out.a) and np.isfinite(out.b)):
            raise ValueError(f"rate_noise: a and b must be finite, got {d!r}")
        return out


def observable_distance(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean over columns of W1(reference, generated) / std(reference) (columns with no
    spread are skipped)."""
    out = []
    for j in range(reference.shape[1]):
        sd = float(np.std(reference[:, j]))
        if sd > 0:
            out.append(wasserstein_distance(reference[:, j], generated[:, j]) / sd)
    return float(np.mean(out)) if out else 0.0


def fit_rate_noise(rates: Tensor, reference_observables: np.ndarray,
                   observables: Callable[[np.ndarray], np.ndarray],
                   generator: torch.Generator, *, a_grid: Sequence[float] = A_GRID,
                   b_grid: Sequence[float] = B_GRID) -> tuple[RateNoise, dict[str, float]]:
    """The grid point (a, b) whose Cox readout of ``rates`` (expected photons ``(N, H, W)``
    generated for the training conditions) gives the observables closest to
    ``reference_observables`` (``(N, q)``, of the training responses themselves), by
    :func:`observable_distance`. Returns it and the distances of no noise and of the fit."""
    best, best_d = RateNoise(), float("inf")
    plain = None
    for a in a_grid:
        for b in b_grid:
            noise = RateNoise(float(a), float(b))
            counts = torch.poisson(noise.apply(rates, generator), generator=generator)
            d = observable_distance(reference_observables, observables(counts.numpy()))
            if not noise.active:
                plain = d
            if d < best_d:
                best, best_d = noise, d
    return best, {"distance_poisson": float("nan") if plain is None else plain,
                  "distance_fitted": best_d, "rate_noise_a": best.a, "rate_noise_b": best.b}


def apply_to_log_image(noise: RateNoise, y: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
    """``log1p`` image ``y`` (expected counts) with ``noise`` applied, back in ``log1p``."""
    if not noise.active:
        return y
    rate = torch.expm1(y.clamp(max=20.0)).clamp(min=0)
    return torch.log1p(noise.apply(rate, generator))


def fit_model_rate_noise(model: Any, data: Any, generator: torch.Generator, *,
                         n_events: int = CALIBRATION_EVENTS,
                         names: Sequence[str] = NOISE_OBSERVABLES
                         ) -> tuple[RateNoise, dict[str, float]]:
    """Fit the rate noise of an image ``model`` (a ``Generator`` with a ``rate_noise``
    attribute, applied in its sampling) on ``data`` (``CalibrationData`` of training
    responses): the model's expected counts for up to ``n_events`` random training
    conditions, read out by :func:`fit_rate_noise` against those responses' observables.
    The model's ``rate_noise`` is reset while it generates; the caller stores the result."""
    from calogen.metrics.observables import ZDCObservables  # metrics sit above models

    obs = ZDCObservables(model.spec.geometry)
    cols = [obs.names.index(n) for n in names]
    n = min(len(data), n_events)
    rows = torch.randperm(len(data), generator=generator)[:n].numpy()
    model.rate_noise = RateNoise()
    rates = torch.from_numpy(model.sample(data.conditions[rows], data.pdg[rows], generator,
                                          rounding=False))
    return fit_rate_noise(rates, obs(np.asarray(data.showers[rows]))[:, cols],
                          lambda x: obs(x)[:, cols], generator)


class FittedRateNoise:
    """Mixin (before the ``Generator`` base) for image families with the hparams
    ``rate_noise`` (``"fit"`` / ``"off"``) and ``readout``: holds :attr:`rate_noise`, applies it
    in ``sample_network``, fits it in ``calibrate`` and saves it with the model."""

    rate_noise: RateNoise = RateNoise()
    hparams: dict[str, Any]
    spec: Any

    def check_rate_noise(self) -> None:
        """``ValueError`` for a bad hparam ``rate_noise``; call from ``__init__``."""
        if self.hparams["rate_noise"] not in ("fit", "off"):
            raise ValueError(f"hparam 'rate_noise' must be 'fit' or 'off', got "
                             f"{self.hparams['rate_noise']!r}")
        self.rate_noise = RateNoise()

    def rate_noise_ready(self) -> bool:
        """Whether the model can generate for the fit (e.g. it has been trained)."""
        return True

    def sample_network(self, cond: Tensor, species: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
        """Log image with :attr:`rate_noise` applied to the expected counts (when fitted)."""
        y = super().sample_network(cond, species, generator)  # type: ignore[misc]
        return apply_to_log_image(self.rate_noise, y, generator)

    def calibrate(self, data: Any, generator: torch.Generator) -> dict[str, float]:
        """Fit :attr:`rate_noise` (``rate_noise="fit"``, images read out with Poisson counts;
        otherwise nothing) on training responses (:func:`fit_model_rate_noise`)."""
        if (self.hparams["rate_noise"] != "fit" or self.spec.kind != "image"
                or self.hparams["readout"] != "poisson" or len(data) == 0
                or not self.rate_noise_ready()):
            return {}
        self.rate_noise, logs = fit_model_rate_noise(self, data, generator)
        return logs

    def extra_state_dict(self) -> dict[str, Any]:
        return {"rate_noise": self.rate_noise.to_dict()}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if "rate_noise" in state:
            self.rate_noise = RateNoise.from_dict(state["rate_noise"])
