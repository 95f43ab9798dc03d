import numpy as np
import pytest

from calogen.geometry import ZN, ZP, channel_sums
from calogen.metrics.observables import ZDCObservables, extractor_for


def test_names_units_and_shape():
    ex = ZDCObservables(ZN)
    assert ex.names[:5] == ("channel_common", "channel_TL", "channel_TR", "channel_BL",
                            "channel_BR")
    assert len(ex.names) == len(ex.units) == 14
    assert ex(np.zeros((3, 44, 44))).shape == (3, 14)


def test_single_hot_pixel_gives_exact_observables():
    img = np.zeros((1, 44, 44))
    img[0, 10, 30] = 50.0
    obs = dict(zip(ZDCObservables(ZN).names, ZDCObservables(ZN)(img)[0], strict=True))
    rows, cols = ZN.pixel_centres_cm()
    assert obs["photon_sum"] == 50.0
    assert obs["cog_x"] == pytest.approx(cols[30]) and obs["cog_y"] == pytest.approx(rows[10])
    assert obs["width_x"] == pytest.approx(0.0, abs=1e-9)
    assert obs["lit_fibres"] == 1 and obs["hottest_value"] == 50.0
    assert (obs["hottest_row"], obs["hottest_col"]) == (10, 30)
    assert obs["channel_TR"] == 50.0  # (10 + 30) even, top-right quadrant, O2 convention


def test_widths_and_centre_of_two_pixels():
    img = np.zeros((1, 44, 44))
    img[0, 20, 10] = 10.0
    img[0, 20, 12] = 10.0
    obs = ZDCObservables(ZN)(img)[0]
    names = ZDCObservables(ZN).names
    assert obs[names.index("width_x")] == pytest.approx(0.16)  # half of 2 pitches
    assert obs[names.index("width_y")] == pytest.approx(0.0, abs=1e-9)


def test_channels_match_geometry_and_empty_images_are_defined():
    rng = np.random.default_rng(0)
    imgs = rng.poisson(0.2, (5, 56, 30))
    imgs[2] = 0
    ex = ZDCObservables(ZP, "warsaw")
    obs = ex(imgs)
    np.testing.assert_array_equal(obs[:, :5], channel_sums(imgs, ZP, "warsaw"))
    assert np.isfinite(obs).all()
    assert obs[2, ex.names.index("hottest_row")] == -1


def test_extractor_for_checks_detector_and_shape():
    assert isinstance(extractor_for("ZN", (44, 44)), ZDCObservables)
    with pytest.raises(ValueError, match="expects showers of shape"):
        extractor_for("ZN", (56, 30))
    with pytest.raises(ValueError, match="no observables"):
        extractor_for("DS2", (6480,))
