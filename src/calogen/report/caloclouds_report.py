"""The CaloClouds II part of an evaluation report for point clouds (arXiv:2309.05704):
figures of the cell-level observables with ratio panels, example clouds projected per layer,
and the W1 / AUC table beside the paper's values (``published/caloclouds2_ild.csv``)."""

from __future__ import annotations

import csv
import html
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import LogNorm
from numpy.typing import NDArray

from calogen.report.evaluation_plots import (
    FLOOR_COLOUR,
    GEN_COLOUR,
    RATIO_LIMITS,
    REF_FILL,
    _draw_observable,
)
from calogen.report.style import hep_style, new_figure, save_figure

if TYPE_CHECKING:
    from calogen.metrics.evaluate import PlotData

FloatArray = NDArray[np.float64]

SCORE_COLUMNS = ("N_hits", "E_vis/E_inc", "E_cell", "E_long", "E_radial", "m1_x", "m1_y",
                 "m1_z")
"""Table 1 columns (as ``calogen.metrics.caloclouds.SCORES``)."""

EXAMPLE_LAYERS = 4
"""Layers drawn per example cloud (evenly spaced)."""

CAPTIONS = {
    "caloclouds_cells": (
        "CaloClouds II cell-level distributions (Fig. 3 of arXiv:2309.05704) after projecting the "
        "clouds onto the cells and removing cells below the threshold: the energy of every hit "
        "cell (log x; the region below the threshold greyed), the radial profile (mean energy "
        "per ring around the shower axis) and the longitudinal profile (mean energy per layer). "
        "Reference grey, generated red, floor (reference vs reference) blue dashed; lower panels "
        "generated / reference."),
    "caloclouds_observables": (
        "CaloClouds II shower observables (number of hit cells, visible energy, its ratio to "
        "E_inc, centres of gravity m1 in x, y, z from the cells) with ratio panels."),
    "caloclouds_examples": (
        "Example clouds projected onto the cells (thresholded), a few layers each: reference "
        "(top row of a pair) and generated (bottom) for the same row of the files; one "
        "logarithmic colour scale (MeV) per pair."),
}


def published() -> list[dict[str, str]]:
    """The rows of ``published/caloclouds2_ild.csv`` (see ``published/README.md``)."""
    text = resources.files("calogen.report").joinpath("published/caloclouds2_ild.csv")
    with text.open("r", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _profile_panel(fig: Any, cell: Any, x_edges: FloatArray, ref: FloatArray, gen: FloatArray,
                   floor: FloatArray, *, xlabel: str, ylabel: str, log_x: bool = False,
                   grey_below: float | None = None, title: str = "") -> None:
    """Three curves on ``x_edges`` (reference filled) over a generated / reference panel."""
    inner = cell.subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
    ax = fig.add_subplot(inner[0])
    rax = fig.add_subplot(inner[1], sharex=ax)
    ax.stairs(ref, x_edges, fill=True, color=REF_FILL, label="reference")
    ax.stairs(gen, x_edges, color=GEN_COLOUR, linewidth=1.4, label="generated")
    ax.stairs(floor, x_edges, color=FLOOR_COLOUR, linewidth=1.2, linestyle="--",
              label="floor")
    if np.any(ref > 0):
        ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log")
    if grey_below is not None:
        for a in (ax, rax):
            a.axvspan(x_edges[0], grey_below, color="0.6", alpha=0.4, linewidth=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=7, frameon=False)
    ax.tick_params(labelbottom=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > 0, gen / ref, np.nan)
    rax.stairs(np.nan_to_num(ratio, nan=0.0), x_edges, color=GEN_COLOUR, linewidth=1.2)
    rax.axhline(1.0, color="black", linewidth=0.8)
    rax.set_ylim(*RATIO_LIMITS)
    rax.set_ylabel("gen./ref.", fontsize=8)
    rax.set_xlabel(xlabel)
    rax.set_xlim(x_edges[0], x_edges[-1])


def _cell_edges(ref: FloatArray, threshold: float) -> FloatArray:
    """Log bins from a decade below the threshold to the reference's largest cell."""
    lo = max(threshold / 10, 1e-3) if threshold > 0 else max(float(ref.min()), 1e-3)
    hi = max(float(ref.max()) if ref.size else 1.0, lo * 10)
    return np.logspace(np.log10(lo), np.log10(hi * 1.01), 51)


def plot_caloclouds_cells(pd: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """Cell-energy spectrum, radial and longitudinal profiles with ratio panels."""
    cc = pd.caloclouds
    assert cc is not None
    ref, gen, flo = cc["ref"], cc["gen"], cc["floor"]
    thr = float(cc["threshold_mev"])
    edges = _cell_edges(ref.cell_energy, thr)

    def spectrum(o: Any) -> FloatArray:
        counts, _ = np.histogram(o.cell_energy, bins=edges)
        return counts / max(len(o), 1)

    n_layers = ref.layer_energy.shape[1]
    layer_edges = np.arange(0.5, n_layers + 1.0)
    with hep_style():
        fig = new_figure(figsize=(15, 5))
        grid = fig.add_gridspec(1, 3, wspace=0.3, left=0.06, right=0.98, top=0.9, bottom=0.13)
        _profile_panel(fig, grid[0], edges, *(spectrum(o).astype(float) for o in (ref, gen, flo)),
                       xlabel="cell energy [MeV]", ylabel="hit cells per shower (sampled)",
                       log_x=True, grey_below=thr if thr > 0 else None, title="cell energies")
        _profile_panel(fig, grid[1], np.asarray(ref.profile_edges_mm),
                       *(o.radial_profile.mean(axis=0) for o in (ref, gen, flo)),
                       xlabel="radius [mm]", ylabel="mean energy [MeV]",
                       title="radial profile")
        _profile_panel(fig, grid[2], layer_edges,
                       *(o.layer_energy.mean(axis=0) for o in (ref, gen, flo)),
                       xlabel="layer", ylabel="mean energy [MeV]", title="longitudinal profile")
        return save_figure(fig, Path(out_dir) / "caloclouds_cells.png")


def plot_caloclouds_observables(pd: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """N_hits, E_vis, E_vis/E_inc and m1 x/y/z histograms with ratio panels."""
    cc = pd.caloclouds
    assert cc is not None
    cols = [o.columns() for o in (cc["ref"], cc["gen"], cc["floor"])]
    names = (("N_hits", "cells"), ("E_vis", "MeV"), ("E_vis/E_inc", ""), ("m1_x", "mm"),
             ("m1_y", "mm"), ("m1_z", "mm"))
    with hep_style():
        fig = new_figure(figsize=(15, 9))
        grid = fig.add_gridspec(2, 3, wspace=0.3, hspace=0.35, left=0.06, right=0.98,
                                top=0.95, bottom=0.07)
        for i, (name, unit) in enumerate(names):
            _draw_observable(fig, grid[i // 3, i % 3], name, unit,
                             *(np.asarray(c[name], dtype=np.float64) for c in cols))
        return save_figure(fig, Path(out_dir) / "caloclouds_observables.png")


def plot_cloud_examples(pd: PlotData, out_dir: str | os.PathLike[str]) -> Path:
    """A few reference and generated clouds projected onto the cells, a few layers each."""
    cc = pd.caloclouds
    assert cc is not None
    ref, gen = np.asarray(cc["example_ref"]), np.asarray(cc["example_gen"])
    e_inc = np.asarray(cc.get("example_e_inc", np.zeros(len(gen))))
    n_layers = ref.shape[1] if ref.ndim == 4 else 1
    layers = np.unique(np.linspace(0, n_layers - 1, min(EXAMPLE_LAYERS, n_layers)).round()
                       .astype(int))
    k = max(len(gen), 1)
    with hep_style():
        fig = new_figure(figsize=(2.6 * len(layers) + 1, 2.4 * 2 * k))
        axes = fig.subplots(2 * k, len(layers), squeeze=False)
        for i in range(len(gen)):
            pos = np.concatenate([ref[i][ref[i] > 0], gen[i][gen[i] > 0]])
            norm = LogNorm(float(pos.min()), float(pos.max())) if pos.size else None
            for row, (label, img) in enumerate((("ref.", ref[i]), ("gen.", gen[i]))):
                for j, layer in enumerate(layers):
                    ax = axes[2 * i + row, j]
                    shown = np.ma.masked_less_equal(img[layer], 0.0)
                    ax.imshow(shown, origin="lower", norm=norm, cmap="viridis",
                              interpolation="nearest")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if row == 0 and i == 0:
                        ax.set_title(f"layer {layer + 1}", fontsize=9)
                    if j == 0:
                        ax.set_ylabel(f"{label} {e_inc[i]:.0f} GeV", fontsize=8)
        if not len(gen):
            axes[0, 0].text(0.5, 0.5, "no examples", ha="center", va="center")
        return save_figure(fig, Path(out_dir) / "caloclouds_examples.png")


def _fmt(mean: Any, std: Any = None) -> str:
    if mean is None or mean == "":
        return "-"
    text = f"{float(mean):.3g}"
    if std not in (None, ""):
        text += f" ± {float(std):.2g}"
    return text


def caloclouds_section(doc: Mapping[str, Any]) -> str:
    """The report section: this run's W1 scores (x1e-3) and AUC beside the floor and the
    paper's values; empty without CaloClouds II results."""
    cc = (doc.get("details") or {}).get("caloclouds")
    if not cc:
        return ""
    w1 = cc.get("w1", {})
    header = ["", *(f"W1 {c}" for c in SCORE_COLUMNS), "AUC"]
    clf = cc.get("classifier", {})

    def ours(side: str) -> list[str]:
        cells = [_fmt(1e3 * w1[c][side]["mean"], 1e3 * w1[c][side]["std"])
                 if c in w1 and w1[c][side]["mean"] is not None else "-"
                 for c in SCORE_COLUMNS]
        auc = clf.get(side, {})
        return [*cells, _fmt(auc.get("auc_mean"), auc.get("auc_std"))]

    rows = [["this model (vs calogen reference)", *ours("value")],
            ["floor (reference vs reference)", *ours("floor")]]
    for p in published():
        rows.append([f"paper: {p['simulator']}",
                     *(_fmt(p[c] or None, p[f"{c} std"] or None) for c in SCORE_COLUMNS),
                     _fmt(p["AUC"] or None, p["AUC std"] or None)])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return ("<h2>CaloClouds II scores</h2>\n<p>W1 of standardised observables ×10³, mean ± std "
            "over 10 batches (Table 1 of arXiv:2309.05704), and the AUC of its 25-observable "
            "classifier (Table 2). The paper's rows were measured on the ILD Geant4 photon "
            "showers, not on calogen's reference files: compare each model with its own "
            "floor.</p>\n"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
