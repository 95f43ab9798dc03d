"""The Geant4 engine: one run manager per process, showers scored in C++.

Python sets up Geant4 once (run manager, geometry, physics list, particle gun) and runs events;
per step only C++ runs (:mod:`calogen.physics.geant4.build`). Each event reseeds the random engine
(MixMax) from ``(seed, event index)``, so a shower depends only on the seed and its index, not on
how events are split into calls or workers.

Physics lists (see the README for their limits):

- ``em``: data-free electromagnetic physics: gamma photoelectric (``G4PEEffectFluoModel``),
  Compton (Klein-Nishina), conversion (Bethe-Heitler 5D); e+-: Urban multiple scattering,
  ionisation, bremsstrahlung with the relativistic model in both slots (no radiation below
  1 MeV), annihilation; mu+-: multiple scattering, ionisation, bremsstrahlung, pair production.
  No fluorescence, no general gamma process.
- ``em+hadronic``: ``em`` plus hadron and ion EM, decays, hadron inelastic (FTFP above 3 GeV,
  Bertini below 12 GeV, on Barashenkov-Glauber-Gribov cross sections for pions and nucleons,
  the neutron included) and hadron elastic (``G4HadronElastic``): every model and cross
  section reads no data file (:data:`PHYSICS_LIST_CONTENT`). No neutron capture, no ion
  inelastic; not validated against test-beam data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calogen.physics.geant4 import detectors as det
from calogen.physics.geant4.build import load_library
from calogen.physics.geant4.environment import import_geant4

PHYSICS_LISTS: dict[str, tuple[int, ...]] = {
    "em": (22, 11, -11, 13, -13),
    "em+hadronic": (22, 11, -11, 13, -13, 211, -211, 321, -321, 130, 310, 2212, -2212, 2112,
                    -2112),
}
"""Physics lists and the primary particles (PDG codes) each can shoot."""

PHYSICS_LIST_CONTENT: dict[str, str] = {
    "em": "data-free EM: gamma PE (G4PEEffectFluoModel), Compton (Klein-Nishina), conversion "
          "(Bethe-Heitler 5D); e+-: Urban msc, ionisation, relativistic bremsstrahlung in both "
          "model slots (no radiation below 1 MeV), annihilation; mu+-: msc, ionisation, "
          "bremsstrahlung, pair production; no fluorescence",
    "em+hadronic": "the em list; hadron and ion EM (Urban msc, Bragg/Bethe-Bloch ionisation); "
                   "G4DecayPhysics; inelastic FTFP (> 3 GeV) + Bertini (< 12 GeV) for pi, K, "
                   "p, n, hyperons, FTFP for anti-nucleons, on G4BGGPionInelasticXS / "
                   "G4BGGNucleonInelasticXS (pi+-, p, n) and Glauber-Gribov (others); elastic "
                   "G4HadronElastic on G4BGGPionElasticXS / G4BGGNucleonElasticXS (pi+-, p, n) "
                   "and Glauber-Gribov (K, anti-nucleons); no neutron capture, no ion "
                   "inelastic; not validated against data",
}
"""What each physics list is made of (recorded in the producer attribute)."""

DEFAULT_CUT_MM = 0.7
"""Production cut (range) for gammas, e+- and protons, mm."""


@dataclass(frozen=True)
class EngineConfig:
    """What a process's Geant4 set-up is made of (fixed once the run manager is initialised)."""

    detector: str = "ds2"
    physics: str = "em"
    cut_mm: float = DEFAULT_CUT_MM

    def __post_init__(self) -> None:
        det.get_detector(self.detector)
        if self.physics not in PHYSICS_LISTS:
            raise ValueError(f"unknown Geant4 physics list {self.physics!r}: expected one of "
                             f"{sorted(PHYSICS_LISTS)}")
        if not (self.cut_mm > 0 and np.isfinite(self.cut_mm)):
            raise ValueError(f"production cut must be a positive length in mm, found "
                             f"{self.cut_mm}")


def geant4_version() -> str:
    """Geant4's version, e.g. ``11.4.1`` (``11.4.p01`` as Geant4 names it)."""
    g4 = import_geant4()
    match = re.search(r"geant4-(\d+)-(\d+)(?:-patch-(\d+))?", str(g4.G4Version))
    if not match:
        return str(g4.G4Version)
    major, minor, patch = match.groups()
    return f"{int(major)}.{int(minor)}.{int(patch or 0)}"


def event_seeds(seed: int, index: int) -> NDArray[np.int64]:
    """The four MixMax seeds of event ``index`` of a run seeded with ``seed`` (non-zero)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(4, dtype=np.uint32)
    out = state.astype(np.int64) & 0x7FFFFFFF
    out[out == 0] = 1
    return out


class _Engine:
    """The process's Geant4 set-up (built by :func:`engine`)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.detector = det.get_detector(config.detector)
        self.g4 = g4 = import_geant4()
        self.lib = lib = load_library()
        self._keep: list[Any] = []
        ui = g4.G4UImanager.GetUIpointer()
        self.run_manager = g4.G4RunManager()
        for command in ("/control/verbose 0", "/run/verbose 0", "/event/verbose 0",
                        "/tracking/verbose 0", "/process/verbose 0", "/process/em/verbose 0"):
            ui.ApplyCommand(command)
        self.run_manager.SetUserInitialization(self._detector_construction())
        self.run_manager.SetUserInitialization(self._physics_list())
        self.primaries = self._primary_generator()
        self.run_manager.SetUserAction(self.primaries)
        self.run_manager.Initialize()
        d = self.detector
        if lib.cg4_install_scoring(d.sensitive_material.encode()) != 0:
            raise RuntimeError("could not install the Geant4 engine's scoring (no run manager "
                               f"or no material {d.sensitive_material})")

        def vec(values: tuple[float, float, float]) -> Any:
            return (np.ctypeslib.as_ctypes(np.asarray(values, dtype=np.float64)))

        lib.cg4_set_frame(vec(d.entrance_mm), vec(d.direction), vec(d.transverse_axis))
        if isinstance(d, det.CylinderDetector):
            lib.cg4_set_voxel_scorer(d.n_layers, d.layer_mm, d.n_rings, d.r_ring_mm, d.n_alpha)
        elif isinstance(d, det.FibreBlockDetector):
            rows, cols = d.grid.shape
            if d.pitch_mm[0] != d.pitch_mm[1]:
                raise ValueError(f"detector {d.name!r}: the fibre scorer needs a square pitch")
            lib.cg4_set_fibre_scorer(rows, cols, d.pitch_mm[0], d.refractive_index,
                                     d.numerical_aperture, d.yield_per_mm)
        else:
            edges = [z for pair in d.sensitive_edges_mm() for z in pair]
            # Clusters are binned by Si layer: pass each Si layer as one depth bin, gaps dropped.
            self._si_edges = np.asarray(edges, dtype=np.float64)
            lib.cg4_set_point_scorer(np.ctypeslib.as_ctypes(self._si_edges),
                                     len(self._si_edges) - 1, d.cluster_mm)
        self.random_engine = type(g4.HepRandom.getTheEngine()).__name__

    # --- set-up pieces -----------------------------------------------------------------------
    def _detector_construction(self) -> Any:
        g4, d, keep = self.g4, self.detector, self._keep

        class Construction(g4.G4VUserDetectorConstruction):  # type: ignore[name-defined]
            def Construct(self) -> Any:  # noqa: N802 (Geant4's name)
                nist = g4.G4NistManager.Instance()
                world_mat = nist.FindOrBuildMaterial(det.WORLD_MATERIAL)
                absorber = nist.FindOrBuildMaterial(det.ABSORBER_MATERIAL)
                sensitive = nist.FindOrBuildMaterial(det.SENSITIVE_MATERIAL)
                mm = g4.mm
                if isinstance(d, det.CylinderDetector):
                    half = (d.r_outer_mm + 10.0) * mm
                    world = g4.G4Box("World", half, half, (d.half_length_mm + 10.0) * mm)
                elif isinstance(d, det.FibreBlockDetector):
                    hx, hy = d.half_width_mm
                    world = g4.G4Box("World", (hx + 10.0) * mm, (hy + 10.0) * mm,
                                     (d.depth_mm + 20.0) * mm)
                else:
                    gap = nist.FindOrBuildMaterial(det.GAP_MATERIAL)
                    depth = d.volume.layer_edges_mm[-1]
                    world = g4.G4Box("World", (d.half_width_mm + 10.0) * mm,
                                     (d.half_width_mm + 10.0) * mm, (depth + 20.0) * mm)
                world_lv = g4.G4LogicalVolume(world, world_mat, "World")
                world_pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_lv, "World", None,
                                            False, 0, False)
                keep.extend([world, world_lv, world_pv])

                def place(solid: Any, material: Any, name: str, z_mm: float, copy: int) -> None:
                    lv = g4.G4LogicalVolume(solid, material, name)
                    pv = g4.G4PVPlacement(None, g4.G4ThreeVector(0, 0, z_mm * mm), lv, name,
                                          world_lv, False, copy, False)
                    keep.extend([solid, lv, pv])

                if isinstance(d, det.FibreBlockDetector):
                    _build_fibre_block(g4, d, world_lv, keep)
                elif isinstance(d, det.CylinderDetector):
                    # Nested shells (each holds the rest of the stack): one daughter per
                    # volume, so navigation does not test all 180 concentric shells per step.
                    r, mother, r_out = d.r_inner_mm, world_lv, d.r_outer_mm
                    for i in range(d.n_sublayers):
                        for name, material, thick in (("W", absorber, d.absorber_mm),
                                                      ("Si", sensitive, d.sensitive_mm)):
                            solid = g4.G4Tubs(f"{name}{i}", r * mm, r_out * mm,
                                              d.half_length_mm * mm, 0.0, 2 * np.pi)
                            lv = g4.G4LogicalVolume(solid, material, f"{name}{i}")
                            pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), lv, f"{name}{i}",
                                                  mother, False, i, False)
                            keep.extend([solid, lv, pv])
                            mother = lv
                            r += thick
                else:
                    edges = d.volume.layer_edges_mm
                    hw = d.half_width_mm * mm
                    for i, w in enumerate(d.absorber_mm):
                        z0, z1 = edges[i], edges[i + 1]
                        parts = [("W", absorber, z0, z0 + w),
                                 ("Si", sensitive, z0 + w, z0 + w + d.sensitive_mm),
                                 ("Gap", gap, z0 + w + d.sensitive_mm, z1)]
                        for name, material, a, b in parts:
                            if b - a <= 1e-6:
                                continue
                            solid = g4.G4Box(f"{name}{i}", hw, hw, 0.5 * (b - a) * mm)
                            place(solid, material, f"{name}{i}", 0.5 * (a + b), i)
                return world_pv

        construction = Construction()
        keep.append(construction)
        return construction

    def _physics_list(self) -> Any:
        g4, lib, cut = self.g4, self.lib, self.config.cut_mm

        class DataFreeEm(g4.G4VPhysicsConstructor):  # type: ignore[name-defined]
            def ConstructParticle(self) -> None:  # noqa: N802
                lib.cg4_construct_particles()

            def ConstructProcess(self) -> None:  # noqa: N802
                lib.cg4_construct_em()

        class DataFreeHadronic(g4.G4VPhysicsConstructor):  # type: ignore[name-defined]
            def ConstructParticle(self) -> None:  # noqa: N802
                pass

            def ConstructProcess(self) -> None:  # noqa: N802
                lib.cg4_construct_hadronic()

        hadronic = self.config.physics == "em+hadronic"

        class PhysicsList(g4.G4VModularPhysicsList):  # type: ignore[name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.SetVerboseLevel(0)
                self.SetDefaultCutValue(cut * g4.mm)
                self.constructors = [DataFreeEm("calogen-em")]
                if hadronic:
                    # G4DecayPhysics makes every particle and gives the unstable ones G4Decay.
                    self.constructors += [g4.G4DecayPhysics(),
                                          DataFreeHadronic("calogen-hadronic")]
                for constructor in self.constructors:
                    self.RegisterPhysics(constructor)

        lib.cg4_configure_em()
        if hadronic:
            lib.cg4_configure_hadronic()
        physics = PhysicsList()
        self._keep.append(physics)
        return physics

    def _primary_generator(self) -> Any:
        g4, engine = self.g4, self

        class Primaries(g4.G4VUserPrimaryGeneratorAction):  # type: ignore[name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.gun = g4.G4ParticleGun(1)
                d = engine.detector
                self.gun.SetParticlePosition(g4.G4ThreeVector(*d.gun_position_mm) * g4.mm)
                self.gun.SetParticleMomentumDirection(g4.G4ThreeVector(*d.direction))
                self.batch: _Batch | None = None

            def GeneratePrimaries(self, event: Any) -> None:  # noqa: N802
                batch = self.batch
                assert batch is not None
                i = event.GetEventID()
                batch.begin(engine.lib, i)
                if batch.impacts is not None:
                    x, y = batch.impacts[i]
                    z = engine.detector.gun_position_mm[2]
                    self.gun.SetParticlePosition(g4.G4ThreeVector(x, y, z) * g4.mm)
                self.gun.SetParticleEnergy(float(batch.energies[i]) * g4.MeV)
                self.gun.GeneratePrimaryVertex(event)

        class Events(g4.G4UserEventAction):  # type: ignore[name-defined]
            def EndOfEventAction(self, event: Any) -> None:  # noqa: N802
                batch = primaries.batch
                assert batch is not None
                batch.end(engine.lib, event.GetEventID())

        primaries = Primaries()
        events = Events()
        self.run_manager.SetUserAction(events)
        self._keep.extend([primaries, events, primaries.gun])
        return primaries

    # --- running -------------------------------------------------------------------------------
    def run(self, pdg: int, energies_mev: NDArray[np.float64], seed: int,
            first_index: int, impacts_mm: NDArray[np.float64] | None = None) -> _Batch:
        g4 = self.g4
        allowed = PHYSICS_LISTS[self.config.physics]
        if pdg not in allowed:
            raise ValueError(f"physics list {self.config.physics!r} shoots PDG codes {allowed}, "
                             f"found {pdg}")
        particle = g4.G4ParticleTable.GetParticleTable().FindParticle(int(pdg))
        if particle is None:
            raise ValueError(f"Geant4 does not know PDG code {pdg}")
        self.primaries.gun.SetParticleDefinition(particle)
        self.primaries.gun.SetParticlePosition(g4.G4ThreeVector(*self.detector.gun_position_mm)
                                               * g4.mm)
        d = self.detector
        n_cells = d.n_voxels if isinstance(d, det.CylinderDetector) else (
            d.n_cells if isinstance(d, det.FibreBlockDetector) else 0)
        batch = _Batch(energies_mev, seed, first_index, n_cells, impacts_mm)
        self.primaries.batch = batch
        try:
            if len(energies_mev):
                self.run_manager.BeamOn(len(energies_mev))
        finally:
            self.primaries.batch = None
        if batch.done != len(energies_mev):
            raise RuntimeError(f"Geant4 ran {batch.done} of {len(energies_mev)} events")
        return batch


def _build_fibre_block(g4: Any, d: det.FibreBlockDetector, world_lv: Any,
                       keep: list[Any]) -> None:
    """The absorber block (front face at z = 0) and its fibres, placed in ``world_lv``."""
    mm = g4.mm
    nist = g4.G4NistManager.Instance()
    alloy = g4.G4Material(f"calogen_{d.name}_absorber", d.absorber_density * g4.g / g4.cm3,
                          len(d.absorber_mass_fractions))
    for symbol, fraction in d.absorber_mass_fractions:
        alloy.AddElement(nist.FindOrBuildElement(symbol), fraction)
    fibre_mat = nist.FindOrBuildMaterial(d.fibre_material)
    hx, hy = d.half_width_mm
    half_z = 0.5 * d.depth_mm
    block = g4.G4Box("Block", hx * mm, hy * mm, half_z * mm)
    block_lv = g4.G4LogicalVolume(block, alloy, "Block")
    block_pv = g4.G4PVPlacement(None, g4.G4ThreeVector(0, 0, half_z * mm), block_lv, "Block",
                                world_lv, False, 0, False)
    fibre = g4.G4Tubs("Fibre", 0.0, 0.5 * d.fibre_diameter_mm * mm, half_z * mm, 0.0,
                      2 * np.pi)
    fibre_lv = g4.G4LogicalVolume(fibre, fibre_mat, "Fibre")
    keep.extend([alloy, block, block_lv, block_pv, fibre, fibre_lv])
    for index, x, y in d.fibre_centres_mm():
        keep.append(g4.G4PVPlacement(None, g4.G4ThreeVector(x * mm, y * mm, 0.0), fibre_lv,
                                     "Fibre", block_lv, False, index, False))


class _Batch:
    """Inputs and outputs of one ``BeamOn``: per-event seeds, impact points, rows (voxel
    deposits or fibre counts), points, totals."""

    def __init__(self, energies_mev: NDArray[np.float64], seed: int, first_index: int,
                 n_voxels: int, impacts_mm: NDArray[np.float64] | None = None) -> None:
        self.energies = energies_mev
        self.impacts = impacts_mm
        self.seed = seed
        self.first_index = first_index
        n = len(energies_mev)
        self.voxels = np.zeros((n, n_voxels), dtype=np.float64)
        self.totals = np.zeros((n, 2), dtype=np.float64)
        self.points: list[NDArray[np.float64]] = []
        self.done = 0

    def begin(self, lib: Any, i: int) -> None:
        seeds = event_seeds(self.seed, self.first_index + i)
        row = self.voxels[i] if self.voxels.shape[1] else np.zeros(1)
        lib.cg4_begin_event(np.ctypeslib.as_ctypes(seeds),
                            row.ctypes.data_as(lib.cg4_begin_event.argtypes[1]))

    def end(self, lib: Any, i: int) -> None:
        lib.cg4_end_event()
        lib.cg4_event_totals(self.totals[i].ctypes.data_as(lib.cg4_event_totals.argtypes[0]))
        n = lib.cg4_point_count()
        pts = np.zeros((n, 4), dtype=np.float64)
        if n:
            lib.cg4_point_copy(pts.ctypes.data_as(lib.cg4_point_copy.argtypes[0]))
        self.points.append(pts)
        self.done += 1


_ENGINE: _Engine | None = None


def engine(config: EngineConfig) -> _Engine:
    """The process's engine, set up at the first call; ``RuntimeError`` when a later call asks
    for another detector, physics list or cut (Geant4 runs one set-up per process: use a new
    process, e.g. a Dask worker, per set-up)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine(config)
    elif _ENGINE.config != config:
        raise RuntimeError(f"this process's Geant4 engine is set up for {_ENGINE.config}; "
                           f"{config} needs another process")
    return _ENGINE


def _energies(energies_mev: ArrayLike) -> NDArray[np.float64]:
    e = np.asarray(energies_mev, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("energies_mev must be finite and positive (MeV)")
    return e


def _impacts(impact_mm: ArrayLike, n: int, d: det.FibreBlockDetector) -> NDArray[np.float64]:
    xy = np.asarray(impact_mm, dtype=np.float64)
    if xy.shape == (2,):
        xy = np.tile(xy, (n, 1))
    if xy.shape != (n, 2) or not np.all(np.isfinite(xy)):
        raise ValueError(f"impact_mm must be finite (x, y) in mm, one pair or one per shower "
                         f"({n}, 2), found shape {xy.shape}")
    hx, hy = d.half_width_mm
    if np.any(np.abs(xy[:, 0]) > hx) or np.any(np.abs(xy[:, 1]) > hy):
        raise ValueError(f"impact_mm must lie on the {d.name} face (|x| <= {hx} mm, "
                         f"|y| <= {hy} mm)")
    return xy


def run_showers(detector: str, pdg: int, energies_mev: ArrayLike, seed: int, *,
                physics: str = "em", cut_mm: float = DEFAULT_CUT_MM,
                first_index: int = 0, impact_mm: ArrayLike = (0.0, 0.0)) -> NDArray[Any]:
    """Showers of a cylinder detector (``ds2``, ``ds3``) or of the ZN (``zn``).

    Cylinders: voxel deposits ``(N, n_voxels)`` float32 MeV, voxels below the detector's
    threshold (15.15 keV) set to zero. ZN: images ``(N, 44, 44)`` int32 of Cherenkov photons per
    fibre, in the orientation of :data:`calogen.geometry.ZN` (row 0 at the top, i.e. largest y;
    column 0 at the left, smallest x); the particle enters the face at ``impact_mm`` along the
    block's axis (+z).

    Args:
        detector: detector name (:data:`calogen.physics.geant4.detectors.DETECTORS`).
        pdg: primary particle (one of the physics list's, :data:`PHYSICS_LISTS`).
        energies_mev: kinetic energy of each primary, MeV.
        seed: run seed; event ``first_index + i`` is seeded from ``(seed, first_index + i)``.
        physics, cut_mm: physics list and production cut (fixed per process).
        first_index: global index of the first event (for shards).
        impact_mm: ZN only: entry point (x, y) on the face, mm from its centre (x to the
            right, y up), one pair for all showers or ``(N, 2)``; the default is the centre.
    """
    cfg = EngineConfig(detector, physics, cut_mm)
    d = det.get_detector(detector)
    energies = _energies(energies_mev)
    if isinstance(d, det.FibreBlockDetector):
        impacts = _impacts(impact_mm, len(energies), d)
        batch = engine(cfg).run(int(pdg), energies, int(seed), int(first_index), impacts)
        counts = np.rint(batch.voxels).astype(np.int32)
        return counts.reshape(len(energies), *d.grid.shape)
    if not isinstance(d, det.CylinderDetector):
        raise ValueError(f"detector {detector!r} is read out as points: use run_points")
    batch = engine(cfg).run(int(pdg), energies, int(seed), int(first_index))
    out = batch.voxels.astype(np.float32)
    out[out < d.threshold_mev] = 0.0
    return out


def run_points(detector: str, pdg: int, energies_mev: ArrayLike, seed: int, *,
               physics: str = "em", cut_mm: float = DEFAULT_CUT_MM, first_index: int = 0
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Point-cloud showers of a slab detector (``ild``): points ``(P, 4)`` float32
    ``(x, y, z, E)`` in mm / MeV (x, y transverse from the shower axis, z the depth of the Si
    layer's middle from the front face) and ``(N,)`` points per shower. Arguments as in
    :func:`run_showers`."""
    cfg = EngineConfig(detector, physics, cut_mm)
    d = det.get_detector(detector)
    if not isinstance(d, det.SlabDetector):
        raise ValueError(f"detector {detector!r} is read out as voxels: use run_showers")
    batch = engine(cfg).run(int(pdg), _energies(energies_mev), int(seed), int(first_index))
    counts = np.array([len(p) for p in batch.points], dtype=np.int64)
    points = (np.concatenate(batch.points) if batch.points else np.zeros((0, 4)))
    # Depth bins alternate Si layer / gap: keep Si layers only (even bins).
    keep = np.ones(len(points), dtype=bool)
    if len(points):
        mids = np.asarray([0.5 * (a + b) for a, b in d.sensitive_edges_mm()])
        keep = np.isclose(points[:, 2][:, None], mids[None, :], atol=1e-6).any(axis=1)
    shower = np.repeat(np.arange(len(counts)), counts)
    counts = np.bincount(shower[keep], minlength=len(counts)).astype(np.int64)
    return points[keep].astype(np.float32), counts


def run_totals(detector: str, pdg: int, energies_mev: ArrayLike, seed: int, *,
               physics: str = "em", cut_mm: float = DEFAULT_CUT_MM, first_index: int = 0
               ) -> NDArray[np.float64]:
    """Per-event deposits ``(N, 2)`` MeV: all materials, and the sensitive material (whole
    detector, no readout binning, no threshold) -- the sampling fraction's numerator is column 1.
    Arguments as in :func:`run_showers`."""
    cfg = EngineConfig(detector, physics, cut_mm)
    batch = engine(cfg).run(int(pdg), _energies(energies_mev), int(seed), int(first_index))
    return batch.totals.copy()


def producer_info(detector: str, seed: int, *, physics: str = "em",
                  cut_mm: float = DEFAULT_CUT_MM) -> dict[str, Any]:
    """What the ShowerSet's producer attribute records about a Geant4 run."""
    cfg = EngineConfig(detector, physics, cut_mm)
    return {"engine": "geant4", "geant4_version": geant4_version(), "physics_list": cfg.physics,
            "physics_list_content": PHYSICS_LIST_CONTENT[cfg.physics],
            "production_cut_mm": cfg.cut_mm, "seed": int(seed), "random_engine": "MixMaxRng",
            "seeding": "per event from (seed, event index)",
            "detector": det.get_detector(detector).to_dict()}


def readout_geometry(detector: str) -> Any:
    """The readout of ``detector``: a ``LayeredVoxelGeometry`` (cylinders), a
    ``PointCloudVolume`` (slabs) or a ``FibreGrid`` (the ZN)."""
    return det.get_detector(detector).geometry()
