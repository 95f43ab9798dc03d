import json

import numpy as np
import pytest
import torch
from torch import nn

from calogen.models.base import Generator, ModelSpec, TrainBatch, make_model, register_family
from calogen.models.io import ModelFileError, load_model, save_model
from calogen.models.transforms import Transforms

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]


@register_family
class ToyLinear(Generator):
    """A tiny one-step family for interface tests."""

    family = "toy-linear"

    def __init__(self, spec: ModelSpec, latent_dim: int = 4, **hparams):
        super().__init__(spec, latent_dim=latent_dim, **hparams)
        h, w = spec.shape
        self.net = nn.Linear(latent_dim + spec.n_conditions, h * w)

    def loss(self, batch: TrainBatch, phase: str):
        z = torch.randn(len(batch), self.latent_dim)
        y = self.decode(z, batch.cond)
        loss = ((y - batch.x) ** 2).mean()
        return loss, {"mse": float(loss)}

    def decode(self, noise, cond, species=None):
        h, w = self.spec.shape
        return nn.functional.softplus(self.net(torch.cat([noise, cond], 1))).view(-1, 1, h, w)


@pytest.fixture
def model():
    spec = ModelSpec((6, 5), Transforms.fit(np.random.default_rng(0).normal(size=(50, 9)),
                                            np.full(50, 2112), COLS))
    torch.manual_seed(0)
    return make_model("toy-linear", spec, latent_dim=3)


def test_save_load_sample_identical(model, tmp_path):
    cond = np.random.default_rng(1).normal(size=(7, 9)).astype(np.float32)
    pdg = np.full(7, 2112)
    a = model.sample(cond, pdg, torch.Generator().manual_seed(5), rounding=False)
    path = save_model(model, tmp_path / "m", training_data={"n_events": 50})
    loaded = load_model(path)
    b = loaded.sample(cond, pdg, torch.Generator().manual_seed(5), rounding=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (7, 6, 5) and a.min() >= 0
    ints = loaded.sample(cond, pdg, torch.Generator().manual_seed(5))
    assert ints.dtype == np.int32
    assert not list(tmp_path.glob(".m.tmp-*"))


def test_foreign_and_corrupt_directories_are_refused(model, tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nothing")
    path = save_model(model, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ModelFileError, match="format_version"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**doc, "format": "other"}))
    with pytest.raises(ModelFileError, match="not a calogen model"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**doc, "family": "nope"}))
    with pytest.raises(ModelFileError, match="unknown model family"):
        load_model(path)
    (path / "model.json").write_text(json.dumps(doc))
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="cannot read weights"):
        load_model(path)
    save_model(model, path)
    (path / "model.json").write_text(json.dumps({**doc, "hparams": {"latent_dim": 9}}))
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(path)
