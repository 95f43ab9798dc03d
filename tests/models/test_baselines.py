"""Training-free baselines: each works, and each has exactly the flaw it is meant to show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from calogen.baselines import (
    BASELINES,
    Baseline,
    BinnedMeanPoissonBaseline,
    CompactShowers,
    NearestConditionBaseline,
    NotFittedError,
    ShuffledBaseline,
    make_baseline,
)
from calogen.metrics.zdc import condition_diversity
from calogen.physics.simulator import ZN_SIMULATOR, simulate_shard

NAMES = ("shuffled", "nearest", "binned-mean")


@dataclass(frozen=True)
class Data:
    showers: np.ndarray
    conditions: np.ndarray
    pdg: np.ndarray
    condition_id: np.ndarray


def _simulate(seed: int, shards: range) -> Data:
    parts = [simulate_shard(ZN_SIMULATOR, seed, k, repeats=4, min_photons=10) for k in shards]
    return Data(np.concatenate([p.showers for p in parts]),
                np.concatenate([p.conditions for p in parts]),
                np.concatenate([p.pdg for p in parts]),
                np.concatenate([p.condition_id for p in parts]))


@pytest.fixture(scope="module")
def train() -> Data:
    return _simulate(11, range(4))


@pytest.fixture(scope="module")
def test() -> Data:
    return _simulate(12, range(2))


@pytest.fixture(scope="module")
def fitted(train: Data) -> dict[str, Baseline]:
    return {name: make_baseline(name).fit(train.showers, train.conditions, train.pdg)
            for name in NAMES}


def photon_sums(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).sum(axis=1).astype(np.float64)


def energy_correlation(images: np.ndarray, conditions: np.ndarray) -> float:
    """Pearson correlation of ln(photon sum + 1) with ln E."""
    return float(np.corrcoef(np.log(photon_sums(images) + 1.0),
                             np.log(conditions[:, 0]))[0, 1])


# -- protocol, registry, shapes ------------------------------------------------------------

def test_registry_and_describe() -> None:
    assert set(BASELINES) == set(NAMES)
    for name in NAMES:
        model = make_baseline(name)
        assert isinstance(model, Baseline) and model.name == name
        text = model.describe()
        assert text.endswith(".") and text.count(". ") == 0 and len(text) > 40
    with pytest.raises(ValueError, match="unknown baseline 'vae'.*binned-mean"):
        make_baseline("vae")


@pytest.mark.parametrize("name", NAMES)
def test_sample_shape_dtype_nonnegative(fitted: dict[str, Baseline], test: Data,
                                        name: str) -> None:
    out = fitted[name].sample(test.conditions, test.pdg, np.random.default_rng(0))
    assert out.shape == test.showers.shape and out.dtype == np.int32
    assert out.min() >= 0 and out.sum() > 0
    empty = fitted[name].sample(test.conditions[:0], test.pdg[:0], np.random.default_rng(0))
    assert empty.shape == (0, 44, 44) and empty.dtype == np.int32


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(fitted: dict[str, Baseline], test: Data, name: str) -> None:
    a = fitted[name].sample(test.conditions, test.pdg, np.random.default_rng(5))
    b = fitted[name].sample(test.conditions, test.pdg, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_sample_before_fit_refused(test: Data, name: str) -> None:
    with pytest.raises(NotFittedError, match="before fit"):
        make_baseline(name).sample(test.conditions, test.pdg, np.random.default_rng(0))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_named(train: Data, name: str) -> None:
    s, c, p = train.showers[:20], train.conditions[:20], train.pdg[:20]
    model = make_baseline(name)
    cases = [
        ((s[:, 0], c, p), r"showers: expected shape \(N, H, W\).*found shape \(20, 44\)"),
        ((s[:0], c[:0], p[:0]), r"showers: expected shape \(N, H, W\) with N >= 1"),
        ((s, c[:, :8], p), r"conditions: expected shape \(20, 9\).*found shape \(20, 8\)"),
        ((s, c[:19], p), r"conditions: expected shape \(20, 9\)"),
        ((s, c, p[:19]), r"pdg: expected shape \(20,\)"),
        ((s, c, p.astype(np.float64)), "pdg: expected integer"),
        ((s - 1, c, p), "showers: photon counts must be >= 0"),
        ((s + 0.5, c, p), "showers: expected integer photon counts"),
        ((s, np.where(np.arange(9) == 3, np.nan, c), p), r"conditions: non-finite.*'vz'"),
        ((s, c * np.where(np.arange(9) == 0, -1.0, 1.0), p), "conditions: column E"),
    ]
    for args, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            model.fit(*args)
    model.fit(s, c, p)
    with pytest.raises(ValueError, match=r"conditions: expected shape \(N, 9\)"):
        model.sample(c[:, :5], p, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"pdg: expected shape \(20,\)"):
        model.sample(c, p[:3], np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        model.sample(c, p, 42)  # type: ignore[arg-type]


# -- shuffled --------------------------------------------------------------------------------

def test_shuffled_returns_training_responses_ignoring_energy(fitted: dict[str, Baseline],
                                                             train: Data, test: Data) -> None:
    out = fitted["shuffled"].sample(test.conditions, test.pdg, np.random.default_rng(1))
    stored = {img.tobytes() for img in train.showers}
    assert all(img.tobytes() in stored for img in out)
    assert energy_correlation(test.showers, test.conditions) > 0.8  # the reference depends on E
    assert abs(energy_correlation(out, test.conditions)) < 0.15     # the baseline does not


# -- nearest ---------------------------------------------------------------------------------

def test_nearest_returns_training_response_exactly(train: Data) -> None:
    _, first = np.unique(train.condition_id, return_index=True)  # one response per condition
    s, c, p = train.showers[first], train.conditions[first], train.pdg[first]
    model = NearestConditionBaseline().fit(s, c, p)
    np.testing.assert_array_equal(model.sample(c, p, np.random.default_rng(0)), s)


def test_nearest_has_no_diversity_but_follows_energy(fitted: dict[str, Baseline],
                                                     test: Data) -> None:
    out = fitted["nearest"].sample(test.conditions, test.pdg, np.random.default_rng(2))
    assert measure_diversity(test.showers, test.condition_id) > 0.1
    assert measure_diversity(out, test.condition_id) == 0.0
    assert energy_correlation(out, test.conditions) > 0.8


def test_nearest_prefers_same_species_and_checks_columns(train: Data) -> None:
    model = NearestConditionBaseline(extra_columns=("vz",)).fit(
        train.showers, train.conditions, train.pdg)
    rows = model.nearest_rows(train.conditions, train.pdg)
    np.testing.assert_array_equal(train.pdg[rows], train.pdg)
    unknown = model.nearest_rows(train.conditions[:5], np.full(5, 999999))  # falls back to all
    assert unknown.shape == (5,)
    with pytest.raises(ValueError, match=r"extra_columns: unknown columns \['E_kin'\]"):
        NearestConditionBaseline(extra_columns=("E_kin",))


# -- binned mean + Poisson -------------------------------------------------------------------

def test_binned_mean_tracks_energy_but_lacks_shower_fluctuations(
        fitted: dict[str, Baseline], test: Data) -> None:
    out = fitted["binned-mean"].sample(test.conditions, test.pdg, np.random.default_rng(3))
    ref_sums, gen_sums = photon_sums(test.showers), photon_sums(out)
    log_e = np.log(test.conditions[:, 0])
    edges = np.quantile(log_e, [0.25, 0.5, 0.75])
    which = np.searchsorted(edges, log_e)
    for b in range(4):
        ref, gen = ref_sums[which == b].mean(), gen_sums[which == b].mean()
        assert abs(gen / ref - 1.0) < 0.15, (b, ref, gen)
    ref_div = measure_diversity(test.showers, test.condition_id)
    gen_div = measure_diversity(out, test.condition_id)
    assert 0.0 < gen_div < 0.5 * ref_div


def test_binned_mean_is_poisson_around_the_bin_mean(fitted: dict[str, Baseline],
                                                    test: Data) -> None:
    model = fitted["binned-mean"]
    assert isinstance(model, BinnedMeanPoissonBaseline)
    cond = np.repeat(test.conditions[:1], 3000, axis=0)
    pdg = np.repeat(test.pdg[:1], 3000)
    sums = photon_sums(model.sample(cond, pdg, np.random.default_rng(4)))
    expected = float(model.mean_images(cond[:1], pdg[:1]).sum())
    assert sums.mean() == pytest.approx(expected, rel=0.02)
    assert sums.var() / sums.mean() == pytest.approx(1.0, abs=0.1)  # Poisson: var == mean


def test_binned_mean_falls_back_to_coarser_bins(train: Data, test: Data) -> None:
    model = BinnedMeanPoissonBaseline(n_energy_bins=8, n_impact_bins=3).fit(
        train.showers, train.conditions, train.pdg)
    level, _ = model.resolve(test.conditions, test.pdg)
    assert (level == 0).mean() > 0.5
    level, _ = model.resolve(test.conditions[:4], np.full(4, 999999))  # unknown species
    assert (level == model.LEVELS.index(("energy",))).all()
    out = model.sample(test.conditions[:4], np.full(4, 999999), np.random.default_rng(0))
    assert out.shape == (4, 44, 44)
    strict = BinnedMeanPoissonBaseline(min_count=10**6).fit(
        train.showers, train.conditions, train.pdg)
    level, _ = strict.resolve(test.conditions, test.pdg)
    assert (level == len(strict.LEVELS) - 1).all()  # only "everything" is populated enough
    with pytest.raises(ValueError, match="n_energy_bins: expected an integer >= 1"):
        BinnedMeanPoissonBaseline(n_energy_bins=0)


def test_binned_mean_threads_do_not_change_output(train: Data, test: Data) -> None:
    outs = []
    for threads in (1, 2):
        model = BinnedMeanPoissonBaseline(n_threads=threads).fit(
            train.showers, train.conditions, train.pdg)
        cond = np.repeat(test.conditions, 10, axis=0)  # several sampling blocks
        outs.append(model.sample(cond, np.repeat(test.pdg, 10), np.random.default_rng(9)))
    np.testing.assert_array_equal(outs[0], outs[1])


# -- helpers ---------------------------------------------------------------------------------

def test_compact_showers_roundtrip_and_size(train: Data) -> None:
    store = CompactShowers.from_dense(train.showers)
    np.testing.assert_array_equal(store.take(np.arange(len(store))), train.showers)
    np.testing.assert_array_equal(store.photon_sums(), photon_sums(train.showers))
    assert store.values.dtype == np.uint16 and store.nbytes < 0.25 * train.showers.nbytes
    rows = np.array([3, 3, 0])
    np.testing.assert_array_equal(store.take(rows), train.showers[rows])
    big = np.zeros((2, 3, 3), dtype=np.int64)
    big[1, 2, 1] = 70_000  # does not fit uint16
    wide = CompactShowers.from_dense(big)
    assert wide.values.dtype == np.int32
    np.testing.assert_array_equal(wide.take([1, 0]), big[[1, 0]])


def test_shuffled_ignores_pdg_but_validates(train: Data) -> None:
    model = ShuffledBaseline().fit(train.showers, train.conditions, train.pdg)
    out = model.sample(train.conditions[:3], np.array([999999, 22, 11]), np.random.default_rng(0))
    assert out.shape == (3, 44, 44)


def measure_diversity(showers, condition_id):
    """Relative spread of photon sums among responses to one condition (see metrics.zdc)."""
    sums = np.asarray(showers).reshape(len(showers), -1).sum(axis=1)
    return condition_diversity(sums, np.asarray(condition_id))[0]
