"""What a detector readout is: fibre grids and PMT channel maps (no models, no data files)."""

from calogen.geometry.channels import (
    CONVENTIONS,
    N_CHANNELS,
    Convention,
    channel_masks,
    channel_names,
    channel_sums,
)
from calogen.geometry.zdc import GRIDS, ZN, ZP, FibreGrid, get_grid

__all__ = [
    "CONVENTIONS", "N_CHANNELS", "Convention", "channel_masks", "channel_names", "channel_sums",
    "GRIDS", "ZN", "ZP", "FibreGrid", "get_grid",
]
