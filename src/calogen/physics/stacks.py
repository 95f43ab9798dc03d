"""Sampling-calorimeter stacks for the parametrised voxel engine.

A stack is a sequence of segments along the shower axis, each a homogeneous *effective medium*
(the volume mixture of its absorber and active layers) that is either read out as one voxel
layer or dead (its energy is lost). Shower depths are mapped between mm, radiation lengths and
interaction lengths segment by segment, so a shower profile in X0 (electromagnetic) or lambda
(hadronic) lands in the right readout layer.

Mixtures (PDG, "Passage of particles through matter", Sec. 34.4.2 and 34.5): for volume
fractions v_j, 1/X0 = sum v_j / X0_j and 1/R_M = sum v_j / R_M,j (lengths in mm), likewise
1/lambda; E_c = E_s X0 / R_M with E_s = 21.2052 MeV; Z_eff is mass weighted. Element and
compound constants: PDG "Atomic and nuclear properties of materials".

Stacks:

* :data:`PAR04_WSI` -- the CaloChallenge 2022 datasets 2/3 detector (Geant4 example Par04,
  arXiv:2410.21611): 45 readout layers of 2 x (1.4 mm W + 0.3 mm Si); energies are the raw
  energies deposited in Si (the Geant4 engine measured E_Si / E_inc = 0.0323).
* :data:`ATLAS_LIKE_BARREL` -- a simplified ATLAS-like barrel at |eta| 0.20-0.25 for dataset
  1 (ATLAS LAr TDR, CERN/LHCC 96-41; Tile TDR, CERN/LHCC 96-42; ATLAS detector paper, JINST 3
  S08003 (2008)). Simplified: flat slabs (no accordion folds, no cylinders, no cracks); each
  section a uniform mixture with one sampling fraction; the LAr/Pb ECAL as 1.53 mm Pb + 0.4 mm
  steel + 4.2 mm LAr per cell; the tile calorimeter as steel : scintillator 4.67 : 1 by volume;
  dead material lumped into three slabs (2.0 X0 before the presampler, 0.5 X0 between the
  presampler and the strips, 0.3 lambda between the ECAL and the tiles), aluminium-like;
  depths are the eta = 0 ones times cosh(0.225). Energies at the electromagnetic scale (the
  active energy divided by the sampling fraction), as the dataset-1 cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from calogen.physics.materials import Absorber

FloatArray = NDArray[np.float64]

E_S_MEV = 21.2052
"""Scale energy E_s = m_e c^2 sqrt(4 pi / alpha), MeV (PDG)."""


@dataclass(frozen=True)
class Medium:
    """A homogeneous (or effective) medium. Lengths in mm, energies in MeV, density g/cm3."""

    name: str
    density_g_cm3: float
    x0_mm: float
    lambda_mm: float
    moliere_mm: float
    critical_energy_mev: float
    z_eff: float

    @classmethod
    def mixture(cls, name: str, parts: Sequence[tuple[Medium, float]]) -> Medium:
        """The effective medium of ``parts`` = (medium, thickness or volume share) pairs."""
        total = sum(t for _, t in parts)
        if total <= 0 or any(t < 0 for _, t in parts):
            raise ValueError(f"mixture {name!r}: thicknesses must be >= 0 with a positive sum")
        v = [(m, t / total) for m, t in parts]
        x0 = 1.0 / sum(f / m.x0_mm for m, f in v)
        lam = 1.0 / sum(f / m.lambda_mm for m, f in v)
        rm = 1.0 / sum(f / m.moliere_mm for m, f in v)
        rho = sum(f * m.density_g_cm3 for m, f in v)
        z = sum(f * m.density_g_cm3 * m.z_eff for m, f in v) / rho
        return cls(name, rho, x0, lam, rm, E_S_MEV * x0 / rm, z)

    def absorber(self) -> Absorber:
        """This medium as an :class:`~calogen.physics.materials.Absorber` (cm, GeV)."""
        return Absorber(self.name, self.x0_mm / 10, self.lambda_mm / 10, self.moliere_mm / 10,
                        self.critical_energy_mev / 1e3, self.z_eff)


# PDG "Atomic and nuclear properties of materials".
TUNGSTEN = Medium("W", 19.30, 3.504, 99.46, 9.327, 7.97, 74.0)
SILICON = Medium("Si", 2.329, 93.70, 465.2, 48.13, 40.19, 14.0)
LEAD = Medium("Pb", 11.35, 5.612, 175.9, 16.02, 7.43, 82.0)
LIQUID_ARGON = Medium("LAr", 1.396, 140.0, 857.7, 90.43, 32.84, 18.0)
IRON = Medium("Fe", 7.874, 17.57, 167.7, 16.93, 21.68, 26.0)
POLYSTYRENE = Medium("polystyrene scintillator", 1.060, 413.1, 777.4, 95.9, 93.11, 5.6)
ALUMINIUM = Medium("Al", 2.699, 88.97, 397.0, 44.0, 42.70, 13.0)


@dataclass(frozen=True)
class Segment:
    """One slab of a stack.

    Attributes:
        name: what it is (e.g. ``"strips"``).
        medium: its effective medium.
        thickness_mm: thickness along the shower axis, mm.
        layer_id: the readout layer it is (a voxel-geometry layer id), ``None`` if dead.
        response: reported MeV per MeV of electromagnetic energy deposited in it (the sampling
            fraction for raw active energies, 1 at the electromagnetic scale).
        hadron_response: response to the non-electromagnetic energy of a hadron shower
            relative to ``response`` (h/e).
        sampling_term_gev: stochastic term a of sigma/E = a / sqrt(E) from sampling, sqrt(GeV).
    """

    name: str
    medium: Medium
    thickness_mm: float
    layer_id: int | None
    response: float = 1.0
    hadron_response: float = 1.0
    sampling_term_gev: float = 0.1


@dataclass(frozen=True)
class SamplingStack:
    """Segments along the shower axis, starting at depth 0 (the particle's entry)."""

    name: str
    segments: tuple[Segment, ...]
    simplifications: str = ""

    def __post_init__(self) -> None:
        if not self.segments or any(s.thickness_mm <= 0 for s in self.segments):
            raise ValueError(f"stack {self.name!r}: needs segments of positive thickness")

    @cached_property
    def edges_mm(self) -> FloatArray:
        """Segment boundaries, mm (``n_segments + 1``)."""
        return np.concatenate([[0.0], np.cumsum([s.thickness_mm for s in self.segments])])

    @cached_property
    def edges_x0(self) -> FloatArray:
        """Segment boundaries in radiation lengths."""
        return np.concatenate([[0.0], np.cumsum([s.thickness_mm / s.medium.x0_mm
                                                 for s in self.segments])])

    @cached_property
    def edges_lambda(self) -> FloatArray:
        """Segment boundaries in interaction lengths."""
        return np.concatenate([[0.0], np.cumsum([s.thickness_mm / s.medium.lambda_mm
                                                 for s in self.segments])])

    @cached_property
    def moliere_mm(self) -> FloatArray:
        """R_M of each segment, mm."""
        return np.array([s.medium.moliere_mm for s in self.segments])

    @cached_property
    def lambda_mm(self) -> FloatArray:
        """Interaction length of each segment, mm."""
        return np.array([s.medium.lambda_mm for s in self.segments])

    @cached_property
    def response(self) -> FloatArray:
        """:attr:`Segment.response` of each segment."""
        return np.array([s.response for s in self.segments])

    @cached_property
    def hadron_response(self) -> FloatArray:
        """:attr:`Segment.hadron_response` of each segment."""
        return np.array([s.hadron_response for s in self.segments])

    @cached_property
    def sampling_term_gev(self) -> FloatArray:
        """:attr:`Segment.sampling_term_gev` of each segment, sqrt(GeV)."""
        return np.array([s.sampling_term_gev for s in self.segments])

    @property
    def depth_x0(self) -> float:
        return float(self.edges_x0[-1])

    @property
    def depth_lambda(self) -> float:
        return float(self.edges_lambda[-1])

    def x0_to_mm(self, t: FloatArray) -> FloatArray:
        """Depth in X0 -> mm (beyond the stack: extrapolated with the last medium)."""
        return _map(t, self.edges_x0, self.edges_mm)

    def mm_to_x0(self, z: FloatArray) -> FloatArray:
        return _map(z, self.edges_mm, self.edges_x0)

    def lambda_to_mm(self, t: FloatArray) -> FloatArray:
        """Depth in interaction lengths -> mm."""
        return _map(t, self.edges_lambda, self.edges_mm)

    def segment_of(self, z_mm: FloatArray) -> NDArray[np.int64]:
        """Segment index of each depth; ``-1`` before the stack, ``n_segments`` beyond it."""
        idx = np.searchsorted(self.edges_mm, z_mm, side="right") - 1
        return np.where(z_mm < 0, -1, np.minimum(idx, len(self.segments))).astype(np.int64)

    def to_dict(self) -> dict[str, object]:
        """JSON description (the producer record of the files it makes)."""
        return {"name": self.name, "simplifications": self.simplifications,
                "depth_x0": round(self.depth_x0, 4), "depth_lambda": round(self.depth_lambda, 4),
                "segments": [{"name": s.name, "medium": s.medium.name,
                              "thickness_mm": s.thickness_mm, "layer_id": s.layer_id,
                              "x0_mm": round(s.medium.x0_mm, 4),
                              "lambda_mm": round(s.medium.lambda_mm, 3),
                              "moliere_mm": round(s.medium.moliere_mm, 4),
                              "response": s.response, "hadron_response": s.hadron_response,
                              "sampling_term_gev": s.sampling_term_gev}
                             for s in self.segments]}


def _map(x: FloatArray, xp: FloatArray, fp: FloatArray) -> FloatArray:
    """Piecewise-linear map through (xp, fp), extended linearly past both ends."""
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xp, fp)
    hi = x > xp[-1]
    if hi.any():
        slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        y[hi] = fp[-1] + (x[hi] - xp[-1]) * slope
    lo = x < xp[0]
    if lo.any():
        slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
        y[lo] = fp[0] + (x[lo] - xp[0]) * slope
    return y


# ---------------------------------------------------------------------------------------------
# CaloChallenge datasets 2 and 3 (Par04)
# ---------------------------------------------------------------------------------------------

W_SI = Medium.mixture("W/Si 1.4 mm / 0.3 mm", [(TUNGSTEN, 1.4), (SILICON, 0.3)])
"""The Par04 sampling medium: X0 4.22 mm, R_M 10.9 mm, E_c 8.2 MeV."""

PAR04_SAMPLING_FRACTION = 0.0323
"""E_Si / E_inc of electrons in the Par04 detector, measured with calogen's Geant4 engine."""

PAR04_SAMPLING_TERM = 0.14
"""Stochastic term of the W/Si sampling fluctuations, sqrt(GeV): set so that sigma/E and the
non-zero voxel fraction of DS2 electrons match calogen's Geant4 engine
(``benchmarks/voxel_reference.py``)."""

PAR04_WSI = SamplingStack(
    "par04-w-si",
    tuple(Segment(f"layer {i}", W_SI, 3.4, i, PAR04_SAMPLING_FRACTION, 1.0,
                  PAR04_SAMPLING_TERM) for i in range(45)),
    simplifications=("each 3.4 mm readout layer (2 x (1.4 mm W + 0.3 mm Si)) is a uniform W/Si "
                     "mixture with one sampling fraction; flat slabs instead of cylinders; "
                     "Grindhammer-Peters homogeneous-media profiles in the mixture"),
)

# ---------------------------------------------------------------------------------------------
# CaloChallenge dataset 1: a simplified ATLAS-like barrel at |eta| 0.20-0.25
# ---------------------------------------------------------------------------------------------

ETA_DS1 = 0.225
"""Pseudorapidity of the dataset-1 slice (|eta| 0.20-0.25); depths scale with cosh(eta)."""

LAR_PB = Medium.mixture("LAr/Pb accordion (1.53 mm Pb, 0.4 mm steel, 4.2 mm LAr)",
                        [(LEAD, 1.53), (IRON, 0.4), (LIQUID_ARGON, 4.2)])
TILE = Medium.mixture("Fe/scintillator tiles (4.67 : 1)", [(IRON, 4.67), (POLYSTYRENE, 1.0)])

LAR_SAMPLING_TERM = 0.10
"""ATLAS LAr barrel stochastic term, sqrt(GeV) (about 10 %/sqrt(E))."""
TILE_SAMPLING_TERM = 0.30
"""Sampling part of the tile calorimeter's stochastic term, sqrt(GeV)."""
LAR_H_OVER_E = 1.0 / 1.4
"""h/e of the LAr/Pb ECAL (non-compensating, e/h about 1.4)."""
TILE_H_OVER_E = 1.0 / 1.36
"""h/e of the tile calorimeter (e/h about 1.36, Tile TDR)."""


def _atlas_like_barrel() -> SamplingStack:
    c = math.cosh(ETA_DS1)

    def x0(medium: Medium, n_x0: float) -> float:
        return n_x0 * medium.x0_mm * c

    def lam(medium: Medium, n_lambda: float) -> float:
        return n_lambda * medium.lambda_mm * c

    segs = (
        Segment("inner detector, solenoid, cryostat", ALUMINIUM, x0(ALUMINIUM, 2.0), None),
        Segment("presampler", LIQUID_ARGON, 11.0 * c, 0, 1.0, LAR_H_OVER_E, LAR_SAMPLING_TERM),
        Segment("presampler to accordion", ALUMINIUM, x0(ALUMINIUM, 0.5), None),
        Segment("strips", LAR_PB, x0(LAR_PB, 4.3), 1, 1.0, LAR_H_OVER_E, LAR_SAMPLING_TERM),
        Segment("middle", LAR_PB, x0(LAR_PB, 16.0), 2, 1.0, LAR_H_OVER_E, LAR_SAMPLING_TERM),
        Segment("back", LAR_PB, x0(LAR_PB, 2.0), 3, 1.0, LAR_H_OVER_E, LAR_SAMPLING_TERM),
        Segment("cryostat back, gap", ALUMINIUM, lam(ALUMINIUM, 0.3), None),
        Segment("tile A", TILE, lam(TILE, 1.5), 12, 1.0, TILE_H_OVER_E, TILE_SAMPLING_TERM),
        Segment("tile BC", TILE, lam(TILE, 4.1), 13, 1.0, TILE_H_OVER_E, TILE_SAMPLING_TERM),
        Segment("tile D", TILE, lam(TILE, 1.8), 14, 1.0, TILE_H_OVER_E, TILE_SAMPLING_TERM),
    )
    return SamplingStack(
        "atlas-like-barrel-eta-0.20-0.25", segs,
        simplifications=("flat slabs, no accordion folds, no cylinders or cracks; each section a "
                         "uniform mixture with one sampling fraction (energies at the EM scale); "
                         "dead material lumped into three aluminium-like slabs (2.0 X0, 0.5 X0, "
                         "0.3 lambda); depths as at eta = 0 times cosh(0.225)"),
    )


ATLAS_LIKE_BARREL = _atlas_like_barrel()
"""ATLAS-like barrel: presampler (layer 0), strips (1), middle (2), back (3), tile A/BC/D
(12, 13, 14); 22.3 X0 of ECAL, 7.4 lambda of tiles."""


# ---------------------------------------------------------------------------------------------
# An ILD-like Si-W ECAL section (point clouds, CaloClouds)
# ---------------------------------------------------------------------------------------------

AIR = Medium("air", 1.205e-3, 303_900.0, 747_600.0, 73_650.0, 87.92, 7.3)
"""Dry air at 1 atm (PDG "Atomic and nuclear properties of materials")."""

MIP_DEDX_MEV_CM2_G: dict[str, float] = {"W": 1.145, "Si": 1.664, "air": 1.815}
"""Minimum-ionisation stopping power, MeV cm2/g (PDG "Atomic and nuclear properties of
materials"): sets the MIP sampling fraction of a slab."""

ILD_E_OVER_MIP = 0.856
"""Electron-to-MIP sampling-fraction ratio e/mip of the W/Si layers, a calibration constant: set
so that the visible energy of 10-90 GeV photons (28.0 MeV per GeV) matches calogen's Geant4
engine (``benchmarks/point_reference.py``)."""

ILD_SAMPLING_TERM = 0.092
"""Stochastic term of the per-spot Si-W sampling fluctuations, sqrt(GeV), a calibration constant:
with 11 MeV spots (Gamma shape 1.3) it gives the per-point energy spectrum of calogen's Geant4
engine (``benchmarks/point_reference.py``)."""


def mip_sampling_fraction(parts: Sequence[tuple[Medium, float]], sensitive: Medium) -> float:
    """E_sensitive / E_total of a minimum-ionising particle crossing ``parts`` (medium,
    thickness mm) of which ``sensitive`` is the read-out one."""
    unknown = [m.name for m, _ in parts if m.name not in MIP_DEDX_MEV_CM2_G]
    if unknown:
        raise ValueError(f"no minimum-ionisation dE/dx for {unknown}; known: "
                         f"{sorted(MIP_DEDX_MEV_CM2_G)}")
    loss = {m.name: MIP_DEDX_MEV_CM2_G[m.name] * m.density_g_cm3 * t for m, t in parts}
    total = sum(loss.values())
    return loss[sensitive.name] / total if total > 0 else 0.0


def slab_stack(name: str, layer_edges_mm: Sequence[float], absorber_mm: Sequence[float],
               sensitive_mm: float, *, absorber: Medium = TUNGSTEN, sensitive: Medium = SILICON,
               gap: Medium = AIR, e_over_mip: float = ILD_E_OVER_MIP,
               sampling_term_gev: float = ILD_SAMPLING_TERM) -> SamplingStack:
    """Planar layers (absorber, sensitive, gap filling the pitch), each one readout segment
    (``layer_id`` = layer index) of their effective mixture, with response
    ``e_over_mip * mip_sampling_fraction``. Lengths in mm."""
    pitch = np.diff(np.asarray(layer_edges_mm, dtype=np.float64))
    if len(pitch) != len(absorber_mm):
        raise ValueError(f"stack {name!r}: {len(pitch)} layer pitches for "
                         f"{len(absorber_mm)} absorber thicknesses")
    segments = []
    for i, (p, w) in enumerate(zip(pitch, absorber_mm, strict=True)):
        gap_mm = float(p) - w - sensitive_mm
        if gap_mm < -1e-9:
            raise ValueError(f"stack {name!r}: layer {i} pitch {p} mm cannot hold {w} mm of "
                             f"{absorber.name} and {sensitive_mm} mm of {sensitive.name}")
        parts = [(absorber, w), (sensitive, sensitive_mm), (gap, max(gap_mm, 0.0))]
        medium = Medium.mixture(f"{absorber.name}/{sensitive.name}/{gap.name} {w} / "
                                f"{sensitive_mm} / {max(gap_mm, 0.0):.2f} mm", parts)
        segments.append(Segment(f"layer {i}", medium, float(p), i,
                                e_over_mip * mip_sampling_fraction(parts, sensitive), 1.0,
                                sampling_term_gev))
    return SamplingStack(
        name, tuple(segments),
        simplifications=(f"each layer ({absorber.name}, {sensitive.name}, {gap.name} gap) is a "
                         "uniform mixture read out with one sampling fraction (e/mip times the "
                         "MIP sampling fraction); Grindhammer-Peters homogeneous-media profiles "
                         "in the mixture"))


def ild_like_si_w() -> SamplingStack:
    """The ILD-like Si-W ECAL section of the Geant4 engine's ``ild`` slab detector (its layer
    edges, W thicknesses 2.1 / 4.2 mm and 0.5 mm Si; the rest of each layer is air)."""
    from calogen.physics.geant4.detectors import SlabDetector, get_detector

    d = get_detector("ild")
    assert isinstance(d, SlabDetector)
    return slab_stack("ild-like-si-w", d.volume.layer_edges_mm, d.absorber_mm, d.sensitive_mm)
