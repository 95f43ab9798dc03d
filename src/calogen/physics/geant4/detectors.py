"""Physical detectors of the Geant4 engine: material geometry and the readout it is scored into.

Numbers that define a detector live here, with their source:

- ``ds2`` / ``ds3``: the CaloChallenge 2022 datasets 2 and 3 detector (Geant4 example Par04):
  concentric cylinders of 90 sub-layers, 1.4 mm W then 0.3 mm Si, inner radius 80 cm; the readout
  is a cylindrical mesh on the particle's entrance point and direction: 45 layers of two
  sub-layers (3.4 mm), rings of 4.65 mm (ds2, 9 rings, 16 angle bins) or 2.325 mm (ds3, 18 rings,
  50 angle bins), energies below 15.15 keV per voxel set to zero. (Giannelli, Krause, Nachman,
  Faucett et al., "CaloChallenge 2022", arXiv:2410.21611, datasets 2 and 3.)
- ``ild``: an ILD-like Si-W ECAL section for point clouds (CaloClouds, Buhmann et al.,
  arXiv:2305.04847): 30 layers, 20 of 2.1 mm W and 10 of 4.2 mm W, each followed by 0.5 mm Si,
  layer pitches of :func:`calogen.geometry.points.ild_like_ecal` (the rest of each layer is air);
  photons at normal incidence; deposits clustered onto a transverse grid finer than the 5 x 5 mm
  cells.
- ``zn``: the ALICE neutron ZDC (``shared/PHYSICS.md``; ALICE ZDC TDR, CERN/LHCC 99-5): a
  tungsten-alloy block 7.04 x 7.04 x 100 cm (93 % W, 4.9 % Ni, 2.1 % Fe by mass at
  17.6 g/cm3) with 44 x 44 fused-silica fibres along the beam at 1.6 mm pitch (core only,
  0.365 mm diameter, the full 100 cm); Cherenkov photons counted per fibre
  (:class:`FibreBlockDetector`), read out as the :data:`calogen.geometry.ZN` image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calogen.geometry.calochallenge import calochallenge_binning, calochallenge_dataset_of
from calogen.geometry.points import PointCloudVolume, ild_like_ecal
from calogen.geometry.voxels import LayeredVoxelGeometry, uniform_layers
from calogen.geometry.zdc import ZN, FibreGrid

SENSITIVE_MATERIAL = "G4_Si"
ABSORBER_MATERIAL = "G4_W"
WORLD_MATERIAL = "G4_Galactic"
GAP_MATERIAL = "G4_AIR"


@dataclass(frozen=True)
class CylinderDetector:
    """Concentric W/Si cylinders (axis z) read out on a cylindrical mesh; the particle starts
    1 mm before the inner face at (0, r_inner, 0) and flies along +y (radially).

    Lengths in mm, energies in MeV.
    """

    name: str
    r_ring_mm: float
    n_rings: int
    n_alpha: int
    r_inner_mm: float = 800.0
    n_sublayers: int = 90
    absorber_mm: float = 1.4
    sensitive_mm: float = 0.3
    half_length_mm: float = 1000.0
    sublayers_per_layer: int = 2
    threshold_mev: float = 0.01515

    @property
    def n_layers(self) -> int:
        return self.n_sublayers // self.sublayers_per_layer

    @property
    def layer_mm(self) -> float:
        """Depth of one readout layer, mm."""
        return self.sublayers_per_layer * (self.absorber_mm + self.sensitive_mm)

    @property
    def r_outer_mm(self) -> float:
        return self.r_inner_mm + self.n_sublayers * (self.absorber_mm + self.sensitive_mm)

    @property
    def sampling_fraction_by_thickness(self) -> float:
        """Si / (Si + W) thickness ratio (not the energy sampling fraction)."""
        return self.sensitive_mm / (self.absorber_mm + self.sensitive_mm)

    @property
    def sensitive_material(self) -> str:
        return SENSITIVE_MATERIAL

    def geometry(self) -> LayeredVoxelGeometry:
        """The voxel readout (calogen voxel order: layer, angle, ring)."""
        edges = [i * self.r_ring_mm for i in range(self.n_rings + 1)]
        geometry = uniform_layers(f"geant4-{self.name}", self.n_layers, edges, self.n_alpha)
        dataset = calochallenge_dataset_of(geometry)
        return calochallenge_binning(dataset).geometry if dataset else geometry

    @property
    def n_voxels(self) -> int:
        return self.n_layers * self.n_rings * self.n_alpha

    # Gun and readout frame (global coordinates, mm).
    @property
    def gun_position_mm(self) -> tuple[float, float, float]:
        return (0.0, self.r_inner_mm - 1.0, 0.0)

    @property
    def direction(self) -> tuple[float, float, float]:
        return (0.0, 1.0, 0.0)

    @property
    def entrance_mm(self) -> tuple[float, float, float]:
        return (0.0, self.r_inner_mm, 0.0)

    @property
    def transverse_axis(self) -> tuple[float, float, float]:
        """The readout's angle-zero axis: the cylinder axis (z)."""
        return (0.0, 0.0, 1.0)

    def to_dict(self) -> dict[str, object]:
        return {"kind": "cylinders", "name": self.name, "r_inner_mm": self.r_inner_mm,
                "n_sublayers": self.n_sublayers, "absorber": ABSORBER_MATERIAL,
                "absorber_mm": self.absorber_mm, "sensitive": SENSITIVE_MATERIAL,
                "sensitive_mm": self.sensitive_mm, "half_length_mm": self.half_length_mm,
                "threshold_mev": self.threshold_mev}


class _FrontFaceAtOrigin:
    """Detectors whose front face is the plane z = 0: the particle starts 1 mm before it on the
    axis and flies along +z; the readout's angle-zero axis is x."""

    @property
    def gun_position_mm(self) -> tuple[float, float, float]:
        return (0.0, 0.0, -1.0)

    @property
    def direction(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 1.0)

    @property
    def entrance_mm(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)

    @property
    def transverse_axis(self) -> tuple[float, float, float]:
        return (1.0, 0.0, 0.0)


@dataclass(frozen=True)
class SlabDetector(_FrontFaceAtOrigin):
    """Planar layers (W, Si, air gap) stacked along +z from z = 0, transverse half-size
    ``half_width_mm``; the particle starts 1 mm before the front face at the centre and flies
    along +z. Read out as points clustered on ``cluster_mm`` squares per Si layer.
    """

    name: str
    volume: PointCloudVolume
    absorber_mm: tuple[float, ...]
    sensitive_mm: float = 0.5
    half_width_mm: float = 250.0
    cluster_mm: float = 1.25

    def __post_init__(self) -> None:
        pitch = np.diff(np.asarray(self.volume.layer_edges_mm))
        if len(pitch) != len(self.absorber_mm) or np.any(
                pitch < np.asarray(self.absorber_mm) + self.sensitive_mm - 1e-9):
            raise ValueError(f"slab detector {self.name!r}: each layer pitch must hold its "
                             f"absorber and {self.sensitive_mm} mm of Si")

    @property
    def n_layers(self) -> int:
        return len(self.absorber_mm)

    def sensitive_edges_mm(self) -> list[tuple[float, float]]:
        """Depth range of each Si layer, mm."""
        edges = self.volume.layer_edges_mm
        return [(edges[i] + w, edges[i] + w + self.sensitive_mm)
                for i, w in enumerate(self.absorber_mm)]

    @property
    def sensitive_material(self) -> str:
        return SENSITIVE_MATERIAL

    def geometry(self) -> PointCloudVolume:
        return self.volume

    def to_dict(self) -> dict[str, object]:
        return {"kind": "slabs", "name": self.name, "absorber": ABSORBER_MATERIAL,
                "absorber_mm": list(self.absorber_mm), "sensitive": SENSITIVE_MATERIAL,
                "sensitive_mm": self.sensitive_mm, "gap": GAP_MATERIAL,
                "layer_edges_mm": list(self.volume.layer_edges_mm),
                "half_width_mm": self.half_width_mm, "cluster_mm": self.cluster_mm}


FINE_STRUCTURE = 1.0 / 137.035999
"""The fine-structure constant alpha."""


@dataclass(frozen=True)
class FibreBlockDetector(_FrontFaceAtOrigin):
    """An absorber block (depth along +z from z = 0, square face centred on the axis) with a
    square grid of fibres along z, read out as an image of Cherenkov-photon counts per fibre.

    The particle starts 1 mm before the face at the impact point (x, y) and flies along +z.
    Per charged step in a fibre the mean photon count is the Frank-Tamm yield (Jelley,
    "Cerenkov Radiation and its Applications", 1958; PDG review "Passage of particles through
    matter", eq. 34.47)
    ``dN/dx = 2 pi alpha z^2 sin^2(theta_c) (1/lambda_min - 1/lambda_max)``, above the threshold
    beta > 1/n, times the fraction of the Cherenkov cone trapped downstream by the fibre's
    numerical aperture (meridional rays) and an overall ``efficiency`` (transport, coupling,
    photocathode), calibrated to the ALICE O2 yield of electrons and photons above 20 GeV
    (~1.05 photons/GeV, ``shared/PHYSICS.md``). Counts are Poisson per fibre per event.

    Lengths in mm, densities in g/cm3, wavelengths in nm.
    """

    name: str
    grid: FibreGrid
    depth_mm: float
    absorber_density: float
    absorber_mass_fractions: tuple[tuple[str, float], ...]
    fibre_diameter_mm: float
    fibre_material: str = "G4_SILICON_DIOXIDE"
    refractive_index: float = 1.458
    numerical_aperture: float = 0.22
    band_nm: tuple[float, float] = (300.0, 600.0)
    efficiency: float = 1.0

    def __post_init__(self) -> None:
        total = sum(f for _, f in self.absorber_mass_fractions)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"detector {self.name!r}: absorber mass fractions must sum to 1, "
                             f"found {total}")
        if self.fibre_diameter_mm >= min(self.pitch_mm):
            raise ValueError(f"detector {self.name!r}: fibres of {self.fibre_diameter_mm} mm "
                             f"do not fit a {self.pitch_mm} mm pitch")

    @property
    def pitch_mm(self) -> tuple[float, float]:
        return (10.0 * self.grid.pitch_cm[0], 10.0 * self.grid.pitch_cm[1])

    @property
    def half_width_mm(self) -> tuple[float, float]:
        """Half sizes of the face along (x, y), mm (columns run along x, rows along -y)."""
        return (0.5 * self.grid.shape[1] * self.pitch_mm[1],
                0.5 * self.grid.shape[0] * self.pitch_mm[0])

    @property
    def sensitive_material(self) -> str:
        return self.fibre_material

    @property
    def n_cells(self) -> int:
        return self.grid.n_pixels

    @property
    def yield_per_mm(self) -> float:
        """Detected photons per mm of a beta = 1, charge 1 track, before sin^2(theta_c) and the
        trapped fraction: 2 pi alpha (1/lambda_min - 1/lambda_max) x efficiency."""
        lo, hi = self.band_nm
        return 2 * math.pi * FINE_STRUCTURE * (1.0 / lo - 1.0 / hi) * 1e6 * self.efficiency

    def fibre_centres_mm(self) -> list[tuple[int, float, float]]:
        """(cell index, x, y) of every fibre: row 0 at the top (largest y), column 0 at the
        left (smallest x), index = row * n_cols + col."""
        rows, cols = self.grid.shape
        px, py = self.pitch_mm[1], self.pitch_mm[0]
        hx, hy = self.half_width_mm
        return [(i * cols + j, -hx + (j + 0.5) * px, hy - (i + 0.5) * py)
                for i in range(rows) for j in range(cols)]

    def geometry(self) -> FibreGrid:
        return self.grid

    def to_dict(self) -> dict[str, object]:
        return {"kind": "fibre-block", "name": self.name, "grid": self.grid.to_dict(),
                "depth_mm": self.depth_mm, "absorber_density_g_cm3": self.absorber_density,
                "absorber_mass_fractions": dict(self.absorber_mass_fractions),
                "fibre_material": self.fibre_material,
                "fibre_diameter_mm": self.fibre_diameter_mm,
                "refractive_index": self.refractive_index,
                "numerical_aperture": self.numerical_aperture, "band_nm": list(self.band_nm),
                "efficiency": self.efficiency}


ZN_EFFICIENCY = 0.28
"""Overall detection efficiency of the ZN fibres (see :class:`FibreBlockDetector`): 1.05 photons
per GeV for electrons (ALICE O2, ``shared/PHYSICS.md``) over the 3.745 +- 0.06 photons/GeV that
efficiency 1 gives for 50 GeV electrons at the face centre (60 showers, em and em+hadronic
lists, 0.7 mm cut)."""

Detector = CylinderDetector | SlabDetector | FibreBlockDetector

DETECTORS: dict[str, Detector] = {
    "ds2": CylinderDetector("ds2", r_ring_mm=4.65, n_rings=9, n_alpha=16),
    "ds3": CylinderDetector("ds3", r_ring_mm=2.325, n_rings=18, n_alpha=50),
    "ild": SlabDetector("ild", ild_like_ecal(), absorber_mm=(2.1,) * 20 + (4.2,) * 10),
    "zn": FibreBlockDetector("zn", ZN, depth_mm=1000.0, absorber_density=17.6,
                             absorber_mass_fractions=(("W", 0.93), ("Ni", 0.049), ("Fe", 0.021)),
                             fibre_diameter_mm=0.365, efficiency=ZN_EFFICIENCY),
}
"""The Geant4 engine's detectors by name."""


def get_detector(name: str) -> Detector:
    """The detector called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown Geant4 detector {name!r}: expected one of "
                         f"{sorted(DETECTORS)}") from None
