"""Every command that reads showers or conditions validates their content before creating any
output, names the file, the field and the first bad row, and skips the scan knowingly with
``--no-validate``; negative seeds are refused naming the option."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet, write_showerset
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()
TINY_VAE = ["--hparam", "backbone=mlp", "--hparam", "mlp_hidden=[16]", "--hparam",
            "latent_dim=4"]


@pytest.fixture(scope="module")
def zn(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("zn")
    return simulate_to_file(d / "zn.h5", n=200, seed=5, repeats=2, progress=False).path


@pytest.fixture(scope="module")
def zp(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("zp")
    return simulate_to_file(d / "zp.h5", detector="zp", n=50, seed=6, progress=False).path


@pytest.fixture(scope="module")
def model(zn, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "vae"
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(zn), "--out", str(run),
                              "--steps", "2", "--batch-size", "32", "--val-every", "100",
                              "--no-progress", *TINY_VAE])
    assert res.exit_code == 0, res.output
    return run / "last"


def corrupt(src: Path, dst: Path, dataset: str, index: tuple[int, ...], value: float,
            *, float_showers: bool = False) -> Path:
    """A copy of ``src`` with one value changed (showers stored as float32 if asked)."""
    if float_showers:
        with ShowerSet.open(src) as ss:
            b, m = ss.read(), ss.meta
        write_showerset(dst, b.showers.astype(np.float32), b.conditions, b.pdg,
                        condition_id=b.condition_id, detector=m.detector, geometry=m.geometry,
                        producer=m.producer)
    else:
        shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f[dataset][index] = value
    return dst


def one_line_error(res, *parts: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for part in parts:
        assert part in res.output, (part, res.output)


# -- info, show, export-npz --------------------------------------------------------------------


@pytest.mark.parametrize(("dataset", "index", "value", "found"), [
    ("showers", (17, 3, 4), np.nan, "NaN at row 17, pixel (3, 4)"),
    ("showers", (18, 0, 1), np.inf, "inf at row 18, pixel (0, 1)"),
    ("showers", (19, 2, 2), -5, "-5 at row 19, pixel (2, 2)"),
    ("conditions", (4, 0), np.nan, "NaN at row 4, column 'E'"),
])
def test_info_refuses_bad_content(zn, tmp_path, dataset, index, value, found):
    bad = corrupt(zn, tmp_path / "bad.h5", dataset, index, value, float_showers=True)
    res = runner.invoke(app, ["info", str(bad)])
    one_line_error(res, str(bad), f"field '{dataset}'", found)


def test_info_no_validate_says_it_skipped(zn, tmp_path):
    bad = corrupt(zn, tmp_path / "neg.h5", "showers", (0, 0, 0), -1)
    res = runner.invoke(app, ["info", str(bad), "--no-validate"])
    assert res.exit_code == 0, res.output
    assert "content validation skipped (--no-validate)" in res.stderr and str(bad) in res.stderr


def test_show_refuses_nan_and_draws_nothing(zn, tmp_path):
    bad = corrupt(zn, tmp_path / "nan.h5", "showers", (3, 1, 1), np.nan, float_showers=True)
    png = tmp_path / "show.png"
    res = runner.invoke(app, ["show", str(bad), "--out", str(png)])
    one_line_error(res, str(bad), "NaN at row 3")
    assert not png.exists()


def test_export_npz_refuses_negative_counts_and_writes_nothing(zn, tmp_path):
    bad = corrupt(zn, tmp_path / "neg.h5", "showers", (9, 5, 5), -2)
    r, p = tmp_path / "r.npz", tmp_path / "p.npz"
    res = runner.invoke(app, ["export-npz", str(bad), "--responses", str(r), "--particles",
                              str(p)])
    one_line_error(res, str(bad), "field 'showers'", "-2 at row 9")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["neg.h5"]
    res = runner.invoke(app, ["export-npz", str(bad), "--responses", str(r), "--particles",
                              str(p), "--no-validate"])
    assert res.exit_code == 0 and "skipped" in res.stderr and r.exists()


# -- train ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dataset", "index", "value", "found"), [
    ("showers", (30, 20, 20), -7, "-7 at row 30"),
    ("showers", (31, 20, 20), np.nan, "NaN at row 31"),
    ("showers", (32, 20, 20), 1.5, "1.5 at row 32"),  # float showers must be counts here
    ("conditions", (33, 1), np.nan, "NaN at row 33, column 'vx'"),
])
def test_train_refuses_bad_content_before_creating_the_run(zn, tmp_path, dataset, index,
                                                           value, found):
    bad = corrupt(zn, tmp_path / "bad.h5", dataset, index, value, float_showers=True)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(bad), "--out", str(run),
                              "--steps", "2", "--no-progress", *TINY_VAE])
    one_line_error(res, str(bad), f"field '{dataset}'", found)
    assert not run.exists()


# -- generate ---------------------------------------------------------------------------------


def test_generate_refuses_nan_conditions(zn, model, tmp_path):
    bad = corrupt(zn, tmp_path / "nan.h5", "conditions", (12, 6), np.nan)
    out = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(model), "--conditions", str(bad),
                              "--out", str(out), "--no-progress"])
    one_line_error(res, str(bad), "field 'conditions'", "NaN at row 12, column 'pz'")
    assert not out.exists()


def test_generate_refuses_zp_conditions_for_a_zn_model_before_sampling(zp, model, tmp_path,
                                                                       monkeypatch):
    import calogen.train.generation as generation

    def never(*args, **kwargs):
        raise AssertionError("sampled")

    monkeypatch.setattr(generation, "_write", never)
    out = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(model), "--conditions", str(zp),
                              "--out", str(out), "--no-progress"])
    one_line_error(res, str(zp), str(model), "detector ZP vs the model's ZN",
                   "shower shape (56, 30) vs the model's (44, 44)")
    assert str(out) not in res.output and not out.exists()


def test_generate_npz_detector_must_match_the_model(model, tmp_path):
    particles = np.zeros((3, 10))
    particles[:, 0], particles[:, 9] = 100.0, 2112
    npz = tmp_path / "p.npz"
    np.savez(npz, particles)
    res = runner.invoke(app, ["generate", "--model", str(model), "--conditions", str(npz),
                              "--out", str(tmp_path / "g.h5"), "--detector", "zp"])
    one_line_error(res, str(npz), "detector ZP (--detector) vs the model's ZN")
    particles[1, 9] = 0
    np.savez(npz, particles)
    res = runner.invoke(app, ["generate", "--model", str(model), "--conditions", str(npz),
                              "--out", str(tmp_path / "g.h5")])
    one_line_error(res, str(npz), "field 'pdg'", "0 at row 1")


# -- evaluate ---------------------------------------------------------------------------------


def _evaluate(ref: Path, gen: Path, out: Path, *extra: str):
    return runner.invoke(app, ["evaluate", "--reference", str(ref), "--generated", str(gen),
                               "--out", str(out), "--no-progress", *extra])


def test_evaluate_names_the_bad_reference(zn, tmp_path):
    bad = corrupt(zn, tmp_path / "ref.h5", "showers", (2, 10, 10), np.nan, float_showers=True)
    res = _evaluate(bad, zn, tmp_path / "report")
    one_line_error(res, str(bad), "NaN at row 2", "(given as --reference)")
    assert not (tmp_path / "report").exists()


def test_evaluate_refuses_an_empty_reference(zn, tmp_path):
    with ShowerSet.open(zn) as ss:
        m = ss.meta
    empty = write_showerset(tmp_path / "empty.h5", np.zeros((0, 44, 44), np.int32),
                            np.zeros((0, 9), np.float32), np.zeros(0, np.int32),
                            detector=m.detector, geometry=m.geometry, producer={})
    res = _evaluate(empty, zn, tmp_path / "report")
    one_line_error(res, str(empty), "expected at least 1 event(s), found 0")
    res = _evaluate(empty, zn, tmp_path / "report", "--no-validate")
    one_line_error(res, str(empty), "the reference holds no events")


def test_evaluate_refuses_a_longer_generated_file(zn, tmp_path):
    with ShowerSet.open(zn) as ss:
        b, m = ss.read(), ss.meta
    longer = write_showerset(tmp_path / "longer.h5", np.concatenate([b.showers, b.showers]),
                             np.concatenate([b.conditions, b.conditions]),
                             np.concatenate([b.pdg, b.pdg]), detector=m.detector,
                             geometry=m.geometry, producer={})
    res = _evaluate(zn, longer, tmp_path / "report")
    one_line_error(res, str(longer), "400 generated events for the 200 events of the "
                   f"reference {zn}")
    assert not (tmp_path / "report").exists()


# -- baseline, loglik ---------------------------------------------------------------------------


def test_baseline_refuses_a_bad_training_file(zn, tmp_path):
    bad = corrupt(zn, tmp_path / "train.h5", "pdg", (44,), 0)
    out = tmp_path / "b.h5"
    res = runner.invoke(app, ["baseline", "shuffled", "--train", str(bad), "--conditions",
                              str(zn), "--out", str(out), "--no-progress"])
    one_line_error(res, str(bad), "field 'pdg'", "0 at row 44", "(given as --train)")
    assert not out.exists()


def test_loglik_refuses_negative_counts(zn, model, tmp_path):
    bad = corrupt(zn, tmp_path / "neg.h5", "showers", (8, 1, 2), -1)
    out = tmp_path / "ll.csv"
    res = runner.invoke(app, ["loglik", str(bad), "--model", str(model), "--out", str(out),
                              "--no-progress"])
    one_line_error(res, str(bad), "-1 at row 8", "(given as FILE)")
    assert not out.exists()


# -- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["show", "x.h5", "--out", "x.png"],
    ["evaluate", "--reference", "x.h5", "--generated", "x.h5", "--out", "r"],
    ["baseline", "shuffled", "--train", "x.h5", "--conditions", "x.h5", "--out", "b.h5"],
    ["train", "--model", "vae", "--data", "x.h5", "--out", "r", "--steps", "1"],
    ["generate", "--model", "m", "--conditions", "x.h5", "--out", "g.h5"],
    ["loglik", "x.h5", "--model", "m"],
    ["quickstart", "--out", "q"],
], ids=lambda argv: argv[0])
def test_negative_seed_names_the_option(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*argv, "--seed", "-1"])
    assert res.exit_code == 2
    assert "Invalid value for '--seed'" in res.output
    assert list(tmp_path.iterdir()) == []
