"""What a detector readout is: fibre grids (images), layered voxel binnings and point-cloud
volumes, each rebuildable from its JSON description (no models, no data files)."""

from calogen.geometry.base import (
    POINT_FEATURES,
    POINT_UNITS,
    SHAPE_KINDS,
    Geometry,
    ShapeKind,
    geometry_from_dict,
    register_geometry,
)
from calogen.geometry.calochallenge import (
    CALOCHALLENGE_DATASETS,
    CaloChallengeBinning,
    calochallenge_binning,
    calochallenge_dataset_of,
    read_binning_xml,
)
from calogen.geometry.channels import (
    CONVENTIONS,
    N_CHANNELS,
    Convention,
    channel_masks,
    channel_names,
    channel_sums,
)
from calogen.geometry.points import PointCloudVolume, ild_like_ecal
from calogen.geometry.voxels import LayeredVoxelGeometry, VoxelLayer, uniform_layers
from calogen.geometry.zdc import GRIDS, ZN, ZP, FibreGrid, get_grid

__all__ = [
    "POINT_FEATURES", "POINT_UNITS", "SHAPE_KINDS", "Geometry", "ShapeKind", "geometry_from_dict",
    "register_geometry",
    "CALOCHALLENGE_DATASETS", "CaloChallengeBinning", "calochallenge_binning",
    "calochallenge_dataset_of", "read_binning_xml",
    "CONVENTIONS", "N_CHANNELS", "Convention", "channel_masks", "channel_names", "channel_sums",
    "PointCloudVolume", "ild_like_ecal",
    "LayeredVoxelGeometry", "VoxelLayer", "uniform_layers",
    "GRIDS", "ZN", "ZP", "FibreGrid", "get_grid",
]
