"""Shared fixtures: a tiny one-step family for interface tests (registered on import)."""

import numpy as np
import pytest
import torch
from torch import nn

from calogen.data.transforms import Transforms
from calogen.models.generator import Generator, ModelSpec, TrainBatch, image_geometry
from calogen.models.registry import make_model, register_family

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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks train ~10x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_model():
    spec = ModelSpec(image_geometry((6, 5)),
                     Transforms.fit(np.random.default_rng(0).normal(size=(50, 9)),
                                    np.full(50, 2112), COLS))
    torch.manual_seed(0)
    return make_model("toy-linear", spec, latent_dim=3)
