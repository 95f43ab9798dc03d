"""Readout geometry of the ALICE Zero Degree Calorimeters (ZN and ZP).

A ZDC response is an image of integer Cherenkov-photon counts, one pixel per quartz fibre.
Sources (see ``shared/PHYSICS.md``):

* ZN: tungsten alloy, 7.04 x 7.04 x 100 cm, 44 x 44 fibres at 1.6 mm pitch.
* ZP: brass, 22.4 x 12 x 150 cm, response image 56 x 30 (ALICE O2 convention), 4 mm pitch.

Image axes: ``image[row, col]``. Row 0 is the *top* of the detector face and column 0 its
*left* edge, as in ALICE O2 (``Detectors/ZDC/fastsimulation``). The row axis is the vertical
coordinate y for ZN; for ZP the 56-pixel axis is its long (22.4 cm) side. Physical coordinates
of a pixel centre are given in cm relative to the centre of the front face.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from calogen.geometry.base import ShapeKind, register_geometry

DetectorName = Literal["ZN", "ZP"]


@dataclass(frozen=True)
class FibreGrid:
    """A rectangular grid of fibres read out as an image.

    Attributes:
        name: detector name (``"ZN"`` or ``"ZP"``).
        shape: image shape ``(n_rows, n_cols)``.
        pitch_cm: centre-to-centre fibre distance along (rows, cols), cm.
        depth_cm: absorber length along the beam, cm.
        quadrant_split: (row, col) index at which the four tower quadrants are split.
    """

    name: str
    shape: tuple[int, int]
    pitch_cm: tuple[float, float]
    depth_cm: float
    quadrant_split: tuple[int, int]
    row_axis: Literal["-y", "x"] = "-y"

    @property
    def kind(self) -> ShapeKind:
        """Fibre grids are read out as images."""
        return "image"

    @property
    def shower_shape(self) -> tuple[int, int]:
        """Shape of one shower: ``(n_rows, n_cols)``."""
        return self.shape

    @property
    def n_pixels(self) -> int:
        """Number of fibres (pixels)."""
        return self.shape[0] * self.shape[1]

    @property
    def extent_cm(self) -> tuple[float, float]:
        """Full face size along (rows, cols), cm."""
        return (self.shape[0] * self.pitch_cm[0], self.shape[1] * self.pitch_cm[1])

    def pixel_centres_cm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Centres of the pixels along (rows, cols) in cm, relative to the face centre.

        The row coordinate increases downwards (row 0 at the top), the column coordinate to
        the right.
        """
        rows = (np.arange(self.shape[0], dtype=np.float64) + 0.5) * self.pitch_cm[0] \
            - self.extent_cm[0] / 2
        cols = (np.arange(self.shape[1], dtype=np.float64) + 0.5) * self.pitch_cm[1] \
            - self.extent_cm[1] / 2
        return rows, cols

    def face_to_image(self, x_cm: NDArray[np.float64], y_cm: NDArray[np.float64]
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Map face coordinates (x horizontal, y vertical; cm from the face centre) to the
        image's (row, col) coordinates in cm (see :meth:`pixel_centres_cm`).

        ZN (``row_axis="-y"``): rows run downwards (-y), columns along x.
        ZP (``row_axis="x"``): the 56-pixel row axis is the long horizontal side (x), columns y.
        """
        if self.row_axis == "-y":
            return -np.asarray(y_cm), np.asarray(x_cm)
        return np.asarray(x_cm), np.asarray(y_cm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in every ShowerSet file)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "shape": list(self.shape),
            "pitch_cm": list(self.pitch_cm),
            "depth_cm": self.depth_cm,
            "quadrant_split": list(self.quadrant_split),
            "row_axis": self.row_axis,
        }


    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FibreGrid:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the malformed field."""
        try:
            shape = tuple(int(v) for v in d["shape"])
            pitch = tuple(float(v) for v in d["pitch_cm"])
            split = tuple(int(v) for v in d.get("quadrant_split", (shape[0] // 2, shape[1] // 2)))
            grid = cls(name=str(d["name"]), shape=(shape[0], shape[1]),
                       pitch_cm=(pitch[0], pitch[1]), depth_cm=float(d.get("depth_cm", 0.0)),
                       quadrant_split=(split[0], split[1]),
                       row_axis=d.get("row_axis", "-y"))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"image geometry: expected name, shape [rows, cols] and pitch_cm "
                             f"[rows, cols] ({type(exc).__name__}: {exc})") from None
        if len(shape) != 2 or min(shape) < 1 or len(pitch) != 2 or min(pitch) <= 0:
            raise ValueError(f"image geometry: shape must be two positive integers and pitch_cm "
                             f"two positive numbers, found {list(shape)} and {list(pitch)}")
        if grid.row_axis not in ("-y", "x"):
            raise ValueError(f"image geometry field 'row_axis': expected '-y' or 'x', "
                             f"found {grid.row_axis!r:.20}")
        return grid


ZN = FibreGrid(name="ZN", shape=(44, 44), pitch_cm=(0.16, 0.16), depth_cm=100.0,
               quadrant_split=(22, 22))
"""ALICE neutron ZDC: 44 x 44 quartz fibres, 1.6 mm pitch (7.04 cm face), 100 cm of W alloy."""

ZP = FibreGrid(name="ZP", shape=(56, 30), pitch_cm=(0.4, 0.4), depth_cm=150.0,
               quadrant_split=(28, 15), row_axis="x")
"""ALICE proton ZDC: 56 x 30 fibre image (O2 convention), 4 mm pitch (22.4 x 12 cm), 150 cm
of brass."""

GRIDS: dict[str, FibreGrid] = {"ZN": ZN, "ZP": ZP}


def get_grid(name: str) -> FibreGrid:
    """Look up a fibre grid by (case-insensitive) detector name."""
    try:
        return GRIDS[name.upper()]
    except KeyError:
        raise ValueError(
            f"unknown ZDC detector {name!r}; expected one of {sorted(GRIDS)}") from None


def _image_from_dict(d: Mapping[str, Any]) -> FibreGrid:
    """A known grid when the description matches it exactly, else a new :class:`FibreGrid`."""
    grid = FibreGrid.from_dict(d)
    known = GRIDS.get(grid.name.upper())
    return known if known == grid else grid


register_geometry("image", _image_from_dict)
