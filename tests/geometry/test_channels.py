import numpy as np
import pytest

from calogen.geometry import ZN, ZP, channel_masks, channel_names, channel_sums


@pytest.mark.parametrize("convention", ["o2", "warsaw"])
def test_zn_masks_partition_the_image_968_common_242_per_tower(convention):
    masks = channel_masks(ZN, convention)
    assert masks.shape == (5, 44, 44)
    assert masks.sum(axis=(1, 2)).tolist() == [968, 242, 242, 242, 242]
    assert (masks.sum(axis=0) == 1).all()


def test_zp_masks_partition_the_image():
    masks = channel_masks(ZP)
    assert masks.shape == (5, 56, 30)
    assert masks.sum(axis=(1, 2)).tolist() == [840, 210, 210, 210, 210]
    assert (masks.sum(axis=0) == 1).all()


def test_conventions_swap_parity_and_reorder_towers():
    o2, wa = channel_masks(ZN, "o2"), channel_masks(ZN, "warsaw")
    assert channel_names("o2") == ("common", "TL", "TR", "BL", "BR")
    assert channel_names("warsaw") == ("common", "BL", "BR", "TL", "TR")
    # The common PMT of one convention sees exactly the tower fibres of the other.
    assert np.array_equal(o2[0], ~wa[0])
    # (row + col) even -> towers in O2, common in Warsaw.
    assert o2[1, 0, 0] and wa[0, 0, 0]


@pytest.mark.parametrize(("pixel", "o2_channel", "warsaw_channel"), [
    ((0, 0), 1, 0),     # even parity, top-left: O2 TL; Warsaw common
    ((0, 1), 0, 3),     # odd parity, top-left: O2 common; Warsaw TL (4th in BL, BR, TL, TR)
    ((43, 42), 0, 2),   # odd parity, bottom-right: Warsaw BR
    ((43, 43), 4, 0),   # even parity, bottom-right: O2 BR
    ((21, 23), 2, 0),   # even, top-right (split at 22): O2 TR
    ((22, 1), 0, 1),    # odd, bottom-left: Warsaw BL
])
def test_single_pixel_goes_to_the_documented_channel(pixel, o2_channel, warsaw_channel):
    img = np.zeros((44, 44))
    img[pixel] = 7.0
    for convention, expected in (("o2", o2_channel), ("warsaw", warsaw_channel)):
        sums = channel_sums(img, ZN, convention)
        assert sums.shape == (5,)
        assert sums[expected] == 7.0 and sums.sum() == 7.0


def test_channel_sums_batch_matches_masks():
    rng = np.random.default_rng(0)
    imgs = rng.poisson(0.3, (6, 44, 44))
    sums = channel_sums(imgs, ZN)
    masks = channel_masks(ZN)
    expected = np.stack([(imgs * m).sum(axis=(1, 2)) for m in masks], axis=1)
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(sums.sum(1), imgs.sum(axis=(1, 2)))


def test_wrong_shape_and_unknown_convention_are_refused():
    with pytest.raises(ValueError, match="44, 44"):
        channel_sums(np.zeros((2, 56, 30)), ZN)
    with pytest.raises(ValueError, match="convention"):
        channel_masks(ZN, "cern")  # type: ignore[arg-type]
