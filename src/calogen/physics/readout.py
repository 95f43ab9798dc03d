"""Readout: sample Cherenkov photons from shower emitters and count them per fibre.

Given the expected photon count mu of an emitter, the number of detected photons is Poisson
(photon counting statistics, PHYSICS.md); each photon is then placed independently according
to the emitter's longitudinal and lateral profile, and the photons of an event are histogrammed
over the fibre grid. Because a Poisson number of independently placed photons is the same as an
independent Poisson count per fibre, this is exact Poisson readout per fibre, but its cost scales
with the number of photons rather than the number of fibres (most events are soft).

Lateral profiles have the Grindhammer-Peters form 2 r R^2 / (r^2 + R^2)^2 (hep-ex/0001020),
whose CDF r^2 / (r^2 + R^2) inverts to r = R sqrt(u / (1 - u)). Photons emitted outside the
fibre grid (lateral leakage) or beyond the absorber's depth (rear leakage) are lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.zdc import FibreGrid
from calogen.physics.materials import Absorber
from calogen.physics.showers import EMEmitters, Emitters, HaloEmitters, TrackEmitters

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ReadoutModel:
    """Light yield and fluctuation parameters of a ZDC readout.

    The event-by-event light-yield fluctuation multiplies every emitter of an event by a
    Gamma-distributed gain with mean 1 and relative spread sqrt(a^2 / E + c^2) (E in GeV):
    the sampling term ``a`` and constant term ``c`` of a calorimeter resolution.
    """

    photons_per_gev: float
    """Mean photons per GeV of electromagnetic energy, before leakage and tail losses."""
    tail_acceptance: float = 0.06
    """Fraction of the GP *tail* light that is detected: the soft, wide-angle tail particles
    are mostly below the Cherenkov threshold or outside the fibres' acceptance."""
    halo_relative_yield: float = 0.04
    """Light per GeV of non-electromagnetic hadron energy relative to EM energy, i.e. h/e
    (quartz-fibre calorimeters measure e/h ~ 5, i.e. 0.2, which the ZN uses; the default 0.04
    keeps the ZP's earlier calibration)."""
    track_photons_per_cm: float = 0.04
    """Photons per cm of a minimum-ionising track (little light, PHYSICS.md)."""
    track_radius_cm: float = 0.03
    """Lateral spread of a track's light, cm."""
    gain_stochastic: float = 0.5
    """Sampling term a of the gain fluctuation, sqrt(GeV)."""
    gain_constant: float = 0.15
    """Constant term c of the gain fluctuation."""
    light_radius_scale: float = 1.0
    """Scale of the GP radial profile of the detected light (1: the GP profile of the deposited
    energy, in Moliere radii of the absorber); a calibration knob for comparisons with other
    engines (``benchmarks/geant4_vs_parametrised.py --set readout.light_radius_scale=1.5``)."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def gain_factors(energy_gev: FloatArray, model: ReadoutModel,
                 rng: np.random.Generator) -> FloatArray:
    """Per-event multiplicative light-yield factors (mean 1), see :class:`ReadoutModel`."""
    rel2 = model.gain_stochastic**2 / np.maximum(energy_gev, 1e-3) + model.gain_constant**2
    return rng.standard_gamma(1.0 / rel2) * rel2


def _radius(rng: np.random.Generator, scale: FloatArray) -> FloatArray:
    """r = R sqrt(u / (1 - u)): inverse CDF of 2 r R^2 / (r^2 + R^2)^2."""
    u = rng.random(scale.shape[0])
    return scale * np.sqrt(u / (1.0 - u))


def gp_radius_cm(energy_gev: FloatArray, tau: FloatArray, absorber: Absorber,
                  tail_acceptance: float, rng: np.random.Generator, radius_scale: float = 1.0
                  ) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Radii (cm) of photons of GP showers and a mask of the photons that are detected.

    GP homogeneous radial parameters (hep-ex/0001020), r in Moliere radii, tau = t / T_max:
    R_C = z1 + z2 tau, z1 = 0.0251 + 0.00319 ln E, z2 = 0.1162 - 0.000381 Z;
    R_T = k1 (exp(k3 (tau - k2)) + exp(k4 (tau - k2))), k1 = 0.659 - 0.00309 Z, k2 = 0.645,
    k3 = -2.59, k4 = 0.3585 + 0.0421 ln E; core weight
    p = p1 exp((p2 - tau)/p3 - exp((p2 - tau)/p3)), p1 = 2.632 - 0.00094 Z,
    p2 = 0.401 + 0.00187 Z, p3 = 1.313 - 0.0686 ln E.
    """
    z = absorber.z_eff
    ln_e = np.log(np.maximum(energy_gev, 0.05))
    r_core = (0.0251 + 0.00319 * ln_e) + (0.1162 - 0.000381 * z) * tau
    k4 = 0.3585 + 0.0421 * ln_e
    r_tail = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    arg = (0.401 + 0.00187 * z - tau) / (1.313 - 0.0686 * ln_e)
    p_core = np.clip((2.632 - 0.00094 * z) * np.exp(arg - np.exp(arg)), 0.0, 1.0)
    u = rng.random(tau.shape[0])
    core = u < p_core
    # Thinning of a Poisson process keeps it Poisson: tail photons are kept with a probability.
    keep = core | (u < p_core + (1.0 - p_core) * tail_acceptance)
    scale = np.where(core, r_core, r_tail) * absorber.moliere_radius_cm * radius_scale
    return _radius(rng, scale), keep


def _place(rng: np.random.Generator, x0: FloatArray, y0: FloatArray, sx: FloatArray,
           sy: FloatArray, depth: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Face coordinates (cm) of photons at ``depth`` displaced by ``r`` in a random direction."""
    phi = rng.random(r.shape[0]) * (2.0 * np.pi)
    return x0 + sx * depth + r * np.cos(phi), y0 + sy * depth + r * np.sin(phi)


def _photons_em(e: EMEmitters, gain: FloatArray, absorber: Absorber, depth_cm: float,
                model: ReadoutModel, rng: np.random.Generator):
    counts = rng.poisson(e.mean_photons * gain[e.event])
    j = np.repeat(np.arange(counts.size), counts)
    alpha = e.alpha[j]
    t = rng.standard_gamma(alpha) * (e.t_max[j] / (alpha - 1.0))  # Gamma(alpha, beta) in X0
    depth = e.z_start_cm[j] + t * absorber.x0_cm
    r, keep = gp_radius_cm(e.energy_gev[j], t / e.t_max[j], absorber, model.tail_acceptance, rng,
                            model.light_radius_scale)
    x, y = _place(rng, e.x_cm[j], e.y_cm[j], e.slope_x[j], e.slope_y[j], depth, r)
    keep &= depth < depth_cm
    return e.event[j][keep], x[keep], y[keep]


def _photons_halo(h: HaloEmitters, gain: FloatArray, depth_cm: float,
                  rng: np.random.Generator):
    counts = rng.poisson(h.mean_photons * gain[h.event])
    j = np.repeat(np.arange(counts.size), counts)
    depth = h.z_start_cm[j] + rng.standard_gamma(h.alpha[j]) * h.depth_scale_cm[j]
    r = _radius(rng, h.radius_cm[j])
    x, y = _place(rng, h.x_cm[j], h.y_cm[j], h.slope_x[j], h.slope_y[j], depth, r)
    keep = depth < depth_cm
    return h.event[j][keep], x[keep], y[keep]


def _photons_track(t: TrackEmitters, gain: FloatArray, model: ReadoutModel,
                   rng: np.random.Generator):
    counts = rng.poisson(t.mean_photons * gain[t.event])
    j = np.repeat(np.arange(counts.size), counts)
    depth = t.z_start_cm[j] + rng.random(j.size) * t.length_cm[j]
    r = np.abs(rng.normal(0.0, model.track_radius_cm, j.size))
    x, y = _place(rng, t.x_cm[j], t.y_cm[j], t.slope_x[j], t.slope_y[j], depth, r)
    return t.event[j], x, y


def read_out(emitters: Emitters, n_events: int, energy_gev: FloatArray, grid: FibreGrid,
             absorber: Absorber, model: ReadoutModel,
             rng: np.random.Generator) -> NDArray[np.int32]:
    """Sample photons from all emitters and count them per fibre.

    Returns:
        Photon counts, shape ``(n_events, *grid.shape)``, int32.
    """
    gain = gain_factors(energy_gev, model, rng)
    parts = [
        _photons_em(emitters.em, gain, absorber, grid.depth_cm, model, rng),
        _photons_halo(emitters.halo, gain, grid.depth_cm, rng),
        _photons_track(emitters.track, gain, model, rng),
    ]
    event = np.concatenate([p[0] for p in parts])
    row_c, col_c = grid.face_to_image(np.concatenate([p[1] for p in parts]),
                                      np.concatenate([p[2] for p in parts]))
    n_rows, n_cols = grid.shape
    row = np.floor((row_c + grid.extent_cm[0] / 2) / grid.pitch_cm[0])
    col = np.floor((col_c + grid.extent_cm[1] / 2) / grid.pitch_cm[1])
    inside = (row >= 0) & (row < n_rows) & (col >= 0) & (col < n_cols)
    flat = (event[inside] * n_rows + row[inside].astype(np.int64)) * n_cols \
        + col[inside].astype(np.int64)
    counts = np.bincount(flat, minlength=n_events * n_rows * n_cols)
    return counts.astype(np.int32).reshape(n_events, n_rows, n_cols)
