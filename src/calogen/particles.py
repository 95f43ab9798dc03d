"""The vocabulary of particles and conditions, below every other layer but :mod:`calogen.atomic`.

* species: PDG codes, printable names, masses (MeV) and charges (e), as the ALICE O2 conditions
  use them (PDG Review of Particle Physics values, rounded to keV);
* condition columns and their units: the 9 ALICE O2 ZDC columns and the calorimeter-gun columns
  (incident energy, and direction or position when they vary);
* the impact point of a particle on a detector face at a given distance (straight line).

Numpy only: the simulator, the data layer, the metrics, the report and the models import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import ArrayLike, NDArray


class ShowerKind(Enum):
    """How a species deposits energy in a calorimeter."""

    ELECTROMAGNETIC = "em"
    HADRONIC = "hadronic"
    MUON = "muon"


@dataclass(frozen=True)
class Species:
    """One particle species.

    Attributes:
        pdg: PDG Monte Carlo code.
        name: short printable name.
        mass_mev: rest mass, MeV.
        charge: electric charge, e.
        kind: shower type it starts.
        baryon_number: +1 baryons, -1 antibaryons, 2 deuteron, 0 otherwise (sets the energy
            available to a hadronic shower: kinetic energy for baryons, E + m for antibaryons).
    """

    pdg: int
    name: str
    mass_mev: float
    charge: float
    kind: ShowerKind
    baryon_number: int = 0


_EM, _HAD, _MU = ShowerKind.ELECTROMAGNETIC, ShowerKind.HADRONIC, ShowerKind.MUON

SPECIES: dict[int, Species] = {s.pdg: s for s in (
    Species(22, "gamma", 0.0, 0.0, _EM),
    Species(11, "e-", 0.511, -1.0, _EM),
    Species(-11, "e+", 0.511, 1.0, _EM),
    Species(13, "mu-", 105.658, -1.0, _MU),
    Species(-13, "mu+", 105.658, 1.0, _MU),
    Species(211, "pi+", 139.570, 1.0, _HAD),
    Species(-211, "pi-", 139.570, -1.0, _HAD),
    Species(321, "K+", 493.677, 1.0, _HAD),
    Species(-321, "K-", 493.677, -1.0, _HAD),
    Species(130, "K0L", 497.611, 0.0, _HAD),
    Species(310, "K0S", 497.611, 0.0, _HAD),
    Species(2112, "n", 939.565, 0.0, _HAD, 1),
    Species(-2112, "nbar", 939.565, 0.0, _HAD, -1),
    Species(2212, "p", 938.272, 1.0, _HAD, 1),
    Species(-2212, "pbar", 938.272, -1.0, _HAD, -1),
    Species(3122, "Lambda", 1115.683, 0.0, _HAD, 1),
    Species(-3122, "Lambdabar", 1115.683, 0.0, _HAD, -1),
    Species(3222, "Sigma+", 1189.37, 1.0, _HAD, 1),
    Species(3112, "Sigma-", 1197.449, -1.0, _HAD, 1),
    Species(3322, "Xi0", 1314.86, 0.0, _HAD, 1),
    Species(1000010020, "d", 1875.613, 1.0, _HAD, 2),
)}
"""The 21 species of the ALICE ZN data set, keyed by PDG code."""


def species_name(pdg: int) -> str:
    """Printable name of a PDG code (``"pdg:<code>"`` when the species is unknown)."""
    s = SPECIES.get(int(pdg))
    return s.name if s is not None else f"pdg:{int(pdg)}"


def species_of(pdg: int) -> Species:
    """The :class:`Species` of a PDG code; ``ValueError`` naming the code if unknown."""
    try:
        return SPECIES[int(pdg)]
    except KeyError:
        raise ValueError(
            f"PDG code {int(pdg)} is not a species calogen knows; "
            f"known codes: {sorted(SPECIES)}") from None


def species_table(pdg: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                           NDArray[np.int64], NDArray[np.int64]]:
    """Vectorised lookup: (mass MeV, charge e, kind index, baryon number) for an array of codes.

    Kind index follows ``list(ShowerKind)`` order (0 EM, 1 hadronic, 2 muon). Unknown codes raise.
    """
    codes = np.asarray(pdg, dtype=np.int64)
    uniq, inverse = np.unique(codes, return_inverse=True)
    kinds = list(ShowerKind)
    table = [species_of(int(c)) for c in uniq]
    mass = np.array([s.mass_mev for s in table], dtype=np.float64)[inverse]
    charge = np.array([s.charge for s in table], dtype=np.float64)[inverse]
    kind = np.array([kinds.index(s.kind) for s in table], dtype=np.int64)[inverse]
    baryon = np.array([s.baryon_number for s in table], dtype=np.int64)[inverse]
    return mass, charge, kind, baryon


# -- condition columns -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionColumn:
    """One named condition column: ``name``, ``unit`` and what it means."""

    name: str
    unit: str
    meaning: str


ZDC_CONDITIONS: tuple[ConditionColumn, ...] = (
    ConditionColumn("E", "GeV", "total energy"),
    ConditionColumn("vx", "m", "production vertex x"),
    ConditionColumn("vy", "m", "production vertex y"),
    ConditionColumn("vz", "m", "production vertex z"),
    ConditionColumn("px", "GeV", "momentum x"),
    ConditionColumn("py", "GeV", "momentum y"),
    ConditionColumn("pz", "GeV", "momentum z"),
    ConditionColumn("mass", "MeV", "rest mass"),
    ConditionColumn("charge", "e", "electric charge"),
)
"""The ZDC particle conditions in ALICE O2 order and units (``Detectors/ZDC/fastsimulation``)."""

CONDITION_COLUMNS: tuple[str, ...] = tuple(c.name for c in ZDC_CONDITIONS)
"""Names of :data:`ZDC_CONDITIONS` (``E, vx, vy, vz, px, py, pz, mass, charge``)."""

CONDITION_UNITS: tuple[str, ...] = tuple(c.unit for c in ZDC_CONDITIONS)
"""Units of :data:`ZDC_CONDITIONS`."""

GUN_CONDITIONS: dict[str, ConditionColumn] = {c.name: c for c in (
    ConditionColumn("E_inc", "GeV", "incident energy"),
    ConditionColumn("theta", "rad", "polar angle of the direction to the detector axis"),
    ConditionColumn("phi", "rad", "azimuth of the direction"),
    ConditionColumn("x0", "mm", "impact point x on the calorimeter face"),
    ConditionColumn("y0", "mm", "impact point y on the calorimeter face"),
)}
"""Columns of a calorimeter particle gun (CaloChallenge, CaloClouds): the incident energy always,
the others only when they vary."""


def gun_conditions(*names: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Column names and units of a calorimeter gun with columns ``names`` (``"E_inc"`` first
    when no name is given); ``ValueError`` naming an unknown column and the known ones."""
    names = names or ("E_inc",)
    unknown = [n for n in names if n not in GUN_CONDITIONS]
    if unknown:
        raise ValueError(f"unknown gun condition column(s) {unknown}; known: "
                         f"{list(GUN_CONDITIONS)}")
    return tuple(names), tuple(GUN_CONDITIONS[n].unit for n in names)


# -- impact points ---------------------------------------------------------------------------

ZDC_DISTANCE_M = 112.5
"""Distance of the ALICE ZDCs from the interaction point, m (both sides; PHYSICS.md)."""


def impact_point_cm(conditions: NDArray[np.floating], *,
                    detector_distance_m: float = ZDC_DISTANCE_M
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                               NDArray[np.float64], NDArray[np.float64]]:
    """Impact point on a detector face and track slopes, from ZDC conditions ``(N, 9)``.

    Straight-line propagation from the vertex (vx, vy, vz) along (px, py, pz) to the plane
    z = sign(pz) * ``detector_distance_m``.

    Returns:
        ``(x_cm, y_cm, slope_x, slope_y)``: face coordinates in cm and the slopes dx/d|z|,
        dy/d|z| along the detector depth (dimensionless).
    """
    c = np.asarray(conditions, dtype=np.float64)
    vx, vy, vz, px, py, pz = (c[:, i] for i in range(1, 7))
    pz_safe = np.where(np.abs(pz) > 1e-12, pz, 1e-12)
    sx, sy = px / np.abs(pz_safe), py / np.abs(pz_safe)
    lever = detector_distance_m - np.sign(pz_safe) * vz  # path length along |z|, m
    return (vx + sx * lever) * 100.0, (vy + sy * lever) * 100.0, sx, sy
