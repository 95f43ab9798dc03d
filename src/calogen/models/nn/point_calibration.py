"""Calibrations of generated point clouds, fitted after training (CaloClouds II, Buhmann et al.,
arXiv:2309.05704, Sec. 3; CaloClouds, arXiv:2305.04847): the number of points, the energy per
layer and the centre of gravity in x and y. Each is JSON-serialisable and the identity until
fitted.

Number of points. A cloud of ``N`` points projected onto cells above :data:`HALF_MIP_MEV`
hits fewer cells than it has points; a generated cloud hits a different number of cells than a
Geant4 cloud of the same ``N``. With

* ``c(N)``: cubic fit, on the data, of cells per point ``N_cells / N`` as a function of ``N``
  (the inverse of the paper's ``p_data``),
* ``g(C)``: cubic fit, on uncalibrated generated clouds, of points per cell ``N / N_cells`` as a
  function of the cells ``C`` (the paper's ``p_gen`` inverted likewise),

the Shower Flow's ``N_uncal`` (a count of data-like points) becomes

    C = N_uncal * c(N_uncal)        (the cells a data cloud of N_uncal points hits)
    N_cal = C * g(C)                (the points the model needs to hit C cells)

i.e. ``N_cal = N_uncal * c(N_uncal) * g(N_uncal c(N_uncal))``, the ratio form of the paper's
``N_uncal * p_gen(p_data(N_uncal))``. Fits use showers with at least one point and one cell;
a polynomial is evaluated with its argument clipped to the range it was fitted on.

Energy per layer: a factor per layer, the mean data energy in that layer over the mean of the
Shower Flow's (sampled for the same conditions). Centre of gravity: per axis, the affine map
matching the mean and standard deviation of the flow's centre of gravity to the data's (showers
with energy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

from calogen.geometry.points import PointCloudVolume, ragged_points

__all__ = ["HALF_MIP_MEV", "MAX_NUMBER_FACTOR", "CogCalibration", "LayerEnergyCalibration",
           "NumberCalibration", "PointCalibrations", "RatioFit", "cloud_statistics"]

HALF_MIP_MEV = 0.1
"""Cell threshold of the ILD ECAL, half a MIP (CaloClouds II, Sec. 4: 0.1 MeV per cell)."""

DEGREE = 3
"""Degree of the number-of-points fits (cubic, as the paper)."""

MAX_NUMBER_FACTOR = 4.0
"""The number calibration changes a shower's number of points by at most this factor. It
corrects how many cells a model's points hit; a model whose clouds hit far fewer cells than the
data's (points collapsed onto a few cells) is not repaired by multiplying its points, and the
fits would extrapolate far outside the range they were made on."""


def _floats(values: Any, name: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"calibration field {name!r}: expected a list of numbers, found "
                         f"{values!r:.60}") from None
    if not all(np.isfinite(out)):
        raise ValueError(f"calibration field {name!r}: expected finite numbers")
    return out


@dataclass(frozen=True)
class RatioFit:
    """A polynomial ``r(x)`` evaluated with ``x`` clipped to ``domain``; the constant 1 until
    fitted (``coef`` in numpy's window coordinates of ``domain``)."""

    coef: tuple[float, ...] = (1.0,)
    domain: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def fit(cls, x: ArrayLike, ratio: ArrayLike, degree: int = DEGREE) -> RatioFit:
        """Least-squares fit of ``ratio`` against ``x`` (degree lowered to the number of
        distinct ``x`` minus 1; the identity without data)."""
        xs, rs = np.asarray(x, np.float64), np.asarray(ratio, np.float64)
        ok = np.isfinite(xs) & np.isfinite(rs)
        xs, rs = xs[ok], rs[ok]
        distinct = len(np.unique(xs))
        if distinct == 0:
            return cls()
        if distinct == 1:
            return cls((float(rs.mean()),), (float(xs[0]), float(xs[0]) + 1.0))
        p = Polynomial.fit(xs, rs, min(degree, distinct - 1))
        return cls(tuple(float(c) for c in p.coef), (float(p.domain[0]), float(p.domain[1])))

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        lo, hi = self.domain
        xs = np.clip(np.asarray(x, np.float64), lo, hi)
        return np.asarray(Polynomial(self.coef, domain=[lo, hi])(xs), np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"coef": list(self.coef), "domain": list(self.domain)}

    @classmethod
    def from_dict(cls, d: Any, name: str) -> RatioFit:
        if not isinstance(d, dict):
            raise ValueError(f"calibration field {name!r}: expected an object")
        coef, domain = _floats(d.get("coef"), f"{name}.coef"), _floats(d.get("domain"),
                                                                       f"{name}.domain")
        if not coef or len(domain) != 2 or not domain[1] > domain[0]:
            raise ValueError(f"calibration field {name!r}: expected coef (>= 1 values) and a "
                             f"domain [low, high] with high > low")
        return cls(tuple(coef), (domain[0], domain[1]))


@dataclass(frozen=True)
class NumberCalibration:
    """``N_cal = C g(C)`` with ``C = N c(N)`` (see the module docstring)."""

    cells_per_point: RatioFit = field(default_factory=RatioFit)
    points_per_cell: RatioFit = field(default_factory=RatioFit)

    @classmethod
    def fit(cls, data_points: ArrayLike, data_cells: ArrayLike, gen_points: ArrayLike,
            gen_cells: ArrayLike, degree: int = DEGREE) -> NumberCalibration:
        """From points and cells above threshold per shower, of the data and of clouds the
        model generated uncalibrated."""
        n_d, c_d = np.asarray(data_points, np.float64), np.asarray(data_cells, np.float64)
        n_g, c_g = np.asarray(gen_points, np.float64), np.asarray(gen_cells, np.float64)
        d, g = (n_d > 0) & (c_d > 0), (n_g > 0) & (c_g > 0)
        return cls(RatioFit.fit(n_d[d], c_d[d] / n_d[d], degree),
                   RatioFit.fit(c_g[g], n_g[g] / c_g[g], degree))

    def cells(self, n_uncal: ArrayLike) -> NDArray[np.float64]:
        """Cells ``C = N c(N)`` a data cloud of ``N`` points hits (>= 0)."""
        n = np.asarray(n_uncal, np.float64)
        return np.maximum(n * self.cells_per_point(n), 0.0)

    def __call__(self, n_uncal: ArrayLike) -> NDArray[np.int64]:
        """Calibrated numbers of points (rounded, >= 0), within a factor
        :data:`MAX_NUMBER_FACTOR` of the uncalibrated ones."""
        n = np.asarray(n_uncal, np.float64)
        c = self.cells(n)
        n_cal = np.clip(c * self.points_per_cell(c), n / MAX_NUMBER_FACTOR,
                        n * MAX_NUMBER_FACTOR)
        return np.rint(np.maximum(n_cal, 0.0)).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"cells_per_point": self.cells_per_point.to_dict(),
                "points_per_cell": self.points_per_cell.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumberCalibration:
        return cls(RatioFit.from_dict(d.get("cells_per_point"), "number.cells_per_point"),
                   RatioFit.from_dict(d.get("points_per_cell"), "number.points_per_cell"))


@dataclass(frozen=True)
class LayerEnergyCalibration:
    """A factor per layer multiplying the Shower Flow's energy per layer."""

    factors: tuple[float, ...]

    @classmethod
    def identity(cls, n_layers: int) -> LayerEnergyCalibration:
        return cls((1.0,) * n_layers)

    @classmethod
    def fit(cls, data_energy: ArrayLike, gen_energy: ArrayLike) -> LayerEnergyCalibration:
        """``mean(data) / mean(generated)`` per layer from ``(N, L)`` and ``(M, L)`` energies
        (MeV); 1 where the generated mean is not positive."""
        d, g = np.asarray(data_energy, np.float64), np.asarray(gen_energy, np.float64)
        if d.ndim != 2 or g.ndim != 2 or d.shape[1] != g.shape[1]:
            raise ValueError(f"layer energies must be (N, L) and (M, L), found {d.shape}, "
                             f"{g.shape}")
        md = d.mean(0) if len(d) else np.zeros(d.shape[1])
        mg = g.mean(0) if len(g) else np.zeros(g.shape[1])
        ok = (mg > 0) & (md > 0)
        safe = np.where(ok, mg, 1.0)
        return cls(tuple(float(v) for v in np.where(ok, md / safe, 1.0)))

    def __call__(self, layer_energy: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(layer_energy, np.float64) * np.asarray(self.factors)


@dataclass(frozen=True)
class CogCalibration:
    """``cog' = scale * cog + shift`` per axis (x, y; mm)."""

    scale: tuple[float, float] = (1.0, 1.0)
    shift: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def fit(cls, data_cog: ArrayLike, gen_cog: ArrayLike) -> CogCalibration:
        """Match the generated ``(M, 2)`` centres' mean and std to the data's ``(N, 2)``
        (identity with fewer than 2 of either)."""
        d, g = np.asarray(data_cog, np.float64), np.asarray(gen_cog, np.float64)
        if len(d) < 2 or len(g) < 2:
            return cls()
        sd, sg = d.std(0), g.std(0)
        scale = np.where(sg > 1e-9, sd / np.where(sg > 1e-9, sg, 1.0), 1.0)
        shift = d.mean(0) - scale * g.mean(0)
        return cls((float(scale[0]), float(scale[1])), (float(shift[0]), float(shift[1])))

    def __call__(self, cog: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(cog, np.float64) * np.asarray(self.scale) + np.asarray(self.shift)


@dataclass(frozen=True)
class PointCalibrations:
    """The three calibrations of a point-cloud model; :meth:`identity` before any fit."""

    number: NumberCalibration
    layer_energy: LayerEnergyCalibration
    cog: CogCalibration
    fitted: bool = False

    @classmethod
    def identity(cls, n_layers: int) -> PointCalibrations:
        return cls(NumberCalibration(), LayerEnergyCalibration.identity(n_layers),
                   CogCalibration())

    def to_dict(self) -> dict[str, Any]:
        return {"fitted": self.fitted, "number": self.number.to_dict(),
                "layer_energy": list(self.layer_energy.factors),
                "cog": {"scale": list(self.cog.scale), "shift": list(self.cog.shift)}}

    @classmethod
    def from_dict(cls, d: Any, n_layers: int) -> PointCalibrations:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the malformed field."""
        if not isinstance(d, dict):
            raise ValueError("calibration: expected an object")
        factors = _floats(d.get("layer_energy"), "layer_energy")
        if len(factors) != n_layers:
            raise ValueError(f"calibration field 'layer_energy': expected {n_layers} factors, "
                             f"found {len(factors)}")
        cog = d.get("cog")
        if not isinstance(cog, dict):
            raise ValueError("calibration field 'cog': expected an object")
        scale, shift = _floats(cog.get("scale"), "cog.scale"), _floats(cog.get("shift"),
                                                                      "cog.shift")
        if len(scale) != 2 or len(shift) != 2:
            raise ValueError("calibration field 'cog': expected two scales and two shifts")
        number = d.get("number")
        if not isinstance(number, dict):
            raise ValueError("calibration field 'number': expected an object")
        return cls(NumberCalibration.from_dict(number), LayerEnergyCalibration(tuple(factors)),
                   CogCalibration((scale[0], scale[1]), (shift[0], shift[1])),
                   bool(d.get("fitted", False)))


@dataclass(frozen=True)
class CloudStatistics:
    """Per shower: points ``(N,)``, cells above threshold ``(N,)``, energy per layer
    ``(N, L)`` MeV and the energy-weighted centre of gravity ``(N, 2)`` mm (NaN without
    energy)."""

    n_points: NDArray[np.int64]
    n_cells: NDArray[np.int64]
    layer_energy: NDArray[np.float64]
    cog: NDArray[np.float64]


def cloud_statistics(points: ArrayLike, counts: ArrayLike, volume: PointCloudVolume,
                     threshold_mev: float = HALF_MIP_MEV, chunk: int = 256) -> CloudStatistics:
    """:class:`CloudStatistics` of ragged clouds, projected ``chunk`` showers at a time.
    A point's layer is clipped into the volume's layers (as the Shower Flow counts it)."""
    p, n = ragged_points(points, counts)
    offsets = np.concatenate([[0], np.cumsum(n)])
    cells = np.zeros(len(n), np.int64)
    for start in range(0, len(n), chunk):
        stop = min(start + chunk, len(n))
        grid = volume.project(p[offsets[start]:offsets[stop]], n[start:stop],
                              threshold_mev=threshold_mev)
        cells[start:stop] = (grid > 0).reshape(stop - start, -1).sum(1)
    shower = np.repeat(np.arange(len(n)), n)
    layer = np.clip(np.searchsorted(np.asarray(volume.layer_edges_mm), p[:, 2], side="right")
                    - 1, 0, volume.n_layers - 1)
    n_layers = volume.n_layers
    flat = np.bincount(shower * n_layers + layer, weights=p[:, 3], minlength=len(n) * n_layers)
    layer_energy = flat.reshape(len(n), n_layers).astype(np.float64)
    total = np.bincount(shower, weights=p[:, 3], minlength=len(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        cog = np.stack([np.bincount(shower, weights=p[:, a] * p[:, 3], minlength=len(n))
                        for a in (0, 1)], 1) / total[:, None]
    cog[total <= 0] = np.nan
    return CloudStatistics(n.copy(), cells, layer_energy, cog)
