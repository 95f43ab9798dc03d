"""The official CaloChallenge 2022 evaluation quantities for layered voxel geometries.

Definitions follow the challenge's evaluation code (CaloChallenge/homepage, ``code/``:
``HighLevelFeatures.py``, ``XMLHandler.py``, ``evaluate.py``, ``evaluate_plotting_helper.py``)
and its write-up (M. Faucci Giannelli, C. Krause et al., arXiv:2410.21611):

* high-level features (:func:`compute_features`): E_tot, E per layer, per angle-binned layer the
  energy-weighted centre and width in eta = r cos(alpha) and phi = r sin(alpha) (voxel centres:
  radial bin middle, angular bin middle in (-pi, pi)), the centre and width in r when every layer
  is angle-binned (DS2/DS3), and the sparsity per layer, 1 - fraction of voxels above the
  threshold. Sums are divided by (sum E + 1e-16), so an empty layer has centre and width 0;
  widths are sqrt(max(<x^2> - <x>^2, 0)).
* the histograms and their binning per dataset (:func:`separation_powers`), each compared by the
  separation power (:func:`calogen.metrics.distances.separation_power`, which equals the official
  ``_separation_power`` on the official edges: histograms normalised over in-range entries).
* the classifier inputs ``cls-low`` (log10 E_inc, 100 voxels / E_inc), ``cls-low-normed``
  (log10 E_inc, voxels / E_layer, log10(E_layer + 1e-8)) and ``cls-high`` (log10 E_inc,
  log10(E_layer + 1e-8), centres and widths in eta and phi / 100), energies in MeV; the FPD/KPD
  vector is the ``cls-high`` input with NaN/inf set to 0.
* the official text outputs (``histogram_chi2_<dataset>.txt``, ``classifier_<mode>_<dataset>.txt``,
  ``fpd_kpd_<dataset>.txt``).

Where the version of the official code that was read defines nothing (binning of the r-centre,
r-width and sparsity histograms, the PRDC transform), calogen's choice is named in
:data:`CALOGEN_EXTENSIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.metrics.distances import SeparationPower, separation_power

FloatArray = NDArray[np.float64]

DATASETS = ("1-photons", "1-pions", "2", "3")
"""The official dataset names (``evaluate.py --dataset``)."""

MIN_ENERGY_MEV = {"1-photons": 10.0, "1-pions": 10.0, "2": 0.5e-3 / 0.033, "3": 0.5e-3 / 0.033}
"""Lowest edge (MeV) of the logarithmic layer- and voxel-energy histograms (``evaluate.py``
``args.min_energy``)."""

DS1_ENERGIES_MEV = tuple(float(e) for e in 2.0 ** np.linspace(8, 23, 16))
"""Edges of the per-energy E_tot/E_inc histograms of dataset 1 (15 energies, 256 MeV - 4.2 TeV)."""

ENERGY_TOLERANCE = 1.0 + 1e-6
"""Incident energies are multiplied by this before they are put in energy ranges: an energy
stored in GeV as float32 (2.048 GeV) may read a hair below its MeV range edge (2048 MeV)."""

PRDC_FLOOR_MEV = 1e-3
"""Voxel energy (MeV) empty voxels are raised to before log10 in the PRDC transform (below every
official threshold: 15.15 keV DS2/3, and the DS1 readout)."""

CALOGEN_EXTENSIONS = {
    "EC R / Width R": "histograms of the r-centre and r-width per layer (DS2/DS3): 100 bins on "
                      "(0, 30) mm, as the eta/phi histograms of DS2/3",
    "Sparsity": "histograms of the sparsity per layer: 50 bins on (0, 1)",
    "PRDC": f"PRDC (k = 5) on log10(max(voxel, {PRDC_FLOOR_MEV:g} MeV))",
    "unknown geometry": "a voxel geometry that is none of the official binnings: eta/phi "
                        "centres and widths binned on the reference range (100 bins), layer and "
                        "voxel energies from the smallest positive reference value",
}
"""Where calogen defines what the official code read does not."""


# --------------------------------------------------------------------------------------------
# Geometry facts


def official_dataset(geometry: LayeredVoxelGeometry) -> str | None:
    """The official dataset whose binning ``geometry`` has (same layers, r edges and angular
    bins), or None (:func:`calogen.geometry.calochallenge_dataset_of`)."""
    from calogen.geometry.calochallenge import calochallenge_dataset_of

    return calochallenge_dataset_of(geometry)


def _alpha_layers(geometry: LayeredVoxelGeometry) -> list[int]:
    """Positions of the layers binned in angle (``n_alpha > 1``): the ones with eta/phi."""
    return [i for i, ly in enumerate(geometry.layers) if ly.n_alpha > 1]


def has_radial_features(geometry: LayeredVoxelGeometry) -> bool:
    """Whether the r-centres/widths are defined: every layer binned in angle (DS2/DS3)."""
    return all(ly.n_alpha > 1 for ly in geometry.layers)


# --------------------------------------------------------------------------------------------
# High-level features


@dataclass
class CaloChallengeFeatures:
    """High-level features of ``N`` showers (energies MeV, positions mm).

    ``ec_eta`` .. ``width_phi`` have one column per angle-binned layer (``alpha_layer_ids``);
    ``ec_r``/``width_r`` one per layer, or None when a layer is not binned in angle.
    """

    layer_ids: tuple[int, ...]
    alpha_layer_ids: tuple[int, ...]
    e_inc: FloatArray
    e_tot: FloatArray
    e_layer: FloatArray
    ec_eta: FloatArray
    ec_phi: FloatArray
    width_eta: FloatArray
    width_phi: FloatArray
    sparsity: FloatArray
    ec_r: FloatArray | None = None
    width_r: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.e_tot.shape[0])

    def _arrays(self) -> dict[str, FloatArray | None]:
        return {k: getattr(self, k) for k in ("e_inc", "e_tot", "e_layer", "ec_eta", "ec_phi",
                                              "width_eta", "width_phi", "sparsity", "ec_r",
                                              "width_r")}

    def take(self, rows: NDArray[np.bool_] | NDArray[np.integer]) -> CaloChallengeFeatures:
        """The features of a subset of rows (mask or indices)."""
        arrays = {k: None if v is None else v[rows] for k, v in self._arrays().items()}
        return CaloChallengeFeatures(self.layer_ids, self.alpha_layer_ids, **arrays)  # type: ignore[arg-type]

    @staticmethod
    def concat(parts: Sequence[CaloChallengeFeatures]) -> CaloChallengeFeatures:
        """Rows of ``parts`` one after the other (same geometry)."""
        if not parts:
            raise ValueError("no features to concatenate")
        first = parts[0]
        arrays = {}
        for key, value in first._arrays().items():
            arrays[key] = (None if value is None else
                           np.concatenate([getattr(p, key) for p in parts]))
        return CaloChallengeFeatures(first.layer_ids, first.alpha_layer_ids, **arrays)  # type: ignore[arg-type]


def _centre_width(x: FloatArray, e: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Energy-weighted centre and width as ``HighLevelFeatures.py`` (denominator sum + 1e-16)."""
    denom = e.sum(axis=1) + 1e-16
    centre = e @ x / denom
    second = e @ (x * x) / denom
    return centre, np.sqrt(np.clip(second - centre**2, 0.0, None))


def compute_features(showers: NDArray[np.floating], e_inc_mev: NDArray[np.floating],
                     geometry: LayeredVoxelGeometry, *,
                     threshold_mev: float = 0.0) -> CaloChallengeFeatures:
    """The official high-level features of ``showers`` ``(N, n_voxels)`` (MeV).

    Args:
        showers: voxel energies in the official voxel order, MeV.
        e_inc_mev: ``(N,)`` or ``(N, 1)`` incident energies, MeV.
        geometry: the voxel binning.
        threshold_mev: a voxel counts as non-empty in the sparsity when its energy is above
            this (the official default 0).
    """
    x = np.asarray(showers)
    if x.ndim != 2 or x.shape[1] != geometry.n_voxels:
        raise ValueError(f"voxel geometry {geometry.name!r}: showers must have shape "
                         f"(N, {geometry.n_voxels}), found {x.shape}")
    e_inc = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1)
    if e_inc.shape[0] != x.shape[0]:
        raise ValueError(f"incident energies: expected {x.shape[0]} values, found "
                         f"{e_inc.shape[0]}")
    r, alpha = geometry.voxel_centres()
    eta, phi = r * np.cos(alpha), r * np.sin(alpha)
    alpha_pos = set(_alpha_layers(geometry))
    radial = has_radial_features(geometry)
    e_layer, sparsity, ec_eta, ec_phi, w_eta, w_phi, ec_r, w_r = ([] for _ in range(8))
    for i, s in enumerate(geometry.layer_slices()):
        e = x[:, s].astype(np.float64)
        e_layer.append(e.sum(axis=1))
        sparsity.append(1.0 - (e > threshold_mev).mean(axis=1))
        if i in alpha_pos:
            c, w = _centre_width(eta[s], e)
            ec_eta.append(c)
            w_eta.append(w)
            c, w = _centre_width(phi[s], e)
            ec_phi.append(c)
            w_phi.append(w)
        if radial:
            c, w = _centre_width(r[s], e)
            ec_r.append(c)
            w_r.append(w)
    n = x.shape[0]

    def stack(cols: list[FloatArray]) -> FloatArray:
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    return CaloChallengeFeatures(
        layer_ids=tuple(geometry.layer_ids),
        alpha_layer_ids=tuple(geometry.layer_ids[i] for i in sorted(alpha_pos)),
        e_inc=e_inc, e_tot=x.sum(axis=1, dtype=np.float64), e_layer=stack(e_layer),
        ec_eta=stack(ec_eta), ec_phi=stack(ec_phi), width_eta=stack(w_eta),
        width_phi=stack(w_phi), sparsity=stack(sparsity),
        ec_r=stack(ec_r) if radial else None, width_r=stack(w_r) if radial else None)


# --------------------------------------------------------------------------------------------
# Feature vectors


def low_level_input(showers: NDArray[np.floating], e_inc_mev: NDArray[np.floating]
                    ) -> NDArray[np.float64]:
    """``cls-low`` classifier input: ``[log10 E_inc, 100 * voxels / E_inc]`` (MeV / MeV)."""
    e = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1, 1)
    x = np.asarray(showers, dtype=np.float64)
    return np.concatenate([np.log10(e), 100.0 * x / e], axis=1)


def low_level_normed_input(showers: NDArray[np.floating], features: CaloChallengeFeatures,
                           geometry: LayeredVoxelGeometry) -> NDArray[np.float64]:
    """``cls-low-normed`` input: ``[log10 E_inc, voxels / (E_layer + 1e-16),
    log10(E_layer + 1e-8)]``."""
    x = np.asarray(showers, dtype=np.float64)
    sizes = [s.stop - s.start for s in geometry.layer_slices()]
    norm = np.repeat(features.e_layer, sizes, axis=1)
    return np.concatenate([np.log10(features.e_inc).reshape(-1, 1), x / (norm + 1e-16),
                           np.log10(features.e_layer + 1e-8)], axis=1)


def high_level_input(features: CaloChallengeFeatures) -> NDArray[np.float64]:
    """``cls-high`` input: ``[log10 E_inc, log10(E_layer + 1e-8), EC_eta / 100, EC_phi / 100,
    width_eta / 100, width_phi / 100]`` (mm / 100; angle-binned layers only)."""
    f = features
    return np.concatenate([np.log10(f.e_inc).reshape(-1, 1), np.log10(f.e_layer + 1e-8),
                           f.ec_eta / 1e2, f.ec_phi / 1e2, f.width_eta / 1e2,
                           f.width_phi / 1e2], axis=1)


def fpd_kpd_input(features: CaloChallengeFeatures) -> NDArray[np.float64]:
    """The FPD/KPD feature vector: :func:`high_level_input` with NaN and inf set to 0."""
    return np.nan_to_num(high_level_input(features), nan=0.0, posinf=0.0, neginf=0.0)


def prdc_input(showers: NDArray[np.floating]) -> NDArray[np.float64]:
    """PRDC input: ``log10(max(voxel, PRDC_FLOOR_MEV))`` (see :data:`CALOGEN_EXTENSIONS`)."""
    return np.log10(np.maximum(np.asarray(showers, dtype=np.float64), PRDC_FLOOR_MEV))


# --------------------------------------------------------------------------------------------
# Histograms and separation powers


@dataclass(frozen=True)
class HistogramSeparation:
    """Separation power of one official histogram (``label`` as in ``histogram_chi2``)."""

    label: str
    group: str
    """Column group of the published tables: ``E total``, ``E layer``, ``EC eta``, ``EC phi``,
    ``width eta``, ``width phi``, ``E total per energy``, ``cell``, ``EC r``, ``width r``,
    ``sparsity``."""
    result: SeparationPower
    official: bool = True
    """False for the histograms calogen adds (:data:`CALOGEN_EXTENSIONS`)."""

    @property
    def value(self) -> float:
        return float(self.result.value)


def _log_edges(lo: float, hi: float, n: int) -> FloatArray:
    """``np.logspace(log10 lo, log10 hi, n)``, or a linear fallback when hi <= lo."""
    if hi > lo > 0:
        return np.logspace(np.log10(lo), np.log10(hi), n)
    return np.linspace(0.0, max(hi, lo, 1.0), n)


def _range_edges(values: FloatArray, n_bins: int) -> FloatArray:
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1)


def _official_or_range(values: FloatArray, edges: FloatArray) -> tuple[FloatArray, bool]:
    """The official ``edges`` when they hold at least half of the reference ``values``, else
    edges over the values' own range (e.g. uncalibrated sampling-calorimeter energies, whose
    E_tot / E_inc lies far below the official 0.5-1.5), marked not official."""
    inside = np.mean((values >= edges[0]) & (values <= edges[-1])) if len(values) else 1.0
    if inside >= 0.5:
        return edges, True
    return _range_edges(values, len(edges) - 1), False


def _position_lims(dataset: str | None, layer_id: int, width: bool) -> tuple[float, float] | None:
    """Histogram range of an eta/phi centre or width (``evaluate_plotting_helper.py``)."""
    if dataset is None:
        return None
    if dataset in ("2", "3"):
        return (0.0, 30.0) if width else (-30.0, 30.0)
    if layer_id in (12, 13):
        return (0.0, 400.0) if width else (-500.0, 500.0)
    return (0.0, 100.0) if width else (-100.0, 100.0)


def _min_energy(dataset: str | None, ref_values: FloatArray) -> float:
    if dataset is not None:
        return MIN_ENERGY_MEV[dataset]
    positive = ref_values[ref_values > 0]
    return float(positive.min()) if positive.size else 1e-3


def separation_powers(ref: CaloChallengeFeatures, gen: CaloChallengeFeatures,
                      dataset: str | None, *, ref_cells: NDArray[np.floating] | None = None,
                      gen_cells: NDArray[np.floating] | None = None
                      ) -> list[HistogramSeparation]:
    """Separation power of every official histogram, in the order the official script writes
    ``histogram_chi2_<dataset>.txt``, then calogen's additions (r centres/widths, sparsity).

    Bins (``evaluate_plotting_helper.py``): E_tot/E_inc 100 bins on (0.5, 1.5); E per layer 39
    log bins from the dataset's ``min_energy`` to the reference's maximum; centres 100 bins on
    (-30, 30) mm for DS2/3, (-500, 500) for DS1 layers 12/13 and (-100, 100) otherwise; widths
    on (0, 30), (0, 400), (0, 100); for DS1 E_tot/E_inc per incident energy (20 bins on
    (0.4, 1.4), photons above the 4th energy (0.9, 1.1)); voxel energies (``ref_cells``,
    ``gen_cells``: voxel arrays) 49 log bins from ``min_energy`` to the reference maximum.
    """
    out: list[HistogramSeparation] = []

    def add(label: str, group: str, a: FloatArray, b: FloatArray, edges: FloatArray,
            official: bool = True) -> None:
        out.append(HistogramSeparation(label, group, separation_power(a, b, bins=edges),
                                       official))

    ratio_r, ratio_g = ref.e_tot / ref.e_inc, gen.e_tot / gen.e_inc
    add("Etot / Einc", "E total", ratio_r, ratio_g,
        *_official_or_range(ratio_r, np.linspace(0.5, 1.5, 101)))
    for j, lid in enumerate(ref.layer_ids):
        col = ref.e_layer[:, j]
        edges = _log_edges(_min_energy(dataset, col), float(col.max()), 40)
        add(f"E layer {lid}", "E layer", col, gen.e_layer[:, j], edges)
    for label, group, attr, width in (("EC Eta", "EC eta", "ec_eta", False),
                                      ("EC Phi", "EC phi", "ec_phi", False),
                                      ("Width Eta", "width eta", "width_eta", True),
                                      ("Width Phi", "width phi", "width_phi", True)):
        for j, lid in enumerate(ref.alpha_layer_ids):
            a, b = getattr(ref, attr)[:, j], getattr(gen, attr)[:, j]
            lim = _position_lims(dataset, lid, width)
            edges = _range_edges(a, 100) if lim is None else np.linspace(*lim, 101)
            add(f"{label} layer {lid}", group, a, b, edges)
    if dataset is not None and dataset.startswith("1"):
        bins = np.linspace(0.4, 1.4, 21)
        for i in range(len(DS1_ENERGIES_MEV) - 1):
            if i > 3 and "photons" in dataset:
                bins = np.linspace(0.9, 1.1, 21)
            lo, hi = DS1_ENERGIES_MEV[i], DS1_ENERGIES_MEV[i + 1]
            er, eg = ref.e_inc * ENERGY_TOLERANCE, gen.e_inc * ENERGY_TOLERANCE
            mr = (er >= lo) & (er < hi)
            mg = (eg >= lo) & (eg < hi)
            if mr.any() and mg.any():
                add(f"Etot / Einc at E = {lo}", "E total per energy", ratio_r[mr], ratio_g[mg],
                    *_official_or_range(ratio_r[mr], bins))
    if ref_cells is not None and gen_cells is not None:
        out.append(cell_separation(ref_cells, gen_cells, dataset))
    if ref.ec_r is not None and gen.ec_r is not None:
        assert ref.width_r is not None and gen.width_r is not None
        for j, lid in enumerate(ref.layer_ids):
            add(f"EC R layer {lid}", "EC r", ref.ec_r[:, j], gen.ec_r[:, j],
                np.linspace(0.0, 30.0, 101), official=False)
        for j, lid in enumerate(ref.layer_ids):
            add(f"Width R layer {lid}", "width r", ref.width_r[:, j], gen.width_r[:, j],
                np.linspace(0.0, 30.0, 101), official=False)
    for j, lid in enumerate(ref.layer_ids):
        add(f"Sparsity layer {lid}", "sparsity", ref.sparsity[:, j], gen.sparsity[:, j],
            np.linspace(0.0, 1.0, 51), official=False)
    return out


def cell_separation(ref_cells: NDArray[np.floating], gen_cells: NDArray[np.floating],
                    dataset: str | None) -> HistogramSeparation:
    """Separation power of the voxel-energy distribution (all voxels of all showers): 49 log
    bins from the dataset's ``min_energy`` to the reference maximum."""
    rc = np.asarray(ref_cells, dtype=np.float64).ravel()
    gc = np.asarray(gen_cells, dtype=np.float64).ravel()
    edges = _log_edges(_min_energy(dataset, rc), float(rc.max()) if rc.size else 1.0, 50)
    return HistogramSeparation("Voxel distribution", "cell",
                               separation_power(rc, gc, bins=edges))


def insert_official(entries: Sequence[HistogramSeparation], entry: HistogramSeparation
                    ) -> list[HistogramSeparation]:
    """``entries`` with ``entry`` after the last official one (before calogen's additions)."""
    out = list(entries)
    pos = next((i for i, e in enumerate(out) if not e.official), len(out))
    out.insert(pos, entry)
    return out


def average_energy_edges(dataset: str | None) -> tuple[float, ...]:
    """Incident-energy ranges (MeV) of the per-energy average showers (``evaluate.py``
    ``avg-E``): the 15 DS1 energies, else decades 1 GeV - 1 TeV."""
    if dataset is not None and dataset.startswith("1"):
        return DS1_ENERGIES_MEV
    return tuple(float(e) for e in 10.0 ** np.linspace(3, 6, 4))


def group_means(entries: Sequence[HistogramSeparation]) -> dict[str, float]:
    """Mean separation power per group (the published tables' ``sep ...`` columns)."""
    groups: dict[str, list[float]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e.value)
    return {g: float(np.mean(v)) for g, v in groups.items()}


# --------------------------------------------------------------------------------------------
# Official text outputs


def histogram_chi2_text(entries: Sequence[HistogramSeparation]) -> str:
    """``histogram_chi2_<dataset>.txt``: a header line, then per histogram ``<label>: `` and
    its separation power on the next line, blank line between entries."""
    lines = ["List of chi2 of the plotted histograms, see eq. 15 of 2009.03796 for its "
             "definition.\n"]
    lines += [f"{e.label}: \n{e.value!r}\n\n" for e in entries]
    return "".join(lines)


def classifier_text(auc: float, jsd: float) -> str:
    """``classifier_<mode>_<dataset>.txt``: the final AUC / JSD line of the official script."""
    return f"Final result of classifier test (AUC / JSD):\n{auc:.4f} / {jsd:.4f}\n\n"


def fpd_kpd_text(fpd: float, fpd_err: float, kpd: float, kpd_err: float) -> str:
    """``fpd_kpd_<dataset>.txt``: FPD and KPD x1e3 with their errors."""
    return (f"FPD (x10^3): {fpd * 1e3:.4f} \u00b1 {fpd_err * 1e3:.4f}\n"
            f"KPD (x10^3): {kpd * 1e3:.4f} \u00b1 {kpd_err * 1e3:.4f}\n")
