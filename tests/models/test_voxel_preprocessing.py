import numpy as np
import pytest
import torch

from calogen.geometry import calochallenge_binning
from calogen.models.nn.voxel_preprocessing import VoxelPreprocessing

GEOMETRY = calochallenge_binning("1-photons").geometry


def _showers(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    e_inc = 256.0 * 2.0 ** rng.integers(0, 15, n)
    x = rng.exponential(1.0, (n, GEOMETRY.n_voxels)) * (rng.random((n, GEOMETRY.n_voxels)) < 0.3)
    x = x / x.sum(1, keepdims=True) * e_inc[:, None] * rng.uniform(0.3, 1.0, (n, 1))
    x[x < 0.01] = 0.0
    x[0, GEOMETRY.layer_slices()[0]] = 0.0  # an empty layer
    return torch.tensor(x), torch.tensor(e_inc)


def test_exact_round_trip_without_noise_and_threshold_fitted_from_data() -> None:
    x, e = _showers()
    pre = VoxelPreprocessing.fit(x, e, GEOMETRY, noise_mev=0.0)
    assert pre.threshold_mev == pytest.approx(float(x[x > 0].min()))
    lu, lf = pre.forward(x, e, noise=False)
    assert lu.shape == (64, 5) and lf.shape == (64, 368) and torch.isfinite(lu).all()
    back = pre.inverse(lu, lf, e)
    assert torch.allclose(back, x, rtol=1e-5, atol=1e-6)
    assert (back[0, GEOMETRY.layer_slices()[0]] == 0).all()


def test_energy_fractions_are_a_bijection_in_unit_interval() -> None:
    x, e = _showers(seed=1)
    pre = VoxelPreprocessing.fit(x, e, GEOMETRY)
    layers = pre.layer_energies(x)
    u = pre.energy_fractions(layers, e)
    assert (u >= 0).all() and (u <= 1).all() and (u[:, 0] < 1).all()
    assert torch.allclose(pre.layer_energies_from_fractions(u, e), layers, rtol=1e-9)


def test_noise_is_removed_and_threshold_applied_after_sampling() -> None:
    x, e = _showers(seed=2)
    pre = VoxelPreprocessing.fit(x, e, GEOMETRY, noise_mev=1e-3, threshold_mev=0.05)
    noisy = pre.add_noise(x, torch.Generator().manual_seed(0))
    assert (noisy > x).all()
    out = pre.postprocess(noisy)
    assert ((out == 0) | (out >= 0.05)).all() and (out[x == 0] == 0).all()
    assert VoxelPreprocessing.from_dict(pre.to_dict()) == pre


def test_bad_input_is_named() -> None:
    x, e = _showers()
    with pytest.raises(ValueError, match=r"\(N, 368\)"):
        VoxelPreprocessing.fit(x[:, :10], e, GEOMETRY)
    with pytest.raises(ValueError, match="malformed"):
        VoxelPreprocessing.from_dict({"layer_sizes": [1]})
