import numpy as np
import pytest

from calogen.geometry import PointCloudVolume, geometry_from_dict, ild_like_ecal


def test_ild_like_volume_projects_on_30_cubed_cells_and_round_trips():
    v = ild_like_ecal()
    assert v.grid_shape == (30, 30, 30) and v.shower_shape == (4,) and v.kind == "points"
    assert geometry_from_dict(v.to_dict()) == v


def test_projection_sums_energy_per_cell_and_applies_the_threshold():
    v = PointCloudVolume("t", (0.0, 10.0), (0.0, 10.0), (0.0, 1.0, 2.0))
    pts = np.array([[1, 1, 0.5, 0.3], [2, 2, 0.5, 0.3], [6, 1, 1.5, 0.05], [20, 1, 0.5, 9.0]])
    cells = v.project(pts, [3, 1])
    assert cells.shape == (2, 2, 2, 2)
    assert cells[0, 0, 0, 0] == pytest.approx(0.6) and cells[0, 1, 0, 1] == pytest.approx(0.05)
    assert cells[1].sum() == 0  # outside the volume
    assert v.project(pts, [3, 1], threshold_mev=0.1)[0, 1].sum() == 0


def test_shifted_cells_move_deposits_between_cells_but_keep_the_sum():
    v = PointCloudVolume("t", (0.0, 10.0), (0.0, 10.0), (0.0, 1.0))
    pts = np.array([[4.9, 1, 0.5, 1.0], [5.1, 1, 0.5, 2.0]])
    a = v.project(pts, [2])
    b = v.with_cells(offset_mm=(2.5, 0.0)).project(pts, [2])
    assert a[0, 0, 0].tolist() == [1.0, 2.0]
    assert b.sum() == pytest.approx(3.0) and b[0, 0, 0].max() == pytest.approx(3.0)


def test_empty_showers_and_bad_counts():
    v = ild_like_ecal()
    assert v.project(np.zeros((0, 4)), [0, 0]).shape == (2, 30, 30, 30)
    with pytest.raises(ValueError, match="sum to the 1 points"):
        v.project(np.zeros((1, 4)), [2])


def test_bad_description_names_the_field():
    with pytest.raises(ValueError, match="layer_edges_mm"):
        geometry_from_dict({"kind": "points", "x_range_mm": [0, 1], "y_range_mm": [0, 1],
                            "layer_edges_mm": [1, 0]})
    with pytest.raises(ValueError, match="kind"):
        geometry_from_dict({"kind": "hexagons"})
