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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calogen.geometry.points import PointCloudVolume, ild_like_ecal
from calogen.geometry.voxels import LayeredVoxelGeometry, uniform_layers

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

    def geometry(self) -> LayeredVoxelGeometry:
        """The voxel readout (calogen voxel order: layer, angle, ring)."""
        edges = [i * self.r_ring_mm for i in range(self.n_rings + 1)]
        return uniform_layers(f"geant4-{self.name}", self.n_layers, edges, self.n_alpha)

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


@dataclass(frozen=True)
class SlabDetector:
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

    def geometry(self) -> PointCloudVolume:
        return self.volume

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

    def to_dict(self) -> dict[str, object]:
        return {"kind": "slabs", "name": self.name, "absorber": ABSORBER_MATERIAL,
                "absorber_mm": list(self.absorber_mm), "sensitive": SENSITIVE_MATERIAL,
                "sensitive_mm": self.sensitive_mm, "gap": GAP_MATERIAL,
                "layer_edges_mm": list(self.volume.layer_edges_mm),
                "half_width_mm": self.half_width_mm, "cluster_mm": self.cluster_mm}


Detector = CylinderDetector | SlabDetector

DETECTORS: dict[str, Detector] = {
    "ds2": CylinderDetector("ds2", r_ring_mm=4.65, n_rings=9, n_alpha=16),
    "ds3": CylinderDetector("ds3", r_ring_mm=2.325, n_rings=18, n_alpha=50),
    "ild": SlabDetector("ild", ild_like_ecal(), absorber_mm=(2.1,) * 20 + (4.2,) * 10),
}
"""The Geant4 engine's detectors by name."""


def get_detector(name: str) -> Detector:
    """The detector called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown Geant4 detector {name!r}: expected one of "
                         f"{sorted(DETECTORS)}") from None
