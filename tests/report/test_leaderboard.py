"""Tests of the CaloChallenge 2022 leaderboard (published rows, ranking, files, HTML)."""

from __future__ import annotations

import csv
import io
import math
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import matplotlib.image
import pytest

from calogen.report import leaderboard
from calogen.report.leaderboard import (
    CSV_NAME,
    PNG_NAME,
    leaderboard_rows,
    parse_published_csv,
    published_results,
    write_leaderboard,
)

SUBMISSIONS = {"1-photons": 15, "1-pions": 12, "2": 17, "3": 15}
"""Submission rows per dataset in arXiv:2410.21611's result files (plus one GEANT4 row each)."""

SHARED = Path("/work/shared/calochallenge")
SHARED_FILES = {"1-photons": "ds1_photons", "1-pions": "ds1_pions", "2": "ds2", "3": "ds3"}


def by_name(dataset: str) -> dict[str, leaderboard.PublishedRow]:
    return {r.submission: r for r in published_results(dataset)}


# --------------------------------------------------------------------------------------------
# Published rows


@pytest.mark.parametrize("dataset", list(SUBMISSIONS))
def test_row_counts_and_reference_first(dataset):
    rows = published_results(dataset)
    assert rows[0].submission == "GEANT4" and rows[0].is_reference
    assert sum(not r.is_reference for r in rows) == SUBMISSIONS[dataset]
    assert len(rows) == SUBMISSIONS[dataset] + 1
    assert len({r.submission for r in rows}) == len(rows)
    # the reference row has no model: no parameters, no timing
    assert rows[0].params_generation is None and rows[0].ms_cpu_100 is None


def test_known_values():
    p = by_name("1-photons")
    assert p["CaloDiffusion"].fpd == 0.6497
    assert p["CaloDiffusion"].fpd_std == 0.1308
    assert p["CaloDiffusion"].kpd == -0.01
    assert p["CaloINN"].auc_low == 0.62592
    assert p["CaloINN"].params_generation == 18_821_350
    assert p["CaloINN"].ms_gpu_100 == pytest.approx(0.51418, abs=1e-5)
    assert p["GEANT4"].auc_high == pytest.approx(0.49945)
    assert p["CaloForest"].ms_gpu_100 is None  # not reported
    assert p["Calo-VQ"].params_training == 4_060_878 and p["Calo-VQ"].params_generation == 2_152_637
    assert by_name("1-pions")["DNN CaloSim"].ms_cpu_1 == pytest.approx(3.8501505745, rel=1e-9)
    assert by_name("2")["CaloDREAM"].auc_low == pytest.approx(0.53082)
    d3 = by_name("3")
    assert d3["CaloDREAM"].auc_high == 0.52408
    assert not d3["GEANT4 transformer"].is_reference  # a submission, not the floor


@pytest.mark.skipif(not SHARED.is_dir(), reason="source tables of the project not present")
@pytest.mark.parametrize("dataset", list(SUBMISSIONS))
def test_package_data_equals_the_source_tables(dataset):
    """Every shipped cell is the source cell, unchanged (same rows, same order)."""
    src = list(csv.DictReader(open(SHARED / f"published_results_{SHARED_FILES[dataset]}.csv",
                                   newline="")))
    name = f"calochallenge_2022_{dataset}.csv"
    text = (resources.files("calogen.report") / "published" / name).read_text("utf-8")
    shipped = list(csv.DictReader(io.StringIO(text)))
    assert [r["submission name"] for r in shipped] == [r["submission name"] for r in src]
    for a, b in zip(shipped, src, strict=True):
        assert all(a[col] == b[col] for col in a)


def test_readme_states_source_and_units():
    text = (resources.files("calogen.report") / "published" / "README.md").read_text("utf-8")
    for needed in ("arXiv:2410.21611", "9b41df7", "CaloChallenge/homepage", "ms per shower",
                   "official Geant4 files"):
        assert needed in text


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown CaloChallenge dataset 'ds2'.*1-photons"):
        published_results("ds2")
    with pytest.raises(ValueError, match="unknown CaloChallenge dataset"):
        leaderboard_rows("4", {"auc_low": 0.6})


def test_bad_published_file_names_file_line_and_column():
    header = ",".join(leaderboard._COLUMNS.values())
    n = len(leaderboard._COLUMNS)
    good = "M,1,2.0," + ",".join(["0.5"] * (n - 3))
    rows = parse_published_csv(f"{header}\n{good}\n", "x.csv")
    assert (rows[0].submission, rows[0].params_training, rows[0].params_generation) == ("M", 1, 2)
    assert rows[0].auc_low == 0.5 and rows[0].ms_gpu_10000_std == 0.5
    bad = "M,1.0,2.0,abc" + ",0.5" * (n - 4)
    with pytest.raises(ValueError, match=r"x\.csv line 2 \(M\), 'binary cls low': .*'abc'"):
        parse_published_csv(f"{header}\n{bad}\n", "x.csv")
    half = "M,1.5,2.0" + ",0.5" * (n - 3)
    with pytest.raises(ValueError, match="'Parameters training': expected a whole count"):
        parse_published_csv(f"{header}\n{half}\n", "x.csv")
    with pytest.raises(ValueError, match=r"x\.csv: missing column\(s\) 'FPD \* 1e3'"):
        parse_published_csv(header.replace("FPD * 1e3,", "") + "\n", "x.csv")


# --------------------------------------------------------------------------------------------
# Ranking


def names(rows):
    return [r.submission for r in rows]


def test_better_auc_ranks_above_worse():
    rows = leaderboard_rows("1-photons", {"auc_low": 0.60, "auc_high": 0.58})
    assert rows[0].submission == "GEANT4" and rows[0].rank is None
    assert rows[1].submission == "this run" and rows[1].rank == 1
    assert rows[2].submission == "CaloINN" and rows[2].rank == 2  # best published AUC low
    worse = leaderboard_rows("1-photons", {"auc_low": 0.70}, label="mine")
    order = names(worse)
    # 0.70 sits between CaloDiffusion (0.63459) and CaloFlow teacher (0.73298)
    assert order.index("CaloDiffusion") < order.index("mine") < order.index("CaloFlow teacher")
    ranked = [r for r in worse if r.rank is not None]
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
    values = [r.auc_low for r in ranked if r.auc_low is not None]
    assert len(values) == len(ranked)
    assert values == sorted(values)


def test_rank_by_and_default_key():
    by_high = leaderboard_rows("2", {"auc_low": 0.99, "auc_high": 0.51}, rank_by="auc_high")
    assert by_high[1].submission == "this run"  # best AUC high (CaloDREAM 0.52079)
    by_fpd = leaderboard_rows("2", {"fpd": 30.0})  # only FPD measured: ranked by it
    assert names(by_fpd)[1:3] == ["CaloDREAM", "this run"]  # 24.6488 < 30 < 112.479
    with pytest.raises(ValueError, match="cannot rank by 'precision'"):
        leaderboard_rows("2", {"fpd": 30.0}, rank_by="precision")


def test_rows_without_the_metric_go_last_and_ties_share_a_rank():
    rows = leaderboard_rows("1-photons", {"fpd": 0.6497}, label="tie", rank_by="auc_low")
    assert rows[-1].submission == "tie" and rows[-1].rank is None
    tie = leaderboard_rows("1-photons", {"fpd": 0.6497}, label="tie", rank_by="fpd")
    cd = next(r for r in tie if r.submission == "CaloDiffusion")
    me = next(r for r in tie if r.submission == "tie")
    assert me.rank == cd.rank and names(tie).index("CaloDiffusion") < names(tie).index("tie")


def test_measured_row_carries_its_values():
    rows = leaderboard_rows("1-pions", {"auc_low": 0.7, "auc_low_std": 0.01, "kpd": 0.2,
                                        "ms_per_shower_cpu_100": 0.9, "params": 1.2e6})
    me = next(r for r in rows if r.source == "measured")
    assert (me.auc_low, me.auc_low_std, me.kpd, me.ms_per_shower_cpu_100, me.params) == (
        0.7, 0.01, 0.2, 0.9, 1_200_000)
    assert me.auc_high is None and me.fpd is None
    inn = next(r for r in rows if r.submission == "CaloINN")
    assert inn.params == 26_592_624 and inn.ms_per_shower_cpu_100 == pytest.approx(3.91643, 1e-5)
    student = next(r for r in rows if r.submission == "CaloFlow student")
    assert student.params == 53_426_622  # parameters to generate, not the 110,389,398 trained


@pytest.mark.parametrize("measured, match", [
    ({"auc": 0.6}, "unknown key 'auc'"),
    ({"auc_low": math.nan}, "'auc_low' must be finite"),
    ({"fpd": "x"}, "'fpd' must be a number or None"),
    ({"params": -3}, "'params' must be a whole count"),
    ({"params": 2.5}, "'params' must be a whole count"),
    ({"ms_per_shower_cpu_100": 0.0}, "'ms_per_shower_cpu_100' must be > 0"),
])
def test_bad_measured_values_are_refused(measured, match):
    with pytest.raises(ValueError, match=match):
        leaderboard_rows("1-photons", measured)


# --------------------------------------------------------------------------------------------
# Files and HTML


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ours: list[str] = []
        self._in_ours = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "img"):
            self.links.append(a.get("href") or a.get("src") or "")
        if tag == "tr":
            self._in_ours = a.get("class") == "ours"

    def handle_data(self, data):
        if self._in_ours and data.strip():
            self.ours.append(data.strip())


MEASURED = {"auc_low": 0.66, "auc_high": 0.61, "fpd": 5.0, "kpd": 0.3,
            "ms_per_shower_cpu_100": 0.8, "params": 123_456}


def test_write_leaderboard_files_and_html(tmp_path):
    out = tmp_path / "report"
    fragment = write_leaderboard("1-photons", MEASURED, out, label="my flow",
                                 reference="ref.h5 (calogen parametrised engine)")
    assert sorted(p.name for p in out.iterdir()) == [CSV_NAME, PNG_NAME]
    image = matplotlib.image.imread(out / PNG_NAME)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    table = list(csv.DictReader(open(out / CSV_NAME, newline="")))
    assert len(table) == SUBMISSIONS["1-photons"] + 2
    mine = next(r for r in table if r["source"] == "measured")
    assert mine["submission"] == "my flow" and float(mine["auc_low"]) == 0.66
    assert mine["compared_with"] == "ref.h5 (calogen parametrised engine)"
    assert mine["params"] == "123456" and mine["rank"] == "3"  # after CaloINN and CaloDiffusion
    assert all("official CaloChallenge Geant4" in r["compared_with"]
               for r in table if r["source"] != "measured")
    cd = next(r for r in table if r["submission"] == "CaloDiffusion")
    assert float(cd["fpd_x1e3"]) == 0.6497 and cd["ms_per_shower_gpu_100"] != ""
    # the note: published rows on the official files, this run on another reference
    assert "official Geant4 files" in fragment
    assert "not the official files" in fragment
    assert "ref.h5 (calogen parametrised engine)" in fragment
    assert "arXiv:2410.21611" in fragment
    parser = _Parser()
    parser.feed(fragment)
    assert PNG_NAME in parser.links and CSV_NAME in parser.links
    assert parser.ours[:2] == ["3", "my flow"]


@pytest.fixture
def fake_plot(monkeypatch):
    """Replace the (slow) drawing by a writer of a few bytes that name the measured row."""
    def draw(rows, dataset, path):
        ours = next(r for r in rows if r.source == "measured")
        Path(path).write_bytes(f"png {dataset} {ours.auc_low}".encode())
    monkeypatch.setattr(leaderboard, "plot_leaderboard", draw)


def test_html_escapes_label_and_reference(tmp_path, fake_plot):
    fragment = write_leaderboard("3", {"auc_high": 0.7}, tmp_path, label="<b>x</b>",
                                 reference="a&b")
    assert "<b>x</b>" not in fragment and "&lt;b&gt;x&lt;/b&gt;" in fragment
    assert "a&amp;b" in fragment


def test_failed_drawing_leaves_earlier_files_untouched(tmp_path, monkeypatch, fake_plot):
    write_leaderboard("2", {"auc_low": 0.7}, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(rows, dataset, path):
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(leaderboard, "plot_leaderboard", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_leaderboard("2", {"auc_low": 0.9}, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temporaries left, both files as they were


def test_failed_csv_leaves_no_new_image(tmp_path, monkeypatch, fake_plot):
    write_leaderboard("2", {"auc_low": 0.7}, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(rows, reference=None):
        raise OSError("disk full")

    monkeypatch.setattr(leaderboard, "leaderboard_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_leaderboard("2", {"auc_low": 0.9}, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_rewrite_replaces_both_files(tmp_path, fake_plot):
    write_leaderboard("2", {"auc_low": 0.7}, tmp_path)
    write_leaderboard("2", {"auc_low": 0.9}, tmp_path)
    assert (tmp_path / PNG_NAME).read_bytes() == b"png 2 0.9"
    assert "0.9" in (tmp_path / CSV_NAME).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CSV_NAME, PNG_NAME]


def test_temporaries_of_a_killed_run_are_removed_and_file_out_refused(tmp_path, fake_plot):
    debris = tmp_path / f".{PNG_NAME}.tmp-999999999-deadbeef.png"  # no such process
    debris.write_bytes(b"partial")
    write_leaderboard("1-pions", {"auc_low": 0.7}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CSV_NAME, PNG_NAME]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        write_leaderboard("1-pions", {"auc_low": 0.7}, afile)
