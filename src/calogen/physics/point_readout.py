"""The parametrised engine for slab detectors read out as point clouds (``ild``).

Electromagnetic showers (e+-, photons) develop as in the voxel engine
(:mod:`calogen.physics.voxel_readout`): one Grindhammer-Peters shower per particle
(hep-ex/0001020) whose energy is deposited as GFlash-style spots (Grindhammer, Rudowicz, Peters,
NIM A 290 (1990) 469), depth drawn in X0 through the layers' effective media
(:func:`calogen.physics.stacks.slab_stack`), radius in the Moliere radius of the layer it lands
in. A spot of incident energy e in layer i is seen in the Si with ``e * response_i * g``,
g ~ Gamma(k) / k, k = e / a^2 (sampling fluctuations).

Points are made as the Geant4 engine makes them (``SlabDetector``): the visible spots of each Si
layer are clustered onto the detector's ``cluster_mm`` squares (one corner on the shower axis);
one point per occupied square at the energy-weighted mean (x, y) of its spots, z the middle of
the Si layer, E the summed visible energy in MeV. Spots beyond the detector's transverse
half-width or outside the 30 layers are lost.

Simplifications: the particle enters along the axis at the centre; each layer is one mixture
with one sampling fraction, so a spot's depth inside its layer is not used; no photon
conversion depth beyond the Grindhammer-Peters shower maximum shift; no back-scattering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.points import PointCloudVolume
from calogen.particles import species_table
from calogen.physics.materials import Absorber
from calogen.physics.readout import gp_radius_cm
from calogen.physics.showers import HadronShowerModel, develop_showers
from calogen.physics.stacks import Medium, SamplingStack
from calogen.physics.voxel_readout import MAX_SPOTS_PER_CHUNK, SpotModel, spots_per_shower

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

POINT_ENGINE_SIMPLIFICATIONS = (
    "electromagnetic showers only (Grindhammer-Peters profiles in each layer's effective "
    "medium); energy deposited as GFlash-style spots (count proportional to E, capped) with "
    "Gamma sampling fluctuations, clustered per Si layer as the Geant4 engine clusters its "
    "steps; particle enters along the axis at the centre")
"""What the point engine simplifies, for the producer record (the stack adds its own)."""

ILD_SPOTS = SpotModel(spot_energy_gev=0.011, min_spots=64, max_spots=20_000)
"""Spots of the ``ild`` engine: one per 11 MeV, set so that points per shower and the per-point
energy spectrum match calogen's Geant4 engine (``benchmarks/point_reference.py``)."""

ILD_RADIUS_SCALE = 1.4
"""Scale of the Grindhammer-Peters radial profile in the ``ild`` layers: set so that the
energy-weighted mean radius of 10-90 GeV photons (8.2 mm) matches calogen's Geant4 engine (the
homogeneous-media profile in the W/Si/air mixture is too narrow)."""


@dataclass(frozen=True)
class PointEngineConfig:
    """Everything that defines the parametrised point engine for one slab detector.

    Attributes:
        name: detector name (``ild``).
        stack: one readout segment per layer (``layer_id`` = layer index).
        volume: the detector's point-cloud volume (the ShowerSet geometry).
        layer_z_mm: depth of each layer's points (the Si layer's middle), mm.
        cluster_mm: side of the transverse clustering squares, mm.
        half_width_mm: transverse half-size of the detector, mm (spots beyond it are lost).
        em_medium: medium whose E_c and Z_eff set the Grindhammer-Peters parameters.
        spots: spot counts.
        radius_scale: scale of the Grindhammer-Peters radial profile.
    """

    name: str
    stack: SamplingStack
    volume: PointCloudVolume
    layer_z_mm: tuple[float, ...]
    cluster_mm: float
    half_width_mm: float
    em_medium: Medium
    spots: SpotModel = ILD_SPOTS
    radius_scale: float = 1.0

    def __post_init__(self) -> None:
        ids = [s.layer_id for s in self.stack.segments]
        if ids != list(range(self.volume.n_layers)) or len(self.layer_z_mm) != len(ids):
            raise ValueError(f"point engine {self.name!r}: the stack needs one readout segment "
                             f"per layer ({self.volume.n_layers}) and one z per layer")
        if not (self.cluster_mm > 0 and self.half_width_mm > 0):
            raise ValueError(f"point engine {self.name!r}: cluster_mm and half_width_mm must "
                             "be positive")

    def to_dict(self) -> dict[str, object]:
        """JSON description (stored in the producer record)."""
        return {"name": self.name, "stack": self.stack.to_dict(),
                "layer_z_mm": list(self.layer_z_mm), "cluster_mm": self.cluster_mm,
                "half_width_mm": self.half_width_mm, "em_medium": asdict(self.em_medium),
                "spots": asdict(self.spots), "radius_scale": self.radius_scale}


POINT_DETECTORS: tuple[str, ...] = ("ild",)
"""Detectors of the parametrised point engine."""


def point_engine(detector: str) -> PointEngineConfig:
    """The engine configuration of a slab detector of the Geant4 engine (same layers, Si and
    clustering squares)."""
    from calogen.physics.geant4.detectors import SlabDetector, get_detector
    from calogen.physics.stacks import ild_like_si_w

    if detector not in POINT_DETECTORS:
        raise ValueError(f"unknown point detector {detector!r}; expected one of "
                         f"{list(POINT_DETECTORS)}")
    d = get_detector(detector)
    assert isinstance(d, SlabDetector)
    stack = ild_like_si_w()
    mids = tuple(0.5 * (a + b) for a, b in d.sensitive_edges_mm())
    return PointEngineConfig(detector, stack, d.volume, mids, d.cluster_mm, d.half_width_mm,
                             stack.segments[0].medium, ILD_SPOTS, ILD_RADIUS_SCALE)


def simulate_points(pdg: NDArray[np.integer], energy_gev: NDArray[np.floating],
                    config: PointEngineConfig, rng: np.random.Generator
                    ) -> tuple[NDArray[np.float32], IntArray]:
    """Points ``(P, 4)`` float32 ``(x, y, z, E)`` (mm, MeV) and ``(N,)`` points per shower of
    electromagnetic particles ``pdg`` (e+-, photons) with energies in GeV.

    Events are simulated in chunks of at most ``MAX_SPOTS_PER_CHUNK`` spots (fixed by the
    energies alone, so a seed gives the same result).
    """
    codes: IntArray = np.asarray(pdg, dtype=np.int64)
    energy: FloatArray = np.asarray(energy_gev, dtype=np.float64)
    if codes.shape != energy.shape or codes.ndim != 1:
        raise ValueError(f"pdg and energy_gev must be 1-d of one length, found {codes.shape} "
                         f"and {energy.shape}")
    if not np.all(np.isfinite(energy) & (energy > 0)):
        raise ValueError("energy_gev must be finite and positive")
    _, _, kind, _ = species_table(codes)
    if np.any(kind != 0):
        bad = sorted({int(c) for c in codes[kind != 0]})
        raise ValueError(f"the parametrised point engine simulates electromagnetic showers "
                         f"(e+-, photons), not PDG {bad}")
    n_spots = spots_per_shower(energy, config.spots)
    points: list[NDArray[np.float32]] = []
    counts: list[IntArray] = []
    start = 0
    while start < energy.size:
        stop = start + 1
        total = n_spots[start]
        while stop < energy.size and total + n_spots[stop] <= MAX_SPOTS_PER_CHUNK:
            total += n_spots[stop]
            stop += 1
        p, c = _simulate_chunk(codes[start:stop], energy[start:stop], n_spots[start:stop],
                               config, rng)
        points.append(p)
        counts.append(c)
        start = stop
    if not points:
        return np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(points), np.concatenate(counts)


def _simulate_chunk(pdg: IntArray, energy: FloatArray, n_spots: IntArray,
                    config: PointEngineConfig, rng: np.random.Generator
                    ) -> tuple[NDArray[np.float32], IntArray]:
    stack, medium = config.stack, config.em_medium
    n = energy.size
    _, charge, kind, _ = species_table(pdg)
    unit = Absorber("R_M units", 1.0, 1.0, 1.0, medium.critical_energy_mev / 1e3, medium.z_eff)
    zeros = np.zeros(n)
    em = develop_showers(
        kind=kind, pdg=pdg, energy_gev=energy, available_gev=energy, charged=charge != 0,
        x_cm=zeros, y_cm=zeros, slope_x=zeros, slope_y=zeros, absorber=unit,
        depth_cm=stack.depth_lambda, model=HadronShowerModel(), photons_per_gev=1.0,
        halo_relative_yield=1.0, track_photons_per_cm=0.0, rng=rng).em
    # One shower per particle; its spots share its energy.
    n_em = n_spots[em.event]
    j = np.repeat(np.arange(n_em.size), n_em)
    alpha, t_max = em.alpha[j], em.t_max[j]
    t = rng.standard_gamma(alpha) * (t_max / (alpha - 1.0))
    z = stack.x0_to_mm(t)
    r_rm, _ = gp_radius_cm(em.energy_gev[j], t / t_max, unit, 1.0, rng, config.radius_scale)
    seg = stack.segment_of(z)
    r = r_rm * stack.moliere_mm[np.clip(seg, 0, len(stack.segments) - 1)]
    phi = rng.random(j.size) * (2 * np.pi)
    x, y = r * np.cos(phi), r * np.sin(phi)
    e_in = (em.mean_photons / np.maximum(n_em, 1))[j]
    event = em.event[j].astype(np.int64)
    return _cluster(event, seg, x, y, e_in, n, config, rng)


def _cluster(event: IntArray, seg: IntArray, x: FloatArray, y: FloatArray, e_in: FloatArray,
             n_events: int, config: PointEngineConfig, rng: np.random.Generator
             ) -> tuple[NDArray[np.float32], IntArray]:
    """Visible energy of every spot, clustered per Si layer onto the detector's squares."""
    stack, c = config.stack, config.cluster_mm
    keep = ((seg >= 0) & (seg < len(stack.segments)) & (np.abs(x) < config.half_width_mm)
            & (np.abs(y) < config.half_width_mm))
    event, seg, x, y, e_in = event[keep], seg[keep], x[keep], y[keep], e_in[keep]
    a2 = stack.sampling_term_gev[seg] ** 2
    k = np.maximum(e_in / np.maximum(a2, 1e-12), 1e-3)
    visible = e_in * 1e3 * stack.response[seg] * (rng.standard_gamma(k) / k)
    ix = np.floor(x / c).astype(np.int64)
    iy = np.floor(y / c).astype(np.int64)
    span = int(np.ceil(config.half_width_mm / c)) + 1
    n_layers = len(stack.segments)
    key = ((event * n_layers + seg) * (2 * span) + iy + span) * (2 * span) + ix + span
    cells, inverse = np.unique(key, return_inverse=True)
    e = np.bincount(inverse, weights=visible, minlength=cells.size)
    safe = np.where(e > 0, e, 1.0)
    px = np.bincount(inverse, weights=visible * x, minlength=cells.size) / safe
    py = np.bincount(inverse, weights=visible * y, minlength=cells.size) / safe
    cell_event = cells // (n_layers * (2 * span) ** 2)
    cell_layer = (cells // (2 * span) ** 2) % n_layers
    z = np.asarray(config.layer_z_mm, dtype=np.float64)[cell_layer]
    points = np.stack([px, py, z, e], axis=1).astype(np.float32)
    return points, np.bincount(cell_event, minlength=n_events).astype(np.int64)
