"""PMT channel masks of the ZDCs and the image -> 5 channel sums map.

Each ZDC is read by 5 photomultipliers: one *common* PMT sees every other fibre, four *tower*
PMTs see the remaining fibres of one quadrant each. Two pixel-to-channel conventions exist
(``shared/PHYSICS.md``); both are supported and named:

``"o2"`` (default; ALICE O2 ``Detectors/ZDC/fastsimulation/src/Processors.cxx``)
    Pixels with ``(row + col)`` even belong to the towers, ordered TL, TR, BL, BR (quadrants
    split at ``FibreGrid.quadrant_split``); pixels with ``(row + col)`` odd go to the common PMT.
    Channel order: ``[common, TL, TR, BL, BR]``.

``"warsaw"`` (Warsaw group code, m-wojnar/zdc)
    The parity is swapped (``(row + col)`` odd pixels feed the towers, even the common PMT) and
    the towers are ordered BL, BR, TL, TR. Channel order: ``[common, BL, BR, TL, TR]``.

"Top" is row < split row and "left" is column < split column.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calogen.geometry.zdc import FibreGrid

Convention = Literal["o2", "warsaw"]
CONVENTIONS: tuple[str, ...] = ("o2", "warsaw")
N_CHANNELS = 5

_TOWER_ORDER: dict[str, tuple[str, ...]] = {
    "o2": ("TL", "TR", "BL", "BR"),
    "warsaw": ("BL", "BR", "TL", "TR"),
}
_TOWER_PARITY: dict[str, int] = {"o2": 0, "warsaw": 1}


def channel_names(convention: Convention = "o2") -> tuple[str, ...]:
    """Names of the 5 channels in the order returned by :func:`channel_sums`."""
    _check(convention)
    return ("common", *_TOWER_ORDER[convention])


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(
            f"unknown channel convention {convention!r}; expected one of {CONVENTIONS}")


@lru_cache(maxsize=16)
def channel_masks(grid: FibreGrid, convention: Convention = "o2") -> NDArray[np.bool_]:
    """Boolean masks of shape ``(5, n_rows, n_cols)``, one per channel, in channel order.

    Every pixel belongs to exactly one channel. The returned array is read-only.
    """
    _check(convention)
    n_rows, n_cols = grid.shape
    split_r, split_c = grid.quadrant_split
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    tower = (rows + cols) % 2 == _TOWER_PARITY[convention]
    top, left = rows < split_r, cols < split_c
    quadrant = {
        "TL": top & left,
        "TR": top & ~left,
        "BL": ~top & left,
        "BR": ~top & ~left,
    }
    masks = np.stack([~tower] + [tower & quadrant[q] for q in _TOWER_ORDER[convention]])
    masks.setflags(write=False)
    return masks


@lru_cache(maxsize=16)
def _assignment(grid: FibreGrid, convention: Convention) -> NDArray[np.float32]:
    """Pixel -> channel assignment matrix ``(n_pixels, 5)`` of 0/1 (for a single matmul)."""
    m = channel_masks(grid, convention).reshape(N_CHANNELS, -1).T.astype(np.float32)
    m.setflags(write=False)
    return m


def channel_sums(images: ArrayLike, grid: FibreGrid,
                 convention: Convention = "o2") -> NDArray[np.float64]:
    """Sum an image batch into the 5 PMT channels.

    Args:
        images: photon counts, shape ``(N, n_rows, n_cols)`` or a single ``(n_rows, n_cols)``.
        grid: the detector's fibre grid.
        convention: ``"o2"`` (default) or ``"warsaw"``; see the module docstring.

    Returns:
        Channel sums in photons, shape ``(N, 5)`` (or ``(5,)`` for a single image), float64.
    """
    arr = np.asarray(images)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != grid.shape:
        raise ValueError(
            f"images must have shape (N, {grid.shape[0]}, {grid.shape[1]}) for {grid.name}, "
            f"got {arr.shape}")
    flat = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    out = flat @ _assignment(grid, convention).astype(np.float64)
    return out[0] if single else out
