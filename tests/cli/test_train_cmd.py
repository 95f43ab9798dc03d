"""calogen train -> generate -> export on a tiny file (seconds; the real runs are benchmarks)."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    return simulate_to_file(d / "zn.h5", n=600, seed=3, repeats=2, progress=False).path


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_train_generate_export(data, tmp_path, family):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", family, "--data", str(data), "--out", str(run),
                              "--steps", "6", "--batch-size", "32", "--val-every", "3",
                              "--checkpoint-every", "3", "--hparam", "backbone=mlp",
                              "--hparam", "mlp_hidden=[32,64]", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (run / "best" / "model.json").is_file() and (run / "log.csv").is_file()
    gen = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                              str(data), "--out", str(gen), "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g, ShowerSet.open(data) as ref:
        assert len(g) == len(ref) and g.shower_shape == (44, 44)
        np.testing.assert_array_equal(g.conditions(), ref.conditions())
        assert g.read().showers.min() >= 0
    onnx = tmp_path / "zn.onnx"
    res = runner.invoke(app, ["export", "--model", str(run / "best"), "--format", "onnx",
                              "--out", str(onnx)])
    assert res.exit_code == 0, res.output
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    scales = json.loads(onnx.with_name("zn.scales.json").read_text())
    latent = scales["inputs"]["noise"][1]
    (out,) = sess.run(None, {"noise": np.zeros((2, latent), np.float32),
                             "conditions": np.zeros((2, 9), np.float32)})
    assert out.shape == (2, 1, 44, 44)
    config = json.loads((run / "config.json").read_text())
    expected = {"gan": (2e-4, [0.5, 0.9]), "vae": (1e-3, [0.9, 0.999])}[family]
    assert (config["lr"], config["betas"]) == expected


def test_optimizer_settings_given_family_and_trainer_defaults():
    from calogen.cli.train_cmd import family_optimizer_settings

    assert family_optimizer_settings("gan", None, None) == {"lr": 2e-4, "betas": (0.5, 0.9)}
    assert family_optimizer_settings("sdi-gan", 1e-4, "0.0,0.99") == \
        {"lr": 1e-4, "betas": (0.0, 0.99)}
    assert family_optimizer_settings("vae", None, None) == {}
    with pytest.raises(ValueError, match="b1,b2"):
        family_optimizer_settings("vae", None, "0.9")


def test_train_errors_are_one_line(data, tmp_path):
    res = runner.invoke(app, ["train", "--model", "nope", "--data", str(data), "--out",
                              str(tmp_path / "r"), "--steps", "2", "--no-progress"])
    assert res.exit_code == 2 and "unknown model family" in res.output
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(data), "--out",
                              str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 2 and "budget" in res.output
    res = runner.invoke(app, ["generate", "--model", str(tmp_path), "--conditions", str(data),
                              "--out", str(tmp_path / "g.h5"), "--no-progress"])
    assert res.exit_code == 2 and "model.json" in res.output


def test_token_family_sampling_options(data, tmp_path):
    """vq-vae: trained and generated through the CLI with prior sampling options; options of
    another kind are refused with a message naming the family's own."""
    run = tmp_path / "vq"
    res = runner.invoke(app, ["train", "--model", "vq-vae", "--data", str(data), "--out",
                              str(run), "--steps", "2", "--batch-size", "16", "--val-every",
                              "100", "--hparam", "vit_depth=1", "--hparam", "vit_width=32",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    gen = tmp_path / "vq.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "last"), "--conditions",
                              str(data), "--out", str(gen), "--temperature", "0.5", "--top-k",
                              "5", "--top-p", "0.9", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g:
        assert "temperature=0.5" in g.meta.producer["note"] and len(g) == 600
    res = runner.invoke(app, ["generate", "--model", str(run / "last"), "--conditions",
                              str(data), "--out", str(tmp_path / "x.h5"), "--steps", "4"])
    assert res.exit_code == 2 and "temperature" in res.output


def test_vae_on_voxels_train_generate_evaluate(data, tmp_path):
    """The shape-generic interface end to end: a VAE trained on the toy voxel file writes a
    voxel ShowerSet that ``calogen evaluate`` accepts; conditions of another kind or binning,
    and ONNX export, are refused with a clear message."""
    from calogen.geometry import uniform_layers
    from calogen.testing.showersets import TOY_VOXELS, write_toy_voxels

    voxels = write_toy_voxels(tmp_path / "voxels.h5", n=200, seed=1)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(voxels), "--out",
                              str(run), "--steps", "4", "--batch-size", "32", "--val-every", "2",
                              "--checkpoint-every", "2", "--hparam", "mlp_hidden=[16,16]",
                              "--hparam", "cond_dim=8", "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = json.loads((run / "best" / "model.json").read_text())
    assert doc["spec"]["geometry"] == TOY_VOXELS.to_dict()
    assert doc["hparams"]["backbone"] == "mlp" and doc["hparams"]["recon_loss"] == "mse"
    gen = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                              str(voxels), "--out", str(gen), "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g, ShowerSet.open(voxels) as ref:
        assert g.kind == "voxels" and g.shower_shape == (36,) and len(g) == len(ref)
        assert g.meta.geometry_object() == TOY_VOXELS and g.meta.detector == ref.meta.detector
        assert g.meta.shower_units == "MeV" and g.meta.shower_dtype == np.float32
        assert g.meta.condition_columns == ref.meta.condition_columns
        assert g.meta.condition_units == ref.meta.condition_units
        np.testing.assert_array_equal(g.conditions(), ref.conditions())
        showers = g.read().showers
        assert showers.min() >= 0 and not np.array_equal(showers, np.round(showers))
    res = runner.invoke(app, ["evaluate", "--reference", str(voxels), "--generated", str(gen),
                              "--out", str(tmp_path / "report"), "--seeds", "1",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "metrics.json").is_file()

    res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                              str(data), "--out", str(tmp_path / "no.h5"), "--no-progress"])
    assert res.exit_code == 2 and "image showers vs the model's voxels showers" in res.output
    other = write_toy_voxels(tmp_path / "other.h5", n=20,
                             geometry=uniform_layers("toy-voxels", 3, [0, 5, 10, 40], 4))
    res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                              str(other), "--out", str(tmp_path / "no.h5"), "--no-progress"])
    assert res.exit_code == 2 and "voxels geometry 'toy-voxels'" in res.output
    assert not (tmp_path / "no.h5").exists()
    res = runner.invoke(app, ["export", "--model", str(run / "best"), "--out",
                              str(tmp_path / "v.onnx")])
    assert res.exit_code == 2 and "image models only" in res.output
    assert not (tmp_path / "v.onnx").exists()
