"""Derived ZDC conditions (log E, impact point) inside the condition embedding."""

import json

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.geometry.zdc import ZN
from calogen.models.generator import ModelSpec
from calogen.models.io import load_model, save_model
from calogen.models.nn.condition_features import ZDCConditionFeatures, condition_features
from calogen.models.registry import make_model
from calogen.particles import impact_point_cm

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]


def _conditions(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    e = rng.uniform(1.0, 3000.0, n)
    pz = e * rng.choice([-1.0, 1.0], n)
    return np.column_stack([e, rng.normal(0, 1e-4, n), rng.normal(0, 1e-4, n),
                            rng.normal(0, 0.05, n), rng.normal(0, 1e-4, n) * e,
                            rng.normal(0, 1e-4, n) * e, pz, np.full(n, 0.94),
                            np.zeros(n)])


def test_impact_point_and_log_energy_match_the_particles_module():
    c = _conditions()
    t = Transforms.fit(c, np.full(len(c), 2112), COLS)
    f = ZDCConditionFeatures(COLS, t.condition_mean, t.condition_std)
    out = f(t.conditions(c)).double().numpy()
    x, y, _, _ = impact_point_cm(c)
    assert out.shape == (len(c), 12)
    np.testing.assert_allclose(out[:, 10] * 2.0, np.clip(x, -8, 8), atol=2e-3)
    np.testing.assert_allclose(out[:, 11] * 2.0, np.clip(y, -8, 8), atol=2e-3)
    np.testing.assert_allclose(out[:, 9], (np.log(c[:, 0]) - 4.0) / 2.0, atol=1e-5)
    np.testing.assert_allclose(out[:, :9], t.conditions(c).numpy(), atol=1e-6)


def test_modes():
    c = _conditions(20)
    t = Transforms.fit(c, np.full(20, 2112), COLS)
    assert condition_features("raw", COLS, t.condition_mean, t.condition_std) is None
    assert condition_features("auto", COLS, t.condition_mean, t.condition_std) is not None
    assert condition_features("auto", ["E", "phi"], [0, 0], [1, 1]) is None
    with pytest.raises(ValueError, match="missing"):
        condition_features("zdc", ["E", "phi"], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="condition_features"):
        condition_features("bogus", COLS, t.condition_mean, t.condition_std)


def _spec() -> ModelSpec:
    c = _conditions(50)
    return ModelSpec(ZN, Transforms.fit(c, np.full(50, 2112), COLS))


def test_auto_widens_the_embedding_and_raw_does_not():
    spec = _spec()
    auto = make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8)
    raw = make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                     condition_features="raw")
    assert auto.cond_embed.net[0].in_features == 12
    assert raw.cond_embed.net[0].in_features == 9


def test_a_model_saved_before_the_hparam_existed_loads_as_raw(tmp_path):
    spec = _spec()
    torch.manual_seed(0)
    raw = make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                     condition_features="raw")
    save_model(raw, tmp_path / "m")
    cfg = tmp_path / "m" / "model.json"
    doc = json.loads(cfg.read_text())
    del doc["hparams"]["condition_features"]
    cfg.write_text(json.dumps(doc))
    back = load_model(tmp_path / "m")
    assert back.hparams["condition_features"] == "raw"
    c = _conditions(4)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    np.testing.assert_array_equal(raw.sample(c, np.full(4, 2112), g1),
                                  back.sample(c, np.full(4, 2112), g2))


def test_shift_images_moves_by_whole_pixels_and_fills_from_the_border():
    from calogen.models.nn.condition_features import shift_images

    x = torch.arange(25.0).view(1, 1, 5, 5)
    out = shift_images(x, torch.tensor([[1.0, 2.0]]))[0, 0]
    np.testing.assert_array_equal(out[2:, 2:].numpy(), x[0, 0, 1:4, :3].numpy())
    np.testing.assert_array_equal(out[0].numpy(), [0, 0, 0, 1, 2])  # top row: border copy
    back = shift_images(shift_images(x, torch.tensor([[1.4, -2.2]])),
                        torch.tensor([[-1.0, 2.0]]))
    np.testing.assert_array_equal(back[0, 0, :4, 2:].numpy(), x[0, 0, :4, 2:].numpy())


def test_recentred_vae_puts_simulated_showers_at_the_centre():
    import tempfile
    from pathlib import Path

    from calogen.data.showerset import ShowerSet
    from calogen.metrics.observables import ZDCObservables
    from calogen.pipelines.reference import simulate_to_file

    with tempfile.TemporaryDirectory() as d:
        path = simulate_to_file(Path(d) / "zn.h5", n=300, seed=6, progress=False).path
        with ShowerSet.open(path) as ss:
            b = ss.take(np.arange(len(ss)))
    spec = ModelSpec(ZN, Transforms.fit(b.conditions, b.pdg, COLS))
    model = make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                       recentre=True)
    cond = spec.transforms.conditions(b.conditions)
    x = torch.from_numpy(b.showers.astype(np.float32))[:, None]
    moved = model._to_shower_frame(x, cond)[:, 0].numpy()
    obs = ZDCObservables(ZN)
    cog = obs(b.showers)[:, 6:8]
    cog_moved = obs(moved)[:, 6:8]
    assert np.abs(cog).mean() > 0.5  # showers are spread over the face
    assert np.abs(cog_moved).mean() < 0.25 * np.abs(cog).mean()
    with pytest.raises(ValueError, match="recentre"):
        make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                   recentre=True, condition_features="raw")
