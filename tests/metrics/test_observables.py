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


# -- voxels ----------------------------------------------------------------------------------

from calogen.geometry import LayeredVoxelGeometry, PointCloudVolume, VoxelLayer  # noqa: E402
from calogen.metrics.observables import (  # noqa: E402
    PointObservables,
    VoxelObservables,
)

# Layer 0: 2 radial bins [0, 10, 30] mm x 4 angular bins; layer 5: 1 radial bin x 1 angle.
VOX = LayeredVoxelGeometry("toy", (VoxelLayer(0, (0.0, 10.0, 30.0), 4),
                                   VoxelLayer(5, (0.0, 50.0), 1)))


def _named(ex, row):
    return dict(zip(ex.names, row, strict=True))


def test_voxel_observables_of_hand_made_showers():
    ex = VoxelObservables(VOX, ("E_inc",), ("GeV",))
    assert len(ex.names) == len(ex.units) == 2 + 6 * 2
    shower = np.zeros((2, VOX.n_voxels))
    # layer 0: angular bin 2 (alpha in [0, pi/2), centre pi/4), outer radial bin (r = 20 mm)
    shower[0, 2 * 2 + 1] = 30.0
    # ... and angular bin 0 (centre -3pi/4), inner radial bin (r = 5 mm)
    shower[0, 0] = 10.0
    shower[0, 8] = 60.0  # layer 5 (its only voxel, r = 25 mm at alpha = 0)
    obs = ex(shower, conditions=np.array([[0.2], [1.0]], dtype=np.float32))
    o, empty = _named(ex, obs[0]), _named(ex, obs[1])
    assert o["energy_sum"] == 100.0 and o["energy_ratio"] == pytest.approx(0.5)  # 100 MeV/0.2 GeV
    assert (o["E_layer0"], o["E_layer5"]) == (40.0, 60.0)
    a, b = 20.0 * np.cos(np.pi / 4), 5.0 * np.cos(-3 * np.pi / 4)  # x = y for both voxels
    cx = (30 * a + 10 * b) / 40
    assert o["cx_layer0"] == pytest.approx(cx) and o["cy_layer0"] == pytest.approx(cx)
    assert o["wx_layer0"] == pytest.approx(np.sqrt((30 * a**2 + 10 * b**2) / 40 - cx**2))
    assert o["cx_layer5"] == pytest.approx(25.0) and o["cy_layer5"] == pytest.approx(0, abs=1e-9)
    assert o["wx_layer5"] == pytest.approx(0.0, abs=1e-9)
    assert o["sparsity_layer0"] == pytest.approx(6 / 8) and o["sparsity_layer5"] == 0.0
    assert all(v == 0.0 for k, v in empty.items() if k != "sparsity_layer0"
               and k != "sparsity_layer5")
    assert empty["sparsity_layer0"] == 1.0
    groups = ex.layer_columns
    assert [ex.names[j] for j in groups["energy"]] == ["E_layer0", "E_layer5"]
    assert [ex.names[j] for j in groups["width_y"]] == ["wy_layer0", "wy_layer5"]


def test_voxel_observables_without_incident_energy_and_bad_shapes():
    ex = VoxelObservables(VOX)
    assert "energy_ratio" not in ex.names
    assert ex(np.ones((3, VOX.n_voxels), dtype=np.int32)).shape == (3, len(ex.names))
    with pytest.raises(ValueError, match=r"\(N, 9\)"):
        ex(np.ones((3, 8)))
    with pytest.raises(ValueError, match="needs the conditions"):
        VoxelObservables(VOX, ("E_inc",), ("GeV",))(np.ones((1, 9)))
    with pytest.raises(ValueError, match="energy unit"):
        VoxelObservables(VOX, ("E_inc",), ("mm",))


# -- points ----------------------------------------------------------------------------------

VOL = PointCloudVolume("box", (-20.0, 20.0), (-20.0, 20.0), (0.0, 10.0, 20.0, 30.0),
                       cell_size_mm=(10.0, 10.0))


def test_point_observables_of_hand_made_showers():
    ex = PointObservables(VOL, ("E_inc",), ("MeV",), threshold_mev=1.5)
    points = np.array([
        # shower 0: two points in layer 0 (same cell), one in layer 2, one outside the layers
        [-5.0, 2.0, 1.0, 1.0], [-5.0, 4.0, 3.0, 1.0], [12.0, -8.0, 25.0, 2.0],
        [0.0, 0.0, 45.0, 4.0],
        # shower 2 (shower 1 is empty): one point in layer 1
        [3.0, 3.0, 15.0, 0.5],
    ], dtype=np.float32)
    counts = np.array([4, 0, 1])
    obs = ex(points, counts=counts, conditions=np.array([[16.0], [1.0], [1.0]]))
    o, empty, one = (_named(ex, r) for r in obs)
    assert o["n_points"] == 4 and o["energy_sum"] == 8.0 and o["energy_ratio"] == 0.5
    assert o["cog_z"] == pytest.approx((1 + 3 + 50 + 180) / 8)
    assert o["hit_cells"] == 2  # the layer-0 cell (2 MeV) and the layer-2 cell (2 MeV)
    assert one["hit_cells"] == 0  # 0.5 MeV, below the 1.5 MeV threshold
    assert (o["E_layer0"], o["E_layer1"], o["E_layer2"]) == (2.0, 0.0, 2.0)
    assert o["cx_layer0"] == -5.0 and o["cy_layer0"] == pytest.approx(3.0)
    assert o["wy_layer0"] == pytest.approx(1.0) and o["wx_layer0"] == pytest.approx(0.0)
    assert (o["cx_layer2"], o["cy_layer2"]) == (12.0, -8.0)
    assert all(v == 0.0 for v in empty.values())
    assert one["E_layer1"] == 0.5 and one["cx_layer1"] == 3.0
    assert [ex.names[j] for j in ex.layer_columns["centre_x"]] == [
        "cx_layer0", "cx_layer1", "cx_layer2"]
    # threshold 0: every cell with energy counts (the point outside the layers never does)
    np.testing.assert_array_equal(PointObservables(VOL)(points, counts=counts)[:, 3], [2, 0, 1])


def test_point_observables_stream_in_chunks_and_check_counts(monkeypatch):
    import calogen.metrics.observables as mod
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 6, 50)
    pts = np.column_stack([rng.uniform(-20, 20, (counts.sum(), 2)),
                           rng.uniform(0, 30, counts.sum()), rng.exponential(1, counts.sum())])
    whole = PointObservables(VOL)(pts, counts=counts)
    monkeypatch.setattr(mod, "MAX_CELLS_PER_PROJECTION", 3 * 4 * 4 * 7)  # 7 showers a chunk
    np.testing.assert_allclose(PointObservables(VOL)(pts, counts=counts), whole)
    with pytest.raises(ValueError, match="sum to the"):
        PointObservables(VOL)(pts, counts=counts + 1)
    with pytest.raises(ValueError, match="need the per-shower point counts"):
        PointObservables(VOL)(pts)


def test_extractor_for_picks_by_geometry():
    assert isinstance(extractor_for(ZN), ZDCObservables)
    assert isinstance(extractor_for(VOX, (9,)), VoxelObservables)
    ex = extractor_for(VOL, (4,), condition_columns=("E_inc",), condition_units=("GeV",),
                       threshold_mev=0.1)
    assert isinstance(ex, PointObservables) and ex.threshold_mev == 0.1
    assert "energy_ratio" in ex.names
    with pytest.raises(ValueError, match="expects showers of shape"):
        extractor_for(VOX, (10,))
