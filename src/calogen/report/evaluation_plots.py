"""Figures of an evaluation: generated showers against the reference and the reference floor.

Every function takes the :class:`~calogen.metrics.evaluate.PlotData` of an
:class:`~calogen.metrics.evaluate.EvaluationResult` and an output directory, draws one kind of
figure and returns the PNG path(s) it wrote (atomically, through
:func:`calogen.report.style.save_figure`). Nothing here computes a metric: the arrays are only
histogrammed and drawn.

Samples (``shared/METRICS.md``): *reference* (black, filled), *generated* (colour) and
*floor*, a second reference sample of the generated sample's size and conditions (dashed): the
distance between reference and floor is what statistics alone produce.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec
from matplotlib.image import AxesImage
from matplotlib.ticker import NullFormatter
from numpy.typing import NDArray

from calogen.particles import species_name
from calogen.report.style import hep_style, new_figure, save_figure

if TYPE_CHECKING:  # importing calogen.metrics.evaluate pulls in torch; annotations only
    from calogen.metrics.evaluate import PlotData

N_BINS = 50
"""Bins per histogram (integer observables with a short range get one bin per integer)."""

MAX_OBSERVABLES_PER_FIGURE = 16
"""Observable panels per PNG of :func:`plot_observables` (more make a second page)."""

MAX_OBSERVABLE_PAGES = 4
"""Pages of :func:`plot_observables` at most: beyond, per-layer observables are drawn for a few
evenly spaced layers only (:func:`plot_layer_profiles` shows every layer)."""

MAX_CORRELATION_OBSERVABLES = 24
"""Observables of :func:`plot_correlations` at most (chosen as for the histograms)."""

OBSERVABLE_COLUMNS = 4
"""Columns of the observable grid."""

N_SPECIES = 4
"""Most frequent reference species drawn by :func:`plot_channels_per_species`."""

LOG_X_DECADES = 2.0
"""A photon-count observable gets log-spaced bins when its positive values span this many
decades or more."""

HEAVY_TAIL_SKEW = 1.5
"""|skewness| (of the displayed variable) above which the y axis is logarithmic."""

RATIO_LIMITS = (0.0, 2.0)
"""y range of the generated/reference ratio panels."""

REF_FILL = "0.82"
GEN_COLOUR = "tab:red"
FLOOR_COLOUR = "tab:blue"

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Binning for display


def display_edges(ref: NDArray[np.generic], unit: str,
                  n_bins: int = N_BINS) -> tuple[FloatArray, bool]:
    """Histogram edges for one observable, chosen from the reference sample.

    * Photon counts (``unit == "photons"``) whose positive values span at least
      :data:`LOG_X_DECADES` decades get log-spaced edges over the positive range (zeros then
      fall outside and are counted as out of range).
    * Integer-valued observables get edges on half-integers (one bin per integer when the
      range is short, otherwise a whole number of integers per bin).
    * Anything else: ``n_bins`` equal bins from the reference minimum to its maximum.

    Returns:
        ``(edges, log_x)``.
    """
    col = np.asarray(ref, dtype=np.float64)
    col = col[np.isfinite(col)]
    if col.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1), False
    lo, hi = float(col.min()), float(col.max())
    integer = bool(np.all(col == np.round(col)))
    pos = col[col > 0]
    if (unit == "photons" and lo >= 0 and pos.size
            and math.log10(float(pos.max()) / float(pos.min())) >= LOG_X_DECADES):
        p_lo, p_hi = float(pos.min()), float(pos.max())
        if integer:  # edges on half-integers, so that no bin falls between two integers
            edges = np.geomspace(max(p_lo - 0.5, 0.5), p_hi + 0.5, n_bins + 1)
            return np.unique(np.round(edges - 0.5) + 0.5), True
        return np.geomspace(p_lo, p_hi * 1.0001, n_bins + 1), True
    if integer:
        width = max(1, math.ceil((hi - lo + 1) / n_bins))
        edges = np.arange(lo - 0.5, hi + 0.5 + width, width, dtype=np.float64)
        return edges[: np.searchsorted(edges, hi + 0.5) + 1], False
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1), False


def _hist(values: NDArray[np.generic], edges: FloatArray) -> tuple[FloatArray, FloatArray, int]:
    """Counts, fractions of all finite entries, and the number of entries outside ``edges``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    counts, _ = np.histogram(v, bins=edges)
    n_out = int(v.size - counts.sum())
    frac = counts / max(v.size, 1)
    return counts.astype(np.float64), frac, n_out


def _heavy_tailed(values: FloatArray, log_x: bool) -> bool:
    """Whether the displayed variable (log10 of it on a log x axis) is strongly skewed."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if log_x:
        v = np.log10(v[v > 0])
    if v.size < 3:
        return False
    sd = float(v.std())
    if sd == 0.0:
        return False
    skew = float(np.mean(((v - v.mean()) / sd) ** 3))
    return abs(skew) > HEAVY_TAIL_SKEW


def _out_label(label: str, n_out: int, n_nonpositive: int = 0) -> str:
    """Legend label noting entries not drawn: ``<= 0`` ones on a log axis, others out of range.
    """
    notes = []
    if n_nonpositive:
        notes.append(f"{n_nonpositive} at 0")
    if n_out - n_nonpositive > 0:
        notes.append(f"{n_out - n_nonpositive} out of range")
    return f"{label} ({', '.join(notes)})" if notes else label


def _n_nonpositive(values: NDArray[np.generic], log_x: bool) -> int:
    return int(np.count_nonzero(np.asarray(values) <= 0)) if log_x else 0


def _draw_reference(ax: Axes, fractions: FloatArray, edges: FloatArray, label: str) -> None:
    """The reference histogram: light grey fill under a black step line."""
    ax.stairs(fractions, edges, fill=True, color=REF_FILL, linewidth=0)
    ax.stairs(fractions, edges, color="black", linewidth=1.1, label=label)


def _margins(width: float, height: float, *, left: float, right: float, bottom: float,
             top: float) -> dict[str, float]:
    """Gridspec margins (figure fractions) from margins in inches.

    The big multi-panel figures are laid out by hand: constrained layout costs 3-4x the
    drawing time on figures with tens of panels.
    """
    return {"left": left / width, "right": 1.0 - right / width, "bottom": bottom / height,
            "top": 1.0 - top / height}


def _axis_label(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


# --------------------------------------------------------------------------------------------
# Observables


def _draw_observable(fig: Figure, cell: SubplotSpec, name: str, unit: str, ref: FloatArray,
                     gen: FloatArray, floor: FloatArray) -> None:
    """Main panel (three normalised histograms) over a ratio panel, in one grid cell."""
    inner = cell.subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
    ax = fig.add_subplot(inner[0])
    rax = fig.add_subplot(inner[1], sharex=ax)
    edges, log_x = display_edges(ref, unit)
    c_ref, f_ref, o_ref = _hist(ref, edges)
    _, f_gen, o_gen = _hist(gen, edges)
    _, f_flo, o_flo = _hist(floor, edges)
    _draw_reference(ax, f_ref, edges, _out_label(f"reference (n={ref.size})", o_ref,
                                                  _n_nonpositive(ref, log_x)))
    ax.stairs(f_gen, edges, color=GEN_COLOUR, linewidth=1.4,
              label=_out_label(f"generated (n={gen.size})", o_gen, _n_nonpositive(gen, log_x)))
    ax.stairs(f_flo, edges, color=FLOOR_COLOUR, linewidth=1.2, linestyle="--",
              label=_out_label(f"floor (n={floor.size})", o_flo, _n_nonpositive(floor, log_x)))
    if _heavy_tailed(ref, log_x):
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
    if log_x:
        ax.set_xscale("log")
    ax.set_ylabel("fraction of events")
    ax.set_title(name)
    ax.legend(loc="best", fontsize=7, frameon=False)
    ax.tick_params(labelbottom=False)

    with np.errstate(divide="ignore", invalid="ignore"):
        has_ref = c_ref > 0
        r_gen = np.where(has_ref, f_gen / f_ref, np.nan)
        r_flo = np.where(has_ref, f_flo / f_ref, np.nan)
        err = np.where(has_ref, 1.0 / np.sqrt(c_ref), np.nan)
    lo_band, hi_band = r_flo - err, r_flo + err
    rax.fill_between(edges, np.r_[lo_band, lo_band[-1]], np.r_[hi_band, hi_band[-1]],
                     step="post", color=FLOOR_COLOUR, alpha=0.25, linewidth=0,
                     label="floor/ref. ± ref. Poisson")
    rax.stairs(np.nan_to_num(r_gen, nan=0.0), edges, color=GEN_COLOUR, linewidth=1.2)
    rax.axhline(1.0, color="black", linewidth=0.8)
    rax.set_ylim(*RATIO_LIMITS)
    rax.set_ylabel("gen./ref.", fontsize=8)
    rax.set_xlabel(_axis_label(name, unit))
    rax.set_xlim(edges[0], edges[-1])


def _layer_of_column(plot_data: PlotData) -> dict[int, int]:
    """Column -> layer position of every per-layer observable."""
    return {col: i for cols in plot_data.layer_columns.values() for i, col in enumerate(cols)}


def display_columns(plot_data: PlotData, budget: int) -> list[int]:
    """At most ``budget`` observable columns to draw: all when they fit, else every observable
    that is not per layer and the per-layer ones of evenly spaced layers (first and last
    included)."""
    k = len(plot_data.observable_names)
    if k <= budget:
        return list(range(k))
    layer = _layer_of_column(plot_data)
    glob = [j for j in range(k) if j not in layer]
    groups = max(len(plot_data.layer_columns), 1)
    n_layers = max((len(c) for c in plot_data.layer_columns.values()), default=0)
    per = max(1, (budget - len(glob)) // groups)
    chosen = set(np.unique(np.linspace(0, n_layers - 1, min(per, n_layers)).round().astype(int))
                 .tolist()) if n_layers else set()
    return (glob + [j for j in range(k) if j in layer and layer[j] in chosen])[:budget]


def plot_observables(plot_data: PlotData, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Every observable: reference, generated and floor histograms with a ratio panel.

    Histograms are normalised to the number of (finite) entries of each sample, so entries
    outside the reference's range lower the curve and are counted in the legend. The ratio panel
    shows generated/reference per bin (0 where the generated sample is empty, nothing where the
    reference is) and a band floor/reference ± 1/sqrt(reference count): where the red line
    leaves the band the model differs by more than the floor's statistics.

    Returns:
        ``observables.png`` (``observables_2.png``, ... when there are more than
        :data:`MAX_OBSERVABLES_PER_FIGURE` observables; at most :data:`MAX_OBSERVABLE_PAGES`,
        see :func:`display_columns`).
    """
    out = Path(out_dir)
    names, units = plot_data.observable_names, plot_data.observable_units
    cols = display_columns(plot_data, MAX_OBSERVABLE_PAGES * MAX_OBSERVABLES_PER_FIGURE)
    k = len(cols)
    paths: list[Path] = []
    n_pages = max(1, math.ceil(k / MAX_OBSERVABLES_PER_FIGURE))
    for page in range(n_pages):
        idx = cols[page * MAX_OBSERVABLES_PER_FIGURE:(page + 1) * MAX_OBSERVABLES_PER_FIGURE]
        ncols = min(OBSERVABLE_COLUMNS, max(len(idx), 1))
        nrows = max(1, math.ceil(len(idx) / ncols))
        with hep_style():
            width, height = 4.8 * ncols, 4.6 * nrows + 0.7
            fig = new_figure(figsize=(width, height))
            grid = fig.add_gridspec(nrows, ncols, wspace=0.3, hspace=0.32,
                                    **_margins(width, height, left=0.75, right=0.15,
                                               bottom=0.6, top=0.95))
            for n, j in enumerate(idx):
                _draw_observable(fig, grid[n // ncols, n % ncols], names[j], units[j],
                                 plot_data.ref.observables[:, j],
                                 plot_data.gen.observables[:, j],
                                 plot_data.floor.observables[:, j])
            suffix = "" if page == 0 else f"_{page + 1}"
            fig.suptitle("observables: reference (filled), generated (red), floor (dashed)"
                         + (f" - page {page + 1}/{n_pages}" if n_pages > 1 else ""),
                         fontsize=13)
            paths.append(save_figure(fig, out / f"observables{suffix}.png"))
    return paths


# --------------------------------------------------------------------------------------------
# Channels per species


def _top_species(pdg: NDArray[np.integer], k: int) -> list[int]:
    codes, counts = np.unique(np.asarray(pdg), return_counts=True)
    order = sorted(range(codes.size), key=lambda i: (-int(counts[i]), int(codes[i])))
    return [int(codes[i]) for i in order[:k]]


def plot_channels_per_species(plot_data: PlotData,
                              out_dir: str | os.PathLike[str]) -> Path:
    """The 5 PMT channel sums for the :data:`N_SPECIES` most frequent reference species.

    One row per species, one column per channel; reference filled, generated as a red line,
    both normalised to their number of events, log y. Bins from the reference of that species
    (:func:`display_edges`: log-spaced when the counts span decades, zeros then counted in the
    legend); generated entries outside them are counted in the legend.

    Returns:
        ``channels_per_species.png``.
    """
    n_ch = len(plot_data.channel_names)
    species = _top_species(plot_data.ref.pdg, N_SPECIES)
    nrows = max(1, len(species))
    with hep_style():
        width, height = 3.8 * max(n_ch, 1), 3.2 * nrows + 0.8
        fig = new_figure(figsize=(width, height))
        axes = fig.subplots(nrows, max(n_ch, 1), squeeze=False, gridspec_kw={
            "wspace": 0.3, "hspace": 0.55,
            **_margins(width, height, left=0.75, right=0.15, bottom=0.6, top=0.85)})
        for r, code in enumerate(species):
            m_ref = plot_data.ref.pdg == code
            m_gen = plot_data.gen.pdg == code
            for c in range(n_ch):
                ax: Axes = axes[r, c]
                ref = plot_data.ref.observables[m_ref, c]
                gen = plot_data.gen.observables[m_gen, c]
                edges, log_x = display_edges(ref, "photons")
                _, f_ref, o_ref = _hist(ref, edges)
                _, f_gen, o_gen = _hist(gen, edges)
                _draw_reference(ax, f_ref, edges, _out_label(
                    f"ref. (n={ref.size})", o_ref, _n_nonpositive(ref, log_x)))
                ax.stairs(f_gen, edges, color=GEN_COLOUR, linewidth=1.3, label=_out_label(
                    f"gen. (n={gen.size})", o_gen, _n_nonpositive(gen, log_x)))
                if np.any(f_ref > 0) or np.any(f_gen > 0):
                    ax.set_yscale("log")
                    ax.yaxis.set_minor_formatter(NullFormatter())
                if log_x:
                    ax.set_xscale("log")
                ax.set_title(f"{species_name(code)}: {plot_data.channel_names[c]}")
                ax.set_xlabel(f"{plot_data.channel_names[c]} [photons]")
                if c == 0:
                    ax.set_ylabel("fraction of events")
                ax.legend(loc="upper right", fontsize=7, frameon=False)
        if not species:
            axes[0, 0].text(0.5, 0.5, "no reference events", ha="center",
                            transform=axes[0, 0].transAxes)
        fig.suptitle("PMT channel sums per species: reference (filled) vs generated (red)",
                     fontsize=13)
        return save_figure(fig, Path(out_dir) / "channels_per_species.png")


# --------------------------------------------------------------------------------------------
# Correlations


def _draw_matrix(ax: Axes, mat: FloatArray, names: tuple[str, ...], title: str,
                 norm: Normalize, cmap: str) -> AxesImage:
    m = np.ma.masked_invalid(np.asarray(mat, dtype=np.float64))
    im = ax.imshow(m, norm=norm, cmap=cmap, interpolation="nearest", aspect="auto")
    k = len(names)
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.minorticks_off()
    ax.tick_params(top=False, right=False, length=0)
    fs = 7 if k > 12 else 9
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            v = mat[i, j]
            text = "-" if not np.isfinite(v) else f"{v:.2f}"
            dark = np.isfinite(v) and abs(norm(v) - 0.5) > 0.3
            ax.text(j, i, text, ha="center", va="center", fontsize=fs,
                    color="white" if dark else "black")
    ax.set_title(title)
    return im


def plot_correlations(plot_data: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """Pearson correlation matrices of the observables and their differences, annotated.

    Top: reference and generated. Bottom: generated - reference, and floor - reference beside
    it on the same symmetric colour scale: cells of the left difference clearly stronger than
    those of the right one are correlations the model gets wrong. Undefined correlations (a
    constant observable) are blank and annotated "-". With more than
    :data:`MAX_CORRELATION_OBSERVABLES` observables a subset is drawn (:func:`display_columns`).

    Returns:
        ``correlations.png``.
    """
    cols = display_columns(plot_data, MAX_CORRELATION_OBSERVABLES)
    names = tuple(plot_data.observable_names[j] for j in cols)
    ref, gen, flo = (np.asarray(m, dtype=np.float64)[np.ix_(cols, cols)] for m in
                     (plot_data.ref_corr, plot_data.gen_corr, plot_data.floor_corr))
    d_gen, d_flo = gen - ref, flo - ref
    finite = np.abs(np.concatenate([d_gen[np.isfinite(d_gen)], d_flo[np.isfinite(d_flo)]]))
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    size = max(5.0, 0.42 * len(names) + 1.0)  # inches per matrix
    # Hand-placed axes (inches): square matrices, room for rotated labels and colour bars.
    left, bottom, gap_x, gap_y, top, bar, right = 1.5, 1.5, 1.7, 2.0, 0.9, 0.3, 1.1
    width = left + 2 * size + gap_x + 0.3 + bar + right
    height = bottom + 2 * size + gap_y + top
    with hep_style():
        fig = new_figure(figsize=(width, height))

        def rect(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
            return (x / width, y / height, w / width, h / height)

        axes = np.array([[fig.add_axes(rect(left + c * (size + gap_x),
                                            bottom + (1 - r) * (size + gap_y), size, size))
                          for c in range(2)] for r in range(2)])
        caxes = [fig.add_axes(rect(left + 2 * size + gap_x + 0.3,
                                   bottom + (1 - r) * (size + gap_y), bar, size))
                 for r in range(2)]
        corr_norm = Normalize(-1.0, 1.0)
        diff_norm = Normalize(-lim, lim)
        im = _draw_matrix(axes[0, 0], ref, names, "reference", corr_norm, "RdBu_r")
        _draw_matrix(axes[0, 1], gen, names, "generated", corr_norm, "RdBu_r")
        fig.colorbar(im, cax=caxes[0], label="Pearson correlation")
        im = _draw_matrix(axes[1, 0], d_gen, names, "generated - reference", diff_norm, "PuOr_r")
        _draw_matrix(axes[1, 1], d_flo, names, "floor - reference (statistical floor)",
                     diff_norm, "PuOr_r")
        fig.colorbar(im, cax=caxes[1], label="difference of correlations")
        fig.suptitle("correlations of the observables", fontsize=13, y=1.0 - 0.25 / height)
        return save_figure(fig, Path(out_dir) / "correlations.png")


# --------------------------------------------------------------------------------------------
# Images


def _image_cmap() -> Colormap:
    return matplotlib.colormaps["magma"].with_extremes(bad="black")


def _log_norm(*images: NDArray[np.generic]) -> LogNorm:
    """One log colour scale over the positive pixels of ``images``."""
    pos = np.concatenate([np.asarray(im, dtype=np.float64).ravel() for im in images])
    pos = pos[np.isfinite(pos) & (pos > 0)]
    vmin = float(pos.min()) if pos.size else 1.0
    vmax = float(pos.max()) if pos.size else 10.0
    if vmax <= vmin:
        vmax = vmin * 10.0
    return LogNorm(vmin=vmin, vmax=vmax)


def _show(ax: Axes, image: NDArray[np.generic], norm: Normalize,
          cmap: Colormap | str) -> AxesImage:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.minorticks_off()
    data = np.asarray(image, dtype=np.float64)
    if isinstance(norm, LogNorm):
        data = np.ma.masked_less_equal(data, 0.0)
    return ax.imshow(data, norm=norm, cmap=cmap, interpolation="nearest", aspect="equal")


def plot_examples(plot_data: PlotData, out_dir: str | os.PathLike[str], *,
                  paired: bool | None = None) -> Path:
    """Example responses: reference beside generated for the same conditions.

    Each pair shares one log colour scale (zero pixels black) and is titled with the species and
    incident energy E (GeV) of the generated event's conditions; each panel gives its photon sum.

    Args:
        paired: ``False`` when the generated file does not share the reference's conditions
            (``protocol["paired"]``): the reference image then belongs to other conditions and
            the figure says so. ``None`` (unknown) and ``True`` draw the plain title.

    Returns:
        ``examples.png``.
    """
    ref_imgs, gen_imgs = plot_data.example_ref, plot_data.example_gen
    m = min(len(ref_imgs), len(gen_imgs))
    pairs_per_row = 2 if m > 1 else 1
    nrows = max(1, math.ceil(m / pairs_per_row))
    h, w = (ref_imgs.shape[1:3] if m else (44, 44))
    aspect = h / w
    cmap = _image_cmap()
    with hep_style():
        fig = new_figure(figsize=(7.6 * pairs_per_row, nrows * (3.3 * aspect + 0.9) + 0.6),
                         layout="constrained")
        subs = np.atleast_1d(fig.subfigures(nrows, pairs_per_row, squeeze=False)).ravel()
        for i, sub in enumerate(subs):
            if i >= m:
                continue
            ref_img = np.asarray(ref_imgs[i], dtype=np.float64)
            gen_img = np.asarray(gen_imgs[i], dtype=np.float64)
            norm = _log_norm(ref_img, gen_img)
            a_ref, a_gen = sub.subplots(1, 2)
            _show(a_ref, ref_img, norm, cmap)
            im = _show(a_gen, gen_img, norm, cmap)
            a_ref.set_title(f"reference: sum {ref_img.sum():.4g}", fontsize=9)
            a_gen.set_title(f"generated: sum {gen_img.sum():.4g}", fontsize=9)
            sub.colorbar(im, ax=[a_ref, a_gen], shrink=0.85, pad=0.01, label="photons")
            code = int(plot_data.example_pdg[i]) if i < len(plot_data.example_pdg) else 0
            energy = (float(plot_data.example_conditions[i, 0])
                      if i < len(plot_data.example_conditions) else float("nan"))
            sub.suptitle(f"{species_name(code)}, E = {energy:.4g} GeV", fontsize=10)
        if m == 0:
            fig.text(0.5, 0.5, "no example responses", ha="center", va="center")
        title = "example responses: reference vs generated for the same conditions"
        if paired is False:
            title = ("example responses: generated (conditions in titles) vs a reference "
                     "response of OTHER conditions (files not paired)")
        fig.suptitle(title, fontsize=12)
        return save_figure(fig, Path(out_dir) / "examples.png")


def plot_mean_images(plot_data: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """Mean reference image, mean generated image and their difference.

    The two means share one log colour scale (empty pixels black); the difference
    generated - reference uses a diverging map with symmetric limits (red: the model puts too
    many photons there, blue: too few).

    Returns:
        ``mean_images.png``.
    """
    ref = np.asarray(plot_data.mean_ref, dtype=np.float64)
    gen = np.asarray(plot_data.mean_gen, dtype=np.float64)
    diff = gen - ref
    lim = float(np.nanmax(np.abs(diff))) if diff.size else 0.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    aspect = ref.shape[0] / ref.shape[1] if ref.ndim == 2 and ref.shape[1] else 1.0
    with hep_style():
        fig = new_figure(figsize=(16.0, 4.6 * aspect + 1.0), layout="constrained")
        axes = fig.subplots(1, 3)
        norm = _log_norm(ref, gen)
        cmap = _image_cmap()
        _show(axes[0], ref, norm, cmap)
        im = _show(axes[1], gen, norm, cmap)
        fig.colorbar(im, ax=list(axes[:2]), shrink=0.85, label="mean photons per pixel")
        im_d = _show(axes[2], diff, Normalize(-lim, lim), "RdBu_r")
        fig.colorbar(im_d, ax=axes[2], shrink=0.85, label="generated - reference")
        axes[0].set_title(f"mean reference (sum {ref.sum():.4g})")
        axes[1].set_title(f"mean generated (sum {gen.sum():.4g})")
        axes[2].set_title("difference generated - reference")
        fig.suptitle("mean images", fontsize=13)
        return save_figure(fig, Path(out_dir) / "mean_images.png")


# --------------------------------------------------------------------------------------------
# Layer profiles (voxels, point clouds)

LAYER_GROUP_TITLES = {
    "energy": ("mean energy per layer", "MeV"),
    "centre_x": ("mean centre of energy in x", "mm"),
    "centre_y": ("mean centre of energy in y", "mm"),
    "width_x": ("mean width in x", "mm"),
    "width_y": ("mean width in y", "mm"),
    "sparsity": ("mean fraction of empty voxels", ""),
}
"""Panel title and unit of each per-layer group of observables."""


def _layer_label(name: str) -> str:
    """``E_layer12`` -> ``12``."""
    return name.rsplit("layer", 1)[-1]


def _mean_sem(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    v = np.asarray(values, dtype=np.float64)
    n = max(v.shape[0], 1)
    return v.mean(axis=0) if v.size else np.zeros(v.shape[1]), (
        v.std(axis=0) / math.sqrt(n) if v.size else np.zeros(v.shape[1]))


def plot_layer_profiles(plot_data: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """Per-layer means of the layered observables (energy, centres, widths, sparsity):
    reference (black), generated (red) and floor (blue, dashed), each with its standard error;
    below each panel generated / reference and floor / reference (energy and widths) or
    generated - reference and floor - reference (centres).

    Returns:
        ``layer_profiles.png``.
    """
    groups = [g for g in LAYER_GROUP_TITLES if g in plot_data.layer_columns]
    groups += [g for g in plot_data.layer_columns if g not in groups]
    ncols = min(3, max(len(groups), 1))
    nrows = max(1, math.ceil(len(groups) / ncols))
    with hep_style():
        width, height = 5.4 * ncols, 4.8 * nrows + 0.7
        fig = new_figure(figsize=(width, height))
        grid = fig.add_gridspec(nrows, ncols, wspace=0.32, hspace=0.35,
                                **_margins(width, height, left=0.8, right=0.15, bottom=0.6,
                                           top=0.95))
        for n, group in enumerate(groups):
            cols = list(plot_data.layer_columns[group])
            labels = [_layer_label(plot_data.observable_names[j]) for j in cols]
            title, unit = LAYER_GROUP_TITLES.get(group, (group, ""))
            inner = grid[n // ncols, n % ncols].subgridspec(2, 1, height_ratios=[3, 1],
                                                            hspace=0.06)
            ax = fig.add_subplot(inner[0])
            rax = fig.add_subplot(inner[1], sharex=ax)
            x = np.arange(len(cols), dtype=np.float64)
            means = {}
            for key, label, side, style in (
                    ("ref", "reference", plot_data.ref,
                     {"color": "black", "marker": "o", "ms": 3}),
                    ("gen", "generated", plot_data.gen,
                     {"color": GEN_COLOUR, "marker": "s", "ms": 3}),
                    ("floor", "floor", plot_data.floor,
                     {"color": FLOOR_COLOUR, "linestyle": "--"})):
                m, e = _mean_sem(side.observables[:, cols])
                means[key] = m
                ax.errorbar(x, m, yerr=e, linewidth=1.1, capsize=2,
                            label=f"{label} (n={len(side)})", **style)
            relative = group in ("energy", "width_x", "width_y", "sparsity")
            if group == "energy" and np.all(means["ref"] > 0):
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())
            with np.errstate(divide="ignore", invalid="ignore"):
                for key, colour, ls in (("gen", GEN_COLOUR, "-"), ("floor", FLOOR_COLOUR, "--")):
                    d = (means[key] / means["ref"] if relative else means[key] - means["ref"])
                    rax.plot(x, d, color=colour, linestyle=ls, linewidth=1.1)
            rax.axhline(1.0 if relative else 0.0, color="black", linewidth=0.8)
            if relative:
                rax.set_ylim(*RATIO_LIMITS)
            rax.set_ylabel("ratio to ref." if relative else "minus ref.", fontsize=8)
            ax.set_title(title)
            ax.set_ylabel(_axis_label("mean", unit))
            ax.legend(loc="best", fontsize=7, frameon=False)
            ax.tick_params(labelbottom=False)
            step = max(1, math.ceil(len(cols) / 15))
            rax.set_xticks(x[::step], labels[::step], fontsize=8)
            rax.set_xlabel("layer")
        if not groups:
            fig.text(0.5, 0.5, "no per-layer observables", ha="center", va="center")
        fig.suptitle("layer profiles: reference (black), generated (red), floor (dashed)",
                     fontsize=13)
        return save_figure(fig, Path(out_dir) / "layer_profiles.png")


# --------------------------------------------------------------------------------------------
# CaloChallenge average showers (voxels)

MAX_AVERAGE_LAYERS = 12
"""Layers drawn in ``average_shower.png`` at most (evenly spaced when there are more)."""


def _polar_layer(ax: Axes, values: FloatArray, r_edges: tuple[float, ...], n_alpha: int,
                 norm: Normalize, cmap: Colormap | str) -> AxesImage:
    """One layer's voxels (angle outer, radius inner) on a polar grid, radius in mm."""
    grid = np.asarray(values, dtype=np.float64).reshape(n_alpha, len(r_edges) - 1)
    theta = np.linspace(-np.pi, np.pi, n_alpha + 1)
    t, r = np.meshgrid(theta, np.asarray(r_edges))
    mesh = ax.pcolormesh(t, r, np.where(grid.T > 0, grid.T, np.nan), norm=norm, cmap=cmap)
    ax.set_xticks([])
    ax.set_yticklabels([])
    ax.grid(False)
    return mesh  # type: ignore[return-value]


def plot_average_showers(plot_data: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """Mean voxel energy per layer (CaloChallenge ``avg`` mode): the reference (top row) and
    the generated sample (bottom row) on one log colour scale, one polar panel per layer.

    Returns:
        ``average_shower.png``.
    """
    cc = plot_data.calochallenge or {}
    geometry = cc["geometry"]
    ref, gen = np.asarray(cc["mean_ref"]), np.asarray(cc["mean_gen"])
    layers = list(range(geometry.n_layers))
    if len(layers) > MAX_AVERAGE_LAYERS:
        layers = sorted({int(round(i)) for i in
                         np.linspace(0, len(layers) - 1, MAX_AVERAGE_LAYERS)})
    slices = geometry.layer_slices()
    positive = np.concatenate([ref[ref > 0], gen[gen > 0]])
    lo = float(positive.min()) if positive.size else 1e-3
    hi = float(positive.max()) if positive.size else 1.0
    norm = LogNorm(max(lo, hi * 1e-6), max(hi, lo * 10))
    with hep_style():
        fig = new_figure(figsize=(2.2 * len(layers) + 1.5, 5.2), layout="constrained")
        axes = fig.subplots(2, len(layers), subplot_kw={"projection": "polar"}, squeeze=False)
        mesh = None
        for col, i in enumerate(layers):
            layer = geometry.layers[i]
            for row, mean in enumerate((ref, gen)):
                mesh = _polar_layer(axes[row][col], mean[slices[i]], layer.r_edges_mm,
                                    layer.n_alpha, norm, _image_cmap())
            axes[0][col].set_title(f"layer {layer.id}", fontsize=10)
        axes[0][0].set_ylabel("reference", labelpad=18)
        axes[1][0].set_ylabel("generated", labelpad=18)
        if mesh is not None:
            fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8,
                         label="mean energy per voxel [MeV]")
        fig.suptitle(f"average shower, {cc.get('name', '')}: reference (top) vs generated "
                     "(bottom)", fontsize=12)
        return save_figure(fig, Path(out_dir) / "average_shower.png")


def plot_average_showers_per_energy(plot_data: PlotData,
                                    out_dir: str | os.PathLike[str]) -> Path:
    """Mean energy per layer for each incident-energy range (CaloChallenge ``avg-E``):
    reference (black) and generated (red), one panel per range, log y.

    Returns:
        ``average_shower_per_energy.png``.
    """
    cc = plot_data.calochallenge or {}
    geometry = cc["geometry"]
    entries = cc.get("energy_means", [])
    slices = geometry.layer_slices()
    n = max(len(entries), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    with hep_style():
        fig = new_figure(figsize=(4.0 * cols, 3.2 * rows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
        x = np.arange(geometry.n_layers)
        for ax, (lo, hi, ref, gen) in zip(axes, entries, strict=False):
            r = np.array([np.asarray(ref)[s].sum() for s in slices])
            g = np.array([np.asarray(gen)[s].sum() for s in slices])
            ax.step(x, np.where(r > 0, r, np.nan), where="mid", color="black",
                    label="reference")
            ax.step(x, np.where(g > 0, g, np.nan), where="mid", color="tab:red",
                    label="generated")
            ax.set_yscale("log")
            ax.set_title(f"E_inc in [{lo / 1e3:.4g}, {hi / 1e3:.4g}) GeV", fontsize=10)
            ax.set_xticks(x if len(x) <= 10 else x[:: max(1, len(x) // 8)])
            ax.set_xticklabels([str(geometry.layer_ids[i]) for i in ax.get_xticks()])
            ax.set_xlabel("layer")
            ax.set_ylabel("mean energy [MeV]")
        for ax in axes[len(entries):]:
            ax.axis("off")
        if entries:
            axes[0].legend(fontsize=9)
        fig.suptitle("average shower per incident-energy range: mean energy per layer",
                     fontsize=12)
        return save_figure(fig, Path(out_dir) / "average_shower_per_energy.png")
