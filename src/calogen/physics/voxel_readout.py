"""The parametrised engine in voxel geometries: showers in a sampling stack, scored as voxels.

Showers are developed by :func:`calogen.physics.showers.develop_showers` (Grindhammer-Peters
electromagnetic (sub-)showers, hadron showers with a fluctuating electromagnetic fraction, a
non-electromagnetic halo and charged tracks), with depths in interaction lengths mapped through
the stack (:mod:`calogen.physics.stacks`). Each component deposits its energy as *spots*
(GFlash, Grindhammer, Rudowicz, Peters, NIM A 290 (1990) 469): a shower gets a number of spots
proportional to its energy (capped), shared among its components by energy; each spot's depth
and radius are drawn from the component's profiles (electromagnetic depth in X0 of the traversed
media, radius in Moliere radii of the medium it lands in, Grindhammer-Peters radial core + tail,
hep-ex/0001020). A spot in a dead segment or outside the binning is lost.

Sampling fluctuations: a spot of incident energy e in a segment with stochastic term a deposits
``e * response * g`` with g ~ Gamma(k) / k, k = e / a^2, so the visible energy of a shower
fluctuates by a / sqrt(E) (sum over spots) while most spots stay small, which gives the
sparse, heavy-tailed voxel spectra of sampling calorimeters. Voxels below the threshold are set
to zero (CaloChallenge 2022, arXiv:2410.21611: 15.15 keV for datasets 2 and 3).

Simplifications: the particle enters along the stack axis at the voxel-grid centre; E_inc is
taken as the energy available to the shower; the hadron model's lateral scales are in
interaction lengths of the medium where a sub-shower starts; a charged hadron's track energy
(minimum ionising, up to its first interaction) is taken from the shower energy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.particles import species_table
from calogen.physics.materials import Absorber
from calogen.physics.readout import gp_radius_cm
from calogen.physics.showers import HadronShowerModel, develop_showers
from calogen.physics.stacks import Medium, SamplingStack

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ENGINE_SIMPLIFICATIONS = (
    "Grindhammer-Peters homogeneous-media profiles in each effective medium; energy deposited "
    "as GFlash-style spots (count proportional to E, capped) with Gamma sampling fluctuations; "
    "particle enters along the axis at the grid centre; hadron lateral scales in interaction "
    "lengths; track energy taken from the shower")
"""What the engine simplifies, for the producer record (the stack adds its own)."""

MAX_SPOTS_PER_CHUNK = 400_000
"""Spots simulated at once (bounds memory); part of the algorithm: changing it changes files."""


@dataclass(frozen=True)
class SpotModel:
    """How many energy spots a shower gets: ``clip(E / spot_energy_gev, min_spots, max_spots)``."""

    spot_energy_gev: float = 0.005
    """Incident energy per spot, GeV."""
    min_spots: int = 64
    max_spots: int = 20_000


@dataclass(frozen=True)
class VoxelEngineConfig:
    """Everything that defines the parametrised voxel engine for one detector.

    Attributes:
        name: detector name (``ds2``, ``ds1-photons``, ...).
        stack: the sampling stack.
        geometry: the voxel binning (its layer ids are stack ``layer_id`` values).
        em_medium: medium whose E_c and Z_eff set the Grindhammer-Peters parameters.
        threshold_mev: voxels below this energy are set to zero, MeV.
        spots: spot counts.
        hadron: hadron shower model; its lateral lengths (``cascade_spread_cm``,
            ``halo_radius_cm``) are read in interaction lengths here.
        track_gev_per_lambda: energy a minimum-ionising track deposits per lambda, GeV.
        track_radius_mm: lateral spread of a track's deposits, mm.
        radius_scale: scale of the Grindhammer-Peters radial profile (1: homogeneous media).
    """

    name: str
    stack: SamplingStack
    geometry: LayeredVoxelGeometry
    em_medium: Medium
    threshold_mev: float = 0.0
    spots: SpotModel = field(default_factory=SpotModel)
    hadron: HadronShowerModel = field(default_factory=lambda: HadronShowerModel(
        subshower_light_factor=1.0, cascade_spread_cm=0.024, halo_radius_cm=0.2))
    track_gev_per_lambda: float = 0.2
    track_radius_mm: float = 1.0
    radius_scale: float = 1.0

    def __post_init__(self) -> None:
        read = {s.layer_id for s in self.stack.segments if s.layer_id is not None}
        missing = [i for i in self.geometry.layer_ids if i not in read]
        if missing:
            raise ValueError(f"voxel engine {self.name!r}: geometry layers {missing} are not "
                             f"readout layers of stack {self.stack.name!r}")

    def to_dict(self) -> dict[str, object]:
        """JSON description (stored in the producer record)."""
        return {"name": self.name, "stack": self.stack.to_dict(),
                "em_medium": asdict(self.em_medium), "threshold_mev": self.threshold_mev,
                "spots": asdict(self.spots), "hadron": self.hadron.to_dict(),
                "track_gev_per_lambda": self.track_gev_per_lambda,
                "track_radius_mm": self.track_radius_mm, "radius_scale": self.radius_scale}


def spots_per_shower(energy_gev: FloatArray, spots: SpotModel) -> IntArray:
    """Spots of each shower: proportional to its energy, clipped (see :class:`SpotModel`)."""
    n = np.rint(np.asarray(energy_gev, dtype=np.float64) / spots.spot_energy_gev)
    return np.clip(n, spots.min_spots, spots.max_spots).astype(np.int64)


def simulate_voxels(pdg: NDArray[np.integer], energy_gev: NDArray[np.floating],
                    config: VoxelEngineConfig, rng: np.random.Generator) -> NDArray[np.float32]:
    """Voxel energies (MeV) ``(N, n_voxels)`` of particles ``pdg`` with energies in GeV.

    Events are simulated in chunks of at most :data:`MAX_SPOTS_PER_CHUNK` spots (a chunking
    fixed by the energies alone, so a seed gives the same result).
    """
    codes: IntArray = np.asarray(pdg, dtype=np.int64)
    energy: FloatArray = np.asarray(energy_gev, dtype=np.float64)
    if codes.shape != energy.shape or codes.ndim != 1:
        raise ValueError(f"pdg and energy_gev must be 1-d of one length, found {codes.shape} "
                         f"and {energy.shape}")
    if not np.all(np.isfinite(energy) & (energy > 0)):
        raise ValueError("energy_gev must be finite and positive")
    n_vox = config.geometry.n_voxels
    out = np.zeros((energy.size, n_vox), dtype=np.float32)
    n_spots = spots_per_shower(energy, config.spots)
    start = 0
    while start < energy.size:
        stop = start + 1
        total = n_spots[start]
        while stop < energy.size and total + n_spots[stop] <= MAX_SPOTS_PER_CHUNK:
            total += n_spots[stop]
            stop += 1
        out[start:stop] = _simulate_chunk(codes[start:stop], energy[start:stop],
                                          n_spots[start:stop], config, rng)
        start = stop
    return out


@dataclass
class _Spots:
    event: list[IntArray] = field(default_factory=list)
    z_mm: list[FloatArray] = field(default_factory=list)
    x_mm: list[FloatArray] = field(default_factory=list)
    y_mm: list[FloatArray] = field(default_factory=list)
    energy_gev: list[FloatArray] = field(default_factory=list)
    hadronic: list[NDArray[np.bool_]] = field(default_factory=list)

    def add(self, event: IntArray, z: FloatArray, x: FloatArray, y: FloatArray,
            e: FloatArray, hadronic: bool) -> None:
        self.event.append(event)
        self.z_mm.append(z)
        self.x_mm.append(x)
        self.y_mm.append(y)
        self.energy_gev.append(e)
        self.hadronic.append(np.full(event.size, hadronic))

    def cat(self, name: str) -> NDArray[np.generic]:
        return np.concatenate(getattr(self, name))


def _spot_counts(event: IntArray, e_comp: FloatArray, e_event: FloatArray,
                 n_event: IntArray) -> IntArray:
    """Spots of each component: the event's spots shared by energy, at least one if it has any."""
    share = e_comp / np.maximum(e_event[event], 1e-12)
    return np.where(e_comp > 0, np.maximum(np.rint(n_event[event] * share), 1), 0).astype(np.int64)


def _simulate_chunk(pdg: IntArray, energy: FloatArray, n_spots: IntArray,
                    config: VoxelEngineConfig, rng: np.random.Generator) -> NDArray[np.float32]:
    stack = config.stack
    n = energy.size
    _, charge, kind, _ = species_table(pdg)
    em_medium = config.em_medium
    # Depths of the hadron model in interaction lengths (lambda_int = 1).
    absorber = Absorber(em_medium.name, 1.0, 1.0, 1.0, em_medium.critical_energy_mev / 1e3,
                        em_medium.z_eff)
    zeros = np.zeros(n)
    em = develop_showers(
        kind=kind, pdg=pdg, energy_gev=energy, available_gev=energy, charged=charge != 0,
        x_cm=zeros, y_cm=zeros, slope_x=zeros, slope_y=zeros, absorber=absorber,
        depth_cm=stack.depth_lambda, model=config.hadron, photons_per_gev=1.0,
        halo_relative_yield=1.0, track_photons_per_cm=config.track_gev_per_lambda, rng=rng)
    # Track energy comes out of the shower (capped at E).
    track_e = np.bincount(em.track.event, weights=em.track.mean_photons, minlength=n)
    track_scale = np.where(track_e > energy, energy / np.maximum(track_e, 1e-12), 1.0)
    shower_scale = np.clip(1.0 - track_e * track_scale / energy, 0.0, 1.0)

    spots = _Spots()
    # --- electromagnetic (sub-)showers: depth in X0 from their start, radius in R_M.
    e = em.em
    e_em = e.mean_photons * shower_scale[e.event]
    n_em = _spot_counts(e.event, e_em, energy, n_spots)
    j = np.repeat(np.arange(n_em.size), n_em)
    alpha, t_max = e.alpha[j], e.t_max[j]
    t = rng.standard_gamma(alpha) * (t_max / (alpha - 1.0))
    start_mm = stack.lambda_to_mm(e.z_start_cm)
    z = stack.x0_to_mm(stack.mm_to_x0(start_mm)[j] + t)
    unit = Absorber("R_M units", 1.0, 1.0, 1.0, em_medium.critical_energy_mev / 1e3,
                    em_medium.z_eff)
    r_rm, _ = gp_radius_cm(e.energy_gev[j], t / t_max, unit, 1.0, rng, config.radius_scale)
    seg = np.clip(stack.segment_of(z), 0, len(stack.segments) - 1)
    r = r_rm * stack.moliere_mm[seg]
    # Lateral offsets of sub-showers, from lambda units to mm at their start.
    lam_start = stack.lambda_mm[np.clip(stack.segment_of(start_mm), 0,
                                        len(stack.segments) - 1)]
    phi = rng.random(j.size) * (2 * np.pi)
    spots.add(e.event[j], z, e.x_cm[j] * lam_start[j] + r * np.cos(phi),
              e.y_cm[j] * lam_start[j] + r * np.sin(phi), (e_em / np.maximum(n_em, 1))[j],
              False)
    # --- non-electromagnetic halo: depth in lambda, wide lateral profile.
    h = em.halo
    e_h = h.mean_photons * shower_scale[h.event]
    n_h = _spot_counts(h.event, e_h, energy, n_spots)
    j = np.repeat(np.arange(n_h.size), n_h)
    depth = h.z_start_cm[j] + rng.standard_gamma(h.alpha[j]) * h.depth_scale_cm[j]
    z = stack.lambda_to_mm(depth)
    lam_here = stack.lambda_mm[np.clip(stack.segment_of(z), 0, len(stack.segments) - 1)]
    u = rng.random(j.size)
    r = h.radius_cm[j] * lam_here * np.sqrt(u / (1.0 - u))
    phi = rng.random(j.size) * (2 * np.pi)
    spots.add(h.event[j], z, r * np.cos(phi), r * np.sin(phi),
              (e_h / np.maximum(n_h, 1))[j], True)
    # --- charged tracks up to their first interaction (minimum ionising).
    tr = em.track
    e_t = tr.mean_photons * track_scale[tr.event]
    n_t = np.where(e_t > 0, np.maximum(np.rint(e_t / config.spots.spot_energy_gev), 1),
                   0).astype(np.int64)
    j = np.repeat(np.arange(n_t.size), n_t)
    z = stack.lambda_to_mm(rng.random(j.size) * tr.length_cm[j])
    r = np.abs(rng.normal(0.0, config.track_radius_mm, j.size))
    phi = rng.random(j.size) * (2 * np.pi)
    spots.add(tr.event[j], z, r * np.cos(phi), r * np.sin(phi),
              (e_t / np.maximum(n_t, 1))[j], False)
    return _score(spots, n, config, rng)


def _score(spots: _Spots, n_events: int, config: VoxelEngineConfig,
           rng: np.random.Generator) -> NDArray[np.float32]:
    """Visible energy of every spot, binned into voxels; threshold applied."""
    stack, geometry = config.stack, config.geometry
    event = spots.cat("event").astype(np.int64)
    z = spots.cat("z_mm").astype(np.float64)
    x = spots.cat("x_mm").astype(np.float64)
    y = spots.cat("y_mm").astype(np.float64)
    e_in = spots.cat("energy_gev").astype(np.float64)
    hadronic = spots.cat("hadronic").astype(bool)
    seg = stack.segment_of(z)
    position = {lid: i for i, lid in enumerate(geometry.layer_ids)}
    seg_layer = np.array([position.get(s.layer_id, -1) if s.layer_id is not None else -1
                          for s in stack.segments] + [-1], dtype=np.int64)
    keep = (seg >= 0) & (seg_layer[np.where(seg < 0, -1, seg)] >= 0)
    event, seg, hadronic = event[keep], seg[keep], hadronic[keep]
    x, y, e_in = x[keep], y[keep], e_in[keep]
    layer = seg_layer[seg]
    a2 = stack.sampling_term_gev[seg] ** 2
    k = np.maximum(e_in / np.maximum(a2, 1e-12), 1e-3)
    gain = rng.standard_gamma(k) / k
    visible = e_in * 1e3 * stack.response[seg] * gain
    visible *= np.where(hadronic, stack.hadron_response[seg], 1.0)
    r = np.hypot(x, y)
    alpha = np.arctan2(y, x)
    voxel = np.full(event.size, -1, dtype=np.int64)
    offsets = np.cumsum([0] + [ly.n_voxels for ly in geometry.layers])
    first = geometry.layers[0]
    uniform = all(ly.r_edges_mm == first.r_edges_mm and ly.n_alpha == first.n_alpha
                  for ly in geometry.layers)
    groups = ([(np.arange(event.size), first)] if uniform else
              [(np.flatnonzero(layer == i), ly) for i, ly in enumerate(geometry.layers)])
    for sel, ly in groups:
        rb = np.searchsorted(np.asarray(ly.r_edges_mm), r[sel], side="right") - 1
        ab = np.minimum(((alpha[sel] + np.pi) / (2 * np.pi) * ly.n_alpha).astype(np.int64),
                        ly.n_alpha - 1)
        inside = (rb >= 0) & (rb < ly.n_r)
        voxel[sel[inside]] = (offsets[layer[sel[inside]]] + ab[inside] * ly.n_r
                              + rb[inside])
    ok = voxel >= 0
    n_vox = geometry.n_voxels
    flat = event[ok] * n_vox + voxel[ok]
    showers = np.bincount(flat, weights=visible[ok], minlength=n_events * n_vox)
    showers = showers.reshape(n_events, n_vox)
    if config.threshold_mev > 0:
        showers[showers < config.threshold_mev] = 0.0
    return showers.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The CaloChallenge 2022 detectors and guns (arXiv:2410.21611)
# ---------------------------------------------------------------------------------------------

DS23_THRESHOLD_MEV = 0.01515
"""Per-voxel threshold of datasets 2 and 3, MeV (15.15 keV)."""

DS1_MIN_DEPOSIT_MEV = 0.001
"""Dataset-1 voxels below 1 keV (less than one ionisation hit at the EM scale) are dropped:
keeps the Gamma sampling of tiny spots from leaving unphysical 1e-30 MeV values."""

DS1_ENERGIES_GEV: tuple[float, ...] = tuple(0.256 * 2.0 ** k for k in range(15))
"""The 15 incident energies of dataset 1: 256 MeV x 2^k, k = 0..14 (up to 4.19 TeV), GeV."""


@dataclass(frozen=True)
class VoxelGun:
    """A single-species gun: energies log-uniform in [e_min, e_max] or drawn uniformly from
    ``energies`` (GeV)."""

    pdg: int
    e_min_gev: float = 1.0
    e_max_gev: float = 1000.0
    energies_gev: tuple[float, ...] = ()

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        """``n`` incident energies, GeV."""
        if self.energies_gev:
            return np.asarray(self.energies_gev, dtype=np.float64)[
                rng.integers(0, len(self.energies_gev), n)]
        lo, hi = np.log(self.e_min_gev), np.log(self.e_max_gev)
        return np.exp(rng.uniform(lo, hi, n))

    def to_dict(self) -> dict[str, object]:
        if self.energies_gev:
            return {"pdg": self.pdg, "spectrum": "discrete", "energies_gev":
                    list(self.energies_gev)}
        return {"pdg": self.pdg, "spectrum": "log-uniform", "e_min_gev": self.e_min_gev,
                "e_max_gev": self.e_max_gev}


PAR04_SPOTS = SpotModel(spot_energy_gev=0.004, min_spots=64, max_spots=50_000)
"""DS2/DS3 spots: 4 MeV of incident energy each (with the 0.14 sqrt(GeV) sampling term this
matches the Geant4 engine's fraction of non-zero voxels)."""

PAR04_RADIUS_SCALE = 1.12
"""The Geant4 engine's DS2 showers are about 12 % wider than the homogeneous-media GP profile
in the W/Si mixture (energy-weighted mean radius 5.2 mm)."""

VOXEL_DETECTORS: tuple[str, ...] = ("ds1-photons", "ds1-pions", "ds2", "ds3")
"""Detectors of the parametrised voxel engine."""


def voxel_engine(detector: str) -> tuple[VoxelEngineConfig, VoxelGun]:
    """The engine configuration and default gun of a CaloChallenge-like detector."""
    from calogen.geometry.calochallenge import calochallenge_binning
    from calogen.physics.stacks import ATLAS_LIKE_BARREL, LAR_PB, PAR04_WSI, W_SI

    if detector not in VOXEL_DETECTORS:
        raise ValueError(f"unknown voxel detector {detector!r}; expected one of "
                         f"{list(VOXEL_DETECTORS)}")
    dataset = detector.removeprefix("ds")
    binning = calochallenge_binning(dataset)
    if detector in ("ds2", "ds3"):
        config = VoxelEngineConfig(detector, PAR04_WSI, binning.geometry, W_SI,
                                   threshold_mev=DS23_THRESHOLD_MEV, spots=PAR04_SPOTS,
                                   radius_scale=PAR04_RADIUS_SCALE)
        return config, VoxelGun(11, 1.0, 1000.0)
    config = VoxelEngineConfig(detector, ATLAS_LIKE_BARREL, binning.geometry, LAR_PB,
                               threshold_mev=DS1_MIN_DEPOSIT_MEV,
                               spots=SpotModel(spot_energy_gev=0.02, min_spots=64,
                                               max_spots=15_000))
    return config, VoxelGun(binning.pid, energies_gev=DS1_ENERGIES_GEV)
