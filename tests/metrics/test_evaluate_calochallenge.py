"""``evaluate`` on voxels of the official DS1-photon binning: the CaloChallenge rows, their
floors and the official text outputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calogen.data import write_showerset
from calogen.geometry.calochallenge import calochallenge_binning
from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.particles import gun_conditions

GEO = calochallenge_binning("1-photons").geometry
N = 800


def _showers(e_gev: np.ndarray, seed: int, *, shuffle: bool = False) -> np.ndarray:
    """Toy photon showers: a fixed longitudinal and radial profile times E_inc, with noise;
    ``shuffle`` permutes the voxels of every shower (a garbage model)."""
    rng = np.random.default_rng(seed)
    r, _ = GEO.voxel_centres()
    profile = np.exp(-r / 40.0)
    layer_frac = np.array([0.05, 0.3, 0.5, 0.1, 0.05])
    parts = []
    for frac, s in zip(layer_frac, GEO.layer_slices(), strict=True):
        p = profile[s] / profile[s].sum()
        parts.append(frac * p)
    mean = np.concatenate(parts)
    x = (e_gev[:, None] * 1e3) * mean[None] * rng.gamma(4.0, 0.25, size=(len(e_gev), GEO.n_voxels))
    x[x < 1.0] = 0.0
    if shuffle:
        x = np.take_along_axis(x, rng.random(x.shape).argsort(axis=1), axis=1)
    return x.astype(np.float32)


def _write(path: Path, x: np.ndarray, e_gev: np.ndarray, producer: dict) -> Path:
    columns, units = gun_conditions("E_inc")
    return write_showerset(path, x, e_gev[:, None].astype(np.float32),
                           np.full(len(x), 22, np.int32), detector=GEO.name, geometry=GEO,
                           producer=producer, condition_columns=columns,
                           condition_units=units, shower_units="MeV")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cc")
    e = np.random.default_rng(5).choice(np.array([2.048, 8.192, 32.768, 131.072]), N)
    return {"ref": _write(d / "ref.h5", _showers(e, 1), e, {"name": "ref"}),
            "good": _write(d / "good.h5", _showers(e, 2), e,
                           {"name": "good", "n_parameters": 1234, "ms_per_shower": 0.5}),
            "garbage": _write(d / "garbage.h5", _showers(e, 3, shuffle=True), e,
                              {"name": "garbage"})}


@pytest.fixture(scope="module")
def config(fast_config: EvaluationConfig) -> EvaluationConfig:
    return replace(fast_config, calochallenge_low_normed=True, calochallenge_high_level=True,
                   n_null=3, w1_batches=3,
                   classifier=replace(fast_config.classifier, n_seeds=1))


def _row(result, name: str):  # noqa: ANN001, ANN202
    return next(r for r in result.summary if r.name == name)


@pytest.fixture(scope="module")
def good(files, config):  # noqa: ANN001, ANN201
    return evaluate(files["ref"], files["good"], config=config)


def test_official_rows_beside_floor(files, config, good) -> None:  # noqa: ANN001
    bad = evaluate(files["ref"], files["garbage"], config=config)
    names = [r.name for r in good.summary]
    for name in ("separation power, E layer (CaloChallenge)",
                 "separation power, EC eta (CaloChallenge)",
                 "separation power, cell (CaloChallenge)",
                 "FPD (CaloChallenge high-level vector) x1e3",
                 "classifier AUC (low-level normed)"):
        assert name in names
        assert _row(good, name).floor is not None
    # a model drawn like the reference sits at its floor; the shuffled voxels do not
    auc_low = _row(good, "classifier AUC (low-level)")
    assert abs(auc_low.value - 0.5) < 0.1 and abs(auc_low.floor - 0.5) < 0.1
    assert _row(bad, "classifier AUC (low-level)").value > 0.8
    assert _row(bad, "classifier AUC (high-level)").value > 0.7
    sep = "separation power, EC eta (CaloChallenge)"
    assert _row(bad, sep).value > 3 * _row(good, sep).value
    fpd_row = "FPD (CaloChallenge high-level vector) x1e3"
    assert _row(bad, fpd_row).value > 10 * max(_row(good, fpd_row).value, 1e-3)
    # generation time and parameters come from the generated file's producer
    assert _row(good, "generation time (from the generated file)").value == 0.5
    assert _row(good, "model parameters (from the generated file)").value == 1234
    assert "generation time (from the generated file)" not in [r.name for r in bad.summary]
    cc = good.to_dict()["details"]["calochallenge"]
    assert cc["dataset"] == "1-photons"
    labels = [e["label"] for e in cc["separation"]]
    assert labels[0] == "Etot / Einc" and "Etot / Einc at E = 2048.0" in labels
    assert good.protocol["name"] == "calogen"
    assert good.protocol["calochallenge"]["dataset"] == "1-photons"
    texts = good.plot_data.calochallenge["texts"]
    assert set(texts) == {"histogram_chi2_1-photons.txt", "fpd_kpd_1-photons.txt",
                          "classifier_cls-low_1-photons.txt",
                          "classifier_cls-high_1-photons.txt",
                          "classifier_cls-low-normed_1-photons.txt"}
    auc_text = texts["classifier_cls-low_1-photons.txt"].splitlines()[1]
    assert auc_text == f"{auc_low.value:.4f} / {_row(good, 'classifier JSD (low-level)').value:.4f}"
    means = good.plot_data.calochallenge["energy_means"]
    assert len(means) == 4  # the 4 incident energies fall in 4 of the 15 DS1 ranges


def test_report_writes_official_texts_and_average_showers(good, tmp_path) -> None:  # noqa: ANN001
    from calogen.report import write_report

    paths = write_report(good, tmp_path / "report")
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"histogram_chi2_1-photons.txt", "fpd_kpd_1-photons.txt",
            "classifier_cls-high_1-photons.txt", "average_shower.png",
            "average_shower_per_energy.png"} <= names
    text = (tmp_path / "report" / "histogram_chi2_1-photons.txt").read_text()
    assert text.startswith("List of chi2 of the plotted histograms")
    assert "E layer 12: \n" in text and "Voxel distribution: \n" in text
    assert paths.html.read_text().count("average_shower") >= 2
    # a second report into the same folder replaces it as a whole (all names are report files)
    write_report(good, tmp_path / "report")
    assert {p.name for p in (tmp_path / "report").iterdir()} == names
    # on an official binning the published rows stand beside this run's
    assert {"leaderboard.csv", "leaderboard.png"} <= names
    board = (tmp_path / "report" / "leaderboard.csv").read_text()
    assert "CaloDiffusion" in board and "this run" in board
    mine = next(line for line in board.splitlines() if "this run" in line)
    assert f"{_row(good, 'classifier AUC (low-level)').value:.4g}"[:5] in mine and "1234" in mine
    assert "official Geant4 files" in paths.html.read_text()
    write_report(good, tmp_path / "plain", leaderboard=False)
    assert not (tmp_path / "plain" / "leaderboard.csv").exists()


def test_protocol_presets() -> None:
    from calogen.cli.evaluate_cmd import ClassifierPreset, Protocol, protocol_config
    from calogen.metrics.classifier import CALOCHALLENGE_2022

    official = protocol_config(Protocol.calochallenge_2022, ClassifierPreset.calogen, None,
                               seed=3, progress=False)
    assert official.protocol == "calochallenge-2022" and official.seed == 3
    assert official.classifier == CALOCHALLENGE_2022  # whatever --classifier says, 10 seeds
    assert official.prdc_max_samples is None and official.calochallenge_low_normed
    assert official.calochallenge_high_level
    default = protocol_config(Protocol.calogen, ClassifierPreset.calogen, None)
    assert default.protocol == "calogen" and default.classifier.n_seeds == 5
    assert default.prdc_max_samples == 10_000 and not default.calochallenge_low_normed
    assert not default.calochallenge_high_level
    assert protocol_config(Protocol.calogen, ClassifierPreset.calogen, 2).classifier.n_seeds == 2
