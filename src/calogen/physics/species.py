"""Particle species that reach the ZDCs: PDG codes, names, masses and charges.

Masses in MeV and charges in units of e, as the ALICE O2 conditions use them (PDG Review of
Particle Physics values, rounded to keV).
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
            f"PDG code {int(pdg)} is not a species the reference simulator knows; "
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
