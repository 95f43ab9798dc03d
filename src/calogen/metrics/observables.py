"""Shower observables per geometry, behind one interface.

An :class:`ObservableExtractor` turns a batch of showers into a ``(N, k)`` float64 array of named
observables. The ZDC extractor computes, per image (``shared/METRICS.md``, "ZDC images"): the 5
PMT channel sums, the total photon count, the photon-weighted centre of gravity and width along
x and y, the number of lit fibres, and the hottest fibre's value and position. Voxel and
point-cloud geometries will add their own extractors with the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.channels import Convention, channel_names, channel_sums
from calogen.geometry.zdc import FibreGrid, get_grid


class ObservableExtractor(Protocol):
    """Computes named observables from a batch of showers."""

    @property
    def names(self) -> tuple[str, ...]:
        """Observable names, in column order."""
        ...

    @property
    def units(self) -> tuple[str, ...]:
        """Unit of each observable."""
        ...

    def __call__(self, showers: NDArray[np.generic]) -> NDArray[np.float64]:
        """Observables of each shower, shape ``(N, len(names))``."""
        ...


@dataclass(frozen=True)
class ZDCObservables:
    """Observables of ZDC fibre images.

    Coordinates: x along the image columns and y along the rows, in cm from the face centre
    (pixel centres of :meth:`FibreGrid.pixel_centres_cm`; y grows downwards with the row
    index). An empty image has its centre of gravity and widths set to 0 and its hottest fibre
    at (row, col) = (-1, -1).
    """

    grid: FibreGrid
    convention: Convention = "o2"

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(f"channel_{c}" for c in channel_names(self.convention))

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.channel_names, "photon_sum", "cog_x", "cog_y", "width_x", "width_y",
                "lit_fibres", "hottest_value", "hottest_row", "hottest_col")

    @property
    def units(self) -> tuple[str, ...]:
        return (*("photons",) * 6, "cm", "cm", "cm", "cm", "fibres", "photons", "index", "index")

    def channels(self, showers: NDArray[np.generic]) -> NDArray[np.float64]:
        """The 5 channel sums only, ``(N, 5)`` photons."""
        return channel_sums(showers, self.grid, self.convention)

    def __call__(self, showers: NDArray[np.generic]) -> NDArray[np.float64]:
        img = np.asarray(showers)
        if img.ndim != 3 or img.shape[1:] != self.grid.shape:
            raise ValueError(f"showers must have shape (N, {self.grid.shape[0]}, "
                             f"{self.grid.shape[1]}) for {self.grid.name}, got {img.shape}")
        n = img.shape[0]
        w = img.astype(np.float64, copy=False)
        rows_cm, cols_cm = self.grid.pixel_centres_cm()
        profile_y = w.sum(axis=2)  # (N, rows)
        profile_x = w.sum(axis=1)  # (N, cols)
        total = profile_x.sum(axis=1)
        safe = np.where(total > 0, total, 1.0)
        cog_x = profile_x @ cols_cm / safe
        cog_y = profile_y @ rows_cm / safe
        var_x = profile_x @ cols_cm**2 / safe - cog_x**2
        var_y = profile_y @ rows_cm**2 / safe - cog_y**2
        flat = w.reshape(n, -1)
        hottest = flat.argmax(axis=1)
        hot_val = flat[np.arange(n), hottest]
        empty = total <= 0
        hot_row = np.where(empty, -1, hottest // self.grid.shape[1])
        hot_col = np.where(empty, -1, hottest % self.grid.shape[1])
        out = np.column_stack([
            self.channels(img), total,
            np.where(empty, 0.0, cog_x), np.where(empty, 0.0, cog_y),
            np.sqrt(np.maximum(np.where(empty, 0.0, var_x), 0.0)),
            np.sqrt(np.maximum(np.where(empty, 0.0, var_y), 0.0)),
            (flat > 0).sum(axis=1), hot_val, hot_row, hot_col,
        ])
        return out.astype(np.float64, copy=False)


def extractor_for(detector: str, shower_shape: tuple[int, ...],
                  convention: Convention = "o2") -> ObservableExtractor:
    """The observable extractor for a ShowerSet's detector and shower shape.

    Raises ``ValueError`` for geometries calogen cannot evaluate yet (voxel and point-cloud
    extractors are planned).
    """
    try:
        grid = get_grid(detector)
    except ValueError:
        raise ValueError(f"no observables defined for detector {detector!r} yet; "
                         f"supported: ZN, ZP") from None
    if tuple(shower_shape) != grid.shape:
        raise ValueError(f"detector {detector!r} expects showers of shape {grid.shape}, "
                         f"the file has {tuple(shower_shape)}")
    return ZDCObservables(grid, convention)
