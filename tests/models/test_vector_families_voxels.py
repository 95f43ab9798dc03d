"""The vector-backbone families on voxels (issue 15 item 6): what differs from images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.generator import ModelSpec
from calogen.models.registry import make_model
from calogen.particles import gun_conditions
from calogen.testing.showersets import TOY_VOXELS

MLP = {"mlp_hidden": [16, 16], "cond_dim": 8, "latent_dim": 2}


def _spec() -> ModelSpec:
    columns, _ = gun_conditions("E_inc")
    e = np.random.default_rng(0).uniform(1, 100, size=(32, 1))
    return ModelSpec(TOY_VOXELS, Transforms.fit(e, np.full(32, 22), list(columns)))


@pytest.mark.parametrize("family", ["gan", "sdi-gan"])
def test_gans_default_to_mlp_on_voxels_and_refuse_the_hottest_pixel(family: str) -> None:
    model = make_model(family, _spec(), **MLP)
    assert model.hparams["backbone"] == "mlp"
    out = model.decode(torch.randn(3, 2), torch.randn(3, 1))
    assert out.shape == (3, TOY_VOXELS.n_voxels)
    with pytest.raises(ValueError, match="aux_hottest"):
        make_model(family, _spec(), **MLP, aux_hottest=1.0)
    with pytest.raises(ValueError, match="backbone 'mlp'"):
        make_model(family, _spec(), **MLP, backbone="cnn")


def test_latent_flow_matching_on_a_voxel_autoencoder() -> None:
    ae = {"backbone": "mlp", "mlp_hidden": [16, 16], "cond_dim": 8, "latent_dim": 2,
          "recon_loss": "mse", "readout": "round"}
    model = make_model("latent-flow-matching", _spec(), ae_family="vae", ae_hparams=ae,
                       hidden=16, depth=1, cond_dim=8, steps=2)
    assert model.hparams["readout"] == "round" and not model.exportable()
    out = model.decode(torch.randn(3, 2), torch.randn(3, 1))
    assert out.shape == (3, TOY_VOXELS.n_voxels)
