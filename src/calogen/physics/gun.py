"""Particle gun: the particles that reach a ZDC, as the 9 ALICE O2 conditions plus a PDG code.

Conditions, in ALICE O2 order and units (``shared/PHYSICS.md``):
``E`` (GeV, total energy), ``vx, vy, vz`` (production vertex, m), ``px, py, pz`` (GeV),
``mass`` (MeV), ``charge`` (e).

The species mix and spectra follow the ALICE O2 figures in PHYSICS.md (one Pb-Pb event,
particles reaching the ZDC region): gamma 46%, n 29%, e+- 12%, pi+- 8%, p 3%, the rest K0L,
K+-, Lambda, d, pbar and others. Neutrons are a mixture of *spectators* (the beam energy per
nucleon, 2.68 TeV for a 5.36 TeV Pb-Pb run, smeared by Fermi motion) and secondaries with a
falling spectrum; photons and e+- are mostly soft. Particles are produced on both sides
(pz > 0 and pz < 0). The momentum points from the vertex to an impact point on the detector
face drawn around the face centre (spectators spread by about +-0.8 cm, PHYSICS.md), so that
the conditions alone fix where the shower starts.

For ZP the impact point is drawn in the ZP's own frame: spectator protons are steered to it by
the beam optics, which a straight line cannot describe; we treat the optics as mapping the beam
axis onto the ZP face centre (a stated simplification).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.zdc import FibreGrid
from calogen.particles import (
    SPECIES,
    ZDC_DISTANCE_M,
    species_table,
)

DETECTOR_DISTANCE_M = ZDC_DISTANCE_M
"""Distance of the ALICE ZDCs from the interaction point, m (see :mod:`calogen.particles`)."""

BEAM_ENERGY_PER_NUCLEON_GEV = 2680.0
"""Energy of a spectator nucleon in a sqrt(s_NN) = 5.36 TeV Pb-Pb run, GeV (PHYSICS.md)."""


@dataclass(frozen=True)
class SpeciesSource:
    """How one species is produced.

    Attributes:
        fraction: share of this species among the generated particles (normalised over all).
        e_min_gev, e_max_gev: range of the falling spectrum, GeV (total energy).
        power: spectral index gamma of dN/dE ~ E^-gamma for the falling part.
        spectator_fraction: share of spectators (beam energy per nucleon) among this species.
        spot_sigma_cm: Gaussian spread of the impact point of the falling-spectrum part, cm.
    """

    fraction: float
    e_min_gev: float
    e_max_gev: float
    power: float
    spectator_fraction: float = 0.0
    spot_sigma_cm: float = 1.5


@dataclass(frozen=True)
class GunConfig:
    """Configuration of :class:`ParticleGun`. All numbers carry their units in the name."""

    sources: dict[int, SpeciesSource]
    beam_energy_per_nucleon_gev: float = BEAM_ENERGY_PER_NUCLEON_GEV
    spectator_relative_sigma: float = 0.10
    """Relative spread of spectator energies (Fermi motion of ~0.1 GeV/c, boosted by the
    beam's Lorentz factor ~ 2860)."""
    spectator_spot_sigma_cm: float = 0.8
    """Spread of spectator impact points around the face centre, cm (PHYSICS.md: +-0.8 cm)."""
    impact_margin_cm: float = 0.5
    """Impact points are drawn within the face enlarged by this margin on each side, cm."""
    vertex_sigma_m: tuple[float, float, float] = (4e-6, 4e-6, 0.025)
    """Gaussian spread of the production vertex (x, y, z), m (O2 training-data scales)."""
    detector_distance_m: float = DETECTOR_DISTANCE_M
    both_sides: bool = True

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form (PDG keys as strings)."""
        d = asdict(self)
        d["sources"] = {str(k): asdict(v) for k, v in self.sources.items()}
        d["vertex_sigma_m"] = list(self.vertex_sigma_m)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GunConfig:
        """Inverse of :meth:`to_dict`; unknown keys or PDG codes raise ``ValueError``."""
        d = dict(d)
        raw = d.pop("sources", None)
        if not isinstance(raw, dict) or not raw:
            raise ValueError("gun config: 'sources' must be a non-empty mapping PDG -> source")
        sources = {}
        for key, value in raw.items():
            pdg = int(key)
            if pdg not in SPECIES:
                raise ValueError(f"gun config: unknown PDG code {pdg} in 'sources'")
            sources[pdg] = SpeciesSource(**value)
        if "vertex_sigma_m" in d:
            d["vertex_sigma_m"] = tuple(d["vertex_sigma_m"])  # type: ignore[arg-type]
        allowed = set(cls.__dataclass_fields__) - {"sources"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(
                f"gun config: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")
        return cls(sources=sources, **d)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Particles:
    """A batch of particles: ``conditions`` (N, 9) float32 in O2 order/units, ``pdg`` (N,) int32."""

    conditions: NDArray[np.float32]
    pdg: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.pdg.shape[0])

    def repeat(self, repeats: int) -> Particles:
        """Each particle ``repeats`` times in a row (the ALICE "nonrandom" layout)."""
        return Particles(np.repeat(self.conditions, repeats, axis=0),
                         np.repeat(self.pdg, repeats))


def _face_extent_xy_cm(grid: FibreGrid) -> tuple[float, float]:
    """Full face size along the horizontal x and vertical y, cm."""
    rows_cm, cols_cm = grid.extent_cm
    return (cols_cm, rows_cm) if grid.row_axis == "-y" else (rows_cm, cols_cm)


def _power_law(rng: np.random.Generator, n: int, e_min: float, e_max: float,
               power: float) -> NDArray[np.float64]:
    """Inverse-CDF sampling of dN/dE ~ E^-power on [e_min, e_max]."""
    u = rng.random(n)
    if abs(power - 1.0) < 1e-9:
        return e_min * (e_max / e_min) ** u
    a = 1.0 - power
    return (e_min**a + u * (e_max**a - e_min**a)) ** (1.0 / a)


def _truncated_normal(rng: np.random.Generator, sigma: NDArray[np.float64],
                      half_width: float) -> NDArray[np.float64]:
    """Zero-mean normal draws restricted to [-half_width, half_width] by resampling."""
    out = rng.normal(0.0, sigma)
    bad = np.abs(out) > half_width
    while bad.any():
        out[bad] = rng.normal(0.0, sigma[bad])
        bad = np.abs(out) > half_width
    return out


@dataclass
class ParticleGun:
    """Draws particles that reach a ZDC.

    Args:
        config: species mix, spectra and beam parameters.
        grid: the detector whose face the particles hit.
    """

    config: GunConfig
    grid: FibreGrid
    _codes: NDArray[np.int64] = field(init=False, repr=False)
    _probs: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        codes = np.array(sorted(self.config.sources), dtype=np.int64)
        probs = np.array([self.config.sources[int(c)].fraction for c in codes], dtype=np.float64)
        if (probs < 0).any() or probs.sum() <= 0:
            raise ValueError("gun config: species fractions must be >= 0 with a positive sum")
        self._codes, self._probs = codes, probs / probs.sum()

    def sample(self, n: int, rng: np.random.Generator) -> Particles:
        """Draw ``n`` particles with the generator ``rng``."""
        cfg = self.config
        pdg = self._codes[rng.choice(len(self._codes), size=n, p=self._probs)]
        mass_mev, charge, _, _ = species_table(pdg)
        mass_gev = mass_mev * 1e-3

        energy = np.empty(n)
        spot = np.empty(n)
        for code in np.unique(pdg):
            sel = np.flatnonzero(pdg == code)
            src = cfg.sources[int(code)]
            m = float(mass_gev[sel[0]])
            e_min = max(src.e_min_gev, 1.001 * m, 1e-3)
            e_max = max(src.e_max_gev, 1.01 * e_min)
            e = _power_law(rng, sel.size, e_min, e_max, src.power)
            sig = np.full(sel.size, src.spot_sigma_cm)
            spectator = rng.random(sel.size) < src.spectator_fraction
            n_spec = int(spectator.sum())
            if n_spec:
                e_spec = cfg.beam_energy_per_nucleon_gev * (
                    1.0 + cfg.spectator_relative_sigma * rng.standard_normal(n_spec))
                e[spectator] = np.maximum(e_spec, 1.01 * max(m, 1e-3))
                sig[spectator] = cfg.spectator_spot_sigma_cm
            energy[sel], spot[sel] = e, sig

        width_x, width_y = _face_extent_xy_cm(self.grid)
        x_cm = _truncated_normal(rng, spot, width_x / 2 + cfg.impact_margin_cm)
        y_cm = _truncated_normal(rng, spot, width_y / 2 + cfg.impact_margin_cm)
        side = np.where(rng.random(n) < 0.5, 1.0, -1.0) if cfg.both_sides else np.ones(n)
        vx, vy, vz = (rng.normal(0.0, s, n) for s in cfg.vertex_sigma_m)

        # Momentum along the line from the vertex to the impact point on the face (metres).
        dx = x_cm * 1e-2 - vx
        dy = y_cm * 1e-2 - vy
        dz = side * cfg.detector_distance_m - vz
        p_abs = np.sqrt(np.maximum(energy**2 - mass_gev**2, 0.0))
        norm = np.sqrt(dx**2 + dy**2 + dz**2)
        cond = np.stack([energy, vx, vy, vz, p_abs * dx / norm, p_abs * dy / norm,
                         p_abs * dz / norm, mass_mev, charge], axis=1)
        return Particles(cond.astype(np.float32), pdg.astype(np.int32))


def _src(fraction: float, e_min: float, e_max: float, power: float, *,
         spectators: float = 0.0, spot: float = 1.5) -> SpeciesSource:
    return SpeciesSource(fraction, e_min, e_max, power, spectators, spot)


ZN_GUN = GunConfig(sources={
    22: _src(0.46, 0.02, 1500.0, 1.45, spot=1.5),
    2112: _src(0.29, 1.0, 1500.0, 0.75, spectators=0.55, spot=1.2),
    11: _src(0.06, 0.02, 800.0, 1.55, spot=1.5),
    -11: _src(0.06, 0.02, 800.0, 1.55, spot=1.5),
    211: _src(0.04, 0.5, 800.0, 1.05, spot=1.5),
    -211: _src(0.04, 0.5, 800.0, 1.05, spot=1.5),
    2212: _src(0.03, 1.0, 800.0, 1.5, spot=1.5),
    130: _src(0.004, 0.6, 600.0, 1.05),
    321: _src(0.002, 0.6, 600.0, 1.05),
    -321: _src(0.002, 0.6, 600.0, 1.05),
    310: _src(0.0005, 0.6, 400.0, 1.05),
    3122: _src(0.002, 1.2, 600.0, 1.05),
    -3122: _src(0.0005, 1.2, 400.0, 1.05),
    3222: _src(0.0005, 1.3, 400.0, 1.05),
    3112: _src(0.0005, 1.3, 400.0, 1.05),
    3322: _src(0.0003, 1.4, 400.0, 1.05),
    1000010020: _src(0.002, 2.0, 1500.0, 0.8),
    -2212: _src(0.001, 1.0, 400.0, 1.1),
    -2112: _src(0.001, 1.0, 400.0, 1.1),
    13: _src(0.001, 0.5, 400.0, 1.2),
    -13: _src(0.001, 0.5, 400.0, 1.2),
})
"""Default ZN gun: the 21 species of the ALICE ZN set with the PHYSICS.md mix."""

ZP_GUN = GunConfig(sources={
    22: _src(0.46, 0.02, 800.0, 1.7, spot=3.0),
    2212: _src(0.10, 0.5, 1500.0, 1.6, spectators=0.08, spot=2.5),
    2112: _src(0.10, 1.0, 800.0, 1.7, spot=3.0),
    11: _src(0.08, 0.02, 400.0, 1.7, spot=3.0),
    -11: _src(0.08, 0.02, 400.0, 1.7, spot=3.0),
    211: _src(0.07, 0.3, 400.0, 1.8, spot=3.0),
    -211: _src(0.07, 0.3, 400.0, 1.8, spot=3.0),
    321: _src(0.005, 0.6, 300.0, 1.3, spot=3.0),
    -321: _src(0.005, 0.6, 300.0, 1.3, spot=3.0),
    130: _src(0.005, 0.6, 300.0, 1.3, spot=3.0),
    1000010020: _src(0.003, 2.0, 1500.0, 0.9, spot=2.5),
    -2212: _src(0.002, 1.0, 300.0, 1.3, spot=3.0),
    13: _src(0.002, 0.5, 300.0, 1.3, spot=3.0),
    -13: _src(0.002, 0.5, 300.0, 1.3, spot=3.0),
})
"""Default ZP gun: mostly soft secondaries plus spectator protons steered onto the ZP."""
