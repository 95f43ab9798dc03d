"""Tests of the evaluation report (metrics.json + figures + report.html) on a synthetic result."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from calogen.metrics.evaluate import EvaluationResult, MetricRow, PlotData, Side
from calogen.report import evaluation_plots, validate_metrics_json, write_report
from calogen.report.evaluation_report import (
    MetricsSchemaError,
    flag,
    fmt,
    fmt_p,
    metrics_schema,
)

NAMES = ("channel_common", "channel_TL", "channel_TR", "channel_BL", "channel_BR",
         "photon_sum", "cog_x", "cog_y", "width_x", "width_y", "lit_fibres", "hottest_value",
         "hottest_row", "hottest_col")
UNITS = (*("photons",) * 6, "cm", "cm", "cm", "cm", "fibres", "photons", "index", "index")
SPECIES = np.array([2112, 22, 211, 2212, 11], dtype=np.int32)


def _side(rng: np.random.Generator, n: int, scale: float = 1.0) -> Side:
    pdg = rng.choice(SPECIES, size=n, p=[0.4, 0.25, 0.15, 0.15, 0.05]).astype(np.int32)
    energy = 10 ** rng.uniform(0.5, 3.5, n)
    cond = np.zeros((n, 9), dtype=np.float32)
    cond[:, 0] = energy
    ch = rng.poisson(np.outer(energy * 0.3 * scale, [1.0, 0.25, 0.25, 0.25, 0.25]))
    ch[rng.random(n) < 0.05] = 0  # some empty responses
    total = ch[:, 1:].sum(axis=1) + rng.poisson(3, n)
    obs = np.column_stack([
        ch, total, rng.normal(0, 1, n), rng.normal(0, 1, n), rng.gamma(2, 0.5, n),
        rng.gamma(2, 0.5, n), rng.integers(0, 400, n), rng.poisson(total / 20.0 + 1),
        rng.integers(0, 44, n), rng.integers(0, 44, n)]).astype(np.float64)
    return Side(obs, cond, pdg, np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))


def _row(name: str, unit: str, value: float | None, floor: float | None, **kw) -> MetricRow:
    return MetricRow(name, unit, value, floor, **kw)


def make_result(n: int = 2000, seed: int = 0) -> EvaluationResult:
    rng = np.random.default_rng(seed)
    ref, gen, flo = _side(rng, n), _side(rng, n, scale=1.1), _side(rng, n)
    k = len(NAMES)
    corr = [np.corrcoef(s.observables, rowvar=False) for s in (ref, gen, flo)]
    images = rng.poisson(0.5, size=(4, 44, 44)) * rng.integers(1, 30, size=(4, 44, 44))
    summary = [
        _row("channel Wasserstein (mean of 5 channels)", "photons", 12.3, 0.53, p_value=0.0476,
             note="W1 per PMT channel sum, then the mean"),
        _row("W1 of standardised observables (mean over observables)", "std. units", 0.031,
             0.02, p_value=0.4, value_std=0.004, floor_std=0.003),
        _row("separation power (mean over observables)", "", 0.004, 0.003, p_value=0.0004),
        _row("FPD (observables) x1e3", "", float("nan"), 0.1, value_std=0.2, floor_std=0.01),
        _row("channel MAE paired by condition", "photons", None, None,
             note="generated rows do not share the reference's conditions: not computable"),
        _row("precision (PRDC, k=5, log10(1+pixels))", "", 0.3, 0.9, lower_is_better=False),
        _row("classifier AUC (high-level)", "", 0.61, 0.5, value_std=0.01, floor_std=0.01,
             note="10 seeds; 0.5 = indistinguishable"),
    ]
    details = {
        "observables": {
            name: {"unit": unit,
                   "w1": {"value": 0.05, "value_std": 0.01, "floor": 0.02, "floor_std": 0.005,
                          "p_value": 0.0476},
                   "separation_power": {"value": 0.002, "floor": 0.001, "p_value": 0.5,
                                        "generated_out_of_range": 3, "floor_out_of_range": 0}}
            for name, unit in zip(NAMES, UNITS, strict=True)},
        "channel_w1": {name: {"value": 10.0, "floor": 0.5} for name in NAMES[:5]},
        "fpd": {"value": {"value": 1e-4, "error": 2e-5}, "floor": {"value": 1e-5}},
        "custom_extra_key": [1, 2, 3],
    }
    slice_rows = [_row("channel Wasserstein (mean of 5 channels)", "photons", 5.0, 1.0).to_dict(),
                  _row("classifier AUC (high-level)", "", 0.55, 0.5, note="1 seed(s)").to_dict()]
    slices = {
        "species": {"n": {"n_reference": 800, "n_generated": 790, "n_floor": 805,
                          "metrics": slice_rows},
                    "e+": {"n_reference": 12, "n_generated": 10, "n_floor": 9,
                           "note": "fewer than 400 events: not evaluated"}},
        "energy": {"0-10 GeV": {"n_reference": 500, "n_generated": 510, "n_floor": 490,
                                "metrics": slice_rows}},
    }
    timing = {"read + observables": {"seconds": 1.5, "peak_rss_mb": 300.0},
              "W1 + separation power": {"seconds": 0.25, "peak_rss_mb": 310.0}}
    inputs = {
        "reference": {"path": "/data/ref.h5", "n_events": 4000, "detector": "ZN",
                      "producer": "calogen-parametrised",
                      "note": "parametrised stand-in, not Geant4"},
        "generated": {"path": "/data/gen.h5", "n_events": 4000, "detector": "ZN",
                      "producer": "flow-matching", "note": None},
        "reference_2": None,
    }
    protocol = {"floor": "halves", "paired": False, "n_reference_rows": 4000,
                "n_compared": {"reference": n, "generated": n, "floor": n},
                "observables": list(NAMES), "observable_units": list(UNITS),
                "config": {"seed": 0, "classifier": {"n_seeds": 10}}}
    plot = PlotData(NAMES, UNITS, NAMES[:5], ref, gen, flo, *corr,
                    example_ref=images, example_gen=images[::-1].copy(),
                    example_conditions=ref.conditions[:4], example_pdg=ref.pdg[:4],
                    mean_ref=images.mean(axis=0), mean_gen=images[:2].mean(axis=0))
    assert corr[0].shape == (k, k)
    return EvaluationResult(summary, details, slices, timing, inputs, protocol, plot)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.links.append(value)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = make_result()
    out = tmp_path_factory.mktemp("report")
    return result, out, write_report(result, out, title="synthetic <test> report")


def test_metrics_json_validates_and_matches_result(written):
    result, out, paths = written
    assert paths.metrics_json == out / "metrics.json"
    validate_metrics_json(paths.metrics_json)
    doc = json.loads(paths.metrics_json.read_text())
    assert doc["schema"] == "calogen.metrics" and doc["schema_version"] == 1
    assert [r["name"] for r in doc["summary"]] == [r.name for r in result.summary]
    assert doc["summary"][3]["value"] is None  # NaN written as null
    assert "custom_extra_key" in doc["details"]  # details stay open


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["summary"][0].__setitem__("value", "12.3"), "summary[0].value"),
    (lambda d: d["summary"][1].pop("lower_is_better"), "summary[1]"),
    (lambda d: d.__setitem__("schema_version", 2), "schema_version"),
    (lambda d: d["slices"]["species"]["n"].__setitem__("n_reference", 1.5),
     "slices.species.n.n_reference"),
    (lambda d: d["timing"]["read + observables"].pop("seconds"), "timing.read + observables"),
    (lambda d: d.__setitem__("unexpected", 1), "<top level>"),
])
def test_schema_rejects_wrong_documents(written, mutate, where):
    _, out, _ = written
    doc = json.loads((out / "metrics.json").read_text())
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(MetricsSchemaError, match="violation") as info:
        validate_metrics_json(bad)
    assert where in str(info.value)
    path = out.parent / "bad_metrics.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(MetricsSchemaError, match="bad_metrics.json"):
        validate_metrics_json(path)


def test_schema_is_draft_2020_12_package_data():
    schema = metrics_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    from jsonschema import Draft202012Validator
    Draft202012Validator.check_schema(schema)


def test_write_report_rejects_invalid_result_before_writing(tmp_path):
    result = make_result(n=300)
    result.summary[0].value = "not a number"  # type: ignore[assignment]
    with pytest.raises(MetricsSchemaError, match=r"summary\[0\]\.value"):
        write_report(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_html_links_exist_and_summary_complete(written):
    result, out, paths = written
    assert paths.html == out / "report.html"
    parser = _Links()
    page = paths.html.read_text()
    parser.feed(page)
    assert parser.links, "the page links its figures and metrics.json"
    for link in parser.links:
        assert "://" not in link and not link.startswith("/"), link
        assert (out / link).is_file(), link
    assert {Path(p).name for p in paths.plots} <= set(parser.links)
    text = " ".join(parser.text)
    for row in result.summary:
        assert row.name in text
    assert "synthetic <test> report" in text  # title escaped, shown as text
    assert "parametrised stand-in, not Geant4" in text  # producer note visible
    assert "fewer than 400 events" in text  # skipped slice noted
    assert "<script" not in page and "<link" not in page
    # the channel W1 is > 2x its floor, the PRDC precision < floor/2: both highlighted
    assert page.count('<tr class="bad">') >= 2


def test_plots_are_readable_images(written):
    _, out, paths = written
    names = {p.name for p in paths.plots}
    assert {"observables.png", "channels_per_species.png", "correlations.png", "examples.png",
            "mean_images.png"} <= names
    for p in paths.plots:
        assert p.parent == out
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and min(img.shape[:2]) >= 300, (p.name, img.shape)
        assert float(img.std()) > 0.01, f"{p.name} looks blank"
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def _old_report(folder: Path) -> dict[str, bytes]:
    """A complete earlier report (hand-made, cheap) in ``folder``; returns its content."""
    folder.mkdir()
    files = {"metrics.json": b'{"old": true}\n', "report.html": b"<html>old</html>",
             "observables.png": b"old png 1", "observables_2.png": b"old png 2",
             "examples.png": b"old png 3"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _content(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _fake_plots(monkeypatch, fail_at: str | None = None):
    """Replace the figures with tiny files; ``fail_at`` raises instead (mid-way)."""
    def fake(name):
        def draw(pd, out, **kwargs):
            if name == fail_at:
                raise RuntimeError("figure failed")
            path = Path(out) / f"{name}.png"
            path.write_bytes(b"new " + name.encode())
            return [path] if name == "observables" else path
        return draw

    for name in ("observables", "channels_per_species", "correlations", "examples",
                 "mean_images"):
        monkeypatch.setattr(evaluation_plots, f"plot_{name}", fake(name))


def test_failing_plot_leaves_the_earlier_report_untouched(tmp_path, monkeypatch):
    """An interrupted write (a figure fails half-way) changes nothing in the folder: no new
    metrics.json beside stale figures, the old page still there, no temporaries beside it."""
    out = tmp_path / "out"
    before = _old_report(out)
    _fake_plots(monkeypatch, fail_at="correlations")
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(make_result(n=300), out)
    assert _content(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_rewrite_replaces_the_whole_report(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _old_report(out)
    _fake_plots(monkeypatch)
    paths = write_report(make_result(n=300), out)
    names = {p.name for p in out.iterdir()}
    assert "observables_2.png" not in names  # stale figure of the earlier report gone
    assert names == {"metrics.json", "report.html", *(p.name for p in paths.plots)}
    validate_metrics_json(out / "metrics.json")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_other_files_in_the_folder_are_kept(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _old_report(out)
    (out / "notes.txt").write_text("mine")
    _fake_plots(monkeypatch, fail_at="examples")
    with pytest.raises(RuntimeError):
        write_report(make_result(n=300), out)
    assert (out / "report.html").read_bytes() == b"<html>old</html>"
    _fake_plots(monkeypatch)
    result = make_result(n=300)
    result.plot_data = None
    paths = write_report(result, out)
    assert {p.name for p in out.iterdir()} == {"metrics.json", "report.html", "notes.txt"}
    assert (out / "notes.txt").read_text() == "mine"
    assert "No figures" in paths.html.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_temporary_folder_of_a_killed_run_is_removed(tmp_path, monkeypatch):
    out = tmp_path / "out"
    debris = tmp_path / ".out.tmp-999999999-deadbeef"  # no such process
    debris.mkdir()
    (debris / "metrics.json").write_text("{}")
    _fake_plots(monkeypatch)
    write_report(make_result(n=300), out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_out_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "report"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_report(make_result(n=300), path)


def test_report_without_plot_data(tmp_path):
    result = make_result(n=300)
    result.plot_data = None
    paths = write_report(result, tmp_path)
    assert paths.plots == []
    assert "No figures" in paths.html.read_text()


def test_display_edges():
    edges, log_x = evaluation_plots.display_edges(np.array([0, 1, 2, 3, 5]), "fibres")
    assert not log_x and np.allclose(edges, np.arange(-0.5, 6.0))
    edges, log_x = evaluation_plots.display_edges(np.array([0.0, 2.0, 50.0, 5000.0]), "photons")
    assert log_x and edges[0] > 0 and edges[-1] >= 5000.0
    edges, log_x = evaluation_plots.display_edges(np.arange(0, 1000), "fibres")
    assert not log_x and len(edges) <= 52 and edges[0] <= 0 and edges[-1] >= 999
    edges, _ = evaluation_plots.display_edges(np.array([0.1, 0.5, 0.7]), "cm")
    assert len(edges) == evaluation_plots.N_BINS + 1


def test_number_formatting_and_flags():
    assert fmt(None) == "&ndash;"
    assert fmt(12.3456) == "12.35"
    assert fmt(0.5) == "0.5"
    assert "10<sup>-5</sup>" in fmt(1.234e-5)
    assert fmt_p(0.0476) == "0.048"
    assert fmt_p(0.0004) == "&lt;0.001"
    assert fmt_p(1.0) == "1"
    assert flag(3.0, 1.0, None) and not flag(1.5, 1.0, 0.5)
    assert flag(1.0, 1.0, 0.005)
    assert flag(0.3, 0.9, None, lower_is_better=False)
    assert not flag(0.8, 0.9, 0.001, lower_is_better=False)
    assert not flag(None, 1.0, 0.0)


def test_display_columns_keep_global_observables_and_spread_layers():
    """A 45-layer geometry: every non-layer observable and the first and last layers drawn."""
    n_layers, groups = 45, ("energy", "centre_x", "centre_y", "width_x", "width_y", "sparsity")
    names = ("energy_sum", "energy_ratio") + tuple(
        f"{g}_layer{i}" for g in groups for i in range(n_layers))
    layer_columns = {g: tuple(range(2 + k * n_layers, 2 + (k + 1) * n_layers))
                     for k, g in enumerate(groups)}
    pd = make_result(n=50).plot_data
    pd = PlotData(names, ("",) * len(names), (), pd.ref, pd.gen, pd.floor, pd.ref_corr,
                  pd.gen_corr, pd.floor_corr, pd.example_ref, pd.example_gen,
                  pd.example_conditions, pd.example_pdg, pd.mean_ref, pd.mean_gen,
                  kind="voxels", layer_columns=layer_columns)
    cols = evaluation_plots.display_columns(pd, 64)
    chosen = [names[j] for j in cols]
    assert len(cols) <= 64 and chosen[:2] == ["energy_sum", "energy_ratio"]
    for g in groups:
        assert f"{g}_layer0" in chosen and f"{g}_layer44" in chosen
    assert len({n.rsplit("layer", 1)[1] for n in chosen[2:]}) == 10  # (64 - 2) // 6 layers
    assert evaluation_plots.display_columns(pd, 1000) == list(range(len(names)))
