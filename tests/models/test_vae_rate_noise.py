"""The vae's fitted Cox readout: calibrated after training, saved with the model, applied when
sampling."""

import numpy as np
import torch

from calogen.data.transforms import Transforms
from calogen.geometry.zdc import ZN
from calogen.models.generator import CalibrationData, ModelSpec
from calogen.models.io import load_model, save_model
from calogen.models.nn.rate_noise import RateNoise
from calogen.models.registry import make_model

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]


def _data(n: int = 60) -> CalibrationData:
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(n, 9)).astype(np.float32)
    cond[:, 0] = rng.uniform(10, 100, n)
    showers = rng.poisson(0.05, size=(n, 44, 44)).astype(np.int32)
    return CalibrationData(showers, None, cond, np.full(n, 2112, np.int32))


def _vae(**hp):
    d = _data()
    spec = ModelSpec(ZN, Transforms.fit(d.conditions, d.pdg, COLS))
    torch.manual_seed(0)
    return make_model("vae", spec, backbone="mlp", mlp_hidden=[8, 8], cond_dim=8,
                      flow_layers=2, flow_hidden=8, **hp)


def test_calibrate_fits_and_the_fit_is_saved_and_used(tmp_path):
    model = _vae()
    d = _data()
    logs = model.calibrate(d, torch.Generator().manual_seed(0))
    assert {"distance_poisson", "distance_fitted"} <= set(logs)
    assert logs["distance_fitted"] <= logs["distance_poisson"]
    model.rate_noise = RateNoise(1.0, 0.0)  # a known, active value
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.rate_noise == RateNoise(1.0, 0.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    noisy = back.sample(d.conditions, d.pdg, g1, rounding=False)
    back.rate_noise = RateNoise()
    plain = back.sample(d.conditions, d.pdg, g2, rounding=False)
    assert not np.allclose(noisy, plain)
    # the fluctuation keeps the expected counts on average
    assert abs(noisy.sum() / plain.sum() - 1.0) < 0.05


def test_rate_noise_off_fits_nothing():
    model = _vae(rate_noise="off")
    assert model.calibrate(_data(), torch.Generator().manual_seed(0)) == {}
    assert not model.rate_noise.active
