"""Training data in memory: a ShowerSet split by condition group and put in network space.

:func:`load_training_data` opens a ShowerSet of images, voxels or point clouds, optionally keeps
a seeded random subset of ``max_events`` rows, splits the rows into train/validation/test with
:func:`calogen.data.split.grouped_split` on the file's ``condition_id`` (repeats of one particle
never straddle two splits), fits the :class:`~calogen.data.transforms.Transforms` on the
training split only, and returns each split as :class:`ShowerTensors` with the
:class:`~calogen.models.generator.ModelSpec` built from the file's geometry.

In network space images and voxels are ``log1p`` of their cell values (photons, MeV); point
clouds keep their features ``(x, y, z, E)`` in mm and MeV as they are (a point-cloud family
chooses its own scaling). Memory: ``4 * n_cells`` bytes per image or voxel shower (7.7 kB for a
44x44 ZN image, 0.8 GB per 100k events), 16 bytes per point for point clouds, which are held
ragged and padded per batch (to the batch's largest shower, not the set's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from calogen.data.errors import ShowerSetError
from calogen.data.showerset import ShowerSet, ShowerSetMeta
from calogen.data.split import grouped_split
from calogen.data.transforms import Transforms
from calogen.geometry import Geometry
from calogen.models.generator import ModelSpec, TrainBatch, image_geometry

READ_BATCH = 8192
"""Events read from the file per block while filling the tensors."""


@dataclass
class ShowerTensors:
    """One split in memory.

    Attributes:
        x: network-space showers: images ``(N, 1, H, W)``, voxels ``(N, n_voxels)`` float32
            (``log1p`` of the cell values); point clouds ``(P, 4)`` float32, the points of the
            ``N`` showers one after the other (see :attr:`counts`).
        cond: ``(N, k)`` float32 standardised conditions.
        species: ``(N,)`` int64 species indices.
        condition_id: ``(N,)`` int64 condition-group ids.
        conditions: ``(N, k)`` float32 numpy, physical conditions (for validation sampling).
        pdg: ``(N,)`` int32 numpy PDG codes.
        rows: ``(N,)`` int64 numpy row indices in the source file.
        counts: point clouds: ``(N,)`` int64 points per shower; ``None`` otherwise.
    """

    x: Tensor
    cond: Tensor
    species: Tensor
    condition_id: Tensor
    conditions: NDArray[np.float32]
    pdg: NDArray[np.int32]
    rows: NDArray[np.int64]
    counts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.cond.shape[0])

    def _starts(self) -> Tensor:
        assert self.counts is not None
        return torch.cumsum(self.counts, 0) - self.counts

    def batch(self, indices: ArrayLike | Tensor) -> TrainBatch:
        """The rows ``indices`` (positions in this split) as a CPU :class:`TrainBatch`; point
        clouds padded with zeros to the batch's largest shower, with their mask."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor)
                              else indices, dtype=torch.int64)
        if self.counts is None:
            return TrainBatch(self.x[idx], self.cond[idx], self.species[idx],
                              self.condition_id[idx])
        counts = self.counts[idx]
        width = int(counts.max()) if counts.numel() else 0
        slot = torch.arange(width, dtype=torch.int64)
        mask = slot[None, :] < counts[:, None]
        where = (self._starts()[idx][:, None] + slot[None, :])[mask]
        x = torch.zeros((len(idx), width, 4), dtype=torch.float32)
        x[mask] = self.x[where]
        return TrainBatch(x, self.cond[idx], self.species[idx], self.condition_id[idx], mask)

    def subset(self, indices: ArrayLike) -> ShowerTensors:
        """A new :class:`ShowerTensors` with the rows ``indices`` (positions in this split)."""
        idx = np.asarray(indices, dtype=np.int64)
        t = torch.as_tensor(idx)
        x, counts = self.x, self.counts
        if counts is not None:
            starts = self._starts()[t]
            x = torch.cat([self.x[int(s):int(s) + int(c)]
                           for s, c in zip(starts, counts[t], strict=True)]) \
                if len(idx) else self.x[:0]
            counts = counts[t]
        else:
            x = self.x[t]
        return ShowerTensors(x, self.cond[t], self.species[t], self.condition_id[t],
                             self.conditions[idx], self.pdg[idx], self.rows[idx], counts)

    def showers(self) -> NDArray[np.float32]:
        """Physical showers from :attr:`x`: images ``(N, H, W)`` (photon counts, rounded,
        float32), voxels ``(N, n_voxels)`` (MeV); point clouds: the ``(P, 4)`` points."""
        if self.counts is not None:
            return self.x.numpy()
        if self.x.ndim == 4:
            return Transforms.inverse_showers(self.x[:, 0]).round().numpy()
        return Transforms.inverse_showers(self.x).numpy()

    def photons(self) -> NDArray[np.float32]:
        """Images: physical showers ``(N, H, W)`` (photon counts, float32) from :attr:`x`."""
        if self.x.ndim != 4:
            raise ValueError("photons() is for images; use showers()")
        return self.showers()


@dataclass
class TrainingData:
    """Train/validation/test splits, their transforms, the model spec and the data fingerprint.

    Attributes:
        train, val, test: the splits.
        transforms: fitted on ``train`` (unless given to :func:`load_training_data`).
        spec: the :class:`ModelSpec` to build a model with (geometry, transforms).
        fingerprint: JSON-serialisable identity of the data (stored with the model).
    """

    train: ShowerTensors
    val: ShowerTensors
    test: ShowerTensors
    transforms: Transforms
    spec: ModelSpec
    fingerprint: dict[str, Any]


def data_sha256(conditions: np.ndarray, pdg: np.ndarray) -> str:
    """sha256 of the conditions (little-endian float32) followed by the PDG codes (int32)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(conditions, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(pdg, dtype="<i4").tobytes())
    return h.hexdigest()


def training_geometry(meta: ShowerSetMeta, path: str | Path) -> Geometry:
    """The geometry of a ShowerSet for a model: ``meta.geometry_object()``; for an image file
    whose geometry description is incomplete (no pitch), the image geometry of its shower
    shape named after its detector (:func:`calogen.models.generator.image_geometry`).

    Raises:
        ShowerSetError: an image file whose showers are not 2-D, a voxel or point-cloud file
            whose geometry cannot be rebuilt.
    """
    if meta.kind == "image" and len(meta.shower_shape) != 2:
        raise ShowerSetError.bad_field(path, "showers", "2-D showers (N, H, W) for an image "
                                       "geometry", f"shower shape {meta.shower_shape}")
    try:
        return meta.geometry_object()
    except ValueError as exc:
        if meta.kind != "image":
            raise ShowerSetError.bad_field(path, "attribute geometry", f"a valid {meta.kind} "
                                           f"geometry description", str(exc)) from None
        return image_geometry((int(meta.shower_shape[0]), int(meta.shower_shape[1])),
                              meta.detector)


def _tensors(ss: ShowerSet, rows: NDArray[np.int64], conditions: np.ndarray, pdg: np.ndarray,
             groups: np.ndarray, transforms: Transforms) -> ShowerTensors:
    kind = ss.meta.kind
    counts: Tensor | None = None
    if kind == "points":
        blocks, sizes = [], []
        for block in ss.iter_batches(READ_BATCH, indices=rows):
            blocks.append(torch.as_tensor(np.asarray(block.showers, dtype=np.float32)))
            sizes.append(torch.as_tensor(np.asarray(block.counts, dtype=np.int64)))
        x = torch.cat(blocks) if blocks else torch.zeros((0, 4), dtype=torch.float32)
        counts = torch.cat(sizes) if sizes else torch.zeros(0, dtype=torch.int64)
    else:
        shape = (1, *ss.shower_shape) if kind == "image" else tuple(ss.shower_shape)
        x = torch.empty((rows.size, *shape), dtype=torch.float32)
        start = 0
        for block in ss.iter_batches(READ_BATCH, indices=rows):
            n = len(block)
            x[start:start + n] = Transforms.showers(block.showers).reshape(n, *shape)
            start += n
    cond = conditions[rows].astype(np.float32)
    codes = pdg[rows].astype(np.int32)
    return ShowerTensors(x, transforms.conditions(cond), transforms.species(codes),
                         torch.as_tensor(groups[rows].astype(np.int64)), cond, codes,
                         rows.astype(np.int64), counts)


def load_training_data(path: str | Path, *, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                       seed: int = 0, max_events: int | None = None,
                       transforms: Transforms | None = None) -> TrainingData:
    """Load a ShowerSet of images, voxels or point clouds for training.

    Args:
        path: the ShowerSet file.
        fractions: train/val/test shares of rows (whole condition groups go to one split).
        seed: seed of the row subset (``max_events``) and of the group split.
        max_events: keep a seeded random subset of this many rows (``None``: all).
        transforms: use these transforms (e.g. a pretrained model's) instead of fitting.

    Raises:
        ShowerSetError: the file is unreadable, or its geometry cannot be rebuilt.
        ValueError: the training split is empty.
    """
    path = Path(path)
    with ShowerSet.open(path) as ss:
        meta = ss.meta
        geometry = training_geometry(meta, path)
        conditions = ss.conditions()
        pdg = ss.pdg()
        groups = ss.condition_ids()
        n = len(ss)
        sha = data_sha256(conditions, pdg)
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be positive, got {max_events}")
        if max_events is not None and max_events < n:
            rng = np.random.default_rng(seed)
            selected = np.sort(rng.choice(n, size=max_events, replace=False)).astype(np.int64)
        else:
            selected = np.arange(n, dtype=np.int64)
        parts = grouped_split(groups[selected], fractions, seed)
        rows = {name: selected[idx] for name, idx in parts.items()}
        if rows["train"].size == 0:
            raise ValueError(f"{path}: the training split is empty ({selected.size} events, "
                             f"fractions {list(fractions)})")
        if transforms is None:
            transforms = Transforms.fit(conditions[rows["train"]], pdg[rows["train"]],
                                        list(meta.condition_columns))
        elif transforms.n_conditions != conditions.shape[1]:
            raise ShowerSetError.bad_field(
                path, "conditions", f"{transforms.n_conditions} columns (as the given "
                f"transforms)", f"{conditions.shape[1]} columns")
        splits = {name: _tensors(ss, r, conditions, pdg, groups, transforms)
                  for name, r in rows.items()}
    spec = ModelSpec(geometry, transforms)
    fingerprint = {
        "path": str(path.resolve()), "n_events": int(n), "sha256": sha,
        "detector": meta.detector, "max_events": max_events, "seed": int(seed),
        "fractions": [float(f) for f in fractions],
        "n_train": int(rows["train"].size), "n_val": int(rows["val"].size),
        "n_test": int(rows["test"].size),
    }
    return TrainingData(splits["train"], splits["val"], splits["test"], transforms, spec,
                        fingerprint)
