"""Training data in memory: a ShowerSet split by condition group and put in network space.

:func:`load_training_data` opens a ShowerSet of 2-D showers (e.g. ZN images), optionally keeps
a seeded random subset of ``max_events`` rows, splits the rows into train/validation/test with
:func:`calogen.data.split.grouped_split` on the file's ``condition_id`` (repeats of one particle
never straddle two splits), fits the :class:`~calogen.data.transforms.Transforms` on the
training split only, and returns each split as :class:`ShowerTensors`.

Showers are held in memory as float32 ``log1p`` counts: ``4 * H * W`` bytes per event (7.7 kB
for a 44x44 ZN image, 0.8 GB per 100k events).
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
from calogen.data.showerset import ShowerSet
from calogen.data.split import grouped_split
from calogen.data.transforms import Transforms
from calogen.models.generator import ModelSpec, TrainBatch

READ_BATCH = 8192
"""Events read from the file per block while filling the tensors."""


@dataclass
class ShowerTensors:
    """One split in memory.

    Attributes:
        x: ``(N, 1, H, W)`` float32, ``log1p`` of photon counts (network space).
        cond: ``(N, k)`` float32 standardised conditions.
        species: ``(N,)`` int64 species indices.
        group: ``(N,)`` int64 condition-group ids.
        conditions: ``(N, k)`` float32 numpy, physical conditions (for validation sampling).
        pdg: ``(N,)`` int32 numpy PDG codes.
        rows: ``(N,)`` int64 numpy row indices in the source file.
    """

    x: Tensor
    cond: Tensor
    species: Tensor
    group: Tensor
    conditions: NDArray[np.float32]
    pdg: NDArray[np.int32]
    rows: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, indices: ArrayLike | Tensor) -> TrainBatch:
        """The rows ``indices`` (positions in this split) as a CPU :class:`TrainBatch`."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor)
                              else indices, dtype=torch.int64)
        return TrainBatch(self.x[idx], self.cond[idx], self.species[idx], self.group[idx])

    def subset(self, indices: ArrayLike) -> ShowerTensors:
        """A new :class:`ShowerTensors` with the rows ``indices`` (positions in this split)."""
        idx = np.asarray(indices, dtype=np.int64)
        t = torch.as_tensor(idx)
        return ShowerTensors(self.x[t], self.cond[t], self.species[t], self.group[t],
                             self.conditions[idx], self.pdg[idx], self.rows[idx])

    def photons(self) -> NDArray[np.float32]:
        """Physical showers ``(N, H, W)`` (photon counts, float32) from :attr:`x`."""
        return Transforms.inverse_showers(self.x[:, 0]).round().numpy()


@dataclass
class TrainingData:
    """Train/validation/test splits, their transforms, the model spec and the data fingerprint.

    Attributes:
        train, val, test: the splits.
        transforms: fitted on ``train`` (unless given to :func:`load_training_data`).
        spec: the :class:`ModelSpec` to build a model with (shape, detector, transforms).
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


def _tensors(ss: ShowerSet, rows: NDArray[np.int64], conditions: np.ndarray, pdg: np.ndarray,
             groups: np.ndarray, transforms: Transforms) -> ShowerTensors:
    h, w = ss.shower_shape
    x = torch.empty((rows.size, 1, h, w), dtype=torch.float32)
    start = 0
    for block in ss.iter_batches(READ_BATCH, indices=rows):
        n = len(block)
        x[start:start + n, 0] = Transforms.showers(block.showers)
        start += n
    cond = conditions[rows].astype(np.float32)
    codes = pdg[rows].astype(np.int32)
    return ShowerTensors(x, transforms.conditions(cond), transforms.species(codes),
                         torch.as_tensor(groups[rows].astype(np.int64)), cond, codes,
                         rows.astype(np.int64))


def load_training_data(path: str | Path, *, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                       seed: int = 0, max_events: int | None = None,
                       transforms: Transforms | None = None) -> TrainingData:
    """Load a ShowerSet of 2-D showers for training.

    Args:
        path: the ShowerSet file.
        fractions: train/val/test shares of rows (whole condition groups go to one split).
        seed: seed of the row subset (``max_events``) and of the group split.
        max_events: keep a seeded random subset of this many rows (``None``: all).
        transforms: use these transforms (e.g. a pretrained model's) instead of fitting.

    Raises:
        ShowerSetError: the file is unreadable, or its showers are not 2-D images.
        ValueError: the training split is empty.
    """
    path = Path(path)
    with ShowerSet.open(path) as ss:
        meta = ss.meta
        if len(meta.shower_shape) != 2:
            raise ShowerSetError.bad_field(path, "showers", "2-D showers (N, H, W) for the "
                                           "image trainer", f"shower shape {meta.shower_shape}")
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
    h, w = meta.shower_shape
    spec = ModelSpec((int(h), int(w)), transforms, meta.detector)
    fingerprint = {
        "path": str(path.resolve()), "n_events": int(n), "sha256": sha,
        "detector": meta.detector, "max_events": max_events, "seed": int(seed),
        "fractions": [float(f) for f in fractions],
        "n_train": int(rows["train"].size), "n_val": int(rows["val"].size),
        "n_test": int(rows["test"].size),
    }
    return TrainingData(splits["train"], splits["val"], splits["test"], transforms, spec,
                        fingerprint)
