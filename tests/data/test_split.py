"""Grouped splits keep every group in one split; condition_groups finds repeated particles."""

from __future__ import annotations

import numpy as np
import pytest

from calogen.data import condition_groups, grouped_split


def _groups(n_groups: int = 400, seed: int = 0) -> np.ndarray:
    """Row group ids: groups of 1..9 rows, shuffled."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.permutation(n_groups) * 3 + 11, rng.integers(1, 10, n_groups))
    return rng.permutation(ids)


def test_partition_and_no_group_in_two_splits() -> None:
    ids = _groups()
    split = grouped_split(ids, (0.7, 0.2, 0.1), seed=3)
    rows = np.concatenate(list(split.values()))
    np.testing.assert_array_equal(np.sort(rows), np.arange(ids.size))
    for name, idx in split.items():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0), name
    sets = {name: set(ids[idx].tolist()) for name, idx in split.items()}
    assert not sets["train"] & sets["val"]
    assert not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]


def test_roughly_respects_fractions() -> None:
    ids = _groups(2000)
    split = grouped_split(ids, (0.8, 0.1, 0.1), seed=0)
    shares = [split[k].size / ids.size for k in ("train", "val", "test")]
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.01)


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    ids = _groups()
    a, b = grouped_split(ids, seed=5), grouped_split(ids, seed=5)
    c = grouped_split(ids, seed=6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["test"], c["test"])


def test_zero_fraction_gives_empty_split() -> None:
    split = grouped_split(_groups(), (0.9, 0.0, 0.1))
    assert split["val"].size == 0 and split["test"].size > 0


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.1, -0.1, 0.0),
                                       (0.5, float("nan"), 0.5)])
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        grouped_split(np.arange(10), fractions)


def test_condition_groups_identical_rows_share_an_id() -> None:
    cond = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [1.0, 2.5]],
                    dtype=np.float32)
    pdg = np.array([2112, 2112, 2112, 2212, 2112, 2112], dtype=np.int32)
    groups = condition_groups(cond, pdg)
    assert groups.dtype == np.int64
    np.testing.assert_array_equal(groups, [0, 1, 0, 2, 1, 3])


def test_condition_groups_feed_grouped_split() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 9)).astype(np.float32)
    rows = rng.integers(0, 50, 600)
    groups = condition_groups(base[rows], np.full(600, 2112))
    np.testing.assert_array_equal(groups[np.argsort(rows, kind="stable")].size, 600)
    assert np.unique(groups).size == np.unique(rows).size
    split = grouped_split(groups, seed=1)
    train_rows, test_rows = set(rows[split["train"]]), set(rows[split["test"]])
    assert not train_rows & test_rows
