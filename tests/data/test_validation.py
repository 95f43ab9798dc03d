"""Content validation: each rule, the first bad row named, bounded batches."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from calogen.data.errors import ShowerSetError
from calogen.data.showerset import ShowerSet, write_showerset
from calogen.data.validation import (
    ContentCheck,
    batch_events,
    validate_particles,
    validate_showerset,
)


def _write(path: Path, *, dtype: type = np.int32, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    showers = rng.poisson(2.0, (n, 4, 3)).astype(dtype)
    conditions = rng.uniform(1, 10, (n, 9)).astype(np.float32)
    pdg = np.full(n, 2112, np.int32)
    return write_showerset(path, showers, conditions, pdg, detector="TOY",
                           geometry={"name": "toy"}, producer={"name": "test"})


def _poke(path: Path, dataset: str, index: tuple[int, ...], value: float) -> Path:
    with h5py.File(path, "r+") as f:
        f[dataset][index] = value
    return path


def test_a_clean_file_passes_and_returns_its_size(tmp_path):
    assert validate_showerset(_write(tmp_path / "a.h5")) == 40
    assert validate_showerset(_write(tmp_path / "f.h5", dtype=np.float32), counts=True) == 40


@pytest.mark.parametrize(("dtype", "dataset", "index", "value", "expected", "found"), [
    (np.float32, "showers", (33, 2, 1), np.nan, "finite values", "NaN at row 33, pixel (2, 1)"),
    (np.float32, "showers", (7, 0, 0), -np.inf, "finite values", "-inf at row 7, pixel (0, 0)"),
    (np.float32, "showers", (5, 3, 2), -0.5, "non-negative", "-0.5 at row 5, pixel (3, 2)"),
    (np.int32, "showers", (21, 1, 1), -3, "non-negative", "-3 at row 21, pixel (1, 1)"),
    (np.int32, "conditions", (12, 0), np.nan, "finite values", "NaN at row 12, column 'E'"),
    (np.int32, "conditions", (3, 4), np.inf, "finite values", "inf at row 3, column 'px'"),
    (np.int32, "pdg", (9,), 0, "non-zero PDG codes", "0 at row 9"),
    (np.int32, "condition_id", (30,), -1, "non-negative group ids", "-1 at row 30"),
])
def test_first_bad_row_is_named_with_file_and_field(tmp_path, dtype, dataset, index, value,
                                                      expected, found):
    path = _poke(_write(tmp_path / "bad.h5", dtype=dtype), dataset, index, value)
    with pytest.raises(ShowerSetError) as info:
        validate_showerset(path, batch_bytes=100, role="--reference")  # 2 events a batch
    msg = str(info.value)
    assert msg.startswith(f"{path}: field '{dataset}': expected {expected}")
    assert found in msg and msg.endswith("(given as --reference)")
    assert info.value.field == dataset and info.value.path == str(path)


def test_float_counts_must_be_integral_only_when_asked(tmp_path):
    path = _poke(_write(tmp_path / "mean.h5", dtype=np.float32), "showers", (11, 0, 2), 2.5)
    assert validate_showerset(path) == 40  # a mean readout is legal
    with pytest.raises(ShowerSetError, match=r"integer photon counts.*2\.5 at row 11"):
        validate_showerset(path, counts=True)


def test_conditions_only_scan_ignores_showers(tmp_path):
    path = _poke(_write(tmp_path / "c.h5", dtype=np.float32), "showers", (1, 0, 0), np.nan)
    assert validate_showerset(path, showers=False) == 40
    _poke(path, "conditions", (2, 8), np.nan)
    with pytest.raises(ShowerSetError, match="row 2, column 'charge'"):
        validate_showerset(path, showers=False)


def test_min_events(tmp_path):
    path = write_showerset(tmp_path / "empty.h5", np.zeros((0, 4, 3), np.int32),
                           np.zeros((0, 9), np.float32), np.zeros(0, np.int32),
                           detector="TOY", geometry={}, producer={})
    assert validate_showerset(path) == 0
    with pytest.raises(ShowerSetError, match="expected at least 1 event"):
        validate_showerset(path, min_events=1)


def test_batches_are_bounded_by_bytes(tmp_path):
    with ShowerSet.open(_write(tmp_path / "a.h5")) as ss:
        assert batch_events(ss.meta, 4 * 12 * 5) == 5
        assert batch_events(ss.meta, 1) == 1


def test_summed_overflow_is_not_mistaken_for_inf(tmp_path):
    with ShowerSet.open(_write(tmp_path / "a.h5")) as ss:
        meta = ss.meta
    big = np.full((4, 9), 3e38, np.float32)
    ContentCheck(tmp_path / "a.h5", meta).conditions(big, 0)


def test_particles_in_memory():
    cond = np.ones((5, 9), np.float32)
    validate_particles(cond, np.full(5, 22, np.int32), path="p.npz")
    cond[4, 0] = np.nan
    with pytest.raises(ShowerSetError, match=r"p.npz: field 'conditions'.*row 4, column 'E'"):
        validate_particles(cond, np.full(5, 22, np.int32), path="p.npz")
    with pytest.raises(ShowerSetError, match="0 at row 1"):
        validate_particles(np.ones((2, 9)), np.array([22, 0]), path="p.npz")


def test_counts_mode_still_names_infinities(tmp_path):
    path = _poke(_write(tmp_path / "inf.h5", dtype=np.float32), "showers", (6, 1, 1), np.inf)
    with pytest.raises(ShowerSetError, match=r"expected finite values, found inf at row 6"):
        validate_showerset(path, counts=True)
