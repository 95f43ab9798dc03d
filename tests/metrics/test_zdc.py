import numpy as np
import pytest

from calogen.geometry import ZN
from calogen.metrics.evaluate import EvaluationConfig, _fpd_kpd
from calogen.metrics.frechet import fpd, kpd
from calogen.metrics.observables import ZDCObservables
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


def _zn_images(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(scale * rng.uniform(0.0, 3.0, size=(n, 1, 1)) *
                       np.ones((1, *ZN.shape))).astype(np.float32)


def test_fpd_kpd_drop_the_photon_sum_column() -> None:
    """photon_sum = sum of the 5 channels: a singular covariance that double-weights them."""
    ex = ZDCObservables(ZN)
    a, b = ex(_zn_images(300, 1)), ex(_zn_images(300, 2, 1.1))
    total = ex.names.index("photon_sum")
    np.testing.assert_array_equal(a[:, total], a[:, :5].sum(axis=1))
    assert np.linalg.matrix_rank(np.cov(a, rowvar=False)) < a.shape[1]

    cfg = EvaluationConfig(fpd_points=3, fpd_bootstrap=2, kpd_batches=3, kpd_batch_size=100)
    out = _fpd_kpd(a, b, cfg)
    without = [i for i, n in enumerate(ex.names) if n != "photon_sum"]
    # the reported values are those of the vector without photon_sum
    assert out["fpd"].value == fpd(a[:, without], b[:, without], n_points=3,
                                   n_bootstrap=2).value
    assert out["kpd"].value == kpd(a[:, without], b[:, without], n_batches=3,
                                   batch_size=100).value
    np.testing.assert_array_equal(out["columns"], without)  # nothing else is redundant here
    sub = a[:, without]
    assert np.linalg.matrix_rank(np.cov(sub, rowvar=False)) == sub.shape[1]
