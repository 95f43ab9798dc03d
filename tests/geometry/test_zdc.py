import numpy as np
import pytest

from calogen.geometry import ZN, ZP, get_grid


def test_physical_extent_matches_the_detectors():
    assert ZN.extent_cm == pytest.approx((7.04, 7.04))
    assert ZP.extent_cm == pytest.approx((22.4, 12.0))
    assert ZN.n_pixels == 1936


def test_pixel_centres_are_symmetric_and_one_pitch_apart():
    rows, cols = ZN.pixel_centres_cm()
    assert rows[0] == pytest.approx(-3.44) and rows[-1] == pytest.approx(3.44)
    np.testing.assert_allclose(np.diff(cols), 0.16)


def test_face_to_image_orientation():
    # ZN: row 0 is the top (y > 0), so a point above the centre has a negative row coordinate.
    r, c = ZN.face_to_image(np.array([1.0]), np.array([2.0]))
    assert r[0] == -2.0 and c[0] == 1.0
    # ZP: the 56-pixel row axis is the long horizontal side.
    r, c = ZP.face_to_image(np.array([1.0]), np.array([2.0]))
    assert r[0] == 1.0 and c[0] == 2.0


def test_get_grid():
    assert get_grid("zn") is ZN and get_grid("ZP") is ZP
    with pytest.raises(ValueError, match="unknown ZDC detector"):
        get_grid("zdc")
