"""Train/validation/test splits that never separate repeated responses of one particle.

ZDC data sets repeat the same incoming particle many times (the shower varies, the conditions
do not). A random row split then puts the same conditions in training and test sets and the
test score measures memorisation. :func:`grouped_split` assigns whole groups to one split;
:func:`condition_groups` builds the groups from the conditions themselves when a file has no
meaningful ``condition_id``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> NDArray[np.float64]:
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.shape != (len(SPLIT_NAMES),):
        raise ValueError(f"fractions: expected {len(SPLIT_NAMES)} values for "
                         f"{'/'.join(SPLIT_NAMES)}, found {list(fractions)}")
    if not np.all(np.isfinite(frac)) or np.any(frac < 0):
        raise ValueError(f"fractions: expected finite non-negative values, found {list(fractions)}")
    if not math.isclose(float(frac.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions: expected a sum of 1, found {float(frac.sum())} "
                         f"for {list(fractions)}")
    return frac


def grouped_split(group_ids: ArrayLike, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[str, NDArray[np.int64]]:
    """Split rows into train/val/test so that every group lands in exactly one split.

    The unique group ids are shuffled with a permutation seeded by ``seed``; walking the
    shuffled groups, each goes to the split whose share of the cumulative row count contains
    the group's midpoint. Split sizes therefore follow ``fractions`` in *rows*, up to the size
    of one group. The result depends only on ``(set of ids, group sizes, seed)``.

    Args:
        group_ids: ``(N,)`` integer (or any sortable) group id per row.
        fractions: shares of rows for train, val, test; non-negative, summing to 1.
        seed: seed of the group permutation.

    Returns:
        ``{"train": rows, "val": rows, "test": rows}``, each sorted int64 row indices.
    """
    frac = _check_fractions(fractions)
    ids = np.asarray(group_ids)
    if ids.ndim != 1:
        raise ValueError(f"group_ids: expected shape (N,), found {ids.shape}")
    n = ids.size
    if n == 0:
        return {name: np.empty(0, dtype=np.int64) for name in SPLIT_NAMES}
    _, group_of_row, sizes = np.unique(ids, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(sizes.size)
    shuffled_sizes = sizes[order]
    midpoints = (np.cumsum(shuffled_sizes) - shuffled_sizes / 2.0) / n
    edges = np.cumsum(frac)[:-1]
    split_of_shuffled = np.searchsorted(edges, midpoints, side="right")
    split_of_group = np.empty(sizes.size, dtype=np.int64)
    split_of_group[order] = split_of_shuffled
    split_of_row = split_of_group[group_of_row.reshape(-1)]
    return {name: np.flatnonzero(split_of_row == i).astype(np.int64)
            for i, name in enumerate(SPLIT_NAMES)}


def condition_groups(conditions: ArrayLike, pdg: ArrayLike) -> NDArray[np.int64]:
    """Group id per row: rows with bitwise-identical conditions *and* PDG code share an id.

    Ids are ``0, 1, 2, ...`` in order of first appearance. Comparison is on the stored bytes, so
    ``0.0`` and ``-0.0`` (or two NaN payloads) count as different.

    Args:
        conditions: ``(N, k)`` conditions.
        pdg: ``(N,)`` PDG codes.

    Returns:
        ``(N,)`` int64 group ids.
    """
    cond = np.ascontiguousarray(conditions)
    codes = np.ascontiguousarray(pdg)
    if cond.ndim != 2:
        raise ValueError(f"conditions: expected shape (N, k), found {cond.shape}")
    if codes.shape != (cond.shape[0],):
        raise ValueError(f"pdg: expected shape ({cond.shape[0]},), found {codes.shape}")
    n = cond.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    row_bytes = np.concatenate(
        [cond.view(np.uint8).reshape(n, -1), codes.view(np.uint8).reshape(n, -1)], axis=1)
    keys = np.ascontiguousarray(row_bytes).view(np.dtype((np.void, row_bytes.shape[1])))
    _, first, inverse = np.unique(keys.reshape(-1), return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size, dtype=np.int64)
    return rank[inverse.reshape(-1)]


def write_rows(source: str | Path, rows: ArrayLike, out: str | Path, *,
               overwrite: bool = False, batch_size: int = 8192) -> Path:
    """Copy the given rows (in increasing order) of a ShowerSet into a new ShowerSet.

    Used to materialise a split (e.g. the held-out test conditions) as a file of its own, with
    the same metadata; the producer records the source and that it is a subset.
    """
    from calogen.data.showerset import ShowerSet, ShowerSetWriter

    idx = np.unique(np.asarray(rows, dtype=np.int64))
    with ShowerSet.open(source) as src:
        m = src.meta
        if len(idx) and (idx[0] < 0 or idx[-1] >= len(src)):
            raise ValueError(f"{source}: rows must lie in [0, {len(src)}), got "
                             f"[{idx[0]}, {idx[-1]}]")
        producer = {**m.producer, "subset_of": str(Path(source)), "subset_rows": int(len(idx))}
        with ShowerSetWriter(out, shower_shape=m.shower_shape, detector=m.detector,
                             geometry=m.geometry, condition_columns=m.condition_columns,
                             condition_units=m.condition_units, producer=producer,
                             shower_dtype=m.shower_dtype, shower_units=m.shower_units,
                             overwrite=overwrite) as writer:
            for b in src.iter_batches(batch_size, indices=idx):
                writer.append(b.showers, b.conditions, b.pdg, b.condition_id, b.counts)
    return Path(out)
