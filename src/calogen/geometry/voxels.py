"""Layered cylindrical voxel geometries: the CaloChallenge 2022 binning.

A shower is ``(n_voxels,)`` energies in MeV. Each layer has radial bin edges (mm, from the shower
axis) and a number of equal angular bins over (-pi, pi]. Voxel order, as in the official
CaloChallenge files: layer by layer; inside a layer, angular bins outer and radial bins inner
(``index = offset(layer) + alpha_bin * n_r + r_bin``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.base import ShapeKind, register_geometry


@dataclass(frozen=True)
class VoxelLayer:
    """One layer: its ``id`` (e.g. the ATLAS sampling number), radial edges in mm (increasing,
    starting at >= 0) and the number of angular bins."""

    id: int
    r_edges_mm: tuple[float, ...]
    n_alpha: int

    @property
    def n_r(self) -> int:
        """Number of radial bins."""
        return len(self.r_edges_mm) - 1

    @property
    def n_voxels(self) -> int:
        """Voxels in this layer."""
        return self.n_r * self.n_alpha


@dataclass(frozen=True)
class LayeredVoxelGeometry:
    """A stack of :class:`VoxelLayer` read out as one flat voxel vector per shower."""

    name: str
    layers: tuple[VoxelLayer, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError(f"voxel geometry {self.name!r}: needs at least one layer")
        for i, layer in enumerate(self.layers):
            edges = np.asarray(layer.r_edges_mm, dtype=np.float64)
            if (edges.ndim != 1 or len(edges) < 2 or not np.all(np.isfinite(edges))
                    or edges[0] < 0 or np.any(np.diff(edges) <= 0)):
                raise ValueError(f"voxel geometry {self.name!r} field 'layers[{i}].r_edges_mm': "
                                 f"expected >= 2 finite increasing edges >= 0, found "
                                 f"{list(layer.r_edges_mm)[:8]}")
            if layer.n_alpha < 1:
                raise ValueError(f"voxel geometry {self.name!r} field 'layers[{i}].n_alpha': "
                                 f"expected >= 1, found {layer.n_alpha}")
        ids = [layer.id for layer in self.layers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"voxel geometry {self.name!r} field 'layers': ids repeat: {ids}")

    @property
    def kind(self) -> ShapeKind:
        return "voxels"

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @cached_property
    def n_voxels(self) -> int:
        """Voxels per shower."""
        return sum(layer.n_voxels for layer in self.layers)

    @property
    def shower_shape(self) -> tuple[int]:
        return (self.n_voxels,)

    @property
    def layer_ids(self) -> tuple[int, ...]:
        return tuple(layer.id for layer in self.layers)

    def layer_slices(self) -> list[slice]:
        """The slice of the voxel vector belonging to each layer, in layer order."""
        out, start = [], 0
        for layer in self.layers:
            out.append(slice(start, start + layer.n_voxels))
            start += layer.n_voxels
        return out

    def voxel_centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Radius (mm, bin middle) and angle (rad, bin middle in (-pi, pi]) of every voxel."""
        radii, angles = [], []
        for layer in self.layers:
            edges = np.asarray(layer.r_edges_mm, dtype=np.float64)
            r = 0.5 * (edges[:-1] + edges[1:])
            alpha_edges = np.linspace(-np.pi, np.pi, layer.n_alpha + 1)
            alpha = 0.5 * (alpha_edges[:-1] + alpha_edges[1:])
            radii.append(np.tile(r, layer.n_alpha))
            angles.append(np.repeat(alpha, layer.n_r))
        return np.concatenate(radii), np.concatenate(angles)

    def voxel_bins(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Per voxel: the position of its layer in :attr:`layers` (not the layer id), its angle
        bin and its radial bin, each ``(n_voxels,)``; inverse of :meth:`voxel_index`."""
        layer, alpha, radius = [], [], []
        for i, ly in enumerate(self.layers):
            layer.append(np.full(ly.n_voxels, i, dtype=np.int64))
            alpha.append(np.repeat(np.arange(ly.n_alpha, dtype=np.int64), ly.n_r))
            radius.append(np.tile(np.arange(ly.n_r, dtype=np.int64), ly.n_alpha))
        return np.concatenate(layer), np.concatenate(alpha), np.concatenate(radius)

    def voxel_index(self, layer: NDArray[np.integer], alpha_bin: NDArray[np.integer],
                    r_bin: NDArray[np.integer]) -> NDArray[np.int64]:
        """Flat voxel index of (layer position, angle bin, radial bin); ``ValueError`` for a bin
        outside its layer."""
        layer, alpha_bin, r_bin = (np.asarray(a, dtype=np.int64) for a in (layer, alpha_bin, r_bin))
        if np.any((layer < 0) | (layer >= self.n_layers)):
            raise ValueError(f"voxel geometry {self.name!r}: layer position outside "
                             f"0..{self.n_layers - 1}")
        offsets = np.cumsum([0] + [ly.n_voxels for ly in self.layers])[:-1]
        n_r = np.array([ly.n_r for ly in self.layers])[layer]
        n_alpha = np.array([ly.n_alpha for ly in self.layers])[layer]
        if np.any((alpha_bin < 0) | (alpha_bin >= n_alpha) | (r_bin < 0) | (r_bin >= n_r)):
            raise ValueError(f"voxel geometry {self.name!r}: angle or radial bin outside its layer")
        return np.asarray(offsets[layer] + alpha_bin * n_r + r_bin, dtype=np.int64)

    def voxel_xy_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Cartesian centre ``(r cos alpha, r sin alpha)`` of every voxel, mm."""
        r, alpha = self.voxel_centres()
        return r * np.cos(alpha), r * np.sin(alpha)

    def layer_energies(self, showers: NDArray[np.floating]) -> NDArray[np.float64]:
        """Energy per layer ``(N, n_layers)`` of showers ``(N, n_voxels)``."""
        x = np.asarray(showers, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_voxels:
            raise ValueError(f"voxel geometry {self.name!r}: showers must have shape "
                             f"(N, {self.n_voxels}), found {x.shape}")
        return np.stack([x[:, s].sum(axis=1) for s in self.layer_slices()], axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name,
                "layers": [{"id": layer.id, "r_edges_mm": list(layer.r_edges_mm),
                            "n_alpha": layer.n_alpha} for layer in self.layers]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayeredVoxelGeometry:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the malformed field."""
        layers = d.get("layers")
        if not isinstance(layers, Sequence) or isinstance(layers, str):
            raise ValueError("voxel geometry field 'layers': expected a list of "
                             "{id, r_edges_mm, n_alpha}")
        built = []
        for i, layer in enumerate(layers):
            try:
                built.append(VoxelLayer(int(layer["id"]),
                                        tuple(float(v) for v in layer["r_edges_mm"]),
                                        int(layer["n_alpha"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"voxel geometry field 'layers[{i}]': expected id, r_edges_mm "
                                 f"and n_alpha ({type(exc).__name__}: {exc})") from None
        return cls(str(d.get("name", "voxels")), tuple(built))


def uniform_layers(name: str, n_layers: int, r_edges_mm: Sequence[float],
                   n_alpha: int) -> LayeredVoxelGeometry:
    """``n_layers`` identical layers (ids 0..n-1), as in CaloChallenge datasets 2 and 3."""
    layer = tuple(float(v) for v in r_edges_mm)
    return LayeredVoxelGeometry(name, tuple(VoxelLayer(i, layer, n_alpha)
                                            for i in range(n_layers)))


register_geometry("voxels", LayeredVoxelGeometry.from_dict)
