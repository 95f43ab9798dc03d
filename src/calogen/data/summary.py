"""One-pass summary of a ShowerSet: what is in the file, per species, at a glance.

The file is streamed in batches (:meth:`ShowerSet.iter_batches`); only 1-D per-event quantities
(shower sum, incident energy, PDG code, points per shower: at most 32 bytes an event) are kept
in memory, so that exact quantiles can be computed at the end. Everything else (zero-cell
count, hottest cell, channel and layer means and spreads) is accumulated batch by batch.

Per shape: images get the ZDC PMT channels (ZN/ZP grids); voxels the energy per layer of the
binning; point clouds the points per shower and the energy per layer of the volume (points
outside the layers count in the total only).

Units: shower values are in the file's ``shower_units`` (photons for the ZDCs, MeV for voxels
and the ``E`` of points), the incident energy (column ``E``, or ``E_inc`` for a calorimeter
gun) in the file's condition units. The "photon sum" of an event is the sum of its shower
values (its deposited energy for voxels and points).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calogen.atomic import write_text_atomic
from calogen.data.content import ContentCheck
from calogen.data.showerset import ShowerBatch, ShowerSet, ShowerSetMeta
from calogen.geometry import (
    FibreGrid,
    LayeredVoxelGeometry,
    PointCloudVolume,
    channel_names,
    channel_sums,
    get_grid,
)
from calogen.geometry.channels import Convention
from calogen.particles import species_name

QUANTILE_LEVELS: tuple[float, ...] = (0.25, 0.50, 0.75, 0.99)
"""Quantile levels reported for photon sums and energies (plus the maximum)."""

ENERGY_COLUMN = "E"
"""Name of the incident-energy condition column (ZDC schema: GeV)."""

ENERGY_COLUMNS: tuple[str, ...] = (ENERGY_COLUMN, "E_inc")
"""Incident-energy columns, in order of preference (ZDC ``E``, calorimeter gun ``E_inc``)."""

ENERGY_UNITS_MEV: dict[str, float] = {"keV": 1e-3, "MeV": 1.0, "GeV": 1e3, "TeV": 1e6}
"""Energy units understood when comparing a shower's energy to the incident energy."""


def energy_column(columns: tuple[str, ...]) -> int | None:
    """Index of the incident-energy column (see :data:`ENERGY_COLUMNS`), or ``None``."""
    for name in ENERGY_COLUMNS:
        if name in columns:
            return columns.index(name)
    return None


def deposit_scale(shower_units: str, energy_units: str | None) -> float | None:
    """Factor turning (shower sum / incident energy) into a dimensionless ratio, when both
    are energies (e.g. MeV over GeV: 1e-3); ``None`` otherwise (e.g. photons)."""
    if energy_units is None or shower_units not in ENERGY_UNITS_MEV or \
            energy_units not in ENERGY_UNITS_MEV:
        return None
    return ENERGY_UNITS_MEV[shower_units] / ENERGY_UNITS_MEV[energy_units]


@dataclass
class SpeciesSummary:
    """Statistics of the responses of one particle species.

    Attributes:
        pdg: PDG code.
        name: printable species name (``"n"``, ``"gamma"``, ``"pi+"``, ...).
        count: number of events of this species.
        fraction: ``count`` / total number of events.
        photon_sum: quantiles of the per-event photon sum (photons); keys ``p25``, ``p50``,
            ``p75``, ``p99`` (exact, linear interpolation as :func:`numpy.quantile`) and ``max``.
        energy_median: median incident energy (GeV); ``None`` without an ``E`` column.
        photons_per_gev: mean light yield, sum of photons / sum of E over the species
            (photons/GeV); ``None`` when undefined.
        photons_per_gev_spread: event-by-event relative spread of photons/E, i.e.
            std / mean (population std) of the per-event ratio; ``None`` when undefined.
            Events with E <= 0 are left out of both yield figures.
    """

    pdg: int
    name: str
    count: int
    fraction: float
    photon_sum: dict[str, float | None]
    energy_median: float | None
    photons_per_gev: float | None
    photons_per_gev_spread: float | None


@dataclass
class HottestPixel:
    """The largest pixel value in the file (first occurrence on ties).

    Attributes:
        value: pixel value (photons).
        event: global event index (row of the file).
        position: index of the pixel inside the shower, ``(row, col)`` for an image.
    """

    value: float
    event: int
    position: tuple[int, ...]


@dataclass
class ShowerSetSummary:
    """Summary of a whole ShowerSet, see :func:`summarize`.

    Attributes:
        path: file the summary was computed from (``None`` if unknown).
        detector: detector name stored in the file (``"ZN"``, ``"ZP"``, ...).
        shower_shape: shape of one shower.
        shower_units: units of the shower values (``"photons"`` for the ZDCs).
        n_events: number of events.
        producer: producer record of the file (simulator or model, version, seed, note, ...).
        created: creation time stored in the file.
        species: per-species statistics, most frequent species first.
        zero_pixel_fraction: fraction of all pixels of all events that are exactly zero.
        hottest_pixel: the largest pixel (``None`` for an empty file).
        photon_sum_mean: mean per-event photon sum (photons).
        energy: quantiles of the incident energy, keys ``min``, ``p25``, ``p50``, ``p75``,
            ``p99``, ``max`` (in ``energy_units``); empty without an ``E`` column.
        energy_units: units of ``E`` as stored in the file.
        convention: PMT channel convention used (``None`` when the geometry has no channels).
        channel_names: names of the 5 PMT channels, in order.
        channel_mean: mean channel sum per event (photons), one per channel.
        channel_std: standard deviation (population) of the channel sums (photons).
        kind: ``"image"``, ``"voxels"`` or ``"points"``.
        energy_column: the incident-energy column used (``"E"``, ``"E_inc"`` or ``None``).
        energy_ratio: quantiles (with min) of shower sum / incident energy, dimensionless,
            when both are energies (voxels, points in MeV against E_inc in GeV); else empty.
        layer_ids: ids of the layers (voxels: the binning's; points: 0 .. n_layers - 1).
        layer_energy_mean: mean energy per layer and event, in ``shower_units``.
        layer_energy_std: its standard deviation (population).
        n_points: total points (point clouds; ``None`` otherwise).
        points_per_shower: quantiles (with min) of the points per shower (point clouds).
        outside_energy_fraction: fraction of the points' energy outside the volume's layers.
    """

    path: str | None
    detector: str
    shower_shape: tuple[int, ...]
    shower_units: str
    n_events: int
    producer: dict[str, Any]
    created: str
    species: list[SpeciesSummary]
    zero_pixel_fraction: float | None
    hottest_pixel: HottestPixel | None
    photon_sum_mean: float | None
    energy: dict[str, float | None] = field(default_factory=dict)
    energy_units: str | None = None
    convention: str | None = None
    channel_names: tuple[str, ...] = ()
    channel_mean: list[float] = field(default_factory=list)
    channel_std: list[float] = field(default_factory=list)
    kind: str = "image"
    energy_column: str | None = None
    energy_ratio: dict[str, float | None] = field(default_factory=dict)
    layer_ids: list[int] = field(default_factory=list)
    layer_energy_mean: list[float] = field(default_factory=list)
    layer_energy_std: list[float] = field(default_factory=list)
    n_points: int | None = None
    points_per_shower: dict[str, float | None] = field(default_factory=dict)
    outside_energy_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists, NaN and numpy scalars are cleaned)."""
        return _jsonable(asdict(self))

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (temporary file, then rename).

        Returns:
            The path written.
        """
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2, allow_nan=False)
                                 + "\n")


def _jsonable(obj: Any) -> Any:
    """Recursively convert to plain JSON types; non-finite floats become ``None``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _quantiles(values: NDArray[np.float64], *, with_min: bool = False) -> dict[str, float | None]:
    """Exact quantiles at :data:`QUANTILE_LEVELS` plus max (and min); ``None`` when empty."""
    keys = [f"p{round(level * 100)}" for level in QUANTILE_LEVELS]
    if with_min:
        keys = ["min", *keys]
    keys.append("max")
    if values.size == 0:
        return dict.fromkeys(keys)
    out: dict[str, float | None] = {}
    if with_min:
        out["min"] = float(values.min())
    qs = np.quantile(values, QUANTILE_LEVELS)
    for level, q in zip(QUANTILE_LEVELS, qs, strict=True):
        out[f"p{round(level * 100)}"] = float(q)
    out["max"] = float(values.max())
    return out


def grid_for(detector: str, shower_shape: tuple[int, ...]) -> FibreGrid | None:
    """The ZDC fibre grid of a file, or ``None`` if the file is not a ZDC image file."""
    try:
        grid = get_grid(detector)
    except ValueError:
        return None
    return grid if tuple(shower_shape) == grid.shape else None


class _RunningMoments:
    """Mean and population variance of vectors, merged batch by batch (Chan et al. 1979)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)

    def update(self, x: NDArray[np.float64]) -> None:
        """Add a batch ``x`` of shape ``(n, dim)``."""
        nb = x.shape[0]
        if nb == 0:
            return
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * nb / n)
        self.n = n

    @property
    def std(self) -> NDArray[np.float64]:
        """Population standard deviation (NaN before any data)."""
        if self.n == 0:
            return np.full_like(self.mean, np.nan)
        return np.sqrt(self.m2 / self.n)


def _species_summaries(photon_sums: NDArray[np.float64], energies: NDArray[np.float64] | None,
                       pdg: NDArray[np.int64]) -> list[SpeciesSummary]:
    """Per-species statistics, sorted by count (descending), then PDG code."""
    n_total = pdg.size
    codes, counts = np.unique(pdg, return_counts=True)
    order = sorted(range(codes.size), key=lambda i: (-int(counts[i]), int(codes[i])))
    out: list[SpeciesSummary] = []
    for i in order:
        code = int(codes[i])
        sel = pdg == code
        sums = photon_sums[sel]
        e_median = yield_mean = yield_spread = None
        if energies is not None:
            e = energies[sel]
            e_median = float(np.median(e))
            positive = e > 0
            if positive.any():
                yield_mean = float(sums[positive].sum() / e[positive].sum())
                ratio = sums[positive] / e[positive]
                ratio_mean = float(ratio.mean())
                if ratio_mean > 0:
                    yield_spread = float(ratio.std() / ratio_mean)
        out.append(SpeciesSummary(
            pdg=code,
            name=species_name(code),
            count=int(counts[i]),
            fraction=int(counts[i]) / n_total,
            photon_sum=_quantiles(sums),
            energy_median=e_median,
            photons_per_gev=yield_mean,
            photons_per_gev_spread=yield_spread,
        ))
    return out


def event_sums(batch: ShowerBatch) -> NDArray[np.float64]:
    """``(n,)`` sum of each event's shower values (for points: the sum of ``E``)."""
    n = len(batch)
    if batch.counts is not None:
        energy = np.asarray(batch.showers[:, 3], dtype=np.float64)
        return np.asarray(np.bincount(batch.shower_index(), weights=energy, minlength=n),
                          dtype=np.float64)
    return np.asarray(batch.showers).reshape(n, -1).sum(axis=1, dtype=np.float64)


def layer_energies(batch: ShowerBatch, geometry: object) -> NDArray[np.float64] | None:
    """``(n, n_layers)`` energy per layer (shower units) of a voxel or point-cloud batch;
    ``None`` for other geometries. Points outside the volume's layers are left out."""
    n = len(batch)
    if isinstance(geometry, LayeredVoxelGeometry):
        return geometry.layer_energies(batch.showers)
    if isinstance(geometry, PointCloudVolume) and batch.counts is not None:
        pts = np.asarray(batch.showers, dtype=np.float64)
        layer = geometry.layer_of(pts[:, 2])
        inside = layer >= 0
        flat = batch.shower_index()[inside] * geometry.n_layers + layer[inside]
        sums = np.bincount(flat, weights=pts[inside, 3], minlength=n * geometry.n_layers)
        return np.asarray(sums, dtype=np.float64).reshape(n, geometry.n_layers)
    return None


def shape_geometry(meta: ShowerSetMeta) -> LayeredVoxelGeometry | PointCloudVolume | None:
    """The voxel binning or point-cloud volume of a file (``None`` for images)."""
    if meta.kind == "image":
        return None
    geometry = meta.geometry_object()
    assert isinstance(geometry, LayeredVoxelGeometry | PointCloudVolume)
    return geometry


def summarize(showerset: ShowerSet, *, convention: Convention = "o2", batch_size: int = 8192,
              progress: bool = False, validate: bool = True) -> ShowerSetSummary:
    """Summarise a ShowerSet in one streaming pass.

    With ``validate`` each batch is checked by :class:`calogen.data.content.ContentCheck`
    in the same pass (NaN, inf or negative showers or points, NaN conditions, PDG code 0,
    negative ids stop it with a :class:`~calogen.data.errors.ShowerSetError` naming the first
    bad row).

    Args:
        showerset: an open :class:`~calogen.data.showerset.ShowerSet`.
        convention: PMT channel convention (``"o2"`` or ``"warsaw"``) for the channel
            statistics; ignored for files that are not ZN/ZP images.
        batch_size: events read per batch.
        progress: show a progress bar while reading.
        validate: check the content while reading.

    Returns:
        A :class:`ShowerSetSummary`; see its attributes for the quantities and units.
    """
    channel_names(convention)  # validates the convention early, with a clear message
    meta = showerset.meta
    shape = tuple(int(s) for s in meta.shower_shape)
    points = meta.kind == "points"
    grid = grid_for(meta.detector, shape) if meta.kind == "image" else None
    geometry = shape_geometry(meta)
    columns = tuple(meta.condition_columns)
    units = tuple(getattr(meta, "condition_units", ()) or ())
    e_col = energy_column(columns)
    e_units = str(units[e_col]) if e_col is not None and e_col < len(units) else None

    sums_parts: list[NDArray[np.float64]] = []
    energy_parts: list[NDArray[np.float64]] = []
    pdg_parts: list[NDArray[np.int64]] = []
    count_parts: list[NDArray[np.int64]] = []
    n_zero = 0
    n_pixels = 0
    hot_value = -math.inf
    hot_event = -1
    hot_flat = -1
    channels = _RunningMoments(5) if grid is not None else None
    layers = (_RunningMoments(geometry.n_layers) if geometry is not None else None)
    inside_energy = 0.0
    offset = 0
    check = ContentCheck(showerset.path, meta) if validate else None

    for batch in showerset.iter_batches(batch_size=batch_size, progress=progress):
        nb = len(batch)
        if nb == 0:
            continue
        if check is not None:
            check.batch(batch, offset)
        showers = np.asarray(batch.showers)
        sums_parts.append(event_sums(batch))
        pdg_parts.append(np.asarray(batch.pdg, dtype=np.int64))
        if e_col is not None:
            energy_parts.append(np.asarray(batch.conditions[:, e_col], dtype=np.float64))
        if points:
            assert batch.counts is not None
            count_parts.append(np.asarray(batch.counts, dtype=np.int64))
        elif showers.size:
            flat = showers.reshape(nb, -1)
            n_zero += int(np.count_nonzero(flat == 0))
            n_pixels += flat.size
            arg = int(np.argmax(flat))  # first occurrence in row-major order
            value = float(flat.reshape(-1)[arg])
            if value > hot_value:
                hot_value = value
                hot_event = offset + arg // flat.shape[1]
                hot_flat = arg % flat.shape[1]
        if channels is not None and grid is not None:
            channels.update(channel_sums(showers, grid, convention))
        if layers is not None:
            per_layer = layer_energies(batch, geometry)
            assert per_layer is not None
            layers.update(per_layer)
            inside_energy += float(per_layer.sum())
        offset += nb

    photon_sums = np.concatenate(sums_parts) if sums_parts else np.zeros(0)
    pdg = np.concatenate(pdg_parts) if pdg_parts else np.zeros(0, dtype=np.int64)
    energies = None
    if e_col is not None:
        energies = np.concatenate(energy_parts) if energy_parts else np.zeros(0)

    hottest = None
    if hot_event >= 0:
        position = tuple(int(i) for i in np.unravel_index(hot_flat, shape))
        hottest = HottestPixel(value=hot_value, event=int(hot_event), position=position)

    summary = ShowerSetSummary(
        path=str(showerset.path) if getattr(showerset, "path", None) is not None else None,
        detector=str(meta.detector),
        shower_shape=shape,
        shower_units=str(meta.shower_units),
        n_events=int(offset),
        producer=dict(meta.producer or {}),
        created=str(meta.created),
        species=_species_summaries(photon_sums, energies, pdg),
        zero_pixel_fraction=(n_zero / n_pixels) if n_pixels else None,
        hottest_pixel=hottest,
        photon_sum_mean=float(photon_sums.mean()) if photon_sums.size else None,
        energy=_quantiles(energies, with_min=True) if energies is not None else {},
        energy_units=e_units,
        kind=str(meta.kind),
        energy_column=columns[e_col] if e_col is not None else None,
    )
    if channels is not None:
        summary.convention = convention
        summary.channel_names = channel_names(convention)
        summary.channel_mean = [float(v) if channels.n else math.nan for v in channels.mean]
        summary.channel_std = [float(v) for v in channels.std]
    scale = deposit_scale(summary.shower_units, e_units)
    if energies is not None and scale is not None and meta.kind != "image":
        positive = energies > 0
        summary.energy_ratio = _quantiles(photon_sums[positive] / energies[positive] * scale,
                                          with_min=True)
    if layers is not None and geometry is not None:
        summary.layer_ids = (list(geometry.layer_ids) if isinstance(geometry, LayeredVoxelGeometry)
                             else list(range(geometry.n_layers)))
        summary.layer_energy_mean = [float(v) if layers.n else math.nan for v in layers.mean]
        summary.layer_energy_std = [float(v) for v in layers.std]
    if points:
        counts = np.concatenate(count_parts) if count_parts else np.zeros(0, dtype=np.int64)
        summary.n_points = int(counts.sum())
        summary.points_per_shower = _quantiles(counts.astype(np.float64), with_min=True)
        total = float(photon_sums.sum())
        summary.outside_energy_fraction = (max(0.0, 1.0 - inside_energy / total) if total > 0
                                           else None)
    return summary
