"""Latent flow matching on a toy with a known answer: the latent distribution of a frozen
autoencoder.

Toy as in ``test_diffusion``: 4 x 4 images ``a * P``, amplitude ``a ~ N(0.5 or 1.5, 0.15^2)``
by condition. A tiny VAE (latent 2) is trained on it first; the latent model must then
reproduce the VAE's encoded latents per condition (means within 0.2, standard deviations
within 25 %, in standardised latent units), and its decoded amplitudes must match those of the
VAE's reconstructions (means within 0.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from calogen.models.io import ModelFileError, hparams_on_top_of, load_model, save_model
from calogen.models.registry import make_model

from .test_diffusion import MU, TINY, P, _amplitudes, _batch, _spec, _train

pytestmark = pytest.mark.usefixtures("one_thread")

VAE_TOY = {"backbone": "mlp", "mlp_hidden": [32, 32], "cond_dim": 16, "latent_dim": 2,
           "prior": "normal", "recon_loss": "mse", "output": "linear", "beta": 0.05}
FM_TOY = {"hidden": 64, "depth": 2, "cond_dim": 16, "steps": 8}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    vae = make_model("vae", _spec(), **VAE_TOY)
    _train(vae, 400)
    return save_model(vae, tmp_path_factory.mktemp("ae") / "vae")


@pytest.fixture(scope="module")
def latent_model(vae_dir: Path):
    torch.manual_seed(0)
    model = make_model("latent-flow-matching", _spec(),
                       **hparams_on_top_of("latent-flow-matching", vae_dir, FM_TOY))
    losses = _train(model, 600)
    assert np.mean(losses[-50:]) < 0.8 * np.mean(losses[:20])
    return model


def _latents(model, c: float, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """(encoded latents of fresh toy data, generated latents) for condition ``c``,
    standardised."""
    gen = torch.Generator().manual_seed(11)
    batch = _batch(4 * n, gen)
    keep = batch.cond[:, 0] == c
    model.eval()
    with torch.no_grad():
        real = model.encode_latent(batch.x[keep], batch.cond[keep], None)
        cond = batch.cond[keep]
        c_emb = model.cond_embed(cond)
        from calogen.models.nn.samplers import ode_sample

        noise = torch.randn(len(cond), model.latent_dim, generator=gen)
        fake = ode_sample(lambda x, t: model.velocity(x, t, c_emb), noise, 8, "midpoint")
    real = (real - model.z_mean) / model.z_std
    return real.numpy(), fake.numpy()


def test_generated_latents_match_the_encoded_ones(latent_model) -> None:
    for c in MU:
        real, fake = _latents(latent_model, c)
        np.testing.assert_allclose(fake.mean(0), real.mean(0), atol=0.2)
        np.testing.assert_allclose(fake.std(0), real.std(0), rtol=0.25)


def test_decoded_amplitudes_match_the_autoencoder(latent_model, vae_dir: Path) -> None:
    vae = load_model(vae_dir).eval()
    gen = torch.Generator().manual_seed(3)
    batch = _batch(800, gen)
    for c in MU:
        keep = batch.cond[:, 0] == c
        with torch.no_grad():
            z = latent_model.encode_latent(batch.x[keep], batch.cond[keep], None)
            recon = vae.decode_latent(z, batch.cond[keep])[:, 0]
        recon_amp = ((recon * P).sum((1, 2)) / (P * P).sum()).numpy()
        amp = _amplitudes(latent_model, c)
        assert abs(amp.mean() - recon_amp.mean()) < 0.1, (c, amp.mean(), recon_amp.mean())
        assert abs(amp.mean() - MU[c]) < 0.25, (c, amp.mean())


def test_model_is_self_contained_and_exports(latent_model, tmp_path: Path) -> None:
    """Saved with the autoencoder's weights: loads and samples identically without the
    autoencoder's directory; deterministic sampling exports (parity checked by export_onnx)."""
    from calogen.models.export_onnx import export_onnx

    saved = save_model(latent_model, tmp_path / "lfm")
    doc_hp = load_model(saved).hparams
    broken = dict(doc_hp, autoencoder=str(tmp_path / "gone"))
    model = make_model("latent-flow-matching", _spec(), **broken)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(saved / "model.safetensors")))
    np.testing.assert_array_equal(_amplitudes(model, 1.0, n=16),
                                  _amplitudes(latent_model, 1.0, n=16))
    assert model.network_calls() == 16
    assert model.configure_sampling(steps=2, sampler="euler") == {"steps": 2,
                                                                  "sampler": "euler"}
    assert model.network_calls() == 2
    with pytest.raises(ValueError, match="sampler"):
        model.configure_sampling(sampler="rk45")
    with pytest.raises(ValueError, match="no sampling option"):
        model.configure_sampling(eta=0.5)
    model.configure_sampling(steps=8, sampler="midpoint")
    res = export_onnx(model.eval(), tmp_path / "lfm.onnx")
    assert res.onnx.is_file()


def test_autoencoder_checks(vae_dir: Path, tmp_path: Path) -> None:
    edm = save_model(make_model("edm", _spec(), **TINY), tmp_path / "edm")
    with pytest.raises(ValueError, match="needs one of"):
        hparams_on_top_of("latent-flow-matching", edm)
    with pytest.raises(ValueError, match="ae_family"):
        make_model("latent-flow-matching", _spec())
    hp = hparams_on_top_of("latent-flow-matching", vae_dir, {"steps": 2})
    assert hp["ae_family"] == "vae" and hp["steps"] == 2 and hp["readout"] == "poisson"
    model = make_model("latent-flow-matching", _spec(), **{**hp, "autoencoder": ""})
    model.train()
    with pytest.raises(ValueError, match="needs a trained autoencoder"):
        model.loss(_batch(8, torch.Generator().manual_seed(0)), "main")
    model.eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match="not trained yet"):
        model.loss(_batch(8, torch.Generator().manual_seed(0)), "main")
    with pytest.raises(ModelFileError):
        hparams_on_top_of("latent-flow-matching", tmp_path / "missing")


def test_ae_noise_latents_are_supported(tmp_path: Path) -> None:
    ae = make_model("ae-noise", _spec(), backbone="mlp", mlp_hidden=[16], cond_dim=8, code_dim=3)
    model = make_model("latent-flow-matching", _spec(), **hparams_on_top_of("latent-flow-matching",
        save_model(ae, tmp_path / "ae"), FM_TOY))
    assert model.latent_dim == 3
    _train(model, 3)
    assert _amplitudes(model, -1.0, n=4).shape == (4,)


def test_cli_autoencoder_option(vae_dir: Path, tmp_path: Path) -> None:
    from calogen.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(tmp_path / "x.h5"),
                              "--out", str(tmp_path / "run"), "--steps", "1",
                              "--autoencoder", str(vae_dir)])
    assert res.exit_code != 0
    assert "--autoencoder is for --model latent-flow-matching" in res.output

