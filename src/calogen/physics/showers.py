"""Shower development: from particles to *light emitters*.

A shower is represented by a few emitters, each a source of Cherenkov photons with a mean
photon count, a start point, a longitudinal profile and a lateral profile. The readout
(:mod:`calogen.physics.readout`) samples individual photons from the emitters and counts them
per fibre. Three kinds exist:

* :class:`EMEmitters` - an electromagnetic (sub-)shower with the Grindhammer-Peters
  parametrisation for homogeneous media (G. Grindhammer, S. Peters, hep-ex/0001020): a Gamma
  longitudinal profile whose ln T_max and ln alpha fluctuate as correlated Gaussians, and a
  core + tail radial profile whose radii and core weight depend on energy and on the depth in
  units of T_max. Shower maximum t_max = ln(E/E_c) + C with C = -0.5 for e+- and +0.5 for
  photons (Longo), i.e. the GP electron value shifted by +1 X0 for photons.
* :class:`HaloEmitters` - the diffuse light of the non-electromagnetic part of a hadron shower
  (slow charged hadrons make little Cherenkov light): a Gamma longitudinal profile in units of
  lambda_int and a wide radial profile.
* :class:`TrackEmitters` - a single charged track: minimum-ionising muons over the whole
  depth, charged hadrons up to their first interaction.

Hadron showers (Bock et al., Nucl. Instr. Meth. 186 (1981) 533 for the depth scales; Groom,
Nucl. Instr. Meth. A 572 (2007) 633 for the electromagnetic fraction): the first interaction
depth is exponential with mean lambda_int; the electromagnetic fraction has mean
<f_em> = 1 - (E/E0)^(k-1), E0 = 1 GeV, k = 0.82, and fluctuates event by event (Beta
distribution); the electromagnetic energy is shared among several pi0 sub-showers
(Dirichlet), each displaced from the shower axis by p_T / E_sub times a flight path of order
lambda_int, so soft sub-showers land far from the axis and can leak out of the 7 cm wide ZN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from calogen.physics.materials import Absorber

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class HadronShowerModel:
    """Parameters of the hadronic shower model (see module docstring for sources)."""

    fem_e0_gev: float = 1.0
    """E0 of <f_em> = 1 - (E/E0)^(k-1) for meson-induced showers, GeV (Groom 2007: ~1 GeV)."""
    fem_e0_baryon_gev: float = 1.0
    """E0 of <f_em> for baryon-induced showers (n, p, hyperons, nuclei), GeV. Groom 2007
    finds ~2.6 GeV: the leading baryon keeps its baryon number, so fewer pi0 are made than in a
    pion shower of the same energy (no charge exchange pi- p -> pi0 n). The default (equal to
    ``fem_e0_gev``) treats every species alike."""
    fem_k: float = 0.82
    """k of <f_em> (Groom 2007)."""
    fem_concentration: float = 7.0
    """Beta-distribution concentration of f_em: std(f_em) = sqrt(m (1-m) / (1 + c))."""
    subshower_rate: float = 3.0
    """Mean number of pi0 sub-showers beyond the first: rate * ln(1 + E_em / 10 GeV)."""
    subshower_dirichlet: float = 1.0
    """Dirichlet concentration of the energy sharing among sub-showers (< 1: one dominates)."""
    pt_sigma_gev: float = 0.30
    """Per-axis Gaussian sigma of the sub-shower transverse momentum, GeV."""
    cascade_spread_cm: float = 0.28
    """Per-axis Gaussian sigma of the extra lateral displacement a sub-shower accumulates
    through the generations of the hadronic cascade, cm."""
    subshower_light_factor: float = 0.86
    """Light of a pi0 sub-shower relative to a primary e/gamma shower of the same energy (its
    particles cross the fibres at larger angles). Calibration constant: fixed so that ZN
    neutrons above 100 GeV give ~0.66 photons/GeV against ~1.05 for e/gamma (PHYSICS.md)."""
    subshower_delay_lambda: float = 0.3
    """Mean extra depth of a sub-shower start after the first interaction, in lambda_int, at
    1 GeV available energy (scaled by ``(E / GeV)^subshower_delay_exponent``)."""
    subshower_delay_exponent: float = 0.0
    """Energy exponent b of the sub-shower depth scale: higher-energy cascades run through
    more generations and reach deeper. The hadronic attenuation length grows as
    lambda_int (E / GeV)^0.13 (Fabjan, Gianotti, Rev. Mod. Phys. 75 (2003) 1243), which makes
    TeV showers leak out of the back of an 8.7 lambda_int calorimeter. 0: no energy
    dependence."""
    halo_radius_cm: float = 1.5
    """Radius R of the non-EM light's lateral profile 2 r R^2 / (r^2 + R^2)^2, cm."""
    halo_alpha: float = 2.0
    """Shape of the non-EM Gamma longitudinal profile (scale lambda_int / alpha)."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


INTERACTION_LENGTH_FACTOR: dict[int, float] = {
    # Ratio of the interaction length of a species to that of nucleons (inverse ratio of
    # inelastic cross-sections at high energy, PDG): mesons interact less, antibaryons and
    # deuterons more.
    211: 1.2, -211: 1.2, 321: 1.3, -321: 1.3, 130: 1.3, 310: 1.3,
    -2112: 0.85, -2212: 0.85, -3122: 0.85, 1000010020: 0.7,
}


@dataclass(frozen=True)
class EmitterArrays:
    """Fields shared by every emitter kind. All arrays have one entry per emitter.

    Attributes:
        event: index of the event the emitter belongs to.
        mean_photons: expected number of photons (before readout gain fluctuations).
        x_cm, y_cm: axis position extrapolated to the detector face (depth 0), face frame, cm.
        slope_x, slope_y: axis slopes dx/dz, dy/dz.
        z_start_cm: depth at which the emission starts, cm.
    """

    event: IntArray
    mean_photons: FloatArray
    x_cm: FloatArray
    y_cm: FloatArray
    slope_x: FloatArray
    slope_y: FloatArray
    z_start_cm: FloatArray


@dataclass(frozen=True)
class EMEmitters(EmitterArrays):
    """Electromagnetic (sub-)showers: ``energy_gev`` sets the GP radial parameters; ``alpha``
    and ``t_max`` (in X0) are this shower's Gamma longitudinal profile."""

    energy_gev: FloatArray
    alpha: FloatArray
    t_max: FloatArray


@dataclass(frozen=True)
class HaloEmitters(EmitterArrays):
    """Diffuse non-electromagnetic light of hadron showers (one per shower): Gamma(alpha)
    longitudinal profile with scale ``depth_scale_cm``, lateral radius ``radius_cm``."""

    alpha: FloatArray
    depth_scale_cm: FloatArray
    radius_cm: FloatArray


@dataclass(frozen=True)
class TrackEmitters(EmitterArrays):
    """Straight charged tracks emitting uniformly along ``length_cm`` from ``z_start_cm``."""

    length_cm: FloatArray


@dataclass(frozen=True)
class Emitters:
    """All emitters of a batch of events."""

    em: EMEmitters
    halo: HaloEmitters
    track: TrackEmitters


def gp_longitudinal(energy_gev: FloatArray, is_photon: NDArray[np.bool_], absorber: Absorber,
                    rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Draw (alpha, T_max in X0) of the Gamma longitudinal profile for each shower.

    Grindhammer-Peters homogeneous-media parametrisation (hep-ex/0001020):
    <ln T> = ln(ln y - 0.812), <ln alpha> = ln(0.81 + (0.458 + 2.26/Z) ln y),
    sigma(ln T) = 1/(-1.4 + 1.26 ln y), sigma(ln alpha) = 1/(-0.58 + 0.86 ln y),
    rho(ln T, ln alpha) = 0.705 - 0.023 ln y, with y = E/E_c. Photon showers peak 1 X0
    later (Longo's C = +0.5 vs -0.5 for electrons). ln y is floored at 2.5 (E ~ 12 E_c)
    where the fitted fluctuation formulas stop being meaningful.
    """
    ln_y = np.maximum(np.log(np.maximum(energy_gev, 1e-6) / absorber.critical_energy_gev), 2.5)
    mean_ln_t = np.log(ln_y - 0.812 + np.where(is_photon, 1.0, 0.0))
    mean_ln_a = np.log(0.81 + (0.458 + 2.26 / absorber.z_eff) * ln_y)
    sig_t = 1.0 / (-1.4 + 1.26 * ln_y)
    sig_a = 1.0 / (-0.58 + 0.86 * ln_y)
    rho = np.clip(0.705 - 0.023 * ln_y, -0.99, 0.99)
    z1 = rng.standard_normal(energy_gev.shape)
    z2 = rng.standard_normal(energy_gev.shape)
    c1, c2 = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    t_max = np.exp(mean_ln_t + sig_t * (c1 * z1 + c2 * z2))
    alpha = np.maximum(np.exp(mean_ln_a + sig_a * (c1 * z1 - c2 * z2)), 1.05)
    return alpha, t_max


def is_baryon_induced(pdg: IntArray) -> NDArray[np.bool_]:
    """Whether a hadron shower is baryon-induced: positive PDG codes of baryons (4 digits,
    e.g. 2112, 2212, 3122) and nuclei (10 digits). Antibaryons annihilate: not included."""
    return np.asarray(pdg) >= 1000


def mean_em_fraction(energy_gev: FloatArray, model: HadronShowerModel,
                     baryon: NDArray[np.bool_] | None = None) -> FloatArray:
    """<f_em> = 1 - (E/E0)^(k-1) (Groom 2007), clipped to [0.02, 0.98]; E in GeV.

    E0 is ``model.fem_e0_baryon_gev`` where ``baryon`` is true, ``model.fem_e0_gev`` elsewhere.
    """
    e0 = model.fem_e0_gev if baryon is None else np.where(
        baryon, model.fem_e0_baryon_gev, model.fem_e0_gev)
    e = np.maximum(energy_gev / e0, 1.0)
    return np.clip(1.0 - e ** (model.fem_k - 1.0), 0.02, 0.98)


def develop_showers(
    *,
    kind: IntArray,
    pdg: IntArray,
    energy_gev: FloatArray,
    available_gev: FloatArray,
    charged: NDArray[np.bool_],
    x_cm: FloatArray,
    y_cm: FloatArray,
    slope_x: FloatArray,
    slope_y: FloatArray,
    absorber: Absorber,
    depth_cm: float,
    model: HadronShowerModel,
    photons_per_gev: float,
    halo_relative_yield: float,
    track_photons_per_cm: float,
    rng: np.random.Generator,
) -> Emitters:
    """Turn a batch of particles into light emitters.

    Args:
        kind: 0 electromagnetic, 1 hadronic, 2 muon (``ShowerKind`` order), per event.
        pdg: PDG codes (photons get the later GP shower maximum).
        energy_gev: total energy, GeV.
        available_gev: energy available to the shower (kinetic for baryons, E + m for
            antibaryons), GeV.
        charged: whether the primary is charged (tracks before the first interaction).
        x_cm, y_cm, slope_x, slope_y: impact point on the face (cm) and slopes.
        absorber, depth_cm: absorber material and its length, cm.
        model: hadron shower parameters.
        photons_per_gev: mean Cherenkov photons per GeV of electromagnetic energy.
        halo_relative_yield: photons per GeV of non-EM energy relative to EM energy.
        track_photons_per_cm: photons per cm of a charged track.
        rng: random generator (consumed in a fixed order: deterministic for a seed).
    """
    n = kind.shape[0]
    idx = np.arange(n, dtype=np.int64)
    lam = absorber.lambda_int_cm * np.array(
        [INTERACTION_LENGTH_FACTOR.get(int(p), 1.0) for p in pdg], dtype=np.float64
    ) if n else np.zeros(0)

    # --- electromagnetic primaries: one GP shower each, starting at the face.
    em = np.flatnonzero(kind == 0)
    # --- hadrons: first interaction, f_em, sub-showers.
    had = np.flatnonzero(kind == 1)
    z_first = rng.exponential(lam[had])
    interacts = z_first < depth_cm
    had_i = had[interacts]
    z_i = z_first[interacts]
    e_avail = available_gev[had_i]
    m = mean_em_fraction(e_avail, model, is_baryon_induced(pdg[had_i]))
    c = model.fem_concentration
    f_em = rng.beta(m * c, (1.0 - m) * c)
    e_em = f_em * e_avail
    e_non = (1.0 - f_em) * e_avail
    n_sub = 1 + rng.poisson(model.subshower_rate * np.log1p(e_em / 10.0))
    owner = np.repeat(np.arange(had_i.size), n_sub)
    share = rng.standard_gamma(model.subshower_dirichlet, owner.size)
    share_sum = np.bincount(owner, weights=share, minlength=had_i.size)
    e_sub = e_em[owner] * share / np.where(share_sum[owner] > 0, share_sum[owner], 1.0)
    flight = rng.exponential(lam[had_i][owner])
    pt = rng.normal(0.0, model.pt_sigma_gev, (owner.size, 2))
    # Transverse displacement p_T / E * L, with the emission angle capped at 1 rad.
    angle = np.minimum(np.hypot(pt[:, 0], pt[:, 1]) / np.maximum(e_sub, 1e-3), 1.0)
    phi = np.arctan2(pt[:, 1], pt[:, 0])
    dx, dy = angle * flight * np.cos(phi), angle * flight * np.sin(phi)
    delay_scale = model.subshower_delay_lambda * lam[had_i] * np.maximum(
        e_avail, 1.0) ** model.subshower_delay_exponent
    z_sub = z_i[owner] + rng.exponential(delay_scale[owner])
    ev_sub = had_i[owner]
    sx_sub, sy_sub = slope_x[ev_sub], slope_y[ev_sub]
    walk = rng.normal(0.0, model.cascade_spread_cm, (owner.size, 2))
    x_sub = x_cm[ev_sub] + dx + walk[:, 0]
    y_sub = y_cm[ev_sub] + dy + walk[:, 1]

    em_energy = np.concatenate([energy_gev[em], e_sub])
    em_photon = np.concatenate([pdg[em] == 22, np.ones(e_sub.size, dtype=bool)])
    alpha, t_max = gp_longitudinal(em_energy, em_photon, absorber, rng)
    em_out = EMEmitters(
        event=np.concatenate([idx[em], ev_sub]),
        mean_photons=photons_per_gev * em_energy * np.concatenate(
            [np.ones(em.size), np.full(e_sub.size, model.subshower_light_factor)]),
        x_cm=np.concatenate([x_cm[em], x_sub]),
        y_cm=np.concatenate([y_cm[em], y_sub]),
        slope_x=np.concatenate([slope_x[em], sx_sub]),
        slope_y=np.concatenate([slope_y[em], sy_sub]),
        z_start_cm=np.concatenate([np.zeros(em.size), z_sub]),
        energy_gev=em_energy,
        alpha=alpha,
        t_max=t_max,
    )

    halo_out = HaloEmitters(
        event=had_i,
        mean_photons=photons_per_gev * halo_relative_yield * e_non,
        x_cm=x_cm[had_i], y_cm=y_cm[had_i],
        slope_x=slope_x[had_i], slope_y=slope_y[had_i],
        z_start_cm=z_i,
        alpha=np.full(had_i.size, model.halo_alpha),
        depth_scale_cm=lam[had_i] / model.halo_alpha,
        radius_cm=np.full(had_i.size, model.halo_radius_cm),
    )

    # --- tracks: muons over the whole depth, charged hadrons up to the first interaction.
    mu = np.flatnonzero(kind == 2)
    ch = charged[had]
    tr_ev = np.concatenate([mu, had[ch]])
    tr_len = np.concatenate([np.full(mu.size, depth_cm), np.minimum(z_first[ch], depth_cm)])
    track_out = TrackEmitters(
        event=tr_ev,
        mean_photons=track_photons_per_cm * tr_len,
        x_cm=x_cm[tr_ev], y_cm=y_cm[tr_ev],
        slope_x=slope_x[tr_ev], slope_y=slope_y[tr_ev],
        z_start_cm=np.zeros(tr_ev.size),
        length_cm=tr_len,
    )
    return Emitters(em_out, halo_out, track_out)
