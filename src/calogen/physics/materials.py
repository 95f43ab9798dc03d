"""Absorber materials of the ZDCs and the shower-scale constants derived from them.

Sources: ``shared/PHYSICS.md`` (ALICE ZN/ZP figures); PDG "Atomic and nuclear properties of
materials" for brass and tungsten (critical energy, Moliere radius).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Absorber:
    """Shower-relevant properties of a calorimeter absorber.

    Attributes:
        name: material description.
        x0_cm: radiation length X0, cm.
        lambda_int_cm: nuclear interaction length (nucleons), cm.
        moliere_radius_cm: Moliere radius R_M, cm.
        critical_energy_gev: critical energy E_c, GeV (Rossi definition).
        z_eff: effective atomic number (enters the Grindhammer-Peters parameters).
    """

    name: str
    x0_cm: float
    lambda_int_cm: float
    moliere_radius_cm: float
    critical_energy_gev: float
    z_eff: float

    def to_dict(self) -> dict[str, float | str]:
        """JSON-serialisable description."""
        return asdict(self)


TUNGSTEN_ALLOY = Absorber(
    name="tungsten alloy (rho = 17.6 g/cm3)",
    x0_cm=0.40,            # 100 cm = 251 X0 (PHYSICS.md)
    lambda_int_cm=11.5,    # 100 cm = 8.7 lambda_int (PHYSICS.md)
    moliere_radius_cm=0.93,
    critical_energy_gev=0.0080,  # W: 7.97 MeV (PDG)
    z_eff=74.0,
)
"""ZN absorber."""

BRASS = Absorber(
    name="brass",
    x0_cm=1.50,            # 150 cm = 100 X0 (PHYSICS.md)
    lambda_int_cm=18.3,    # 150 cm = 8.2 lambda_int (PHYSICS.md)
    moliere_radius_cm=1.60,  # Cu 1.57 cm, Zn 1.71 cm (PDG)
    critical_energy_gev=0.0200,  # Cu 19.4 MeV, Zn 20.3 MeV (PDG)
    z_eff=29.4,
)
"""ZP absorber."""
