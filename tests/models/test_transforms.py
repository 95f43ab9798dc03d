import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]


def test_fit_standardises_and_round_trips():
    rng = np.random.default_rng(0)
    cond = rng.normal(5.0, 2.0, (500, 9))
    cond[:, 8] = 0.0  # constant column: std 1, no division by zero
    t = Transforms.fit(cond, rng.choice([22, 2112], 500), COLS)
    z = t.conditions(cond).numpy()
    np.testing.assert_allclose(z[:, :8].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :8].std(0), 1, atol=1e-4)
    assert np.all(np.isfinite(z[:, 8]))
    assert Transforms.from_dict(t.to_dict()) == t


def test_species_index_with_unknown_bucket():
    t = Transforms.fit(np.zeros((3, 9)), [2112, 22, 22], COLS)
    assert t.species_codes == [22, 2112] and t.n_species == 3
    assert t.species([22, 2112, 211]).tolist() == [0, 1, 2]


def test_shower_transform_is_invertible_and_non_negative():
    counts = torch.tensor([[0.0, 1.0, 10.0, 591.0]])
    np.testing.assert_allclose(Transforms.inverse_showers(Transforms.showers(counts)), counts,
                               rtol=1e-5)
    assert Transforms.inverse_showers(torch.tensor([-3.0])).item() == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"shape \(N, 9\)"):
        Transforms.fit(np.zeros((4, 3)), [1, 1, 1, 1], COLS)
    with pytest.raises(ValueError, match="unknown shower transform"):
        Transforms.from_dict({**Transforms.fit(np.zeros((2, 9)), [1, 1], COLS).to_dict(),
                              "shower": "sqrt"})
