"""End to end: the evaluation must expose each baseline's flaw and pass a perfect model."""

from dataclasses import replace
from html.parser import HTMLParser

import pytest

from calogen.data.showerset import ShowerSet
from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.physics.gun import Particles
from calogen.pipelines.baselines import run_baseline
from calogen.pipelines.reference import simulate_to_file
from calogen.report import validate_metrics_json, write_report

FAST = EvaluationConfig(
    progress=False, n_null=15, n_null_fpd_kpd=3, fpd_points=4, fpd_bootstrap=4, kpd_batches=4,
    prdc_max_samples=1500, low_level_max_per_class=1500, slice_min_events=300,
    classifier=replace(CALOGEN_DEFAULT, hidden=(64,), max_epochs=6, n_seeds=2, batch_size=128,
                       max_samples_per_class=2000),
)


def resimulate(ref, out, seed):
    with ShowerSet.open(ref) as ss:
        parts = Particles(ss.conditions(), ss.pdg())
    return simulate_to_file(out, particles=parts, seed=seed, progress=False).path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    ref = simulate_to_file(d / "ref.h5", n=2400, seed=1, repeats=2, progress=False).path
    train = simulate_to_file(d / "train.h5", n=4000, seed=2, progress=False).path
    out = {"ref": ref, "perfect": resimulate(ref, d / "perfect.h5", 3),
           "ref2": resimulate(ref, d / "ref2.h5", 4)}
    for name in ("shuffled", "nearest", "binned-mean"):
        out[name] = run_baseline(name, train, ref, d / f"{name}.h5", progress=False)
    return out


def rows(result):
    return {r.name: r for r in result.summary}


def test_perfect_model_sits_on_the_floor(files):
    r = rows(evaluate(files["ref"], files["perfect"], config=FAST))
    cw = r["channel Wasserstein (mean of 5 channels)"]
    assert cw.value < 2.0 * cw.floor and cw.p_value > 0.01
    assert abs(r["classifier AUC (high-level)"].value - 0.5) < 0.07
    assert abs(r["classifier AUC (low-level)"].value - 0.5) < 0.07
    mae = r["channel MAE paired by condition"]
    assert mae.value == pytest.approx(mae.floor, rel=0.25)


def test_shuffled_baseline_is_caught_by_paired_and_conditioned_metrics(files):
    r = rows(evaluate(files["ref"], files["shuffled"], config=FAST))
    # Its marginal distributions are right ...
    cw = r["channel Wasserstein (mean of 5 channels)"]
    assert cw.value < 2.0 * cw.floor
    # ... but it ignores the conditions.
    mae = r["channel MAE paired by condition"]
    assert mae.value > 2.0 * mae.floor
    auc = r["classifier AUC (high-level)"]
    assert auc.value > 0.65 and auc.value > auc.floor + 0.1


def test_nearest_baseline_has_no_diversity(files):
    r = rows(evaluate(files["ref"], files["nearest"], config=FAST))
    div = r["diversity at identical conditions (rel. spread of photon sum)"]
    assert div.value == pytest.approx(0.0, abs=1e-9) and div.floor > 0.1


def test_binned_mean_baseline_fails_distributions_and_classifier(files, tmp_path):
    result = evaluate(files["ref"], files["binned-mean"], config=FAST)
    r = rows(result)
    cw = r["channel Wasserstein (mean of 5 channels)"]
    assert cw.value > 2.0 * cw.floor and cw.p_value < 0.1
    assert r["classifier AUC (low-level)"].value > 0.75
    assert r["FPD (observables) x1e3"].value > 5 * r["FPD (observables) x1e3"].floor
    assert r["precision (PRDC, k=5, log10(1+pixels))"].value < \
        r["precision (PRDC, k=5, log10(1+pixels))"].floor
    # Slices exist per species and energy bin, each with value and floor.
    assert "n" in result.slices["species"]
    n_rows = {m["name"]: m for m in result.slices["species"]["n"]["metrics"]}
    assert n_rows["channel Wasserstein (mean of 5 channels)"]["value"] > \
        n_rows["channel Wasserstein (mean of 5 channels)"]["floor"]
    # The report links only to files that exist, and metrics.json validates.
    paths = write_report(result, tmp_path / "report")
    validate_metrics_json(paths.metrics_json)

    class Links(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [v for k, v in attrs if k in ("src", "href") and v]

    parser = Links()
    parser.feed(paths.html.read_text())
    assert parser.found
    for link in parser.found:
        if not link.startswith("#"):
            assert (paths.html.parent / link).is_file(), link


def test_second_reference_gives_a_paired_floor(files):
    result = evaluate(files["ref"], files["perfect"], reference_2=files["ref2"], config=FAST)
    assert result.protocol["floor"] == "reference-2"
    mae = rows(result)["channel MAE paired by condition"]
    assert mae.floor is not None and mae.value == pytest.approx(mae.floor, rel=0.15)


def test_incompatible_files_are_refused(files, tmp_path):
    zp = simulate_to_file(tmp_path / "zp.h5", detector="zp", n=50, progress=False).path
    with pytest.raises(ValueError, match="cannot be compared"):
        evaluate(files["ref"], zp, config=FAST)
    short = simulate_to_file(tmp_path / "short.h5", n=100, seed=5, progress=False).path
    with pytest.raises(ValueError, match="one response per reference row"):
        evaluate(files["ref"], short, config=FAST)


def test_a_generated_file_of_another_length_is_refused_not_cut(tmp_path):
    """Rows pair by position: the extra rows of a longer file would be dropped silently."""
    ref = simulate_to_file(tmp_path / "ref.h5", n=120, seed=1, progress=False).path
    with ShowerSet.open(ref) as ss:
        parts = Particles(ss.conditions()[[*range(120), *range(60)]],
                          ss.pdg()[[*range(120), *range(60)]])
    longer = simulate_to_file(tmp_path / "longer.h5", particles=parts, seed=2,
                              progress=False).path
    with pytest.raises(ValueError, match="180 generated events for the 120 events"):
        evaluate(ref, longer, config=FAST)
