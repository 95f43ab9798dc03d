import numpy as np
import pytest

from calogen.metrics.zdc import PixelRMSE, condition_diversity, paired_channel_mae


def test_paired_mae_on_hand_computed_arrays():
    ref = np.array([[1.0, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    gen = np.array([[2.0, 2, 1, 4, 5], [5, 0, 0, 0, 0]])
    # row 1: |1-2| + |3-1| = 3 over 5 channels; row 2: 5 over 5 -> mean (0.6 + 1.0) / 2
    assert paired_channel_mae(ref, gen) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="equal shapes"):
        paired_channel_mae(ref, gen[:1])


def test_pixel_rmse_is_per_pixel_and_batch_independent():
    a = np.zeros((2, 2, 2))
    b = np.zeros((2, 2, 2))
    b[0, 0, 0] = 4.0  # one pixel off by 4 among 8 pixels -> sqrt(16/8)
    one = PixelRMSE()
    one.update(a, b)
    two = PixelRMSE()
    two.update(a[:1], b[:1])
    two.update(a[1:], b[1:])
    assert one.value == pytest.approx(np.sqrt(2.0)) == two.value
    assert one.mean_image_l2 == pytest.approx(2.0)  # (4 + 0) / 2 images


def test_condition_diversity():
    sums = np.array([10.0, 10.0, 10.0, 8.0, 12.0, 7.0])
    ids = np.array([0, 0, 0, 1, 1, 2])
    div, groups = condition_diversity(sums, ids)
    assert groups == 2
    # group 0: copies -> 0; group 1: std (ddof=1) = 2.83, mean 10 -> 0.283
    assert div == pytest.approx((0.0 + np.std([8, 12], ddof=1) / 10.0) / 2)
    assert np.isnan(condition_diversity(sums, np.arange(6))[0])
