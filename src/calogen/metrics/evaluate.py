"""Evaluate generated showers against a reference: every metric beside its reference floor.

Protocol (``shared/METRICS.md``):

* The generated file holds one response per reference condition, in the reference's row order
  ("generated for the reference's conditions"); row ``i`` of both files is then a *pair*. It
  must therefore have exactly as many rows as the reference: a shorter one cannot answer every
  reference row, and the extra rows of a longer one would be ignored (a longer file made for
  other conditions is refused too rather than cut to its first rows). A file generated for
  other conditions with the same row count is compared as distributions (no paired metrics).
* **Floor.** With a second reference file (``reference_2``, e.g. the same particles simulated
  again) every metric is computed for (reference, generated) and for (reference, reference 2).
  Without it the reference is split into two halves A and B *by condition group* (repeats of
  one particle never straddle the halves); the model's value compares A with the generated
  responses for B's conditions, the floor compares A with B: same sizes, same conditions.
* **Significance.** W1 (channels and observables), separation power, FPD and KPD carry a
  p-value: the statistic's null distribution is obtained by re-splitting the pooled reference
  into two random halves by condition group (arXiv:2409.16336) and
  p = (1 + #{null >= value}) / (1 + n_null).
* **Paired metrics** (MAE by condition, per-pixel RMSE) compare row i of the reference with row
  i of the generated set; their floor needs two reference responses for one condition: either
  ``reference_2`` with the same conditions, or groups of repeated conditions in the reference.
* **Slices.** The metrics are repeated per particle species and per energy bin (without
  p-values and FPD, and with a 1-seed high-level classifier, to stay affordable).
* **Shapes.** The observables come from the files' geometry (:func:`extractor_for`): ZDC
  images, layered voxels (CaloChallenge features) or point clouds. Metrics of the ZDC only (PMT
  channel W1, paired channel MAE and per-pixel RMSE) are computed for images only; the
  low-level classifier reads pixels (images) or voxel energies over the incident energy
  (voxels), and is skipped for point clouds (no fixed-size representation); PRDC reads
  log10(1 + pixels) for images and the standardised observables otherwise. What was skipped,
  and why, is listed in ``protocol["skipped"]``.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen import __version__
from calogen.data.showerset import ShowerSet
from calogen.geometry.base import Geometry, geometry_from_dict
from calogen.geometry.channels import Convention
from calogen.geometry.points import PointCloudVolume
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.metrics import calochallenge as cc
from calogen.metrics import caloclouds as ccl
from calogen.metrics.classifier import (
    CALOCLOUDS_II,
    CALOGEN_DEFAULT,
    ClassifierConfig,
    classifier_test,
    high_level_features,
    low_level_features,
)
from calogen.metrics.distances import (
    batched_w1,
    channel_wasserstein,
    correlation_difference,
    json_safe,
    separation_power,
)
from calogen.metrics.frechet import fpd, independent_columns, kpd
from calogen.metrics.observables import (
    ENERGY_UNIT_MEV,
    INCIDENT_ENERGY_COLUMN,
    ObservableExtractor,
    ZDCObservables,
    extractor_for,
)
from calogen.metrics.prdc import prdc
from calogen.metrics.significance import p_value
from calogen.metrics.zdc import PixelRMSE, condition_diversity, paired_channel_mae
from calogen.particles import species_name

READ_BATCH_VALUES = 1 << 25
"""Shower values (voxels, or point coordinates and energies) read per batch at most (128 MB of
float32); ZDC images keep ``EvaluationConfig.batch_size``."""

LOW_LEVEL_VALUES = 1 << 27
"""Low-level classifier inputs per class at most (512 MB of float32): large voxel geometries
use fewer rows than ``EvaluationConfig.low_level_max_per_class``."""

RESULT_SCHEMA = "calogen.metrics"
RESULT_SCHEMA_VERSION = 1

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of :func:`evaluate`. Defaults are practical on a 2-core laptop CPU."""

    convention: Convention = "o2"
    max_events: int | None = None
    """Use at most this many reference rows (a seeded random subset of condition groups)."""
    seed: int = 0
    batch_size: int = 8192
    w1_batches: int = 10
    separation_bins: int = 50
    n_null: int = 50
    """Resamples of the reference for the null distributions of W1 and separation power.
    A p-value resolves down to 1 / (1 + n_null): a value beyond every resample gets that
    bound."""
    n_null_fpd_kpd: int = 10
    """Resamples for the (more expensive) FPD and KPD nulls (p-values resolve to 1/11)."""
    fpd_points: int = 10
    fpd_bootstrap: int = 20
    kpd_batches: int = 10
    kpd_batch_size: int = 5000
    prdc_k: int = 5
    prdc_max_samples: int | None = 10_000
    """Rows per side for PRDC (seeded subsample); None uses every row."""
    classifier: ClassifierConfig = CALOGEN_DEFAULT
    low_level_max_per_class: int = 30_000
    """Rows per class for the low-level (pixel / voxel) classifier and PRDC's pool, per side."""
    slice_min_events: int = 400
    """A slice is evaluated when both of its sides have at least this many events."""
    energy_edges_gev: tuple[float, ...] = (0.0, 10.0, 100.0, 1000.0, 1e6)
    slice_classifier_seeds: int = 1
    n_examples: int = 8
    point_threshold_mev: float = 0.0
    """Cell threshold (MeV) of the point-cloud observable ``hit_cells``."""
    progress: bool = True
    protocol: str = "calogen"
    """Name of the protocol preset that set these values (``calogen`` or
    ``calochallenge-2022``); written to metrics.json."""
    calochallenge_low_normed: bool = False
    """Voxels: also run the ``cls-low-normed`` classifier (voxels over layer energies)."""
    calochallenge_high_level: bool = False
    """Voxels: the high-level classifier reads the official ``cls-high`` input (log10 E_inc,
    log10 E_layer, eta/phi centres and widths / 100). The default reads calogen's observables
    instead, a superset that also holds E_tot / E_inc, the sparsity and (DS2/3) all layers'
    centres: the official vector carries E_tot / E_inc only through a sum of exponentials of
    its inputs, which small classifiers miss (a 15 % energy scale went unseen on toy data)."""
    calochallenge_threshold_mev: float = 0.0
    """Voxels: a voxel above this energy (MeV) counts as hit in the official sparsity."""
    cell_size_mm: tuple[float, float] | None = None
    """Point clouds: project onto cells of this (x, y) size (mm) instead of the file's."""
    cell_offset_mm: tuple[float, float] | None = None
    """Point clouds: shift the cell grid to this (x, y) corner position (mm)."""
    shower_axis_mm: tuple[float, float] = (0.0, 0.0)
    """Point clouds: (x, y) of the axis the CaloClouds radial observables are measured from
    (the paper: the detector's central axis; calogen's guns hit x = y = 0)."""
    caloclouds_threshold_mev: float = ccl.HALF_MIP_MEV
    """Point clouds: cell threshold of the CaloClouds II observables (half a MIP)."""
    caloclouds_cell_hits: int = ccl.E_CELL_HITS
    """Point clouds: hit cells per batch of the E_cell W1 score (the paper: 50k)."""
    caloclouds_max_cells: int = 2_000_000
    """Point clouds: hit-cell energies kept per file at most (a uniform subsample)."""
    caloclouds_classifier: ClassifierConfig = CALOCLOUDS_II
    """Point clouds: the high-level classifier on the 25 CaloClouds II observables."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classifier"] = asdict(self.classifier)
        d["caloclouds_classifier"] = asdict(self.caloclouds_classifier)
        return d


@dataclass
class MetricRow:
    """One line of a summary table: value (model) beside floor (reference vs reference)."""

    name: str
    unit: str
    value: float | None
    floor: float | None
    p_value: float | None = None
    value_std: float | None = None
    floor_std: float | None = None
    lower_is_better: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_safe(v) for k, v in asdict(self).items()}


@dataclass
class Side:
    """One sample of a comparison, in memory: observables and bookkeeping of its rows."""

    observables: FloatArray
    conditions: NDArray[np.float32]
    pdg: NDArray[np.int32]
    condition_id: NDArray[np.int64]
    rows: NDArray[np.int64]

    def subset(self, mask: NDArray[np.bool_]) -> Side:
        return Side(self.observables[mask], self.conditions[mask], self.pdg[mask],
                    self.condition_id[mask], self.rows[mask])

    def __len__(self) -> int:
        return int(self.rows.shape[0])


@dataclass
class PlotData:
    """Arrays the report draws (not written to metrics.json)."""

    observable_names: tuple[str, ...]
    observable_units: tuple[str, ...]
    channel_names: tuple[str, ...]
    ref: Side
    gen: Side
    floor: Side
    ref_corr: FloatArray
    gen_corr: FloatArray
    floor_corr: FloatArray
    example_ref: NDArray[np.generic]
    example_gen: NDArray[np.generic]
    example_conditions: NDArray[np.float32]
    example_pdg: NDArray[np.int32]
    mean_ref: FloatArray
    mean_gen: FloatArray
    kind: str = "image"
    """Shape of the compared showers: image (examples and mean images exist), voxels, points."""
    layer_columns: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Per-layer observables (voxels, points): group -> one observable column per layer."""
    calochallenge: dict[str, Any] | None = None
    """Voxels with ``E_inc``: the official text outputs (file name -> text), the geometry,
    the dataset name and the average showers (all rows, and per incident-energy range)."""
    caloclouds: dict[str, Any] | None = None
    """Point clouds with ``E_inc``: the CaloClouds II observables of each side (``ref``,
    ``gen``, ``floor``: :class:`~calogen.metrics.caloclouds.CloudObservables`), the volume,
    the threshold and example clouds projected onto the cells (``example_ref``,
    ``example_gen``: ``(k, n_layers, n_y, n_x)`` MeV, ``example_e_inc`` GeV)."""


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured."""

    summary: list[MetricRow]
    details: dict[str, Any]
    slices: dict[str, dict[str, dict[str, Any]]]
    timing: dict[str, dict[str, float]]
    inputs: dict[str, Any]
    protocol: dict[str, Any]
    plot_data: PlotData | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written as ``metrics.json`` (see ``report/metrics_schema.json``)."""
        return _json_safe({
            "schema": RESULT_SCHEMA,
            "schema_version": RESULT_SCHEMA_VERSION,
            "calogen_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": self.inputs,
            "protocol": self.protocol,
            "summary": [r.to_dict() for r in self.summary],
            "details": self.details,
            "slices": self.slices,
            "timing": self.timing,
        })


def _json_safe(value: Any) -> Any:
    """Strict-JSON values (NaN and inf become None)."""
    return json_safe(value, nan_to_none=True)


class _Timer:
    """Wall time and peak resident memory per named stage."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            rec = self.records.setdefault(name, {"seconds": 0.0, "peak_rss_mb": 0.0})
            rec["seconds"] += time.perf_counter() - t0
            rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# Reading


def _select_rows(ss: ShowerSet, max_events: int | None, seed: int) -> NDArray[np.int64]:
    """All rows, or a seeded subset of whole condition groups of about ``max_events`` rows."""
    n = len(ss)
    if max_events is None or max_events >= n:
        return np.arange(n, dtype=np.int64)
    ids = ss.condition_ids()
    uniq, inverse = np.unique(ids, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    counts = np.bincount(inverse)[order]
    keep_groups = np.cumsum(counts) <= max_events
    keep_groups[0] = True
    keep = keep_groups[rank[inverse]]
    return np.flatnonzero(keep).astype(np.int64)


def _conditions_match(a: ShowerSet, b: ShowerSet, rows: NDArray[np.int64]) -> bool:
    """Whether ``b`` has ``a``'s rows and the same conditions and species on ``rows``."""
    if len(b) != len(a):
        return False
    ca, cb = a.conditions()[rows], b.conditions()[rows]
    return bool(np.allclose(ca, cb, rtol=1e-5, atol=1e-9) and
                np.array_equal(a.pdg()[rows], b.pdg()[rows]))


def _batch_rows(ss: ShowerSet, cfg: EvaluationConfig) -> int:
    """Showers per read batch: ``cfg.batch_size``, fewer for large voxel or point showers."""
    kind = _kind(ss)
    if kind == "voxels":
        per_shower = int(np.prod(ss.shower_shape))
    elif kind == "points":
        counts = ss.counts()
        per_shower = 4 * max(1, int(np.ceil(counts.mean()))) if len(counts) else 4
    else:
        return cfg.batch_size
    return max(1, min(cfg.batch_size, READ_BATCH_VALUES // per_shower))


def _scan(files: list[ShowerSet], rows: NDArray[np.int64], extractor: ObservableExtractor,
          cfg: EvaluationConfig, *, label: str,
          rmse: dict[int, PixelRMSE] | None = None,
          official: list[_OfficialAccumulator] | None = None,
          clouds: list[_CloudFile] | None = None) -> list[tuple[Side, FloatArray]]:
    """Stream ``rows`` of the files side by side, once: observables, conditions and (images)
    the mean image of each; ``rmse[k]`` accumulates the per-pixel RMSE of file ``k`` against
    file 0; ``official[k]`` the CaloChallenge features and average showers of file ``k``;
    ``clouds[k]`` the CaloClouds II observables of file ``k``."""
    acc: list[dict[str, list[Any]]] = [{"obs": [], "cond": [], "pdg": [], "cid": []}
                                       for _ in files]
    image = isinstance(extractor, ZDCObservables)
    sums = [np.zeros(extractor.grid.shape if isinstance(extractor, ZDCObservables) else 0)
            for _ in files]
    batch = _batch_rows(files[0], cfg)
    iters = [f.iter_batches(batch, indices=rows) for f in files]
    bar = tqdm(total=len(rows), desc=f"read {label}", unit="ev", disable=not cfg.progress)
    for batches in zip(*iters, strict=True):
        for k, b in enumerate(batches):
            if image:
                acc[k]["obs"].append(extractor(b.showers))
                sums[k] += b.showers.sum(axis=0)
            else:
                acc[k]["obs"].append(extractor(b.showers, counts=getattr(b, "counts", None),
                                               conditions=b.conditions))
            if official is not None:
                official[k].update(b.showers, b.conditions)
            if clouds is not None:
                clouds[k].update(b.showers, b.counts, b.conditions)
            acc[k]["cond"].append(b.conditions)
            acc[k]["pdg"].append(b.pdg)
            acc[k]["cid"].append(b.condition_id)
        for k, acc_rmse in (rmse or {}).items():
            acc_rmse.update(batches[0].showers, batches[k].showers)
        bar.update(len(batches[0]))
    bar.close()
    out = []
    for k in range(len(files)):
        if not acc[k]["obs"]:
            raise ValueError(f"{files[k].path}: no rows to read")
        side = Side(np.concatenate(acc[k]["obs"]), np.concatenate(acc[k]["cond"]),
                    np.concatenate(acc[k]["pdg"]), np.concatenate(acc[k]["cid"]), rows.copy())
        out.append((side, sums[k] / max(len(rows), 1)))
    return out


class _OfficialAccumulator:
    """CaloChallenge features, mean shower and per-energy mean showers of one file, batch by
    batch (energies: ``E_inc`` column ``e_inc[0]`` times ``e_inc[1]`` MeV per unit)."""

    def __init__(self, geometry: LayeredVoxelGeometry, e_inc: tuple[int, float],
                 dataset: str | None, threshold_mev: float) -> None:
        self.geometry, self.e_inc, self.threshold = geometry, e_inc, threshold_mev
        self.edges = np.asarray(cc.average_energy_edges(dataset))
        self.parts: list[cc.CaloChallengeFeatures] = []
        self.total = np.zeros(geometry.n_voxels)
        self.n = 0
        self.bin_sums = np.zeros((len(self.edges) - 1, geometry.n_voxels))
        self.bin_counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def update(self, showers: NDArray[np.generic], conditions: NDArray[np.floating]) -> None:
        e = conditions[:, self.e_inc[0]].astype(np.float64) * self.e_inc[1]
        x = np.asarray(showers)
        self.parts.append(cc.compute_features(x, e, self.geometry,
                                              threshold_mev=self.threshold))
        self.total += x.sum(axis=0, dtype=np.float64)
        self.n += x.shape[0]
        which = np.searchsorted(self.edges, e * cc.ENERGY_TOLERANCE, side="right") - 1
        for b in np.unique(which):
            if 0 <= b < len(self.bin_counts):
                m = which == b
                self.bin_sums[b] += x[m].sum(axis=0, dtype=np.float64)
                self.bin_counts[b] += int(m.sum())

    def features(self) -> cc.CaloChallengeFeatures:
        return cc.CaloChallengeFeatures.concat(self.parts)

    def mean(self) -> FloatArray:
        return self.total / max(self.n, 1)

    def energy_means(self) -> list[tuple[float, float, int, FloatArray]]:
        """(E low, E high MeV, count, mean shower) of every non-empty energy range."""
        return [(float(self.edges[b]), float(self.edges[b + 1]), int(c),
                 self.bin_sums[b] / c) for b, c in enumerate(self.bin_counts) if c > 0]


class _CloudFile:
    """CaloClouds II observables of one file, batch by batch (``E_inc`` column ``e_inc[0]``
    times ``e_inc[1]`` GeV per unit)."""

    def __init__(self, volume: PointCloudVolume, e_inc: tuple[int, float],
                 cfg: EvaluationConfig, seed: int) -> None:
        self.e_inc = e_inc
        self.acc = ccl.CloudAccumulator(volume, threshold_mev=cfg.caloclouds_threshold_mev,
                                        axis_mm=cfg.shower_axis_mm,
                                        max_cells=cfg.caloclouds_max_cells, seed=seed)

    def update(self, points: NDArray[np.generic], counts: NDArray[np.integer],
               conditions: NDArray[np.floating]) -> None:
        e = conditions[:, self.e_inc[0]].astype(np.float64) * self.e_inc[1]
        self.acc.update(points, counts, e)

    def result(self) -> ccl.CloudObservables:
        return self.acc.result()


def _pixels(ss: ShowerSet, rows: NDArray[np.int64]) -> tuple[NDArray[np.generic],
                                                             NDArray[np.float32]]:
    """Images (or voxels) and conditions of ``rows`` (sorted) for the low-level metrics."""
    batch = ss.take(np.sort(rows))
    return batch.showers, batch.conditions


def _voxel_features(ss: ShowerSet, rows: NDArray[np.int64],
                    e_inc: tuple[int, float] | None) -> NDArray[np.float32]:
    """Low-level classifier inputs of voxel showers (CaloChallenge 2022): voxel energies over
    the incident energy (MeV / MeV) and the conditions; ``log10(1 + E)`` without ``E_inc``."""
    voxels, conditions = _pixels(ss, rows)
    if e_inc is None:
        return low_level_features(voxels, conditions)
    e = conditions[:, e_inc[0]].astype(np.float64) * e_inc[1]
    scaled = voxels.astype(np.float32) / np.where(e > 0, e, 1.0).astype(np.float32)[:, None]
    return high_level_features(scaled, conditions)


# --------------------------------------------------------------------------------------------
# Statistics


def _stats(a: FloatArray, b: FloatArray, cfg: EvaluationConfig, n_channels: int,
           edges: list[FloatArray]) -> dict[str, Any]:
    """The cheap two-sample statistics of observables ``a`` (reference) vs ``b``; the channel
    W1 over the first ``n_channels`` observables (None without channels)."""
    cw = channel_wasserstein(a[:, :n_channels], b[:, :n_channels]) if n_channels else None
    bw = batched_w1(a, b, n_batches=cfg.w1_batches, seed=cfg.seed)
    sep = [separation_power(a[:, j], b[:, j], bins=edges[j]) for j in range(a.shape[1])]
    return {"channel_w1": cw, "batched_w1": bw, "separation": sep}


def _edges(ref: FloatArray, bins: int) -> list[FloatArray]:
    """Histogram edges per observable from the reference (integer-valued ones on integers)."""
    out = []
    for j in range(ref.shape[1]):
        col = ref[:, j]
        lo, hi = float(col.min()), float(col.max())
        if hi <= lo:
            hi = lo + 1.0
        if np.allclose(col, np.round(col)) and hi - lo + 1 <= bins:
            out.append(np.arange(lo - 0.5, hi + 1.5))
        else:
            out.append(np.linspace(lo, hi, bins + 1))
    return out


def _grouped_halves(condition_id: NDArray[np.int64], rng: np.random.Generator
                    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Random split of rows into two halves by condition group."""
    uniq, inverse = np.unique(condition_id, return_inverse=True)
    side = rng.random(len(uniq)) < 0.5
    in_a = side[inverse]
    return in_a, ~in_a


def _floor_pairs(side: Side) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Positions (into ``side``) of the first two members of each repeated condition group."""
    order = np.argsort(side.condition_id, kind="stable")
    ids = side.condition_id[order]
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    has_second = np.r_[first[1:], len(ids)] - first >= 2
    return order[first[has_second]], order[first[has_second] + 1]


# --------------------------------------------------------------------------------------------
# Main entry


def evaluate(reference: str | Path, generated: str | Path, *,
             reference_2: str | Path | None = None,
             config: EvaluationConfig | None = None) -> EvaluationResult:
    """Compare a generated ShowerSet with a reference ShowerSet. See the module docstring."""
    with ShowerSet.open(reference) as ref_ss, ShowerSet.open(generated) as gen_ss:
        ref2_ss = ShowerSet.open(reference_2) if reference_2 is not None else None
        try:
            return evaluate_sets(ref_ss, gen_ss, ref2_ss, config)
        finally:
            if ref2_ss is not None:
                ref2_ss.close()


def evaluate_sets(ref_ss: ShowerSet, gen_ss: ShowerSet, ref2_ss: ShowerSet | None = None,
                  config: EvaluationConfig | None = None) -> EvaluationResult:
    """:func:`evaluate` on ShowerSets that are already open."""
    cfg = config or EvaluationConfig()
    return _evaluate(ref_ss, gen_ss, ref2_ss, cfg, _Timer(), np.random.default_rng(cfg.seed))


def _kind(ss: ShowerSet) -> str:
    """Shape of a file's showers (files without a kind are ZDC images)."""
    kind = getattr(ss.meta, "kind", None) or ss.meta.geometry.get("kind", "image")
    return str(kind)


def _geometry(ss: ShowerSet) -> Geometry:
    """The geometry object of a voxel or point-cloud file."""
    try:
        return geometry_from_dict(ss.meta.geometry)
    except ValueError as exc:
        raise ValueError(f"{ss.path}: {exc}") from None


def _check_compatible(ref: ShowerSet, other: ShowerSet, role: str) -> None:
    kind_r, kind_o = _kind(ref), _kind(other)
    if kind_o != kind_r:
        raise ValueError(f"{other.path}: {role} holds {kind_o} showers, the reference {ref.path} "
                         f"holds {kind_r} showers; they cannot be compared")
    if other.meta.detector != ref.meta.detector or other.shower_shape != ref.shower_shape:
        raise ValueError(
            f"{other.path}: {role} is {other.meta.detector} {other.shower_shape}, the reference "
            f"{ref.path} is {ref.meta.detector} {ref.shower_shape}; they cannot be compared")
    if kind_r != "image" and _geometry(other) != _geometry(ref):
        raise ValueError(
            f"{other.path}: {role} has the geometry {_geometry(other).to_dict()}, the reference "
            f"{ref.path} has {_geometry(ref).to_dict()}; they cannot be compared")
    if other.meta.condition_columns != ref.meta.condition_columns:
        raise ValueError(f"{other.path}: condition columns {other.meta.condition_columns} differ "
                         f"from the reference's {ref.meta.condition_columns}")


def _extractor(ss: ShowerSet, cfg: EvaluationConfig) -> ObservableExtractor:
    """The observables of the reference's geometry (ZDC images by detector name, as ever)."""
    meta = ss.meta
    if _kind(ss) == "image":
        return extractor_for(meta.detector, ss.shower_shape, cfg.convention)
    geometry = _geometry(ss)
    if isinstance(geometry, PointCloudVolume):
        geometry = _volume(geometry, cfg)
    try:
        return extractor_for(geometry, None, cfg.convention,
                             condition_columns=meta.condition_columns,
                             condition_units=meta.condition_units,
                             threshold_mev=cfg.point_threshold_mev)
    except ValueError as exc:
        raise ValueError(f"{ss.path}: {exc}") from None


def _volume(volume: PointCloudVolume, cfg: EvaluationConfig) -> PointCloudVolume:
    """The volume with the cells asked for (``cell_size_mm``, ``cell_offset_mm``)."""
    size = cfg.cell_size_mm
    if size is not None and not (len(size) == 2 and min(size) > 0
                                 and all(np.isfinite(size))):
        raise ValueError(f"cell size: expected two positive sizes (mm), found {size}")
    offset = cfg.cell_offset_mm
    if offset is not None and not (len(offset) == 2 and all(np.isfinite(offset))):
        raise ValueError(f"cell offset: expected two finite values (mm), found {offset}")
    if size is None and offset is None:
        return volume
    return volume.with_cells(None if size is None else (float(size[0]), float(size[1])),
                             None if offset is None else (float(offset[0]), float(offset[1])))


def _incident_energy(ss: ShowerSet) -> tuple[int, float] | None:
    """(column, MeV per unit) of the ``E_inc`` condition column, if any."""
    cols = list(ss.meta.condition_columns)
    if INCIDENT_ENERGY_COLUMN not in cols:
        return None
    j = cols.index(INCIDENT_ENERGY_COLUMN)
    return j, ENERGY_UNIT_MEV.get(ss.meta.condition_units[j], 1e3)


def _energy_column(ss: ShowerSet) -> tuple[int, float]:
    """(column, GeV per unit) of the energy the slices bin: ``E_inc``, else ``E``, else the
    first column (assumed GeV)."""
    cols = list(ss.meta.condition_columns)
    for name in (INCIDENT_ENERGY_COLUMN, "E"):
        if name in cols:
            j = cols.index(name)
            return j, ENERGY_UNIT_MEV.get(ss.meta.condition_units[j], 1e3) / 1e3
    return 0, 1.0


def _evaluate(ref_ss: ShowerSet, gen_ss: ShowerSet, ref2_ss: ShowerSet | None,
              cfg: EvaluationConfig, timer: _Timer, rng: np.random.Generator
              ) -> EvaluationResult:
    _check_compatible(ref_ss, gen_ss, "the generated set")
    if ref2_ss is not None:
        _check_compatible(ref_ss, ref2_ss, "reference 2")
    extractor = _extractor(ref_ss, cfg)
    kind = extractor.kind
    image = isinstance(extractor, ZDCObservables)
    channel_names = extractor.channel_names if isinstance(extractor, ZDCObservables) else ()
    n_ch = len(channel_names)
    skipped: dict[str, str] = {}
    if not image:
        skipped["channel Wasserstein, paired channel MAE, per-pixel RMSE"] = (
            f"ZDC metrics (PMT channels, pixels): not defined for {kind}")
    for ss, role in ((ref_ss, "the reference"), (ref2_ss, "reference 2")):
        if ss is not None and len(ss) == 0:
            raise ValueError(f"{ss.path}: {role} holds no events")
    if len(gen_ss) != len(ref_ss):
        raise ValueError(
            f"{gen_ss.path}: {len(gen_ss)} generated events for the {len(ref_ss)} events of "
            f"the reference {ref_ss.path}; evaluate pairs row i of both files, so generate "
            f"one response per reference row (calogen generate --conditions "
            f"{ref_ss.path})")
    rows = _select_rows(ref_ss, cfg.max_events, cfg.seed)
    paired = _conditions_match(ref_ss, gen_ss, rows)
    ref2_paired = ref2_ss is not None and _conditions_match(ref_ss, ref2_ss, rows)

    setup = _official_setup(ref_ss, kind, skipped)
    cloud_setup = _caloclouds_setup(ref_ss, kind, cfg, skipped)

    def cloud_files(n: int, seed: int = 0) -> list[_CloudFile] | None:
        if cloud_setup is None:
            return None
        return [_CloudFile(cloud_setup[0], cloud_setup[1], cfg, cfg.seed + seed + k)
                for k in range(n)]

    def accumulators(n: int) -> list[_OfficialAccumulator] | None:
        if setup is None:
            return None
        return [_OfficialAccumulator(setup[0], setup[1], setup[2],
                                     cfg.calochallenge_threshold_mev) for _ in range(n)]

    rmse_value, rmse_floor = PixelRMSE(), PixelRMSE()
    with timer("read + observables"):
        # One pass over the reference, the generated set and a paired reference 2.
        files = [ref_ss, gen_ss]
        rmse = {1: rmse_value} if paired and image else {}
        if ref2_paired and ref2_ss is not None:
            files.append(ref2_ss)
            if image:
                rmse[2] = rmse_floor
        off = accumulators(len(files))
        clo = cloud_files(len(files))
        scanned = _scan(files, rows, extractor, cfg, label="inputs", rmse=rmse, official=off,
                        clouds=clo)
        (ref_all, mean_ref), (gen_all, mean_gen) = scanned[:2]
        off2 = off[2] if off is not None and ref2_paired else None
        clo2 = clo[2] if clo is not None and ref2_paired else None
        if ref2_paired:
            ref2_all = scanned[2][0]
        elif ref2_ss is not None:
            off_r2 = accumulators(1)
            clo_r2 = cloud_files(1, seed=3)
            [(ref2_all, _)] = _scan([ref2_ss], _select_rows(ref2_ss, len(rows), cfg.seed + 1),
                                    extractor, cfg, label="reference 2", official=off_r2,
                                    clouds=clo_r2)
            off2 = off_r2[0] if off_r2 is not None else None
            clo2 = clo_r2[0] if clo_r2 is not None else None

    # The three samples compared: model = (ref_side, gen_side), floor = (ref_side, floor_side).
    feats: dict[str, cc.CaloChallengeFeatures] = {}
    cfeats: dict[str, ccl.CloudObservables] = {}
    if ref2_ss is not None:
        ref_side, gen_side, floor_side = ref_all, gen_all, ref2_all
        floor_kind = "reference-2"
        floor_files = (ref_ss, ref2_ss)
        if off is not None and off2 is not None:
            feats = {"ref": off[0].features(), "gen": off[1].features(),
                     "floor": off2.features()}
        if clo is not None and clo2 is not None:
            cfeats = {"ref": clo[0].result(), "gen": clo[1].result(), "floor": clo2.result()}
    else:
        in_a, in_b = _grouped_halves(ref_all.condition_id, rng)
        ref_side, floor_side = ref_all.subset(in_a), ref_all.subset(in_b)
        gen_side = gen_all.subset(in_b)
        floor_kind = "halves"
        floor_files = (ref_ss, ref_ss)
        if off is not None:
            ref_f = off[0].features()
            feats = {"ref": ref_f.take(in_a), "gen": off[1].features().take(in_b),
                     "floor": ref_f.take(in_b)}
        if clo is not None:
            ref_c = clo[0].result()
            cfeats = {"ref": ref_c.take(in_a), "gen": clo[1].result().take(in_b),
                      "floor": ref_c.take(in_b)}

    summary: list[MetricRow] = []
    details: dict[str, Any] = {}
    names, units = extractor.names, extractor.units
    edges = _edges(ref_side.observables, cfg.separation_bins)

    with timer("W1 + separation power"):
        val = _stats(ref_side.observables, gen_side.observables, cfg, n_ch, edges)
        flo = _stats(ref_side.observables, floor_side.observables, cfg, n_ch, edges)
    with timer("null distributions (W1, separation)"):
        pool = ref_all if ref2_ss is None else _concat_sides(ref_all, ref2_all)
        nulls = [_stats(*_null_split(pool, rng), cfg, n_ch, edges)
                 for _ in tqdm(range(cfg.n_null), desc="null (W1, separation)",
                               disable=not cfg.progress)]
    _add_w1_rows(summary, details, val, flo, nulls, names, units, channel_names)

    with timer("correlations"):
        cval = correlation_difference(ref_side.observables, gen_side.observables)
        cflo = correlation_difference(ref_side.observables, floor_side.observables)
    summary.append(MetricRow("correlation matrix difference (Frobenius)", "", cval.frobenius,
                             cflo.frobenius, note="Pearson correlations of all observables"))

    with timer("FPD + KPD"):
        fk_val = _fpd_kpd(ref_side.observables, gen_side.observables, cfg)
        fk_flo = _fpd_kpd(ref_side.observables, floor_side.observables, cfg)
        fk_null = [_fpd_kpd(*_null_split(pool, rng), cfg)
                   for _ in tqdm(range(cfg.n_null_fpd_kpd), desc="null (FPD, KPD)",
                                 disable=not cfg.progress)]
    for key, label in (("fpd", "FPD (observables) x1e3"), ("kpd", "KPD (observables) x1e3")):
        summary.append(MetricRow(
            label, "", 1e3 * fk_val[key].value, 1e3 * fk_flo[key].value,
            p_value(fk_val[key].value, np.array([n[key].value for n in fk_null])),
            1e3 * fk_val[key].error, 1e3 * fk_flo[key].error,
            note="Kansal et al. 2211.10295 on the observables scaled by the reference max |x|"))
    details["fpd"] = {"value": fk_val["fpd"].to_dict(), "floor": fk_flo["fpd"].to_dict()}
    details["kpd"] = {"value": fk_val["kpd"].to_dict(), "floor": fk_flo["kpd"].to_dict()}

    if image:
        with timer("paired MAE + RMSE"):
            _add_paired_rows(summary, details, ref_all, gen_all,
                             ref2_all if ref2_ss is not None else None, ref_ss, gen_ss, paired,
                             ref2_paired, rmse_value, rmse_floor, n_ch, cfg)

    total = names.index(extractor.total_name)
    with timer("diversity"):
        div_ref, n_groups = condition_diversity(ref_all.observables[:, total],
                                                ref_all.condition_id)
        div_gen, _ = condition_diversity(gen_all.observables[:, total], gen_all.condition_id)
    signal = "photon sum" if image else "energy sum"
    summary.append(MetricRow(
        f"diversity at identical conditions (rel. spread of {signal})", "",
        div_gen, div_ref, lower_is_better=False,
        note=(f"{n_groups} repeated condition groups; floor = the reference's own spread "
              "(match it, do not minimise it)") if n_groups else
        "no repeated conditions in the reference (simulate with --repeats)"))

    # Low-level (pixel / voxel) metrics on bounded subsets.
    with timer("load pixels"):
        lim = cfg.low_level_max_per_class
        if kind == "voxels":
            lim = min(lim, max(100, LOW_LEVEL_VALUES // int(np.prod(ref_ss.shower_shape))))
        sub = {name: _subsample(side, lim, rng) for name, side in
               (("ref", ref_side), ("gen", gen_side), ("floor", floor_side))}
        ll: dict[str, NDArray[np.float32]] | None = None
        official_ll: _OfficialLowLevel | None = None
        if image:
            pix_ref, cond_ref = _pixels(ref_ss, sub["ref"].rows)
            pix_gen, cond_gen = _pixels(gen_ss, sub["gen"].rows)
            pix_flo, cond_flo = _pixels(floor_files[1], sub["floor"].rows)
            ll = {"ref": low_level_features(pix_ref, cond_ref),
                  "gen": low_level_features(pix_gen, cond_gen),
                  "floor": low_level_features(pix_flo, cond_flo)}
            del pix_ref, pix_gen, pix_flo
        elif kind == "voxels" and setup is not None:
            official_ll = _official_low_level(
                setup, cfg, [(key, ss, sub[key].rows) for key, ss in
                             (("ref", ref_ss), ("gen", gen_ss), ("floor", floor_files[1]))])
            ll = official_ll.low
        elif kind == "voxels":
            e_inc = _incident_energy(ref_ss)
            ll = {key: _voxel_features(ss, sub[key].rows, e_inc) for key, ss in
                  (("ref", ref_ss), ("gen", gen_ss), ("floor", floor_files[1]))}
        else:
            skipped["classifier (low-level)"] = (
                "point clouds have no fixed-size low-level representation (a variable number "
                "of points per shower)")
    with timer("PRDC"):
        if image:
            assert ll is not None
            n_pix = int(np.prod(ref_ss.shower_shape))
            prdc_in = {k: v[:, :n_pix] for k, v in ll.items()}
            prdc_label = "log10(1+pixels)"
        elif official_ll is not None:
            prdc_in = official_ll.prdc
            prdc_label = "log10 voxels, CaloChallenge"
        else:
            mean = sub["ref"].observables.mean(axis=0)
            std = sub["ref"].observables.std(axis=0)
            std = np.where(std > 0, std, 1.0)
            prdc_in = {k: (s.observables - mean) / std for k, s in sub.items()}
            prdc_label = "standardised observables"
        pv = prdc(prdc_in["ref"], prdc_in["gen"], k=cfg.prdc_k,
                  max_samples=cfg.prdc_max_samples, seed=cfg.seed)
        pf = prdc(prdc_in["ref"], prdc_in["floor"], k=cfg.prdc_k,
                  max_samples=cfg.prdc_max_samples, seed=cfg.seed)
        del prdc_in
    for key in ("precision", "recall", "density", "coverage"):
        summary.append(MetricRow(f"{key} (PRDC, k={cfg.prdc_k}, {prdc_label})", "",
                                 getattr(pv, key), getattr(pf, key), lower_is_better=False))
    details["prdc"] = {"value": pv.to_dict(), "floor": pf.to_dict(), "inputs": prdc_label}

    clf_rows = []
    # the official vectors come pre-scaled; calogen's own inputs are standardised even when the
    # official preset (which does not standardise) is asked for
    own_inputs = replace(cfg.classifier, standardise=True)
    if ll is not None:
        low_cfg = cfg.classifier if official_ll is not None else own_inputs
        with timer("classifier (low-level)"):
            clf_low_v = classifier_test(ll["ref"], ll["gen"], low_cfg, seed=cfg.seed,
                                        progress=cfg.progress)
            clf_low_f = classifier_test(ll["ref"], ll["floor"], low_cfg, seed=cfg.seed,
                                        progress=cfg.progress)
        clf_rows.append(("low-level", clf_low_v, clf_low_f))
    else:
        reason = skipped["classifier (low-level)"]
        summary += [MetricRow("classifier AUC (low-level)", "", None, None,
                              note=f"skipped: {reason}"),
                    MetricRow("classifier JSD (low-level)", "", None, None,
                              note=f"skipped: {reason}")]
    del ll
    if official_ll is not None and official_ll.normed is not None:
        normed = official_ll.normed
        with timer("classifier (low-level normed)"):
            clf_n_v = classifier_test(normed["ref"], normed["gen"], cfg.classifier,
                                      seed=cfg.seed, progress=cfg.progress)
            clf_n_f = classifier_test(normed["ref"], normed["floor"], cfg.classifier,
                                      seed=cfg.seed, progress=cfg.progress)
        clf_rows.append(("low-level normed", clf_n_v, clf_n_f))
    if official_ll is not None:
        official_ll.normed = official_ll.prdc = None  # type: ignore[assignment]
    with timer("classifier (high-level)"):
        high_cfg = cfg.classifier
        if feats and cfg.calochallenge_high_level:
            hl = {k: cc.high_level_input(f).astype(np.float32) for k, f in feats.items()}
        else:
            high_cfg = own_inputs
            hl = {k: high_level_features(s.observables, s.conditions)
                  for k, s in (("ref", ref_side), ("gen", gen_side), ("floor", floor_side))}
        clf_high_v = classifier_test(hl["ref"], hl["gen"], high_cfg, seed=cfg.seed,
                                     progress=cfg.progress)
        clf_high_f = classifier_test(hl["ref"], hl["floor"], high_cfg, seed=cfg.seed,
                                     progress=cfg.progress)
    clf_rows.append(("high-level", clf_high_v, clf_high_f))
    for label, v, f in clf_rows:
        summary.append(MetricRow(f"classifier AUC ({label})", "", v.auc_mean, f.auc_mean,
                                 value_std=v.auc_std, floor_std=f.auc_std,
                                 note=f"{len(v.auc_per_seed)} seeds; 0.5 = indistinguishable"))
        summary.append(MetricRow(f"classifier JSD ({label})", "", v.jsd_mean, f.jsd_mean,
                                 value_std=v.jsd_std, floor_std=f.jsd_std))
        details[f"classifier_{label}"] = {"value": v.to_dict(), "floor": f.to_dict()}

    official_plot = None
    if feats and official_ll is not None and setup is not None:
        with timer("CaloChallenge (separation, FPD, KPD)"):
            official_plot = _add_official_rows(summary, details, feats, official_ll, clf_rows,
                                               setup, cfg, gen_ss, off)
    cloud_plot = None
    if cfeats and cloud_setup is not None:
        with timer("CaloClouds II (W1 scores, classifier)"):
            cloud_plot = _add_caloclouds_rows(summary, details, cfeats, cloud_setup[0], cfg)
            cloud_plot.update(_cloud_examples(ref_ss, gen_ss, gen_side, cloud_setup[0], cfg))
    with timer("slices"):
        slices = _slices(ref_side, gen_side, floor_side, paired and image, floor_kind,
                         ref2_paired, cfg, edges, n_ch, _energy_column(ref_ss))

    if image:
        examples = _examples(ref_ss, gen_ss, gen_side, cfg)
    else:
        examples = (np.zeros((0,)), np.zeros((0,)), np.zeros((0, len(names)), np.float32),
                    np.zeros(0, np.int32))
    plot = PlotData(names, units, channel_names, ref_side, gen_side, floor_side,
                    cval.ref_corr, cval.gen_corr, cflo.gen_corr, *examples,
                    mean_ref=mean_ref, mean_gen=mean_gen, kind=kind,
                    layer_columns=dict(extractor.layer_columns), calochallenge=official_plot,
                    caloclouds=cloud_plot)
    inputs = {"reference": _describe(ref_ss), "generated": _describe(gen_ss),
              "reference_2": _describe(ref2_ss) if ref2_ss is not None else None}
    protocol = {
        "kind": kind, "floor": floor_kind, "paired": paired,
        "n_reference_rows": int(len(rows)),
        "n_compared": {"reference": len(ref_side), "generated": len(gen_side),
                       "floor": len(floor_side)},
        "observables": list(names), "observable_units": list(units),
        "skipped": skipped,
        "config": cfg.to_dict(),
        "name": cfg.protocol,
    }
    if setup is not None:
        protocol["calochallenge"] = {
            "dataset": setup[2], "geometry": setup[0].name,
            "definitions": "CaloChallenge/homepage code/HighLevelFeatures.py, evaluate.py, "
                           "evaluate_plotting_helper.py; arXiv:2410.21611",
            "calogen_extensions": dict(cc.CALOGEN_EXTENSIONS)}
    if cloud_setup is not None:
        volume = cloud_setup[0]
        protocol["caloclouds"] = {
            "definitions": "CaloClouds II, arXiv:2309.05704, Sec. 4.2-4.3, App. A (Table 4)",
            "threshold_mev": cfg.caloclouds_threshold_mev,
            "cell_size_mm": list(volume.cell_size_mm),
            "cell_offset_mm": list(volume.cell_offset_mm),
            "grid_shape": list(volume.grid_shape),
            "shower_axis_mm": list(cfg.shower_axis_mm),
            "radial_edges_mm": list(ccl.RADIAL_EDGES_MM),
            "longitudinal_edges_layer": list(ccl.LONGITUDINAL_EDGES_LAYER),
            "cell_hits_per_batch": cfg.caloclouds_cell_hits,
            "axis_note": "radii from the shower axis shower_axis_mm (the paper: the detector's "
                         "central axis; calogen's guns hit x = y = 0)"}
    return EvaluationResult(summary, details, slices, timer.records, inputs, protocol, plot)


def _caloclouds_setup(ss: ShowerSet, kind: str, cfg: EvaluationConfig,
                      skipped: dict[str, str]) -> tuple[PointCloudVolume, tuple[int, float]] | None:
    """(volume with the cells asked for, E_inc column and GeV per unit) of a point-cloud file
    the CaloClouds II evaluation applies to; None (and a reason in ``skipped``) else."""
    if kind != "points":
        return None
    geometry = _geometry(ss)
    if not isinstance(geometry, PointCloudVolume):
        return None
    e_inc = _incident_energy(ss)
    if e_inc is None:
        skipped["CaloClouds II evaluation"] = (
            f"the files have no {INCIDENT_ENERGY_COLUMN!r} condition column (incident energy)")
        return None
    return _volume(geometry, cfg), (e_inc[0], e_inc[1] / 1e3)


CALOCLOUDS_ROW = "W1 {name} x1e-3 (CaloClouds II)"
"""Summary row names of the CaloClouds II W1 scores (Table 1 reports them x 1e3)."""
CALOCLOUDS_AUC_ROW = "classifier AUC (CaloClouds II, 25 observables)"


def _add_caloclouds_rows(summary: list[MetricRow], details: dict[str, Any],
                         feats: dict[str, ccl.CloudObservables], volume: PointCloudVolume,
                         cfg: EvaluationConfig) -> dict[str, Any]:
    """The W1 scores of CaloClouds II's Table 1 and its classifier AUC (Table 2) beside
    their floors; returns the report's plot data."""
    scores = {side: ccl.w1_scores(feats["ref"], feats[side], n_batches=cfg.w1_batches,
                                  cell_hits=cfg.caloclouds_cell_hits, seed=cfg.seed)
              for side in ("gen", "floor")}
    for name in ccl.SCORES:
        v, f = scores["gen"][name], scores["floor"][name]
        note = {"E_long": "mean over the 10 longitudinal bins",
                "E_radial": "mean over the 10 radial bins",
                "E_cell": f"{cfg.w1_batches} draws of up to {cfg.caloclouds_cell_hits} hit "
                          "cells"}.get(name, "")
        summary.append(MetricRow(CALOCLOUDS_ROW.format(name=name), "std. units x1e-3",
                                 1e3 * v.mean, 1e3 * f.mean, value_std=1e3 * v.std,
                                 floor_std=1e3 * f.std, note=note))
    clf = cfg.caloclouds_classifier
    x = {k: ccl.classifier_input(o) for k, o in feats.items()}
    v_auc = classifier_test(x["ref"], x["gen"], clf, seed=cfg.seed, progress=cfg.progress)
    f_auc = classifier_test(x["ref"], x["floor"], clf, seed=cfg.seed, progress=cfg.progress)
    summary.append(MetricRow(CALOCLOUDS_AUC_ROW, "", v_auc.auc_mean, f_auc.auc_mean,
                             value_std=v_auc.auc_std, floor_std=f_auc.auc_std,
                             note=f"{len(v_auc.auc_per_seed)} repeats; the paper: CaloClouds "
                                  "II 0.928, CM 0.923 (ILD Geant4)"))
    details["caloclouds"] = {
        "w1": {name: {"value": scores["gen"][name].to_dict(),
                      "floor": scores["floor"][name].to_dict()} for name in scores["gen"]},
        "classifier": {"value": v_auc.to_dict(), "floor": f_auc.to_dict(),
                       "features": list(ccl.CLASSIFIER_FEATURES)},
        "n_cells": {k: int(len(o.cell_energy)) for k, o in feats.items()},
        "threshold_mev": cfg.caloclouds_threshold_mev,
    }
    return {"ref": feats["ref"], "gen": feats["gen"], "floor": feats["floor"],
            "volume": volume, "threshold_mev": cfg.caloclouds_threshold_mev}


def _cloud_examples(ref_ss: ShowerSet, gen_ss: ShowerSet, gen_side: Side,
                    volume: PointCloudVolume, cfg: EvaluationConfig) -> dict[str, Any]:
    """A few generated clouds and the reference clouds of the same rows, projected onto the
    cells (thresholded), for the report; the most energetic rows of a seeded pick."""
    rng = np.random.default_rng(cfg.seed + 11)
    k = min(3, len(gen_side))
    rows = np.sort(rng.choice(gen_side.rows, size=k, replace=False)) if k else np.zeros(0, int)
    out: dict[str, Any] = {}
    for key, ss in (("example_ref", ref_ss), ("example_gen", gen_ss)):
        b = ss.take(rows)
        assert b.counts is not None  # a point-cloud file
        out[key] = volume.project(b.showers, b.counts,
                                  threshold_mev=cfg.caloclouds_threshold_mev).astype(np.float32)
        if key == "example_gen":
            col = list(ss.meta.condition_columns).index(INCIDENT_ENERGY_COLUMN)
            out["example_e_inc"] = b.conditions[:, col].astype(np.float64)
    return out


def _official_setup(ss: ShowerSet, kind: str, skipped: dict[str, str]
                    ) -> tuple[LayeredVoxelGeometry, tuple[int, float], str | None] | None:
    """(geometry, E_inc column and MeV per unit, official dataset name or None) of a voxel
    file the CaloChallenge evaluation applies to; None (and a reason in ``skipped``) else."""
    if kind != "voxels":
        return None
    geometry = _geometry(ss)
    e_inc = _incident_energy(ss)
    if not isinstance(geometry, LayeredVoxelGeometry):
        return None
    if e_inc is None:
        skipped["CaloChallenge evaluation"] = (
            f"the files have no {INCIDENT_ENERGY_COLUMN!r} condition column (incident energy)")
        return None
    return geometry, e_inc, cc.official_dataset(geometry)


@dataclass
class _OfficialLowLevel:
    """Per side (ref, gen, floor): the ``cls-low`` input, the ``cls-low-normed`` input (when
    asked for) and the PRDC input of the voxel subsets, and the voxel-energy separations."""

    low: dict[str, NDArray[np.float32]]
    prdc: dict[str, NDArray[np.float32]]
    normed: dict[str, NDArray[np.float32]] | None
    cells: dict[str, cc.HistogramSeparation]


def _official_low_level(setup: tuple[LayeredVoxelGeometry, tuple[int, float], str | None],
                        cfg: EvaluationConfig,
                        sides: list[tuple[str, ShowerSet, NDArray[np.int64]]]
                        ) -> _OfficialLowLevel:
    """Read the voxels of each side once (reference first) and build its official inputs."""
    geometry, (col, scale), dataset = setup
    low: dict[str, NDArray[np.float32]] = {}
    prdc_in: dict[str, NDArray[np.float32]] = {}
    normed: dict[str, NDArray[np.float32]] | None = {} if cfg.calochallenge_low_normed else None
    cells: dict[str, cc.HistogramSeparation] = {}
    ref_voxels: NDArray[np.float32] | None = None
    for key, ss, rows in sides:
        raw, conditions = _pixels(ss, rows)
        voxels = np.asarray(raw, dtype=np.float32)
        e = conditions[:, col].astype(np.float64) * scale
        low[key] = cc.low_level_input(voxels, e).astype(np.float32)
        prdc_in[key] = cc.prdc_input(voxels).astype(np.float32)
        if normed is not None:
            f = cc.compute_features(voxels, e, geometry,
                                    threshold_mev=cfg.calochallenge_threshold_mev)
            normed[key] = cc.low_level_normed_input(voxels, f, geometry).astype(np.float32)
        if ref_voxels is None:
            ref_voxels = voxels
        else:
            cells[key] = cc.cell_separation(ref_voxels, voxels, dataset)
    return _OfficialLowLevel(low, prdc_in, normed, cells)


GENERATION_KEYS = {"parameters": ("n_parameters", "parameters"),
                   "ms_per_shower": ("ms_per_shower", "generation_ms_per_shower")}
"""Producer attributes of a generated file read as its parameter count and generation time."""


def _producer_number(ss: ShowerSet, keys: tuple[str, ...]) -> float | None:
    producer = ss.meta.producer or {}
    for key in keys:
        value = producer.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            return float(value)
    return None


def _add_official_rows(summary: list[MetricRow], details: dict[str, Any],
                       feats: dict[str, cc.CaloChallengeFeatures], official: _OfficialLowLevel,
                       clf_rows: list[Any],
                       setup: tuple[LayeredVoxelGeometry, tuple[int, float], str | None],
                       cfg: EvaluationConfig, gen_ss: ShowerSet,
                       acc: list[_OfficialAccumulator] | None) -> dict[str, Any]:
    """The CaloChallenge rows (separation powers per group, FPD/KPD on the official vector,
    generation time and parameters) with their floors; returns the report's plot data."""
    geometry, _, dataset = setup
    sep = {}
    for side in ("gen", "floor"):
        entries = cc.separation_powers(feats["ref"], feats[side], dataset)
        if side in official.cells:
            entries = cc.insert_official(entries, official.cells[side])
        sep[side] = entries
    means_v, means_f = cc.group_means(sep["gen"]), cc.group_means(sep["floor"])
    for group, v in means_v.items():
        summary.append(MetricRow(
            f"separation power, {group} (CaloChallenge)", "", v, means_f.get(group),
            note="official binning; mean over its histograms" if any(
                e.official for e in sep["gen"] if e.group == group) else
            "calogen binning (see protocol.calochallenge.calogen_extensions)"))
    vec = {k: cc.fpd_kpd_input(f) for k, f in feats.items()}
    fk: dict[str, dict[str, Any]] = {}
    for side in ("gen", "floor"):
        fk[side] = {
            "fpd": fpd(vec["ref"], vec[side], n_points=cfg.fpd_points,
                       n_bootstrap=cfg.fpd_bootstrap, seed=cfg.seed),
            "kpd": kpd(vec["ref"], vec[side], n_batches=cfg.kpd_batches,
                       batch_size=min(cfg.kpd_batch_size, len(vec["ref"]), len(vec[side])),
                       seed=cfg.seed)}
    for key, label in (("fpd", "FPD (CaloChallenge high-level vector) x1e3"),
                       ("kpd", "KPD (CaloChallenge high-level vector) x1e3")):
        v, f = fk["gen"][key], fk["floor"][key]
        summary.append(MetricRow(label, "", 1e3 * v.value, 1e3 * f.value,
                                 value_std=1e3 * v.error, floor_std=1e3 * f.error,
                                 note="the cls-high input (log10 E_inc, log10 E_layer, "
                                      "centres and widths / 100)"))
    generation = {k: _producer_number(gen_ss, keys) for k, keys in GENERATION_KEYS.items()}
    if generation["ms_per_shower"] is not None:
        summary.append(MetricRow("generation time (from the generated file)", "ms / shower",
                                 generation["ms_per_shower"], None,
                                 note="as recorded by the producer"))
    if generation["parameters"] is not None:
        summary.append(MetricRow("model parameters (from the generated file)", "",
                                 generation["parameters"], None))

    def entry_dict(v: cc.HistogramSeparation, f: cc.HistogramSeparation) -> dict[str, Any]:
        return {"label": v.label, "group": v.group, "official": v.official,
                "value": v.value, "floor": f.value,
                "generated_out_of_range": int(v.result.gen_below + v.result.gen_above)}

    name = dataset or geometry.name
    mode = {"low-level": "cls-low", "high-level": "cls-high",
            "low-level normed": "cls-low-normed"}
    texts = {f"histogram_chi2_{name}.txt": cc.histogram_chi2_text(sep["gen"]),
             f"fpd_kpd_{name}.txt": cc.fpd_kpd_text(
                 fk["gen"]["fpd"].value, fk["gen"]["fpd"].error, fk["gen"]["kpd"].value,
                 fk["gen"]["kpd"].error)}
    for label, v, _ in clf_rows:
        if label in mode and (label != "high-level" or cfg.calochallenge_high_level):
            texts[f"classifier_{mode[label]}_{name}.txt"] = cc.classifier_text(v.auc_mean,
                                                                              v.jsd_mean)
    details["calochallenge"] = {
        "dataset": dataset,
        "separation": [entry_dict(v, f) for v, f in zip(sep["gen"], sep["floor"], strict=True)],
        "group_means": {"value": means_v, "floor": means_f},
        "fpd": {"value": fk["gen"]["fpd"].to_dict(), "floor": fk["floor"]["fpd"].to_dict()},
        "kpd": {"value": fk["gen"]["kpd"].to_dict(), "floor": fk["floor"]["kpd"].to_dict()},
        "generation": generation,
        "text_files": sorted(texts),
    }
    plot: dict[str, Any] = {"dataset": dataset, "name": name, "geometry": geometry,
                            "texts": texts}
    if acc is not None:
        plot["mean_ref"], plot["mean_gen"] = acc[0].mean(), acc[1].mean()
        gen_means = {(lo, hi): m for lo, hi, _, m in acc[1].energy_means()}
        plot["energy_means"] = [(lo, hi, m, gen_means[(lo, hi)])
                                for lo, hi, _, m in acc[0].energy_means()
                                if (lo, hi) in gen_means]
    return plot


FINGERPRINT_BLOCK = 1 << 20
"""Bytes read at a time when fingerprinting a file (1 MiB)."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes, read in blocks of :data:`FINGERPRINT_BLOCK` (about
    0.1 s for 50 MB): two reports share a reference exactly when these agree."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(FINGERPRINT_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _describe(ss: ShowerSet) -> dict[str, Any]:
    """The ``inputs`` entry of metrics.json for one file: absolute path, event count,
    detector, kind, producer name and note, and ``sha256`` (:func:`file_sha256`)."""
    producer = ss.meta.producer
    return {"path": str(Path(ss.path).resolve()), "n_events": len(ss),
            "detector": ss.meta.detector, "kind": _kind(ss), "producer": producer.get("name"),
            "note": producer.get("note"), "sha256": file_sha256(ss.path)}


def _concat_sides(a: Side, b: Side) -> Side:
    offset = int(a.condition_id.max()) + 1 if len(a) else 0
    return Side(np.concatenate([a.observables, b.observables]),
                np.concatenate([a.conditions, b.conditions]), np.concatenate([a.pdg, b.pdg]),
                np.concatenate([a.condition_id, b.condition_id + offset]),
                np.concatenate([a.rows, b.rows]))


def _null_split(pool: Side, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    in_a, in_b = _grouped_halves(pool.condition_id, rng)
    return pool.observables[in_a], pool.observables[in_b]


def _subsample(side: Side, limit: int, rng: np.random.Generator) -> Side:
    if len(side) <= limit:
        return side
    keep = np.zeros(len(side), dtype=bool)
    keep[rng.choice(len(side), size=limit, replace=False)] = True
    return side.subset(keep)


def _fpd_kpd(a: FloatArray, b: FloatArray, cfg: EvaluationConfig) -> dict[str, Any]:
    """FPD and KPD on the observables without their exactly redundant columns (e.g. the ZDC
    ``photon_sum``, the sum of the 5 channels; :func:`independent_columns`)."""
    cols = independent_columns(a, b)
    a, b = a[:, cols], b[:, cols]
    return {
        "fpd": fpd(a, b, n_points=cfg.fpd_points, n_bootstrap=cfg.fpd_bootstrap, seed=cfg.seed),
        "kpd": kpd(a, b, n_batches=cfg.kpd_batches,
                   batch_size=min(cfg.kpd_batch_size, len(a), len(b)), seed=cfg.seed),
        "columns": cols,
    }


def _add_w1_rows(summary: list[MetricRow], details: dict[str, Any], val: dict[str, Any],
                 flo: dict[str, Any], nulls: list[dict[str, Any]], names: tuple[str, ...],
                 units: tuple[str, ...], channel_names: tuple[str, ...]) -> None:
    if channel_names:
        null_cw = np.array([n["channel_w1"].mean for n in nulls])
        summary.append(MetricRow(
            "channel Wasserstein (mean of 5 channels)", "photons", val["channel_w1"].mean,
            flo["channel_w1"].mean, p_value(val["channel_w1"].mean, null_cw),
            note="W1 per PMT channel sum, then the mean (ZDC papers' headline)"))
        details["channel_w1"] = {
            name: {"value": float(v), "floor": float(f)} for name, v, f in
            zip(channel_names, val["channel_w1"].per_channel, flo["channel_w1"].per_channel,
                strict=True)}
    obs: dict[str, Any] = {}
    w1_p, sep_p = [], []
    for j, name in enumerate(names):
        null_w = np.array([n["batched_w1"].mean[j] for n in nulls])
        null_s = np.array([n["separation"][j].value for n in nulls])
        pw = p_value(val["batched_w1"].mean[j], null_w)
        ps = p_value(val["separation"][j].value, null_s)
        w1_p.append(pw)
        sep_p.append(ps)
        sv, sf = val["separation"][j], flo["separation"][j]
        obs[name] = {
            "unit": units[j],
            "w1": {"value": val["batched_w1"].mean[j], "value_std": val["batched_w1"].std[j],
                   "floor": flo["batched_w1"].mean[j], "floor_std": flo["batched_w1"].std[j],
                   "p_value": pw},
            "separation_power": {"value": sv.value, "floor": sf.value, "p_value": ps,
                                 "generated_out_of_range": int(sv.gen_below + sv.gen_above),
                                 "floor_out_of_range": int(sf.gen_below + sf.gen_above)},
        }
    details["observables"] = obs
    n_obs = len(names)
    null_w1_mean = np.array([np.mean(n["batched_w1"].mean) for n in nulls])
    null_sep_mean = np.array([np.mean([s.value for s in n["separation"]]) for n in nulls])
    w1_mean = float(np.mean(val["batched_w1"].mean))
    sep_mean = float(np.mean([s.value for s in val["separation"]]))
    summary.append(MetricRow(
        "W1 of standardised observables (mean over observables)", "std. units", w1_mean,
        float(np.mean(flo["batched_w1"].mean)), p_value(w1_mean, null_w1_mean),
        note=f"{n_obs} observables, batched W1 (CaloClouds II); per-observable values and "
             "p-values in details"))
    out_gen = sum(int(s.gen_below + s.gen_above) for s in val["separation"])
    summary.append(MetricRow(
        "separation power (mean over observables)", "", sep_mean,
        float(np.mean([s.value for s in flo["separation"]])), p_value(sep_mean, null_sep_mean),
        note=f"bins from the reference; {out_gen} generated entries outside the reference "
             "range (counted, not dropped)"))


def _add_paired_rows(summary: list[MetricRow], details: dict[str, Any], ref_all: Side,
                     gen_all: Side, ref2_all: Side | None, ref_ss: ShowerSet,
                     gen_ss: ShowerSet, paired: bool, ref2_paired: bool,
                     rmse_value: PixelRMSE, rmse_floor: PixelRMSE, n_ch: int,
                     cfg: EvaluationConfig) -> None:
    """Paired MAE by condition and per-pixel RMSE, with their floor where one exists.

    ``ref_all``/``gen_all`` hold every compared row in the same order (paired row by row).
    """
    mae_name, rmse_name = "channel MAE paired by condition", "per-pixel RMSE paired by condition"
    if not paired:
        note = "generated rows do not share the reference's conditions: not computable"
        summary += [MetricRow(mae_name, "photons", None, None, note=note),
                    MetricRow(rmse_name, "photons", None, None, note=note)]
        return
    ref_ch, gen_ch = ref_all.observables[:, :n_ch], gen_all.observables[:, :n_ch]
    if ref2_all is not None and ref2_paired:
        summary += [
            MetricRow(mae_name, "photons", paired_channel_mae(ref_ch, gen_ch),
                      paired_channel_mae(ref_ch, ref2_all.observables[:, :n_ch]),
                      note="floor: reference vs reference 2 on the same conditions"),
            MetricRow(rmse_name, "photons", rmse_value.value, rmse_floor.value,
                      note="floor: reference vs reference 2 on the same conditions")]
        details["paired"] = {"pairs": len(ref_all), "floor": "reference-2"}
        return
    first, second = _floor_pairs(ref_all)
    if len(first) == 0:
        note = "no floor: needs repeated conditions (--repeats) or a paired --reference-2"
        summary += [MetricRow(mae_name, "photons", paired_channel_mae(ref_ch, gen_ch), None,
                              note=note),
                    MetricRow(rmse_name, "photons", rmse_value.value, None, note=note)]
        details["paired"] = {"pairs": len(ref_all), "floor": None}
        return
    # Two reference responses to one condition: the first two members of each repeated group.
    rv, rf = PixelRMSE(), PixelRMSE()
    rows_a, rows_b = ref_all.rows[first], ref_all.rows[second]
    for sl in _chunks(len(first), cfg.batch_size):
        a = ref_ss.take(rows_a[sl]).showers
        rv.update(a, gen_ss.take(rows_a[sl]).showers)
        rf.update(a, ref_ss.take(rows_b[sl]).showers)
    note = f"on the {len(first)} repeated conditions; floor: two reference responses to one"
    summary += [
        MetricRow(mae_name, "photons", paired_channel_mae(ref_ch[first], gen_ch[first]),
                  paired_channel_mae(ref_ch[first], ref_ch[second]), note=note),
        MetricRow(rmse_name, "photons", rv.value, rf.value, note=note)]
    details["paired"] = {"pairs": len(first), "floor": "repeated conditions"}


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _slice_masks(side: Side, cfg: EvaluationConfig, energy: tuple[int, float] = (0, 1.0)
                 ) -> dict[str, dict[str, NDArray[np.bool_]]]:
    """Rows of each species and of each energy bin (``energy``: column, GeV per unit)."""
    species: dict[str, NDArray[np.bool_]] = {}
    codes, counts = np.unique(side.pdg, return_counts=True)
    for code in codes[np.argsort(-counts)]:
        species[species_name(int(code))] = side.pdg == code
    bins: dict[str, NDArray[np.bool_]] = {}
    e = side.conditions[:, energy[0]].astype(np.float64) * energy[1]
    edges = cfg.energy_edges_gev
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        bins[f"{lo:g}-{hi:g} GeV"] = (e >= lo) & (e < hi)
    return {"species": species, "energy": bins}


def _slices(ref_side: Side, gen_side: Side, floor_side: Side, paired: bool, floor_kind: str,
            ref2_paired: bool, cfg: EvaluationConfig, edges: list[FloatArray],
            n_ch: int, energy: tuple[int, float] = (0, 1.0)
            ) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-species and per-energy-bin metrics (value and floor); channel metrics only with
    ``n_ch`` channels."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    masks_ref, masks_gen, masks_flo = (_slice_masks(s, cfg, energy)
                                       for s in (ref_side, gen_side, floor_side))
    clf = replace(cfg.classifier, n_seeds=cfg.slice_classifier_seeds, standardise=True)
    jobs = [(kind, name) for kind in ("species", "energy") for name in masks_ref[kind]]
    for kind, name in tqdm(jobs, desc="slices", disable=not cfg.progress):
        mr = masks_ref[kind][name]
        mg = masks_gen[kind].get(name, np.zeros(len(gen_side), bool))
        mf = masks_flo[kind].get(name, np.zeros(len(floor_side), bool))
        n_r, n_g, n_f = int(mr.sum()), int(mg.sum()), int(mf.sum())
        entry: dict[str, Any] = {"n_reference": n_r, "n_generated": n_g, "n_floor": n_f}
        out.setdefault(kind, {})[name] = entry
        if min(n_r, n_g, n_f) < cfg.slice_min_events:
            entry["note"] = f"fewer than {cfg.slice_min_events} events: not evaluated"
            continue
        a, g, f = (s.observables[m] for s, m in ((ref_side, mr), (gen_side, mg),
                                                  (floor_side, mf)))
        sv = _stats(a, g, cfg, n_ch, edges)
        sf = _stats(a, f, cfg, n_ch, edges)
        rows = [
            MetricRow("channel Wasserstein (mean of 5 channels)", "photons",
                      sv["channel_w1"].mean, sf["channel_w1"].mean)] if n_ch else []
        rows += [
            MetricRow("W1 of standardised observables (mean)", "std. units",
                      float(np.mean(sv["batched_w1"].mean)), float(np.mean(sf["batched_w1"].mean))),
            MetricRow("separation power (mean)", "",
                      float(np.mean([s.value for s in sv["separation"]])),
                      float(np.mean([s.value for s in sf["separation"]]))),
            MetricRow("correlation matrix difference (Frobenius)", "",
                      correlation_difference(a, g).frobenius,
                      correlation_difference(a, f).frobenius),
        ]
        cols = independent_columns(a, g)  # without e.g. the ZDC photon_sum (as _fpd_kpd)
        kv = kpd(a[:, cols], g[:, cols], n_batches=cfg.kpd_batches,
                 batch_size=min(cfg.kpd_batch_size, len(a), len(g)), seed=cfg.seed)
        kf = kpd(a[:, cols], f[:, cols], n_batches=cfg.kpd_batches,
                 batch_size=min(cfg.kpd_batch_size, len(a), len(f)), seed=cfg.seed)
        rows.append(MetricRow("KPD (observables) x1e3", "", 1e3 * kv.value, 1e3 * kf.value,
                              value_std=1e3 * kv.error, floor_std=1e3 * kf.error))
        if paired and floor_kind == "reference-2" and ref2_paired:
            rows.append(MetricRow("channel MAE paired by condition", "photons",
                                  paired_channel_mae(a[:, :n_ch], g[:, :n_ch]),
                                  paired_channel_mae(a[:, :n_ch], f[:, :n_ch])))
        hv = classifier_test(high_level_features(a, ref_side.conditions[mr]),
                             high_level_features(g, gen_side.conditions[mg]), clf, seed=cfg.seed)
        hf = classifier_test(high_level_features(a, ref_side.conditions[mr]),
                             high_level_features(f, floor_side.conditions[mf]), clf,
                             seed=cfg.seed)
        rows.append(MetricRow("classifier AUC (high-level)", "", hv.auc_mean, hf.auc_mean,
                              note=f"{clf.n_seeds} seed(s)"))
        entry["metrics"] = [r.to_dict() for r in rows]
    return out


def _examples(ref_ss: ShowerSet, gen_ss: ShowerSet, gen_side: Side, cfg: EvaluationConfig
              ) -> tuple[NDArray[np.generic], NDArray[np.generic], NDArray[np.float32],
                         NDArray[np.int32]]:
    """Reference and generated images for the same conditions (spread over species)."""
    rng = np.random.default_rng(cfg.seed + 7)
    picks: list[int] = []
    codes, counts = np.unique(gen_side.pdg, return_counts=True)
    for code in codes[np.argsort(-counts)]:
        idx = np.flatnonzero(gen_side.pdg == code)
        picks.extend(rng.choice(idx, size=min(2, len(idx)), replace=False).tolist())
        if len(picks) >= cfg.n_examples:
            break
    rows = np.sort(gen_side.rows[np.array(picks[: cfg.n_examples], dtype=np.int64)])
    gen_b = gen_ss.take(rows)
    # Unpaired files: the reference row shown has other conditions (the report says so).
    ref_b = ref_ss.take(rows)
    return ref_b.showers, gen_b.showers, gen_b.conditions, gen_b.pdg
