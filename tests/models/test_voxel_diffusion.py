"""The geometry-aware voxel diffusion family on a tiny DS1-photons-shaped set (368 voxels,
five layers of different sizes) and a tiny uniform geometry (identical layers, circular
convolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet, write_showerset
from calogen.data.transforms import Transforms
from calogen.geometry import uniform_layers
from calogen.geometry.calochallenge import calochallenge_binning
from calogen.geometry.voxels import LayeredVoxelGeometry
from calogen.models.families.voxel_diffusion import CylinderConv, VoxelDiffusion
from calogen.models.generator import ModelSpec, TrainBatch
from calogen.models.io import load_model, save_model
from calogen.models.registry import make_model
from calogen.particles import gun_conditions

TINY = {"width": 32, "depth": 1, "heads": 2, "mlp_ratio": 2, "cond_dim": 16}
DS1 = calochallenge_binning("1-photons").geometry
UNIFORM = uniform_layers("tiny-ds2", 4, [0.0, 4.0, 8.0, 16.0], 6)


def showers_for(geometry: LayeredVoxelGeometry, n: int, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Structured toy showers ``(n, n_voxels)`` MeV and E_inc ``(n,)`` GeV: a shower-wide
    radial width and layer profile, angle-uniform, 60 % of E_inc deposited; voxels below
    1e-4 of their layer dropped (sparsity)."""
    rng = np.random.default_rng(seed)
    e_inc = np.exp(rng.uniform(np.log(1.0), np.log(100.0), n))
    layer, _, r_bin = geometry.voxel_bins()
    width = rng.uniform(0.5, 2.0, n)[:, None]
    depth = rng.uniform(0.5, 1.5, n)[:, None]
    profile = np.exp(-r_bin[None, :] / width) * np.exp(-(layer[None, :] - 2 * depth) ** 2 / 2)
    profile = profile * rng.lognormal(0.0, 0.1, profile.shape)
    x = profile / profile.sum(1, keepdims=True) * 0.6 * e_inc[:, None] * 1000.0
    layer_e = np.zeros((n, geometry.n_layers))
    np.add.at(layer_e.T, layer, x.T)
    x[x < 1e-4 * layer_e[:, layer]] = 0.0
    return x.astype(np.float32), e_inc.astype(np.float32)


def _spec(geometry: LayeredVoxelGeometry, e_inc: np.ndarray) -> ModelSpec:
    columns, _ = gun_conditions("E_inc")
    return ModelSpec(geometry, Transforms.fit(e_inc[:, None], np.full(len(e_inc), 22),
                                              list(columns)))


def _batch(spec: ModelSpec, x: np.ndarray, e_inc: np.ndarray) -> TrainBatch:
    n = len(x)
    return TrainBatch(Transforms.showers(x), spec.transforms.conditions(e_inc[:, None]),
                      torch.zeros(n, dtype=torch.int64), torch.arange(n))


def _train(model: VoxelDiffusion, batch: TrainBatch, steps: int, bs: int = 64) -> list[float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(batch), (bs,))
        sub = TrainBatch(batch.x[idx], batch.cond[idx], batch.species[idx],
                         batch.condition_id[idx])
        loss, _ = model.loss(sub)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def ds1(one_thread: None) -> tuple[VoxelDiffusion, list[float], np.ndarray, np.ndarray]:
    x, e = showers_for(DS1, 256)
    spec = _spec(DS1, e)
    torch.manual_seed(0)
    model = make_model("voxel-diffusion", spec, **TINY)
    assert isinstance(model, VoxelDiffusion)
    losses = _train(model, _batch(spec, x, e), 120)
    return model.eval(), losses, x, e


def _sample(model: VoxelDiffusion, n: int = 20, seed: int = 1) -> np.ndarray:
    e = np.geomspace(1.0, 100.0, n).astype(np.float32)[:, None]
    return model.sample(e, np.full(n, 22), torch.Generator().manual_seed(seed))


def test_loss_decreases_on_ds1_photons_shape(ds1) -> None:
    _, losses, _, _ = ds1
    assert np.mean(losses[-20:]) < 0.9 * np.mean(losses[:20]), losses[::10]


def test_preprocessing_is_fitted_from_the_first_batch(ds1) -> None:
    model, _, x, _ = ds1
    prep = model.preprocessing
    assert prep is not None and prep.layer_sizes == (8, 160, 190, 5, 5)
    assert prep.threshold_mev >= float(x[x > 0].min())  # the smallest positive of a subset
    assert prep.noise_mev == 1e-3 and prep.alpha == 1e-6
    assert float(model.feature_std.min()) > 0 and int(model.initialised) == 1


def test_samples_ds1_shape_non_negative_thresholded(ds1) -> None:
    model, _, _, _ = ds1
    s = _sample(model)
    assert s.shape == (20, 368) and s.dtype == np.float32
    assert np.isfinite(s).all() and (s >= 0).all()
    cut = max(model.preprocessing.threshold_mev, model.preprocessing.noise_mev)
    positive = s[s > 0]
    assert positive.size > 0 and positive.min() >= cut
    assert (s == 0).any()  # the threshold removed the noise floor


def test_total_energy_scales_with_the_incident_energy(ds1) -> None:
    model, _, _, _ = ds1
    s = _sample(model, 40)
    ratio = s.sum(1) / (np.geomspace(1.0, 100.0, 40) * 1000.0)
    # the training set deposits 60 %; E_tot <= u0_scale E_inc by construction
    assert (ratio <= model.preprocessing.u0_scale + 1e-4).all()
    assert 0.3 < np.median(ratio) < 0.9


def test_seeded_sampling_is_reproducible(ds1) -> None:
    model, _, _, _ = ds1
    np.testing.assert_array_equal(_sample(model, seed=3), _sample(model, seed=3))
    assert not np.array_equal(_sample(model, seed=3), _sample(model, seed=4))


def _count_calls(model: VoxelDiffusion) -> int:
    calls = []
    handle = model.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        _sample(model, 3)
    finally:
        handle.remove()
    return len(calls)


def test_steps_option_sets_the_network_calls(ds1) -> None:
    model, _, _, _ = ds1
    before = dict(model.hparams)
    try:
        assert model.network_calls() == 9 and _count_calls(model) == 9  # default: 5 Heun steps
        a = _sample(model)
        options = VoxelDiffusion.parse_sampling(["steps=2"])
        model.configure_sampling(**options)
        assert model.network_calls() == 3 and _count_calls(model) == 3
        assert not np.array_equal(a, _sample(model))
        model.configure_sampling(steps=4, sampler="euler")
        assert model.network_calls() == 4 and _count_calls(model) == 4
        with pytest.raises(ValueError, match="steps must be >= 1"):
            model.configure_sampling(steps=0)
        with pytest.raises(ValueError, match="sampler must be one of"):
            model.configure_sampling(sampler="ddim")
    finally:
        model.hparams.clear()
        model.hparams.update(before)


def test_save_load_samples_identical(ds1, tmp_path: Path) -> None:
    model, _, _, _ = ds1
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert isinstance(loaded, VoxelDiffusion)
    assert loaded.preprocessing == model.preprocessing
    np.testing.assert_array_equal(_sample(model), _sample(loaded))


def test_untrained_model_refuses_to_sample() -> None:
    x, e = showers_for(DS1, 8)
    model = make_model("voxel-diffusion", _spec(DS1, e), **TINY)
    assert isinstance(model, VoxelDiffusion)
    with pytest.raises(RuntimeError, match="not trained yet"):
        _sample(model)


def test_uniform_geometry_with_circular_convolution(one_thread: None) -> None:
    x, e = showers_for(UNIFORM, 128, seed=2)
    spec = _spec(UNIFORM, e)
    torch.manual_seed(0)
    model = make_model("voxel-diffusion", spec, **TINY, conv_channels=4)
    assert isinstance(model, VoxelDiffusion) and model.conv is not None
    losses = _train(model, _batch(spec, x, e), 60, bs=32)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    # the convolution learned something (its output layer starts at zero)
    assert float(model.conv.conv_out.weight.detach().abs().sum()) > 0
    s = _sample(model.eval(), 6)
    assert s.shape == (6, UNIFORM.n_voxels) and (s >= 0).all()


def test_convolution_refused_on_layers_of_different_sizes() -> None:
    _, e = showers_for(DS1, 8)
    with pytest.raises(ValueError, match="identical layers"):
        make_model("voxel-diffusion", _spec(DS1, e), **TINY, conv_channels=4)


def test_cylinder_padding_is_circular_in_angle_only() -> None:
    v = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 3, 4)  # (L, A, R)
    p = CylinderConv._pad(v)
    assert p.shape == (1, 1, 4, 5, 6)
    inner = p[0, 0, 1:-1, :, 1:-1]
    torch.testing.assert_close(inner[:, 0], v[0, 0, :, -1])   # angle wraps around
    torch.testing.assert_close(inner[:, -1], v[0, 0, :, 0])
    assert float(p[0, 0, 0].abs().sum()) == 0 and float(p[0, 0, :, :, 0].abs().sum()) == 0


def test_bad_hparams_are_refused() -> None:
    _, e = showers_for(DS1, 8)
    spec = _spec(DS1, e)
    with pytest.raises(ValueError, match="unknown hparams"):
        make_model("voxel-diffusion", spec, nope=1)
    with pytest.raises(ValueError, match="multiple of heads"):
        make_model("voxel-diffusion", spec, **{**TINY, "width": 30, "heads": 4})
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_model("voxel-diffusion", spec, **TINY, sampler="ddim")


def test_cli_train_and_generate(tmp_path: Path, one_thread: None) -> None:
    from typer.testing import CliRunner

    x, e = showers_for(DS1, 64, seed=5)
    columns, units = gun_conditions("E_inc")
    data = write_showerset(tmp_path / "ds1.h5", x, e[:, None], np.full(64, 22, np.int32),
                           condition_id=np.arange(64), detector=DS1.name, geometry=DS1,
                           condition_columns=columns, condition_units=units,
                           producer={"name": "tests/models"})
    run = tmp_path / "run"
    runner = CliRunner()
    hp = [a for k, v in TINY.items() for a in ("--hparam", f"{k}={v}")]
    res = runner.invoke(app, ["train", "--model", "voxel-diffusion", "--data", str(data),
                              "--out", str(run), "--steps", "4", "--batch-size", "16",
                              "--val-every", "2", "--checkpoint-every", "2", "--no-progress",
                              *hp])
    assert res.exit_code == 0, res.output
    gen = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                              str(data), "--out", str(gen), "--sample", "steps=2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g:
        showers = g.read().showers
    assert showers.shape == (64, 368) and showers.min() >= 0
