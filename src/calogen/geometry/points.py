"""Point-cloud volumes: where energy deposits ``(x, y, z, E)`` (mm, MeV) may lie, and how they
are projected onto a grid of cells (the step CaloClouds takes before any cell-level observable).

The volume has a transverse extent in x and y, sensitive layers along z (given by their edges),
and a cell grid (cell size and offset in mm). Projecting the same cloud onto shifted or resized
cells only needs :meth:`PointCloudVolume.with_cells`: the cloud does not depend on the cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calogen.geometry.base import ShapeKind, register_geometry


def ragged_points(points: ArrayLike, counts: ArrayLike
                  ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``(P, 4)`` float64 points ``(x, y, z, E)`` and ``(N,)`` int64 points per shower, checked to
    agree (``ValueError`` otherwise): the ragged form every point-cloud function takes."""
    p = np.asarray(points, dtype=np.float64)
    n = np.asarray(counts, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 4:
        raise ValueError(f"points must have shape (P, 4) (x, y, z, E), found {p.shape}")
    if n.ndim != 1 or np.any(n < 0) or int(n.sum()) != len(p):
        raise ValueError(f"counts must be (N,) non-negative and sum to the {len(p)} points, "
                         f"found {'sum ' + str(int(n.sum())) if n.ndim == 1 else n.shape}")
    return p, n


@dataclass(frozen=True)
class PointCloudVolume:
    """A box of layers read out as points, and the cell grid points are projected onto.

    Attributes:
        name: volume name (e.g. ``"ILD-ECAL"``).
        x_range_mm, y_range_mm: transverse extent ``(low, high)``, mm.
        layer_edges_mm: z edges of the layers, increasing, mm (``n_layers + 1`` values).
        cell_size_mm: cell size in (x, y), mm.
        cell_offset_mm: position of a cell corner in (x, y), mm (shifts the grid).
    """

    name: str
    x_range_mm: tuple[float, float]
    y_range_mm: tuple[float, float]
    layer_edges_mm: tuple[float, ...]
    cell_size_mm: tuple[float, float] = (5.0, 5.0)
    cell_offset_mm: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for field_name in ("x_range_mm", "y_range_mm"):
            lo, hi = getattr(self, field_name)
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"point-cloud volume {self.name!r} field {field_name!r}: "
                                 f"expected finite (low, high) with high > low, found {(lo, hi)}")
        edges = np.asarray(self.layer_edges_mm, dtype=np.float64)
        if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"point-cloud volume {self.name!r} field 'layer_edges_mm': expected "
                             f">= 2 finite increasing values, found {list(edges)[:8]}")
        if min(self.cell_size_mm) <= 0 or not np.all(np.isfinite(self.cell_size_mm)):
            raise ValueError(f"point-cloud volume {self.name!r} field 'cell_size_mm': expected "
                             f"two positive sizes, found {self.cell_size_mm}")

    @property
    def kind(self) -> ShapeKind:
        return "points"

    @property
    def shower_shape(self) -> tuple[int]:
        """One point: ``(x, y, z, E)``."""
        return (4,)

    @property
    def n_layers(self) -> int:
        return len(self.layer_edges_mm) - 1

    def cell_edges(self, axis: int) -> NDArray[np.float64]:
        """Edges of the cell grid along x (``axis`` 0) or y (1), mm, covering the volume."""
        lo, hi = (self.x_range_mm, self.y_range_mm)[axis]
        size, offset = self.cell_size_mm[axis], self.cell_offset_mm[axis]
        first = offset + np.floor((lo - offset) / size) * size
        n = int(np.ceil((hi - first) / size - 1e-9))
        return first + size * np.arange(n + 1)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(n_layers, n_y, n_x)`` cells of :meth:`project`."""
        return (self.n_layers, len(self.cell_edges(1)) - 1, len(self.cell_edges(0)) - 1)

    def with_cells(self, size_mm: tuple[float, float] | None = None,
                   offset_mm: tuple[float, float] | None = None) -> PointCloudVolume:
        """The same volume with another cell grid."""
        return replace(self, cell_size_mm=size_mm or self.cell_size_mm,
                       cell_offset_mm=offset_mm or self.cell_offset_mm)

    def layer_of(self, z_mm: ArrayLike) -> NDArray[np.int64]:
        """Layer index of each z (mm); -1 outside the layers."""
        z = np.asarray(z_mm, dtype=np.float64)
        edges = np.asarray(self.layer_edges_mm)
        idx = np.searchsorted(edges, z, side="right") - 1
        return np.where((z >= edges[0]) & (z < edges[-1]), idx, -1).astype(np.int64)

    def project(self, points: ArrayLike, counts: ArrayLike, *,
                threshold_mev: float = 0.0) -> NDArray[np.float64]:
        """Cell energies ``(N, n_layers, n_y, n_x)`` in MeV of ragged showers.

        Args:
            points: ``(P, 4)`` points ``(x, y, z, E)`` of all showers, one after the other.
            counts: ``(N,)`` points per shower (summing to ``P``).
            threshold_mev: cells below this energy are set to 0 (CaloClouds: half a MIP).

        Points outside the volume are dropped.
        """
        p, n = ragged_points(points, counts)
        n_layers, ny, nx = self.grid_shape
        xe, ye = self.cell_edges(0), self.cell_edges(1)
        shower = np.repeat(np.arange(len(n)), n)
        layer = self.layer_of(p[:, 2])
        ix = np.searchsorted(xe, p[:, 0], side="right") - 1
        iy = np.searchsorted(ye, p[:, 1], side="right") - 1
        inside = ((layer >= 0) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
                  & (p[:, 0] >= self.x_range_mm[0]) & (p[:, 0] < self.x_range_mm[1])
                  & (p[:, 1] >= self.y_range_mm[0]) & (p[:, 1] < self.y_range_mm[1]))
        flat = ((shower * n_layers + layer) * ny + iy) * nx + ix
        sums = np.bincount(flat[inside], weights=p[inside, 3],
                           minlength=len(n) * n_layers * ny * nx)
        cells: NDArray[np.float64] = sums.astype(np.float64).reshape(len(n), n_layers, ny, nx)
        if threshold_mev > 0:
            cells[cells < threshold_mev] = 0.0
        return cells

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "x_range_mm": list(self.x_range_mm),
                "y_range_mm": list(self.y_range_mm), "layer_edges_mm": list(self.layer_edges_mm),
                "cell_size_mm": list(self.cell_size_mm),
                "cell_offset_mm": list(self.cell_offset_mm)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PointCloudVolume:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the malformed field."""
        def pair(key: str, default: tuple[float, float] | None = None) -> tuple[float, float]:
            value = d.get(key, default)
            try:
                a, b = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"point-cloud volume field {key!r}: expected two numbers, "
                                 f"found {value!r:.40}") from None
            return a, b

        try:
            edges = tuple(float(v) for v in d["layer_edges_mm"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("point-cloud volume field 'layer_edges_mm': expected a list of "
                             "numbers") from None
        return cls(str(d.get("name", "points")), pair("x_range_mm"), pair("y_range_mm"), edges,
                   pair("cell_size_mm", (5.0, 5.0)), pair("cell_offset_mm", (0.0, 0.0)))


def ild_like_ecal() -> PointCloudVolume:
    """An ILD-like ECAL section as CaloClouds II projects onto: 30 layers, 5 x 5 mm cells,
    30 x 30 cells (150 mm) transversally around the shower axis. Layer pitch: 20 layers of
    2.1 mm W + 0.5 mm Si (+ readout, ~3.8 mm per layer here) and 10 with 4.2 mm W (~5.9 mm);
    an approximation of the ILD ECAL stack, not its exact engineering geometry."""
    pitches = [3.8] * 20 + [5.9] * 10
    edges = np.concatenate([[0.0], np.cumsum(pitches)])
    return PointCloudVolume("ILD-like-ECAL", (-75.0, 75.0), (-75.0, 75.0),
                            tuple(float(e) for e in edges))


register_geometry("points", PointCloudVolume.from_dict)
