import numpy as np
import pytest

from calogen.geometry import LayeredVoxelGeometry, VoxelLayer, geometry_from_dict, uniform_layers

DS2_EDGES = [0, 4.65, 9.3, 13.95, 18.6, 23.25, 27.9, 32.55, 37.2, 41.85]


def test_dataset2_binning_has_6480_voxels_and_round_trips():
    g = uniform_layers("ds2", 45, DS2_EDGES, 16)
    assert g.n_voxels == 6480 and g.shower_shape == (6480,) and g.kind == "voxels"
    assert geometry_from_dict(g.to_dict()) == g


def test_voxel_order_is_angle_outer_radius_inner():
    g = LayeredVoxelGeometry("t", (VoxelLayer(0, (0.0, 1.0, 3.0), 4), VoxelLayer(5, (0.0, 2.0), 1)))
    r, alpha = g.voxel_centres()
    assert g.n_voxels == 9
    assert np.allclose(r[:8], [0.5, 2.0] * 4) and r[8] == 1.0
    assert np.all(np.diff(alpha[:8:2]) > 0) and alpha[0] == alpha[1]
    assert [s.stop - s.start for s in g.layer_slices()] == [8, 1]
    e = g.layer_energies(np.arange(18.0).reshape(2, 9))
    assert e.tolist() == [[28.0, 8.0], [100.0, 17.0]]


@pytest.mark.parametrize("layers, field", [
    ([{"id": 0, "r_edges_mm": [0, 1, 1], "n_alpha": 1}], "layers[0].r_edges_mm"),
    ([{"id": 0, "r_edges_mm": [0, 1], "n_alpha": 0}], "layers[0].n_alpha"),
    ([{"id": 0, "r_edges_mm": [0, 1]}], "layers[0]"),
    ("abc", "layers"),
])
def test_bad_descriptions_name_the_field(layers, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        geometry_from_dict({"kind": "voxels", "name": "x", "layers": layers})


def test_layer_energies_refuse_the_wrong_width():
    g = uniform_layers("t", 2, [0, 1], 2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        g.layer_energies(np.zeros((3, 5)))
