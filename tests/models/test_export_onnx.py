import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from calogen.models.export_onnx import export_onnx


def test_onnx_matches_pytorch_and_writes_scales(toy_model, tmp_path):
    model = toy_model
    res = export_onnx(model, tmp_path / "zn.onnx")
    sess = ort.InferenceSession(str(res.onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["noise", "conditions"]
    rng = np.random.default_rng(3)
    for batch in (1, 17):
        noise = rng.normal(size=(batch, 3)).astype(np.float32)
        cond = rng.normal(size=(batch, 9)).astype(np.float32)
        (onnx_out,) = sess.run(None, {"noise": noise, "conditions": cond})
        with torch.no_grad():
            torch_out = model.decode(torch.from_numpy(noise), torch.from_numpy(cond)).numpy()
        np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-5, atol=1e-5)
    scales = json.loads(res.scales.read_text())
    assert scales["condition_mean"] == model.spec.transforms.condition_mean
    assert scales["inputs"]["noise"] == [None, 3]


def test_species_models_are_refused(toy_model, tmp_path):
    model = toy_model
    model.hparams["use_species"] = True
    with pytest.raises(ValueError, match="species"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(("family", "hparams"), [
    ("ae-noise", {"latent_prior": "flow", "recon_loss": "poisson", "backbone": "mlp"}),
    ("ae-noise", {"backbone": "cnn", "channels": [4, 8], "groups": 4}),
    ("vae", {"backbone": "mlp", "mlp_hidden": [32, 64]}),
    ("gan", {"backbone": "mlp", "output": "relu", "instance_noise": 0.2}),
])
def test_real_families_export_with_parity(toy_model, tmp_path, family, hparams):
    """The families' decoders (MLP/CNN, coupling-flow prior, ReLU output) run in onnxruntime as
    in PyTorch, with randomised weights (no identity-initialised layer left)."""
    from calogen.models.registry import make_model

    torch.manual_seed(1)
    model = make_model(family, toy_model.spec, cond_dim=16, **hparams)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    res = export_onnx(model, tmp_path / f"{family}.onnx")
    sess = ort.InferenceSession(str(res.onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(9, model.latent_dim)).astype(np.float32)
    cond = rng.normal(size=(9, 9)).astype(np.float32)
    (onnx_out,) = sess.run(None, {"noise": noise, "conditions": cond})
    with torch.no_grad():
        torch_out = model.decode(torch.from_numpy(noise), torch.from_numpy(cond)).numpy()
    assert onnx_out.shape == (9, 1, 6, 5)
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("field", "index", "value", "message"), [
    ("condition_std", 3, 0.0, r"condition_std\[3\]' \(column 'vz'\): expected a standard "
                              r"deviation > 0, found 0\.0"),
    ("condition_std", 0, float("nan"), r"condition_std\[0\]' \(column 'E'\).*found nan"),
    ("condition_std", 8, -1.0, r"condition_std\[8\]' \(column 'charge'\)"),
    ("condition_mean", 1, float("inf"), r"condition_mean\[1\]' \(column 'vx'\)"),
])
def test_unusable_condition_scales_are_refused(toy_model, tmp_path, field, index, value,
                                               message):
    """A std of 0 would make the caller divide by zero; nothing is written."""
    getattr(toy_model.spec.transforms, field)[index] = value
    with pytest.raises(ValueError, match=r"this toy-linear model: field"):
        export_onnx(toy_model, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match=r"models/zn: field 'spec\.transforms\." + message):
        export_onnx(toy_model, tmp_path / "x.onnx", source="models/zn")
    assert list(tmp_path.iterdir()) == []


def test_exported_model_directory_with_zero_std_names_the_file(toy_model, tmp_path):
    """From a model directory (as `calogen export` loads it): refused naming model.json."""
    from calogen.models.io import ModelFileError, load_model, save_model

    path = save_model(toy_model, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    doc["spec"]["transforms"]["condition_std"][2] = 0
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"m/model\.json: field 'spec\.transforms\."
                                             r"condition_std\[2\]'.*column 'vy'"):
        export_onnx(load_model(path), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
