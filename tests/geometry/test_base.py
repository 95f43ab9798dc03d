import pytest

from calogen.geometry import ZN, ZP, FibreGrid, Geometry, geometry_from_dict


def test_version_1_descriptions_without_kind_are_images():
    old = {k: v for k, v in ZN.to_dict().items() if k != "kind"}
    assert geometry_from_dict(old) is ZN
    assert geometry_from_dict(ZP.to_dict()) is ZP


def test_an_unknown_image_grid_is_rebuilt_not_replaced():
    d = dict(ZN.to_dict(), name="mine", shape=[8, 6])
    g = geometry_from_dict(d)
    assert isinstance(g, FibreGrid) and g.shower_shape == (8, 6) and isinstance(g, Geometry)


def test_malformed_image_description():
    with pytest.raises(ValueError, match="image geometry"):
        geometry_from_dict({"name": "ZN", "shape": [44]})
