"""The CaloChallenge 2022 voxel binnings (Giannelli, Kasieczka, Krause, Nachman, Salamani, Shih,
Zaborowska, arXiv:2410.21611) read from their XML definition.

An XML binning holds one ``<Bin pid=… name=… etaMin=… etaMax=…>`` per particle with one
``<Layer id=… r_edges="0,r1,…" n_bin_alpha=…/>`` per calorimeter layer (radii in mm). A layer with
``r_edges="0"`` has no voxels (the ATLAS samplings not read out in dataset 1) and is left out, so
the layer ids of dataset 1 are the ATLAS sampling numbers (photons 0, 1, 2, 3, 12; pions 0, 1, 2,
3, 12, 13, 14). Voxel order as the official files: layer by layer, angle bins outer, radial bins
inner (:mod:`calogen.geometry.voxels`). The four official files ship with calogen
(``calogen/geometry/binnings``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from importlib import resources
from os import PathLike
from pathlib import Path

import numpy as np

from calogen.geometry.voxels import LayeredVoxelGeometry, VoxelLayer

__all__ = ["CALOCHALLENGE_DATASETS", "CaloChallengeBinning", "calochallenge_binning",
           "calochallenge_dataset_of", "read_binning_xml"]

CALOCHALLENGE_DATASETS: dict[str, str] = {
    "1-photons": "binning_dataset_1_photons.xml",
    "1-pions": "binning_dataset_1_pions.xml",
    "2": "binning_dataset_2.xml",
    "3": "binning_dataset_3.xml",
}
"""Dataset name (as on the command line) -> the official binning file shipped with calogen."""


@dataclass(frozen=True)
class CaloChallengeBinning:
    """One particle's binning from an XML file: the voxel geometry plus the XML's particle
    attributes (``eta_min``/``eta_max`` as written, in units of 0.01 in |eta|; ``None`` when
    absent)."""

    geometry: LayeredVoxelGeometry
    pid: int
    particle: str
    eta_min: float | None
    eta_max: float | None


def _number(elem: ET.Element, key: str, where: str) -> float | None:
    text = elem.attrib.get(key)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: attribute {key!r} must be a number, found {text!r}") from None


def read_binning_xml(path: str | PathLike[str], name: str | None = None) -> CaloChallengeBinning:
    """Read a CaloChallenge binning XML (the official files or any of the same format).

    ``ValueError`` naming the file, the layer and the attribute when malformed; the geometry is
    named ``name`` (default: the file's stem)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"{path}: not a readable binning XML ({exc})") from None
    bins = [e for e in root.iter("Bin")]
    if len(bins) != 1:
        raise ValueError(f"{path}: expected exactly one <Bin> element (one particle), "
                         f"found {len(bins)}")
    particle = bins[0]
    pid_value = _number(particle, "pid", f"{path} <Bin>")
    if pid_value is None:
        raise ValueError(f"{path} <Bin>: attribute 'pid' is missing")
    layers: list[VoxelLayer] = []
    for elem in particle.iter("Layer"):
        where = f"{path} <Layer id={elem.attrib.get('id')!r}>"
        try:
            layer_id = int(elem.attrib["id"])
            edges = tuple(float(v) for v in elem.attrib["r_edges"].split(","))
            n_alpha = int(elem.attrib["n_bin_alpha"])
        except KeyError as exc:
            raise ValueError(f"{where}: attribute {exc.args[0]!r} is missing") from None
        except ValueError as exc:
            raise ValueError(f"{where}: expected integer id and n_bin_alpha and "
                             f"comma-separated r_edges in mm ({exc})") from None
        if len(edges) < 2:
            continue  # a layer without voxels (r_edges="0")
        layers.append(VoxelLayer(layer_id, edges, n_alpha))
    if not layers:
        raise ValueError(f"{path}: no <Layer> with at least two r_edges")
    try:
        geometry = LayeredVoxelGeometry(name or path.stem, tuple(layers))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return CaloChallengeBinning(geometry, int(pid_value), particle.attrib.get("name", ""),
                                _number(particle, "etaMin", f"{path} <Bin>"),
                                _number(particle, "etaMax", f"{path} <Bin>"))


@cache
def calochallenge_binning(dataset: str) -> CaloChallengeBinning:
    """The official binning of a CaloChallenge dataset (``"1-photons"``, ``"1-pions"``, ``"2"``,
    ``"3"``); the geometry is named ``"calochallenge-<dataset>"``."""
    if dataset not in CALOCHALLENGE_DATASETS:
        raise ValueError(f"unknown CaloChallenge dataset {dataset!r}; expected one of "
                         f"{', '.join(CALOCHALLENGE_DATASETS)}")
    ref = resources.files("calogen.geometry") / "binnings" / CALOCHALLENGE_DATASETS[dataset]
    with resources.as_file(ref) as path:
        return read_binning_xml(path, name=f"calochallenge-{dataset}")


def calochallenge_dataset_of(geometry: object, rtol: float = 1e-6) -> str | None:
    """The CaloChallenge dataset whose official binning ``geometry`` has (same layer ids, angle
    bins and radial edges within ``rtol``), whatever its name; ``None`` for any other."""
    if not isinstance(geometry, LayeredVoxelGeometry):
        return None
    for dataset in CALOCHALLENGE_DATASETS:
        official = calochallenge_binning(dataset).geometry
        if official.n_voxels != geometry.n_voxels or official.layer_ids != geometry.layer_ids:
            continue
        if all(a.n_alpha == b.n_alpha and len(a.r_edges_mm) == len(b.r_edges_mm)
               and np.allclose(a.r_edges_mm, b.r_edges_mm, rtol=rtol, atol=1e-9)
               for a, b in zip(official.layers, geometry.layers, strict=True)):
            return dataset
    return None
