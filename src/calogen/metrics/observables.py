"""Shower observables per geometry, behind one interface.

An :class:`ObservableExtractor` turns a batch of showers into a ``(N, k)`` float64 array of named
observables with units; :func:`extractor_for` picks the extractor of a geometry:

* ZDC fibre images (:class:`ZDCObservables`, ``shared/METRICS.md`` "ZDC images"): the 5 PMT
  channel sums, the photon sum, centre of gravity and width along x and y, lit fibres and the
  hottest fibre's value and position.
* layered voxels (:class:`VoxelObservables`): the high-level features of the CaloChallenge 2022
  (M. Faucci Giannelli, C. Krause et al., arXiv:2410.21611, Sec. 4): total energy, total over
  incident energy, energy per layer, per-layer centres of energy and widths along x and y (the
  "eta"/"phi" directions) and the per-layer sparsity.
* point clouds (:class:`PointObservables`): points per shower, energy sum, longitudinal centre
  of gravity, cells hit after projection onto the volume's cells, and per layer the energy,
  x/y centres and widths.

Every extractor is called on one batch at a time (``showers``, plus the per-shower point
``counts`` for point clouds and the ``conditions`` when an observable needs them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.base import Geometry, ShapeKind
from calogen.geometry.channels import Convention, channel_names, channel_sums
from calogen.geometry.points import PointCloudVolume, ragged_points
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.geometry.zdc import FibreGrid, get_grid

INCIDENT_ENERGY_COLUMN = "E_inc"
"""Condition column of the incident energy (``calogen.particles.GUN_CONDITIONS``)."""

ENERGY_UNIT_MEV = {"eV": 1e-6, "keV": 1e-3, "MeV": 1.0, "GeV": 1e3, "TeV": 1e6}
"""Energy units a condition column may carry, in MeV."""

MAX_CELLS_PER_PROJECTION = 1 << 22
"""Cells (showers x cells per shower) projected at once when counting hit cells (32 MB)."""

LAYER_GROUPS = ("energy", "centre_x", "centre_y", "width_x", "width_y")
"""Per-layer observable groups common to voxels and points (see ``layer_columns``)."""


@runtime_checkable
class ObservableExtractor(Protocol):
    """Computes named observables from a batch of showers."""

    @property
    def kind(self) -> ShapeKind:
        """Shape of the showers it reads: ``"image"``, ``"voxels"`` or ``"points"``."""
        ...

    @property
    def names(self) -> tuple[str, ...]:
        """Observable names, in column order."""
        ...

    @property
    def units(self) -> tuple[str, ...]:
        """Unit of each observable (``""`` when dimensionless)."""
        ...

    @property
    def total_name(self) -> str:
        """The observable holding a shower's total signal (photons or energy)."""
        ...

    @property
    def layer_columns(self) -> Mapping[str, tuple[int, ...]]:
        """Per-layer observables: group name (:data:`LAYER_GROUPS`) -> one column per layer,
        in layer order; empty for unlayered geometries."""
        ...

    def __call__(self, showers: NDArray[np.generic], *, counts: NDArray[np.integer] | None = None,
                 conditions: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
        """Observables of each shower, shape ``(N, len(names))``."""
        ...


# --------------------------------------------------------------------------------------------
# ZDC images


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
    def kind(self) -> ShapeKind:
        return "image"

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

    @property
    def total_name(self) -> str:
        return "photon_sum"

    @property
    def layer_columns(self) -> Mapping[str, tuple[int, ...]]:
        return {}

    def channels(self, showers: NDArray[np.generic]) -> NDArray[np.float64]:
        """The 5 channel sums only, ``(N, 5)`` photons."""
        return channel_sums(showers, self.grid, self.convention)

    def __call__(self, showers: NDArray[np.generic], *, counts: NDArray[np.integer] | None = None,
                 conditions: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
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


# --------------------------------------------------------------------------------------------
# Shared helpers of the layered geometries


def _incident_energy_mev(columns: Sequence[str], units: Sequence[str]) -> tuple[int, float] | None:
    """(column index, MeV per unit) of the incident energy, or None when there is none."""
    if INCIDENT_ENERGY_COLUMN not in columns:
        return None
    j = list(columns).index(INCIDENT_ENERGY_COLUMN)
    unit = units[j] if j < len(units) else "GeV"
    if unit not in ENERGY_UNIT_MEV:
        raise ValueError(f"condition column {INCIDENT_ENERGY_COLUMN!r}: expected an energy unit "
                         f"{sorted(ENERGY_UNIT_MEV)}, found {unit!r}")
    return j, ENERGY_UNIT_MEV[unit]


def _ratio(total_mev: NDArray[np.float64], conditions: NDArray[np.floating] | None,
           e_inc: tuple[int, float], n: int) -> NDArray[np.float64]:
    """Total energy over incident energy (both MeV); 0 where the incident energy is not > 0."""
    if conditions is None:
        raise ValueError(f"the observable energy_ratio needs the conditions (column "
                         f"{INCIDENT_ENERGY_COLUMN!r}); none were given")
    c = np.asarray(conditions, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] <= e_inc[0]:
        raise ValueError(f"conditions must have shape ({n}, >{e_inc[0]}), found {c.shape}")
    e = c[:, e_inc[0]] * e_inc[1]
    return np.where(e > 0, total_mev / np.where(e > 0, e, 1.0), 0.0)


def _weighted_centre_width(weights_sum: NDArray[np.float64], first: NDArray[np.float64],
                           second: NDArray[np.float64]
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Energy-weighted mean and standard deviation from sums of w, w x and w x^2; both 0 where
    the weights sum to 0 (an empty layer)."""
    ok = weights_sum > 0
    safe = np.where(ok, weights_sum, 1.0)
    mean = np.where(ok, first / safe, 0.0)
    var = np.where(ok, second / safe - mean**2, 0.0)
    return mean, np.sqrt(np.maximum(var, 0.0))


def _layer_names(labels: Sequence[str]) -> list[tuple[str, str, str]]:
    """(group, name, unit) of the per-layer observables, group by group."""
    spec = (("energy", "E_layer", "MeV"), ("centre_x", "cx_layer", "mm"),
            ("centre_y", "cy_layer", "mm"), ("width_x", "wx_layer", "mm"),
            ("width_y", "wy_layer", "mm"))
    return [(group, f"{stem}{label}", unit) for group, stem, unit in spec for label in labels]


# --------------------------------------------------------------------------------------------
# Layered voxels (CaloChallenge)


@dataclass(frozen=True)
class VoxelObservables:
    """High-level features of layered voxel showers (energies in MeV), after CaloChallenge
    2022 (arXiv:2410.21611, Sec. 4).

    ``energy_sum`` (MeV), ``energy_ratio`` = energy_sum / E_inc (only when the conditions have
    an ``E_inc`` column), then per layer (named by the layer id): ``E_layer<id>`` (MeV), the
    energy-weighted centres ``cx_layer<id>``, ``cy_layer<id>`` of the voxel centres
    (r cos alpha, r sin alpha; mm) and their widths ``wx_layer<id>``, ``wy_layer<id>`` (mm; 0 for
    an empty layer), and ``sparsity_layer<id>``, the fraction of the layer's voxels with zero
    energy.
    """

    geometry: LayeredVoxelGeometry
    condition_columns: tuple[str, ...] = ()
    condition_units: tuple[str, ...] = ()
    _e_inc: tuple[int, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_e_inc",
                           _incident_energy_mev(self.condition_columns, self.condition_units))

    @property
    def kind(self) -> ShapeKind:
        return "voxels"

    @property
    def _labels(self) -> list[str]:
        return [str(i) for i in self.geometry.layer_ids]

    @property
    def _head(self) -> list[tuple[str, str]]:
        head = [("energy_sum", "MeV")]
        if self._e_inc is not None:
            head.append(("energy_ratio", ""))
        return head

    @property
    def names(self) -> tuple[str, ...]:
        return (*(n for n, _ in self._head), *(n for _, n, _ in _layer_names(self._labels)),
                *(f"sparsity_layer{lab}" for lab in self._labels))

    @property
    def units(self) -> tuple[str, ...]:
        return (*(u for _, u in self._head), *(u for _, _, u in _layer_names(self._labels)),
                *("",) * self.geometry.n_layers)

    @property
    def total_name(self) -> str:
        return "energy_sum"

    @property
    def layer_columns(self) -> Mapping[str, tuple[int, ...]]:
        n, start = self.geometry.n_layers, len(self._head)
        groups = (*LAYER_GROUPS, "sparsity")
        return {g: tuple(range(start + i * n, start + (i + 1) * n)) for i, g in enumerate(groups)}

    def __call__(self, showers: NDArray[np.generic], *, counts: NDArray[np.integer] | None = None,
                 conditions: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
        x = np.asarray(showers)
        g = self.geometry
        if x.ndim != 2 or x.shape[1] != g.n_voxels:
            raise ValueError(f"voxel geometry {g.name!r}: showers must have shape "
                             f"(N, {g.n_voxels}), found {x.shape}")
        if counts is not None:
            raise ValueError("voxel showers have no per-shower point counts")
        n = x.shape[0]
        vx, vy = g.voxel_xy_mm()
        per_layer: dict[str, list[NDArray[np.float64]]] = {k: [] for k in (*LAYER_GROUPS,
                                                                           "sparsity")}
        for s in g.layer_slices():  # one layer at a time: never a float64 copy of the batch
            e = x[:, s].astype(np.float64)
            w = e.sum(axis=1)
            cx, wx = _weighted_centre_width(w, e @ vx[s], e @ vx[s] ** 2)
            cy, wy = _weighted_centre_width(w, e @ vy[s], e @ vy[s] ** 2)
            for key, v in (("energy", w), ("centre_x", cx), ("centre_y", cy), ("width_x", wx),
                           ("width_y", wy), ("sparsity", (e == 0).mean(axis=1))):
                per_layer[key].append(v)
        layers = np.stack([np.stack(per_layer[k], axis=1) for k in per_layer], axis=1)
        total = layers[:, 0].sum(axis=1)
        head = [total]
        if self._e_inc is not None:
            head.append(_ratio(total, conditions, self._e_inc, n))
        return np.column_stack([*head, layers.reshape(n, -1)]).astype(np.float64, copy=False)


# --------------------------------------------------------------------------------------------
# Point clouds


@dataclass(frozen=True)
class PointObservables:
    """Observables of point-cloud showers: points ``(x, y, z, E)`` in mm and MeV.

    ``n_points``, ``energy_sum`` (MeV), ``energy_ratio`` = energy_sum / E_inc (only with an
    ``E_inc`` condition column), ``cog_z`` (energy-weighted mean z, mm), ``hit_cells`` (cells of
    :meth:`PointCloudVolume.project` above ``threshold_mev``), then per layer of the volume
    (``volume.layer_of(z)``; points outside every layer count in the totals only):
    ``E_layer<i>`` (MeV), centres ``cx_layer<i>``, ``cy_layer<i>`` and widths ``wx_layer<i>``,
    ``wy_layer<i>`` (mm; 0 for an empty layer). An empty shower has every observable 0.

    Args:
        threshold_mev: cell threshold of ``hit_cells`` (CaloClouds II uses half a MIP; the
            default 0 counts every cell with energy).
    """

    volume: PointCloudVolume
    condition_columns: tuple[str, ...] = ()
    condition_units: tuple[str, ...] = ()
    threshold_mev: float = 0.0
    _e_inc: tuple[int, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.threshold_mev) and self.threshold_mev >= 0):
            raise ValueError(f"threshold_mev: expected a finite value >= 0, found "
                             f"{self.threshold_mev}")
        object.__setattr__(self, "_e_inc",
                           _incident_energy_mev(self.condition_columns, self.condition_units))

    @property
    def kind(self) -> ShapeKind:
        return "points"

    @property
    def _head(self) -> list[tuple[str, str]]:
        head = [("n_points", "points"), ("energy_sum", "MeV")]
        if self._e_inc is not None:
            head.append(("energy_ratio", ""))
        return [*head, ("cog_z", "mm"), ("hit_cells", "cells")]

    @property
    def _labels(self) -> list[str]:
        return [str(i) for i in range(self.volume.n_layers)]

    @property
    def names(self) -> tuple[str, ...]:
        return (*(n for n, _ in self._head), *(n for _, n, _ in _layer_names(self._labels)))

    @property
    def units(self) -> tuple[str, ...]:
        return (*(u for _, u in self._head), *(u for _, _, u in _layer_names(self._labels)))

    @property
    def total_name(self) -> str:
        return "energy_sum"

    @property
    def layer_columns(self) -> Mapping[str, tuple[int, ...]]:
        n, start = self.volume.n_layers, len(self._head)
        return {g: tuple(range(start + i * n, start + (i + 1) * n))
                for i, g in enumerate(LAYER_GROUPS)}

    def hit_cells(self, points: NDArray[np.floating],
                  counts: NDArray[np.integer]) -> NDArray[np.float64]:
        """Cells above the threshold per shower, projecting a few showers at a time."""
        n_cells = int(np.prod(self.volume.grid_shape))
        per_chunk = max(1, MAX_CELLS_PER_PROJECTION // max(n_cells, 1))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        out = np.zeros(len(counts), dtype=np.float64)
        for a in range(0, len(counts), per_chunk):
            b = min(a + per_chunk, len(counts))
            cells = self.volume.project(points[bounds[a]:bounds[b]], counts[a:b],
                                        threshold_mev=self.threshold_mev)
            out[a:b] = np.count_nonzero(cells.reshape(b - a, -1) > 0, axis=1)
        return out

    def __call__(self, showers: NDArray[np.generic], *, counts: NDArray[np.integer] | None = None,
                 conditions: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
        if counts is None:
            raise ValueError("point-cloud showers need the per-shower point counts")
        p, c = ragged_points(showers, counts)
        n, n_layers = len(c), self.volume.n_layers
        shower = np.repeat(np.arange(n), c)
        x, y, z, e = p.T

        def per_shower(w: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(np.bincount(shower, weights=w, minlength=n), dtype=np.float64)

        total = per_shower(e)
        cog_z, _ = _weighted_centre_width(total, per_shower(e * z), per_shower(e * z * z))
        layer = self.volume.layer_of(z)
        inside = layer >= 0
        key = shower[inside] * n_layers + layer[inside]

        def per_layer(w: NDArray[np.float64]) -> NDArray[np.float64]:
            sums = np.bincount(key, weights=w[inside], minlength=n * n_layers)
            return np.asarray(sums, dtype=np.float64).reshape(n, n_layers)

        w = per_layer(e)
        cx, wx = _weighted_centre_width(w, per_layer(e * x), per_layer(e * x * x))
        cy, wy = _weighted_centre_width(w, per_layer(e * y), per_layer(e * y * y))
        head = [c.astype(np.float64), total]
        if self._e_inc is not None:
            head.append(_ratio(total, conditions, self._e_inc, n))
        head += [cog_z, self.hit_cells(p, c)]
        return np.column_stack([*head, w, cx, cy, wx, wy]).astype(np.float64, copy=False)


# --------------------------------------------------------------------------------------------
# Choosing an extractor


def extractor_for(geometry: Geometry | str, shower_shape: tuple[int, ...] | None = None,
                  convention: Convention = "o2", *, condition_columns: Sequence[str] = (),
                  condition_units: Sequence[str] = (),
                  threshold_mev: float = 0.0) -> ObservableExtractor:
    """The observable extractor of a geometry.

    Args:
        geometry: a :mod:`calogen.geometry` object, or a ZDC detector name (``"ZN"``, ``"ZP"``).
        shower_shape: shape of one shower in the file; checked against the geometry.
        convention: ZDC channel convention (images only).
        condition_columns, condition_units: the file's condition columns (an ``E_inc`` column
            adds ``energy_ratio`` for voxels and points).
        threshold_mev: cell threshold of the point-cloud ``hit_cells``.

    Raises ``ValueError`` for a geometry without observables or a mismatching shower shape.
    """
    if isinstance(geometry, str):
        try:
            geometry = get_grid(geometry)
        except ValueError:
            raise ValueError(f"no observables defined for detector {geometry!r}; supported: "
                             f"ZN, ZP, or a voxel / point-cloud geometry object") from None
    expected = tuple(geometry.shower_shape)
    if shower_shape is not None and tuple(shower_shape) != expected:
        raise ValueError(f"detector {geometry.name!r} expects showers of shape {expected}, "
                         f"the file has {tuple(shower_shape)}")
    cols, units = tuple(condition_columns), tuple(condition_units)
    if isinstance(geometry, FibreGrid):
        return ZDCObservables(geometry, convention)
    if isinstance(geometry, LayeredVoxelGeometry):
        return VoxelObservables(geometry, cols, units)
    if isinstance(geometry, PointCloudVolume):
        return PointObservables(geometry, cols, units, threshold_mev)
    raise ValueError(f"no observables defined for geometry {geometry.name!r} of kind "
                     f"{geometry.kind!r}")
