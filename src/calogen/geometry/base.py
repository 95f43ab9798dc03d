"""What every readout geometry has in common, and how one is rebuilt from its JSON description.

Three shapes of shower exist (``kind``):

* ``"image"``: a 2-D grid of cells, showers ``(N, H, W)`` (the ZDC fibre grids);
* ``"voxels"``: a layered cylindrical binning, showers ``(N, n_voxels)`` (CaloChallenge 2022);
* ``"points"``: a variable number of energy deposits ``(x, y, z, E)`` per shower in mm and MeV
  (CaloClouds), stored ragged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

ShapeKind = Literal["image", "voxels", "points"]
SHAPE_KINDS: tuple[ShapeKind, ...] = ("image", "voxels", "points")

POINT_FEATURES: tuple[str, ...] = ("x", "y", "z", "E")
"""Columns of one point of a point-cloud shower."""

POINT_UNITS: tuple[str, ...] = ("mm", "mm", "mm", "MeV")
"""Units of :data:`POINT_FEATURES`."""


@runtime_checkable
class Geometry(Protocol):
    """A readout geometry: its ``kind``, ``name``, the shape of one shower and a JSON form.

    For ``"points"`` the shower shape is ``(4,)``: one point's ``(x, y, z, E)``.
    """

    @property
    def kind(self) -> ShapeKind: ...

    @property
    def name(self) -> str: ...

    @property
    def shower_shape(self) -> tuple[int, ...]: ...

    def to_dict(self) -> dict[str, Any]: ...


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Geometry]] = {}


def register_geometry(kind: ShapeKind, builder: Callable[[Mapping[str, Any]], Geometry]) -> None:
    """Make :func:`geometry_from_dict` rebuild descriptions whose ``kind`` is ``kind``."""
    _BUILDERS[kind] = builder


def geometry_from_dict(d: Mapping[str, Any]) -> Geometry:
    """Rebuild a geometry from its :meth:`Geometry.to_dict` form.

    A description without ``kind`` is an image (files written before voxels and points existed).
    ``ValueError`` naming the field for a malformed description.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"geometry: expected an object, found {type(d).__name__}")
    kind = d.get("kind", "image")
    if kind not in _BUILDERS:
        raise ValueError(f"geometry field 'kind': expected one of {list(SHAPE_KINDS)}, "
                         f"found {kind!r:.40}")
    return _BUILDERS[kind](d)
