"""The CaloClouds II observables and W1 scores on hand-placed clouds."""

from __future__ import annotations

import numpy as np
import pytest

from calogen.geometry.points import ild_like_ecal
from calogen.metrics import caloclouds as ccl

VOLUME = ild_like_ecal()
PITCH = [3.8] * 20 + [5.9] * 10
Z_MID = np.cumsum([0.0, *PITCH])[:-1] + np.asarray(PITCH) / 2


def _hand_cloud() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shower 0: cells A (2.5, 2.5; layer 1) 1.0 + 0.04 MeV, B (12.5, 2.5; layer 10) 2 MeV,
    C (-42.5, -2.5; layer 30) 0.06 + 0.06 MeV, D (37.5, 37.5; layer 5) 0.05 MeV (below half a
    MIP). Shower 1: empty. Shower 2: one point at 0.09 MeV (nothing left)."""
    pts = np.array([
        [1.0, 1.0, Z_MID[0], 1.0], [4.0, 4.5, Z_MID[0], 0.04],
        [11.0, 3.0, Z_MID[9], 2.0],
        [-44.0, -1.0, Z_MID[29], 0.06], [-41.0, -4.0, Z_MID[29], 0.06],
        [38.0, 36.0, Z_MID[4], 0.05],
        [0.0, 0.0, Z_MID[3], 0.09]])
    return pts, np.array([6, 0, 1]), np.array([10.0, 20.0, 30.0])


def test_hand_placed_cloud_by_hand() -> None:
    pts, counts, e_inc = _hand_cloud()
    obs = ccl.cloud_observables(pts, counts, e_inc, VOLUME)
    e = np.array([1.04, 2.0, 0.12])
    x, y, z = np.array([2.5, 12.5, -42.5]), np.array([2.5, 2.5, -2.5]), Z_MID[[0, 9, 29]]
    np.testing.assert_allclose(obs.n_hits, [3, 0, 0])
    np.testing.assert_allclose(obs.e_vis, [e.sum(), 0, 0])
    np.testing.assert_allclose(obs.e_ratio, [e.sum() / 10e3, 0, 0])
    np.testing.assert_allclose(obs.m1[0], [e @ x / e.sum(), e @ y / e.sum(), e @ z / e.sum()])
    np.testing.assert_allclose(obs.m1[1:], 0.0)
    # radii 3.5 (ring 1: [0, 6.6)), 12.7 (ring 3: [9.8, 13)), 42.6 (ring 8: [40.1, 48.5))
    radial = np.zeros(10)
    radial[[0, 2, 7]] = e
    np.testing.assert_allclose(obs.e_radial[0], radial)
    # layers 1 ([1, 9)), 10 ([9, 12)) and 30 (the closed last bin [25, 30])
    long_ = np.zeros(10)
    long_[[0, 1, 9]] = e
    np.testing.assert_allclose(obs.e_long[0], long_)
    np.testing.assert_allclose(obs.layer_energy[0, [0, 9, 29]], e)
    assert obs.layer_energy[0, 4] == 0.0  # the 0.05 MeV cell is below half a MIP
    np.testing.assert_allclose(np.sort(obs.cell_energy), np.sort(e))
    np.testing.assert_array_equal(obs.cell_row, [0, 0, 0])
    np.testing.assert_allclose(obs.radial_profile.sum(axis=1), obs.e_vis)
    # without the threshold the 0.05 and 0.09 MeV cells count
    raw = ccl.cloud_observables(pts, counts, e_inc, VOLUME, threshold_mev=0.0)
    np.testing.assert_allclose(raw.n_hits, [4, 0, 1])
    feats = ccl.classifier_input(obs)
    assert feats.shape == (3, 25)
    np.testing.assert_allclose(feats[0, :10], radial, rtol=1e-6)
    np.testing.assert_allclose(feats[0, 23:], [3, e.sum()], rtol=1e-6)


def test_bins_half_open_last_closed() -> None:
    idx = ccl._bin_index(np.array([0.0, 6.59, 6.6, 68.8, 299.9, 300.0, 300.1, -1.0]),
                         ccl.RADIAL_EDGES_MM)
    np.testing.assert_array_equal(idx, [0, 0, 1, 9, 9, 9, -1, -1])
    idx = ccl._bin_index(np.arange(1.0, 32.0), ccl.LONGITUDINAL_EDGES_LAYER)
    assert list(idx[:9]) == [0] * 8 + [1] and idx[28] == 9 and idx[29] == 9 and idx[30] == -1


def test_shifted_cells_and_axis_move_the_observables() -> None:
    pts, counts, e_inc = _hand_cloud()
    shifted = ccl.cloud_observables(pts, counts, e_inc, VOLUME.with_cells(offset_mm=(2.5, 2.5)))
    # cell A now spans [0, 5) -> [-2.5, 2.5): its points land in two cells
    assert shifted.n_hits[0] != 3 or not np.allclose(shifted.m1[0, 0], 0.0)
    axis = ccl.cloud_observables(pts, counts, e_inc, VOLUME, axis_mm=(12.5, 2.5))
    assert axis.e_radial[0, 0] == pytest.approx(2.0)  # cell B sits on the axis


def test_take_concat_and_accumulator_keep_rows_consistent() -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 60, 40)
    pts = np.column_stack([rng.normal(0, 10, (counts.sum(), 2)),
                           rng.uniform(0, 140, counts.sum()),
                           rng.exponential(0.5, counts.sum())])
    e_inc = rng.uniform(10, 90, 40)
    whole = ccl.cloud_observables(pts, counts, e_inc, VOLUME)
    acc = ccl.CloudAccumulator(VOLUME, max_cells=10**9)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for a in range(0, 40, 7):
        b = min(a + 7, 40)
        acc.update(pts[bounds[a]:bounds[b]], counts[a:b], e_inc[a:b])
    parts = acc.result()
    np.testing.assert_allclose(parts.e_radial, whole.e_radial)
    np.testing.assert_array_equal(parts.cell_row, whole.cell_row)
    sub = whole.take(np.arange(40) % 3 == 1)
    assert len(sub) == 13
    np.testing.assert_array_equal(np.bincount(sub.cell_row, minlength=13), sub.n_hits)
    thin = ccl.CloudAccumulator(VOLUME, max_cells=50, seed=3)
    thin.update(pts, counts, e_inc)
    res = thin.result()
    assert 0 < len(res.cell_energy) <= 100 and thin.keep < 1.0
    np.testing.assert_allclose(res.n_hits, whole.n_hits)  # only the spectrum is thinned


def _synthetic(n: int, seed: int, shift: float = 0.0, long_shift: float = 0.0
               ) -> ccl.CloudObservables:
    rng = np.random.default_rng(seed)
    m1 = rng.normal(size=(n, 3))
    e_long = rng.normal(size=(n, 10)) + 5
    e_long[:, 3] += long_shift
    cells = rng.exponential(1.0, 20 * n)
    return ccl.CloudObservables(
        e_inc=np.full(n, 1.0), n_hits=rng.normal(size=n) + shift, e_vis=rng.normal(size=n) + 5,
        m1=m1, e_radial=rng.normal(size=(n, 10)), e_long=e_long, layer_energy=np.zeros((n, 1)),
        radial_profile=np.zeros((n, 1)), cell_energy=cells,
        cell_row=np.repeat(np.arange(n), 20))


def test_w1_scores_measure_known_shifts() -> None:
    ref = _synthetic(20_000, 0)
    same = ccl.w1_scores(ref, _synthetic(20_000, 1), cell_hits=5000)
    assert list(same)[:8] == list(ccl.SCORES)
    assert all(s.mean < 0.07 for s in same.values())  # batches of 2000: noise ~0.04
    assert all(len(s.per_batch) == 10 for s in same.values())
    shifted = ccl.w1_scores(ref, _synthetic(20_000, 2, shift=0.5, long_shift=1.0),
                            cell_hits=5000)
    # a shift by 0.5 std moves every batch's W1 to ~0.5; one of ten long bins by 1 std: ~0.1
    assert shifted["N_hits"].mean == pytest.approx(0.5, abs=0.06)
    assert shifted["N_hits"].std < 0.04
    assert shifted["E_long_4"].mean == pytest.approx(1.0, abs=0.05)
    assert shifted["E_long"].mean == pytest.approx(
        np.mean([shifted[f"E_long_{i}"].mean for i in range(1, 11)]))
    assert 0.1 < shifted["E_long"].mean < 0.16  # 1/10 of the shift + the noise of 9 bins
    assert shifted["m1_x"].mean < 0.07
    with pytest.raises(ValueError, match="10 batches need"):
        ccl.w1_scores(_synthetic(5, 0), _synthetic(5, 1))
