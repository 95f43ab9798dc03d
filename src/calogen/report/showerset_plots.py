"""The ``calogen show`` figure: what the responses in a ShowerSet look like.

For images (ZDC), one PNG with three parts:

* a grid of example responses (log colour scale, zero pixels as dark background), each titled
  with species, incident energy (GeV) and photon sum, chosen with a seeded generator and spread
  over the species (round robin, most frequent species first);
* the distributions of the 5 PMT channel sums for the most frequent species (log y);
* the photon-sum distribution per species (log-spaced bins, log axes).

For voxels: the average shower of a few layers (polar cells, log colour), the mean energy per
layer per species, the total energy per species and, with an incident-energy column, the ratio
of deposited to incident energy. For point clouds: the energy-weighted x-y projection of the
points, the energy along z with the layer edges, the mean energy per layer, the points per
shower, the energy sum per species and the same energy ratio.

Histograms use at most ``max_events`` events, a seeded random subset read batch by batch, so a
file of any size is never loaded whole.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import SubFigure
from numpy.typing import NDArray

from calogen.data.showerset import ShowerSet
from calogen.data.summary import (
    ENERGY_COLUMN,
    deposit_scale,
    energy_column,
    event_sums,
    grid_for,
    layer_energies,
    shape_geometry,
)
from calogen.geometry import (
    FibreGrid,
    LayeredVoxelGeometry,
    PointCloudVolume,
    channel_names,
    channel_sums,
)
from calogen.geometry.channels import Convention
from calogen.particles import species_name
from calogen.report.style import hep_style, new_figure, save_figure

DEFAULT_MAX_EVENTS = 200_000
"""Events sampled for the histograms when ``max_events`` is not given."""

N_MAIN_SPECIES = 4
"""Number of most frequent species drawn in the distribution panels."""

EXAMPLE_COLUMNS = 6
"""Examples per row of the example grid."""

N_BINS = 50
"""Histogram bins per distribution."""

N_SUM_SPECIES = 8
"""Most frequent species drawn in the photon-sum panel (the rest are counted in its title)."""

MAX_LAYER_PANELS = 8
"""Voxel layers drawn as average showers (spread evenly over the stack when there are more)."""

PROJECTION_BINS = 60
"""Bins per axis of the x-y projection and of the z profile of point clouds."""


@dataclass
class _Sample:
    """Per-event quantities of the histogram sample."""

    pdg: NDArray[np.int64]
    photon_sum: NDArray[np.float64]
    channels: NDArray[np.float64] | None  # (n, 5) photons, None without a ZDC grid


def pick_examples(pdg: NDArray[np.integer], n_examples: int,
                  rng: np.random.Generator) -> NDArray[np.int64]:
    """Choose up to ``n_examples`` event indices spread over the species.

    Species are visited round robin, most frequent first; inside a species events are drawn
    without replacement in a random order from ``rng``.

    Returns:
        Event indices grouped by species (most frequent species first).
    """
    codes, counts = np.unique(np.asarray(pdg), return_counts=True)
    order = sorted(range(codes.size), key=lambda i: (-int(counts[i]), int(codes[i])))
    pools = [rng.permutation(np.flatnonzero(pdg == codes[i])) for i in order]
    chosen: list[list[int]] = [[] for _ in pools]
    n_target = min(int(n_examples), int(np.asarray(pdg).size))
    n_chosen, depth = 0, 0
    while n_chosen < n_target:
        for k, pool in enumerate(pools):
            if depth < pool.size and n_chosen < n_target:
                chosen[k].append(int(pool[depth]))
                n_chosen += 1
        depth += 1
    return np.array([i for group in chosen for i in group], dtype=np.int64)


def _read_sample(showerset: ShowerSet, grid: FibreGrid | None, convention: Convention,
                 max_events: int, rng: np.random.Generator) -> _Sample:
    """Stream a random subset of at most ``max_events`` events into per-event quantities."""
    n = len(showerset)
    indices = None
    if n > max_events:
        indices = np.sort(rng.choice(n, size=max_events, replace=False))
    pdg_parts, sum_parts, ch_parts = [], [], []
    for batch in showerset.iter_batches(indices=indices):
        showers = np.asarray(batch.showers)
        pdg_parts.append(np.asarray(batch.pdg, dtype=np.int64))
        sum_parts.append(showers.reshape(showers.shape[0], -1).sum(axis=1, dtype=np.float64))
        if grid is not None:
            ch_parts.append(channel_sums(showers, grid, convention))
    return _Sample(
        pdg=np.concatenate(pdg_parts) if pdg_parts else np.zeros(0, dtype=np.int64),
        photon_sum=np.concatenate(sum_parts) if sum_parts else np.zeros(0),
        channels=(np.concatenate(ch_parts) if ch_parts else np.zeros((0, 5))) if grid else None,
    )


def _main_species(pdg: NDArray[np.int64], k: int) -> list[int]:
    """The ``k`` most frequent PDG codes (ties broken by code)."""
    codes, counts = np.unique(pdg, return_counts=True)
    order = sorted(range(codes.size), key=lambda i: (-int(counts[i]), int(codes[i])))
    return [int(codes[i]) for i in order[:k]]


def _draw_examples(sub: SubFigure, showers: NDArray, pdg: NDArray[np.int64],
                   energies: NDArray[np.float64] | None, units: str) -> None:
    """Grid of example responses with a shared log colour scale and one colour bar."""
    n = showers.shape[0]
    ncols = min(EXAMPLE_COLUMNS, n)
    nrows = math.ceil(n / ncols)
    axes = sub.subplots(nrows, ncols, squeeze=False)
    positive = showers[showers > 0]
    vmin = float(positive.min()) if positive.size else 1.0
    vmax = float(positive.max()) if positive.size else 10.0
    if vmax <= vmin:
        vmax = vmin * 10.0
    norm = LogNorm(vmin=vmin, vmax=vmax)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="black")
    image = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.minorticks_off()
        if k >= n:
            ax.set_axis_off()
            continue
        img = np.ma.masked_less_equal(np.asarray(showers[k], dtype=np.float64), 0.0)
        image = ax.imshow(img, norm=norm, cmap=cmap, interpolation="nearest")
        total = float(np.asarray(showers[k], dtype=np.float64).sum())
        e_text = f"E = {energies[k]:.4g} GeV" if energies is not None else "E n/a"
        ax.set_title(f"{species_name(int(pdg[k]))}, {e_text}\nsum = {total:.4g} {units}",
                     fontsize=9)
    if image is not None:
        sub.colorbar(image, ax=list(axes.flat), shrink=0.9, pad=0.01, label=f"pixel [{units}]")


def _log_bins(values: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Log-spaced bin edges over the positive ``values`` (``None`` if there are none)."""
    pos = values[values > 0]
    if pos.size == 0:
        return None
    lo, hi = float(pos.min()), float(pos.max())
    if hi <= lo:
        lo, hi = lo / 2.0, hi * 2.0
    return np.geomspace(lo, hi * 1.0001, N_BINS + 1)


def _draw_distributions(sub: SubFigure, sample: _Sample, convention: Convention,
                        units: str) -> None:
    """Channel-sum histograms (one panel per channel) and the photon-sum panel."""
    species = _main_species(sample.pdg, N_MAIN_SPECIES)
    colours = {code: f"C{k}" for k, code in enumerate(species)}
    n_panels = (5 if sample.channels is not None else 0) + 1
    axes: list[Axes] = list(sub.subplots(1, n_panels, squeeze=False).flat)
    if sample.channels is not None:
        for c, (ax, name) in enumerate(zip(axes[:5], channel_names(convention), strict=True)):
            values = sample.channels[:, c]
            hi = float(values.max()) if values.size else 1.0
            bins = np.linspace(0.0, max(hi, 1.0) * 1.0001, N_BINS + 1)
            for code in species:
                ax.hist(values[sample.pdg == code], bins=bins.tolist(), histtype="step",
                        color=colours[code], label=species_name(code))
            ax.set_yscale("log")
            ax.set_xlabel(f"{name} [{units}]")
            ax.set_title(f"channel {name}")
        axes[0].set_ylabel("events")
        axes[0].legend(loc="best")
    ax = axes[-1]
    n_species = int(np.unique(sample.pdg).size)
    sum_codes = _main_species(sample.pdg, N_SUM_SPECIES)
    sum_bins = _log_bins(sample.photon_sum)
    if sum_bins is not None:
        for k, code in enumerate(sum_codes):
            values = sample.photon_sum[sample.pdg == code]
            n_zero = int(np.count_nonzero(values <= 0))
            label = species_name(code) + (f" ({n_zero} zero)" if n_zero else "")
            ax.hist(values[values > 0], bins=sum_bins.tolist(), histtype="step",
                    color=colours.get(code, f"C{k % 10}"), label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "all responses are empty", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(f"sum of pixels [{units}]")
    hidden = n_species - len(sum_codes)
    ax.set_title("photon sum per species" + (f" ({hidden} rarer not drawn)" if hidden else ""))
    if sample.channels is None:
        ax.set_ylabel("events")


def plot_showerset(showerset: ShowerSet | str | os.PathLike[str], out_png: str | os.PathLike[str],
                   *, n_examples: int = 12, convention: Convention = "o2", seed: int = 0,
                   max_events: int | None = None) -> Path:
    """Draw the overview figure of a ShowerSet (images, voxels or point clouds) and save it
    atomically. ``n_examples`` and ``convention`` concern images only.

    Args:
        showerset: an open ShowerSet or the path of one.
        out_png: output image path (the format follows its suffix; PNG intended).
        n_examples: number of example responses drawn.
        convention: PMT channel convention (``"o2"`` or ``"warsaw"``) of the channel panels.
        seed: seed of the generator choosing the examples and the histogram sample.
        max_events: at most this many events (a seeded random subset) enter the histograms;
            ``None`` means :data:`DEFAULT_MAX_EVENTS`.

    Returns:
        The path of the written image.

    Raises:
        FileNotFoundError: if the directory of ``out_png`` does not exist.
        ShowerSetError: if the file cannot be read (a ``ValueError``).
        ValueError: if image showers are not 2-D, the file is empty or an argument is out of
            range.
    """
    if not isinstance(showerset, ShowerSet):
        with ShowerSet.open(showerset) as opened:
            return plot_showerset(opened, out_png, n_examples=n_examples, convention=convention,
                                  seed=seed, max_events=max_events)
    channel_names(convention)  # validates the convention
    if not Path(out_png).parent.is_dir():  # fail before the (long) reading and drawing
        raise FileNotFoundError(errno.ENOENT, "output directory does not exist",
                                str(Path(out_png).parent))
    if n_examples < 1:
        raise ValueError(f"n_examples must be at least 1, got {n_examples}")
    cap = DEFAULT_MAX_EVENTS if max_events is None else int(max_events)
    if cap < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    meta = showerset.meta
    shape = tuple(int(s) for s in meta.shower_shape)
    name = getattr(showerset, "path", None) or "ShowerSet"
    if meta.kind == "image" and len(shape) != 2:
        raise ValueError(f"{name}: 'show' draws 2-D image showers, this file has showers of "
                         f"shape {shape}")
    n = len(showerset)
    if n == 0:
        raise ValueError(f"{name}: the file holds no events")
    if meta.kind != "image":
        return _plot_layered(showerset, out_png, seed=seed, max_events=cap)

    rng = np.random.default_rng(seed)
    grid = grid_for(meta.detector, shape)
    units = str(meta.shower_units)
    columns = tuple(meta.condition_columns)
    e_col = columns.index(ENERGY_COLUMN) if ENERGY_COLUMN in columns else None

    picked = pick_examples(np.asarray(showerset.pdg()), n_examples, rng)
    unique_sorted, inverse = np.unique(picked, return_inverse=True)
    batch = showerset.take(unique_sorted)
    ex_showers = np.asarray(batch.showers)[inverse]
    ex_pdg = np.asarray(batch.pdg, dtype=np.int64)[inverse]
    ex_energy = (np.asarray(batch.conditions, dtype=np.float64)[inverse, e_col]
                 if e_col is not None else None)
    sample = _read_sample(showerset, grid, convention, cap, rng)

    n_rows = math.ceil(len(picked) / min(EXAMPLE_COLUMNS, len(picked)))
    aspect = shape[0] / shape[1]
    row_height = 2.6 * min(max(aspect, 0.6), 2.0) + 0.6
    with hep_style():
        fig = new_figure(figsize=(20.0, n_rows * row_height + 4.6), layout="constrained")
        top, bottom = cast(Sequence[SubFigure],
                           fig.subfigures(2, 1, height_ratios=[n_rows * row_height, 4.0]))
        _draw_examples(top, ex_showers, ex_pdg, ex_energy, units)
        _draw_distributions(bottom, sample, convention, units)
        producer = dict(meta.producer or {})
        who = producer.get("name") or producer.get("simulator") or producer.get("model") or "?"
        note = (f"{len(sample.pdg)} of {n} events in histograms"
                if len(sample.pdg) < n else f"{n} events")
        fig.suptitle(f"{meta.detector} ShowerSet {Path(str(name)).name}  |  producer: {who}  |  "
                     f"{note}", fontsize=12)
        return save_figure(fig, out_png)


# --------------------------------------------------------------------------------------------
# Voxels and point clouds
# --------------------------------------------------------------------------------------------


@dataclass
class _LayeredSample:
    """Per-event quantities of a voxel or point-cloud sample, and its accumulated images."""

    pdg: NDArray[np.int64]
    total: NDArray[np.float64]  # (n,) energy sum, shower units
    layers: NDArray[np.float32]  # (n, n_layers) energy per layer
    ratio: NDArray[np.float64] | None  # (n,) total / incident energy (dimensionless)
    counts: NDArray[np.int64] | None  # (n,) points per shower
    mean_voxels: NDArray[np.float64] | None  # (n_voxels,) average shower
    xy: NDArray[np.float64] | None  # (PROJECTION_BINS, PROJECTION_BINS) energy, x then y
    z: NDArray[np.float64] | None  # (PROJECTION_BINS,) energy along z


def _read_layered(showerset: ShowerSet, geometry: LayeredVoxelGeometry | PointCloudVolume,
                  max_events: int, rng: np.random.Generator) -> _LayeredSample:
    """Stream a random subset of at most ``max_events`` events into :class:`_LayeredSample`."""
    meta = showerset.meta
    n = len(showerset)
    indices = None if n <= max_events else np.sort(rng.choice(n, size=max_events,
                                                              replace=False))
    e_col = energy_column(tuple(meta.condition_columns))
    scale = deposit_scale(str(meta.shower_units), meta.condition_units[e_col]
                          if e_col is not None else None)
    parts: dict[str, list[np.ndarray]] = {"pdg": [], "total": [], "layers": [], "e": [],
                                          "counts": []}
    voxels = np.zeros(int(np.prod(meta.shower_shape))) if meta.kind == "voxels" else None
    xy = z = None
    if isinstance(geometry, PointCloudVolume):
        xy = np.zeros((PROJECTION_BINS, PROJECTION_BINS))
        z = np.zeros(PROJECTION_BINS)
    n_read = 0
    for batch in showerset.iter_batches(batch_size=4096, indices=indices):
        per_layer = layer_energies(batch, geometry)
        assert per_layer is not None
        parts["pdg"].append(np.asarray(batch.pdg, dtype=np.int64))
        parts["total"].append(event_sums(batch))
        parts["layers"].append(per_layer.astype(np.float32))
        if e_col is not None:
            parts["e"].append(np.asarray(batch.conditions[:, e_col], dtype=np.float64))
        if voxels is not None:
            voxels += np.asarray(batch.showers, dtype=np.float64).sum(axis=0)
        if isinstance(geometry, PointCloudVolume) and xy is not None and z is not None:
            assert batch.counts is not None
            parts["counts"].append(np.asarray(batch.counts, dtype=np.int64))
            pts = np.asarray(batch.showers, dtype=np.float64)
            xy += np.histogram2d(pts[:, 0], pts[:, 1], bins=PROJECTION_BINS,
                                 range=[geometry.x_range_mm, geometry.y_range_mm],
                                 weights=pts[:, 3])[0]
            edges = geometry.layer_edges_mm
            z += np.histogram(pts[:, 2], bins=PROJECTION_BINS, range=(edges[0], edges[-1]),
                              weights=pts[:, 3])[0]
        n_read += len(batch)

    def cat(key: str, width: int | None = None) -> np.ndarray:
        if parts[key]:
            return np.concatenate(parts[key])
        return np.zeros((0,) if width is None else (0, width))

    total = cat("total")
    ratio = None
    if e_col is not None and scale is not None:
        energy = cat("e")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(energy > 0, total / energy * scale, np.nan)
    return _LayeredSample(
        pdg=cat("pdg").astype(np.int64), total=total,
        layers=cat("layers", geometry.n_layers).astype(np.float32), ratio=ratio,
        counts=cat("counts").astype(np.int64) if parts["counts"] else None,
        mean_voxels=voxels / max(n_read, 1) if voxels is not None else None,
        xy=xy / max(n_read, 1) if xy is not None else None,
        z=z / max(n_read, 1) if z is not None else None)


def _draw_average_layers(sub: SubFigure, geometry: LayeredVoxelGeometry,
                         mean_voxels: NDArray[np.float64], units: str) -> None:
    """The average shower of up to :data:`MAX_LAYER_PANELS` layers as polar cell maps."""
    n_layers = geometry.n_layers
    chosen = np.unique(np.linspace(0, n_layers - 1, min(n_layers, MAX_LAYER_PANELS))
                       .round().astype(int))
    axes = sub.subplots(1, len(chosen), squeeze=False, subplot_kw={"projection": "polar"})
    slices = geometry.layer_slices()
    positive = mean_voxels[mean_voxels > 0]
    vmin = float(positive.min()) if positive.size else 1e-3
    vmax = float(positive.max()) if positive.size else 1.0
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10.0))
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="black")
    mesh = None
    for ax, index in zip(axes.flat, chosen, strict=True):
        layer = geometry.layers[index]
        cells = mean_voxels[slices[index]].reshape(layer.n_alpha, layer.n_r).T
        split = max(1, -(-64 // layer.n_alpha))  # polar cells are drawn as polygons: bend them
        cells = np.repeat(cells, split, axis=1)
        alpha = np.linspace(-np.pi, np.pi, layer.n_alpha * split + 1)
        mesh = ax.pcolormesh(alpha, np.asarray(layer.r_edges_mm),
                             np.ma.masked_less_equal(cells, 0.0), norm=norm, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"layer {layer.id} (r < {layer.r_edges_mm[-1]:g} mm)", fontsize=9)
    if mesh is not None:
        sub.colorbar(mesh, ax=list(axes.flat), shrink=0.9, pad=0.01,
                     label=f"mean voxel energy [{units}]")
    sub.suptitle("average shower per layer", fontsize=10)


def _draw_layer_profile(ax: Axes, sample: _LayeredSample, layer_ids: list[int], units: str,
                        colours: dict[int, str]) -> None:
    """Mean energy per layer per species (log y)."""
    x = np.arange(len(layer_ids))
    for code, colour in colours.items():
        sel = sample.pdg == code
        if sel.any():
            ax.step(x, sample.layers[sel].mean(axis=0), where="mid", color=colour,
                    label=species_name(code))
    ax.set_xticks(x if len(x) <= 12 else x[:: max(1, len(x) // 8)])
    if len(x) <= 12:
        ax.set_xticklabels([str(i) for i in layer_ids])
    if np.any(sample.layers > 0):
        ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"mean energy [{units}]")
    ax.set_title("energy per layer")
    ax.legend(loc="best")


def _draw_species_hist(ax: Axes, values: NDArray[np.float64], pdg: NDArray[np.int64],
                       colours: dict[int, str], xlabel: str, title: str, *,
                       log: bool = True, integer: bool = False) -> None:
    """One step histogram per species; log-spaced bins over the positive values if ``log``,
    one bin per value for small ``integer`` values."""
    finite = values[np.isfinite(values)]
    bins: NDArray[np.float64] | None
    if integer and finite.size and finite.max() <= 2 * N_BINS:
        bins = np.arange(-0.5, float(finite.max()) + 1.0)
    elif log:
        bins = _log_bins(finite)
    elif finite.size:
        hi = float(finite.max())
        bins = np.linspace(float(finite.min()), hi + max(1.0, abs(hi)) * 1e-3, N_BINS + 1)
    else:
        bins = None
    if bins is None:
        ax.text(0.5, 0.5, "nothing to draw", ha="center", va="center", transform=ax.transAxes)
    else:
        for code, colour in colours.items():
            v = values[(pdg == code) & np.isfinite(values)]
            ax.hist(v[v > 0] if log else v, bins=bins.tolist(), histtype="step", color=colour,
                    label=species_name(code))
        if log:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events")
    ax.set_title(title)


def _draw_point_projections(axes: list[Axes], sample: _LayeredSample,
                            volume: PointCloudVolume, units: str) -> None:
    """x-y projection (energy-weighted, log colour) and energy along z with the layer edges."""
    assert sample.xy is not None and sample.z is not None
    ax = axes[0]
    xy = np.ma.masked_less_equal(sample.xy.T, 0.0)
    if xy.count():
        image = ax.imshow(xy, origin="lower", aspect="auto", interpolation="nearest",
                          extent=(*volume.x_range_mm, *volume.y_range_mm),
                          norm=LogNorm(vmin=float(xy.min()), vmax=max(float(xy.max()),
                                                                      float(xy.min()) * 10)),
                          cmap=matplotlib.colormaps["magma"].with_extremes(bad="black"))
        ax.figure.colorbar(image, ax=ax, label=f"energy per event [{units}]")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")
    ax.set_title("x-y projection")
    ax = axes[1]
    edges = np.linspace(volume.layer_edges_mm[0], volume.layer_edges_mm[-1],
                        PROJECTION_BINS + 1)
    ax.stairs(sample.z / np.diff(edges), edges, color="C0")
    if volume.n_layers <= PROJECTION_BINS:
        for edge in volume.layer_edges_mm:
            ax.axvline(edge, color="0.8", linewidth=0.5, zorder=0)
    ax.set_xlabel("z [mm]")
    ax.set_ylabel(f"energy per event [{units}/mm]")
    ax.set_title("energy along z (grey: layer edges)")


def _plot_layered(showerset: ShowerSet, out_png: str | os.PathLike[str], *, seed: int,
                  max_events: int) -> Path:
    """The ``show`` figure of a voxel or point-cloud ShowerSet (see the module docstring)."""
    meta = showerset.meta
    geometry = shape_geometry(meta)
    assert geometry is not None
    rng = np.random.default_rng(seed)
    sample = _read_layered(showerset, geometry, max_events, rng)
    units = str(meta.shower_units)
    colours = {code: f"C{k}" for k, code in enumerate(_main_species(sample.pdg,
                                                                    N_MAIN_SPECIES))}
    layer_ids = (list(geometry.layer_ids) if isinstance(geometry, LayeredVoxelGeometry)
                 else list(range(geometry.n_layers)))
    e_name = meta.condition_columns[energy_column(tuple(meta.condition_columns)) or 0] \
        if sample.ratio is not None else ""
    n = len(showerset)
    with hep_style():
        fig = new_figure(figsize=(20.0, 10.0), layout="constrained")
        top, bottom = cast(Sequence[SubFigure], fig.subfigures(2, 1, height_ratios=[5.0, 4.0]))
        if isinstance(geometry, LayeredVoxelGeometry):
            assert sample.mean_voxels is not None
            _draw_average_layers(top, geometry, sample.mean_voxels, units)
            lower: list[Axes] = list(sub_axes(bottom, 3 if sample.ratio is not None else 2))
            _draw_layer_profile(lower[0], sample, layer_ids, units, colours)
            rest = lower[1:]
        else:
            upper = list(sub_axes(top, 3))
            _draw_point_projections(upper[:2], sample, geometry, units)
            _draw_layer_profile(upper[2], sample, layer_ids, units, colours)
            lower = list(sub_axes(bottom, 3 if sample.ratio is not None else 2))
            assert sample.counts is not None
            _draw_species_hist(lower[0], sample.counts.astype(np.float64), sample.pdg, colours,
                               "points per shower", "points per shower", log=False,
                               integer=True)
            rest = lower[1:]
        _draw_species_hist(rest[0], sample.total, sample.pdg, colours,
                           f"energy sum [{units}]", "total energy per species")
        if sample.ratio is not None:
            _draw_species_hist(rest[1], sample.ratio, sample.pdg, colours,
                               f"energy sum / {e_name}", "deposited / incident energy",
                               log=False)
        producer = dict(meta.producer or {})
        who = producer.get("name") or producer.get("simulator") or producer.get("model") or "?"
        note = (f"{len(sample.pdg)} of {n} events" if len(sample.pdg) < n else f"{n} events")
        kind = "voxel" if meta.kind == "voxels" else "point-cloud"
        fig.suptitle(f"{meta.detector} {kind} ShowerSet {Path(str(showerset.path)).name}  |  "
                     f"producer: {who}  |  {note}", fontsize=12)
        return save_figure(fig, out_png)


def sub_axes(sub: SubFigure, n: int) -> list[Axes]:
    """``n`` side-by-side axes in ``sub``."""
    return list(sub.subplots(1, n, squeeze=False).flat)
