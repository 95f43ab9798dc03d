"""The ``calogen show`` figure: what the responses in a ShowerSet look like.

One PNG with three parts:

* a grid of example responses (log colour scale, zero pixels as dark background), each titled
  with species, incident energy (GeV) and photon sum, chosen with a seeded generator and spread
  over the species (round robin, most frequent species first);
* the distributions of the 5 PMT channel sums for the most frequent species (log y);
* the photon-sum distribution per species (log-spaced bins, log axes).

Histograms use at most ``max_events`` events, a seeded random subset read batch by batch, so a
file of any size is never loaded whole.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import SubFigure
from numpy.typing import NDArray

from calogen.data.showerset import ShowerSet
from calogen.data.summary import ENERGY_COLUMN, grid_for
from calogen.geometry import FibreGrid, channel_names, channel_sums
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
                ax.hist(values[sample.pdg == code], bins=bins, histtype="step",
                        color=colours[code], label=species_name(code))
            ax.set_yscale("log")
            ax.set_xlabel(f"{name} [{units}]")
            ax.set_title(f"channel {name}")
        axes[0].set_ylabel("events")
        axes[0].legend(loc="best")
    ax = axes[-1]
    n_species = int(np.unique(sample.pdg).size)
    sum_codes = _main_species(sample.pdg, N_SUM_SPECIES)
    bins = _log_bins(sample.photon_sum)
    if bins is not None:
        for k, code in enumerate(sum_codes):
            values = sample.photon_sum[sample.pdg == code]
            n_zero = int(np.count_nonzero(values <= 0))
            label = species_name(code) + (f" ({n_zero} zero)" if n_zero else "")
            ax.hist(values[values > 0], bins=bins, histtype="step",
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
    """Draw the overview figure of a ShowerSet of 2-D responses and save it atomically.

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
        ValueError: if the showers are not 2-D images, the file is empty or an argument is
            out of range.
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
    if len(shape) != 2:
        raise ValueError(f"{name}: 'show' draws 2-D image showers, this file has showers of "
                         f"shape {shape}")
    n = len(showerset)
    if n == 0:
        raise ValueError(f"{name}: the file holds no events")

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
        top, bottom = fig.subfigures(2, 1, height_ratios=[n_rows * row_height, 4.0])
        _draw_examples(top, ex_showers, ex_pdg, ex_energy, units)
        _draw_distributions(bottom, sample, convention, units)
        producer = dict(meta.producer or {})
        who = producer.get("name") or producer.get("simulator") or producer.get("model") or "?"
        note = (f"{len(sample.pdg)} of {n} events in histograms"
                if len(sample.pdg) < n else f"{n} events")
        fig.suptitle(f"{meta.detector} ShowerSet {Path(str(name)).name}  |  producer: {who}  |  "
                     f"{note}", fontsize=12)
        return save_figure(fig, out_png)
