"""Tests of calogen.data.summary on a small synthetic ShowerSet with known content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calogen.data.showerset import ShowerSet, write_showerset
from calogen.data.summary import QUANTILE_LEVELS, summarize
from calogen.geometry import ZN, channel_names, channel_sums

HOT_VALUE = 999
HOT_EVENT = 7
HOT_POS = (5, 30)
PDG = np.array([2112, 22, 2112, 211, 2112, 22, 2112, 2112, 211, 22, 2112], dtype=np.int32)
"""6 neutrons, 3 photons, 2 pi+; event 10 (a neutron) is left empty."""


def make_data(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse ZN images (photons), ZDC conditions (E first, GeV) and PDG codes."""
    rng = np.random.default_rng(seed)
    n = PDG.size
    showers = rng.poisson(0.4, size=(n, *ZN.shape)).astype(np.int32)
    showers[showers > 0] = rng.integers(1, 50, size=int((showers > 0).sum()))
    showers[10] = 0
    showers[HOT_EVENT][HOT_POS] = HOT_VALUE
    showers[9][0, 0] = HOT_VALUE  # a later tie: the first occurrence must be reported
    conditions = np.zeros((n, 9), dtype=np.float32)
    conditions[:, 0] = np.linspace(100.0, 2600.0, n)
    conditions[:, 6] = conditions[:, 0]
    conditions[:, 7] = np.where(PDG == 22, 0.0, 939.565)
    return showers, conditions, PDG.copy()


@pytest.fixture
def zn_file(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    showers, conditions, pdg = make_data()
    path = tmp_path / "toy.h5"
    write_showerset(path, showers, conditions, pdg, detector="ZN", geometry=ZN.to_dict(),
                    producer={"name": "test-toy", "note": "synthetic test data"})
    return path, showers, conditions, pdg


def test_species_counts_fractions_and_order(zn_file):
    path, _, _, pdg = zn_file
    with ShowerSet.open(path) as ss:
        s = summarize(ss, batch_size=4)
    assert s.n_events == pdg.size
    assert [sp.name for sp in s.species] == ["n", "gamma", "pi+"]
    assert [sp.pdg for sp in s.species] == [2112, 22, 211]
    assert [sp.count for sp in s.species] == [6, 3, 2]
    assert [sp.fraction for sp in s.species] == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    assert s.detector == "ZN"
    assert tuple(s.shower_shape) == ZN.shape
    assert s.producer["name"] == "test-toy"


def test_photon_sum_quantiles_match_numpy(zn_file):
    path, showers, _, pdg = zn_file
    sums = showers.reshape(len(showers), -1).sum(axis=1).astype(np.float64)
    with ShowerSet.open(path) as ss:
        s = summarize(ss, batch_size=4)
    for sp in s.species:
        mine = sums[pdg == sp.pdg]
        expected = np.quantile(mine, QUANTILE_LEVELS)
        got = [sp.photon_sum[f"p{round(q * 100)}"] for q in QUANTILE_LEVELS]
        assert got == pytest.approx(expected, rel=1e-12)
        assert sp.photon_sum["max"] == mine.max()
    assert s.photon_sum_mean == pytest.approx(sums.mean())


def test_zero_fraction_and_hottest_pixel_exact(zn_file):
    path, showers, _, _ = zn_file
    with ShowerSet.open(path) as ss:
        s = summarize(ss, batch_size=3)  # hottest event lies in the third batch
    assert s.zero_pixel_fraction == np.count_nonzero(showers == 0) / showers.size
    assert s.hottest_pixel is not None
    assert s.hottest_pixel.value == HOT_VALUE
    assert s.hottest_pixel.event == HOT_EVENT
    assert tuple(s.hottest_pixel.position) == HOT_POS


@pytest.mark.parametrize("convention", ["o2", "warsaw"])
def test_channel_means_match_channel_sums(zn_file, convention):
    path, showers, _, _ = zn_file
    expected = channel_sums(showers, ZN, convention)
    with ShowerSet.open(path) as ss:
        s = summarize(ss, convention=convention, batch_size=4)
    assert tuple(s.channel_names) == channel_names(convention)
    assert s.channel_mean == pytest.approx(expected.mean(axis=0), rel=1e-12)
    assert s.channel_std == pytest.approx(expected.std(axis=0), rel=1e-10)


def test_light_yield_and_energy(zn_file):
    path, showers, conditions, pdg = zn_file
    sums = showers.reshape(len(showers), -1).sum(axis=1).astype(np.float64)
    energy = conditions[:, 0].astype(np.float64)
    with ShowerSet.open(path) as ss:
        s = summarize(ss, batch_size=5)
    for sp in s.species:
        sel = pdg == sp.pdg
        assert sp.photons_per_gev == pytest.approx(sums[sel].sum() / energy[sel].sum())
        ratio = sums[sel] / energy[sel]
        assert sp.photons_per_gev_spread == pytest.approx(ratio.std() / ratio.mean())
        assert sp.energy_median == pytest.approx(np.median(energy[sel]))
    assert s.energy_units == "GeV"
    assert s.energy["min"] == pytest.approx(energy.min())
    assert s.energy["max"] == pytest.approx(energy.max())
    assert s.energy["p50"] == pytest.approx(np.quantile(energy, 0.5))


def test_batch_size_does_not_change_result(zn_file):
    path, *_ = zn_file
    with ShowerSet.open(path) as ss:
        small = summarize(ss, batch_size=1).to_dict()
        large = summarize(ss, batch_size=8192).to_dict()
    assert small["species"] == large["species"]
    assert small["hottest_pixel"] == large["hottest_pixel"]
    assert small["channel_mean"] == pytest.approx(large["channel_mean"], rel=1e-12)
    assert small["channel_std"] == pytest.approx(large["channel_std"], rel=1e-10)


def test_to_dict_is_strict_json_and_write_json(zn_file, tmp_path):
    path, *_ = zn_file
    with ShowerSet.open(path) as ss:
        s = summarize(ss)
    d = s.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    out = s.write_json(tmp_path / "summary.json")
    assert json.loads(out.read_text()) == d
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "toy.h5"]


def test_unknown_convention_is_rejected(zn_file):
    path, *_ = zn_file
    with ShowerSet.open(path) as ss, pytest.raises(ValueError, match="convention"):
        summarize(ss, convention="nonsense")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # -inf in the unvalidated summary
def test_summary_validates_content_in_its_single_pass(tmp_path):
    import h5py

    from calogen.data.errors import ShowerSetError

    rng = np.random.default_rng(0)
    path = write_showerset(tmp_path / "f.h5", rng.poisson(1.0, (30, 44, 44)).astype(np.float32),
                           np.ones((30, 9), np.float32), np.full(30, 2112, np.int32),
                           detector="ZN", geometry={}, producer={})
    with h5py.File(path, "r+") as f:
        f["showers"][21, 4, 5] = -np.inf
    with ShowerSet.open(path) as ss, pytest.raises(ShowerSetError, match="-inf at row 21"):
        summarize(ss, batch_size=8)
    with ShowerSet.open(path) as ss:
        assert summarize(ss, validate=False).n_events == 30
