import numpy as np
import pytest

from calogen.particles import (
    CONDITION_COLUMNS,
    CONDITION_UNITS,
    gun_conditions,
    impact_point_cm,
    species_name,
    species_of,
)


def test_zdc_columns_are_the_o2_columns_with_units():
    assert CONDITION_COLUMNS == ("E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge")
    assert CONDITION_UNITS[0] == "GeV" and CONDITION_UNITS[7] == "MeV"


def test_species_lookup():
    assert species_name(2112) == "n" and species_name(99) == "pdg:99"
    assert species_of(22).mass_mev == 0.0
    with pytest.raises(ValueError, match="99"):
        species_of(99)


def test_gun_conditions():
    assert gun_conditions() == (("E_inc",), ("GeV",))
    assert gun_conditions("E_inc", "theta")[1] == ("GeV", "rad")
    with pytest.raises(ValueError, match="energy"):
        gun_conditions("energy")


def test_impact_point_of_a_straight_track():
    c = np.zeros((1, 9))
    c[0, 4], c[0, 6] = 0.01, 100.0  # px, pz GeV
    x, y, sx, sy = impact_point_cm(c, detector_distance_m=100.0)
    assert x[0] == pytest.approx(1.0) and y[0] == 0 and sx[0] == pytest.approx(1e-4)
