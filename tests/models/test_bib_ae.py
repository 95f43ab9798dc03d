"""The BIB-AE family on projected cells: the torch projection equals the volume's, generated
cells come back exactly when their points are projected, the loss terms, training and
save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from calogen.data.transforms import Transforms
from calogen.geometry.points import PointCloudVolume, ild_like_ecal
from calogen.models.families.bib_ae import BIBAE, GETTING_HIGH_SIZES
from calogen.models.generator import ModelSpec, TrainBatch
from calogen.models.io import load_model, save_model
from calogen.models.nn.bib_ae import CellGrid, gaussian_kld, gradient_penalty, mmd_to_normal
from calogen.models.registry import make_model
from calogen.testing.showersets import TOY_VOLUME, toy_points

TINY = {"channels": [4, 8], "critic_channels": [4], "latent_dim": 4, "hidden": 16,
        "cond_dim": 8}


def _spec(volume: PointCloudVolume = TOY_VOLUME) -> ModelSpec:
    e_inc = np.random.default_rng(0).uniform(10, 90, size=(64, 1))
    return ModelSpec(volume, Transforms.fit(e_inc, np.full(64, 22), ["E_inc"]))


def _padded(points: np.ndarray, counts: np.ndarray, junk: float = 7.0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded clouds ``(B, P, 4)`` whose padding holds ``junk`` (the mask must drop it)."""
    width = max(int(counts.max()), 1) if len(counts) else 1
    mask = torch.arange(width)[None, :] < torch.as_tensor(counts)[:, None]
    x = torch.full((len(counts), width, 4), junk)
    x[mask] = torch.as_tensor(points, dtype=torch.float32)
    return x, mask


def _batch(n: int = 16, seed: int = 0) -> TrainBatch:
    points, counts = toy_points(n, seed=seed)
    x, mask = _padded(points, counts, junk=0.0)
    gen = torch.Generator().manual_seed(seed)
    return TrainBatch(x, torch.randn(n, 1, generator=gen), torch.zeros(n, dtype=torch.int64),
                      torch.arange(n), mask)


def _model(volume: PointCloudVolume = TOY_VOLUME, **hparams: object) -> BIBAE:
    torch.manual_seed(0)
    model = make_model("bib-ae", _spec(volume), **{**TINY, **hparams})
    assert isinstance(model, BIBAE)
    return model


# -- projection in torch ----------------------------------------------------------------------


def test_hand_placed_points_land_in_their_cells() -> None:
    grid = CellGrid(TOY_VOLUME)  # 3 layers of 10 mm, 20 x 20 cells of 5 mm from -50 mm
    x = torch.tensor([[[2.5, 2.5, 5.0, 3.0], [4.9, 0.1, 9.9, 1.0], [-50.0, 49.9, 29.9, 2.0],
                       [50.0, 0.0, 5.0, 9.0], [0.0, 0.0, 30.0, 9.0], [0.0, 0.0, -0.1, 9.0]]])
    cells = grid.project(x)
    assert cells.shape == (1, 3, 20, 20)
    assert cells[0, 0, 10, 10] == 4.0  # the first two share a cell
    assert cells[0, 2, 19, 0] == 2.0
    assert float(cells.sum()) == 6.0  # x = 50 mm and z outside [0, 30) mm are dropped


@pytest.mark.parametrize("volume", [
    TOY_VOLUME, TOY_VOLUME.with_cells((7.0, 3.0), (2.5, 1.0)), ild_like_ecal(),
    ild_like_ecal().with_cells(offset_mm=(2.5, 2.5))], ids=["toy", "resized", "ild", "shifted"])
def test_torch_projection_equals_the_volume_projection(volume: PointCloudVolume) -> None:
    rng = np.random.default_rng(1)
    points, counts = toy_points(12, seed=3)  # an empty and a 1-point shower first
    points = points.copy()
    lo = np.array([volume.x_range_mm[0], volume.y_range_mm[0], volume.layer_edges_mm[0]])
    hi = np.array([volume.x_range_mm[1], volume.y_range_mm[1], volume.layer_edges_mm[-1]])
    # spread over the volume and 10 % beyond it on every side
    u = rng.uniform(-0.1, 1.1, size=(len(points), 3))
    points[:, :3] = (lo + u * (hi - lo)).astype(np.float32)
    x, mask = _padded(points, counts)
    got = CellGrid(volume).project(x, mask).numpy()
    want = volume.project(points, counts)
    assert got.shape == want.shape == (12, *volume.grid_shape)
    assert not got[0].any() and got[1].sum() <= points[0, 3] + 1e-6
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert want.sum() > 0 and want.sum() < points[:, 3].sum()  # some inside, some dropped


# -- cells -> points -> cells -----------------------------------------------------------------


@pytest.mark.parametrize("volume", [TOY_VOLUME, TOY_VOLUME.with_cells((7.0, 7.0), (2.5, 1.0))],
                         ids=["toy", "edge-cells-half-outside"])
def test_points_of_cells_project_back_exactly(volume: PointCloudVolume) -> None:
    grid = CellGrid(volume)
    rng = np.random.default_rng(0)
    cells = torch.as_tensor(rng.exponential(0.3, size=(5, *grid.shape)), dtype=torch.float32)
    cells[rng.random(cells.shape) < 0.6] = 0.0
    cells[0] = 0.0  # an empty shower
    points, counts = grid.to_points(cells, threshold_mev=0.1)
    kept = torch.where(cells >= 0.1, cells, 0.0).numpy()
    assert counts.dtype == np.int64 and points.dtype == np.float32
    np.testing.assert_array_equal(counts, (kept > 0).reshape(5, -1).sum(1))
    assert counts[0] == 0 and (points[:, 3] >= 0.1).all()
    back = volume.project(points, counts)
    np.testing.assert_array_equal(back.astype(np.float32), kept)


def test_sampled_points_reproject_to_the_sampled_cells() -> None:
    model = _model().eval()
    e_inc = np.linspace(10, 90, 6, dtype=np.float32)[:, None]
    cells = model.sample_cells(e_inc, np.full(6, 22), torch.Generator().manual_seed(3))
    points, counts = model.sample_points(e_inc, np.full(6, 22), torch.Generator().manual_seed(3))
    assert cells.shape == (6, 3, 20, 20) and counts.shape == (6,)
    assert points.shape == (int(counts.sum()), 4) and counts.sum() > 0
    assert (points[:, 3] >= model.hparams["threshold_mev"]).all()
    back = TOY_VOLUME.project(points, counts)
    np.testing.assert_array_equal(back.astype(np.float32), cells.numpy())


def test_threshold_removes_cells_below_it() -> None:
    low, high = _model(threshold_mev=0.0).eval(), _model(threshold_mev=0.5).eval()
    high.load_state_dict(low.state_dict())
    e_inc, pdg = np.full((4, 1), 50.0, np.float32), np.full(4, 22)
    a = low.sample_cells(e_inc, pdg, torch.Generator().manual_seed(0))
    b = high.sample_cells(e_inc, pdg, torch.Generator().manual_seed(0))
    assert ((a > 0) & (a < 0.5)).any(), "the test needs cells below the threshold"
    np.testing.assert_array_equal(b.numpy(), torch.where(a >= 0.5, a, 0.0).numpy())


# -- loss terms -------------------------------------------------------------------------------


def test_kld_and_mmd_vanish_for_the_prior_and_grow_away_from_it() -> None:
    zeros = torch.zeros(8, 3)
    assert float(gaussian_kld(zeros, zeros)) == 0.0
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension
    assert float(gaussian_kld(torch.ones(8, 3), zeros)) == pytest.approx(1.5)
    gen = torch.Generator().manual_seed(0)
    near = mmd_to_normal(torch.randn(256, 3, generator=gen), gen)
    far = mmd_to_normal(torch.randn(256, 3, generator=gen) + 2.0, gen)
    assert abs(float(near)) < 0.01 and float(far) > 0.2


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    class Linear(nn.Module):
        def __init__(self, w: torch.Tensor) -> None:
            super().__init__()
            self.w = w

        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return (x.flatten(1) * self.w).sum(1)

    real, fake, c = torch.randn(4, 1, 2, 3), torch.randn(4, 1, 2, 3), torch.zeros(4, 1)
    unit = torch.zeros(6)
    unit[0] = 1.0
    assert float(gradient_penalty(Linear(unit), real, fake, c)) == pytest.approx(0.0)
    assert float(gradient_penalty(Linear(3 * unit), real, fake, c)) == pytest.approx(4.0)


# -- training, save / load --------------------------------------------------------------------


def test_tiny_model_trains_and_reconstruction_decreases(one_thread: None) -> None:
    model = _model()
    batch = _batch()
    opts = {ph: torch.optim.Adam(model.phase_parameters(ph), lr=3e-3) for ph in model.phases}
    assert set(model.phase_parameters("critics")).isdisjoint(model.phase_parameters("main"))
    rec, names = [], set()
    for _ in range(25):
        for phase in model.phases:
            loss, logs = model.loss(batch, phase)
            assert torch.isfinite(loss), (phase, logs)
            names |= set(logs)
            model.zero_grad(set_to_none=True)
            loss.backward()
            opts[phase].step()
            if phase == "main":
                rec.append(logs["rec"])
    assert {"w_latent", "w_critic", "w_difference", "gp_critic", "rec", "kld", "mmd"} <= names
    assert np.mean(rec[-3:]) < 0.75 * np.mean(rec[:3]), rec
    with torch.no_grad():  # a validation loss: no gradient penalty needed
        loss, logs = model.loss(batch, "critics")
    assert torch.isfinite(loss) and "gp_critic" not in logs


def test_save_load_samples_identical(tmp_path: Path) -> None:
    model = _model(threshold_mev=0.05).eval()
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert isinstance(loaded, BIBAE) and loaded.hparams == model.hparams
    e_inc, pdg = np.full((3, 1), 30.0, np.float32), np.full(3, 22)
    a = model.sample_points(e_inc, pdg, torch.Generator().manual_seed(1))
    b = loaded.sample_points(e_inc, pdg, torch.Generator().manual_seed(1))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_ild_grid_and_the_paper_sizes() -> None:
    model = _model(ild_like_ecal())
    assert model.decode(torch.zeros(2, 4), torch.zeros(2, 1)).shape == (2, 1, 30, 30, 30)
    big = BIBAE(_spec(), sizes="getting-high")
    assert all(big.hparams[k] == v for k, v in GETTING_HIGH_SIZES.items())
    assert BIBAE(_spec(), sizes="getting-high", latent_dim=8).hparams["latent_dim"] == 8


@pytest.mark.parametrize(("hparams", "match"), [
    ({"sizes": "huge"}, "sizes"), ({"threshold_mev": -1.0}, "threshold_mev"),
    ({"channels": []}, "channels"), ({"dropout": 0.1}, "unknown hparams")])
def test_bad_hparams_are_refused(hparams: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BIBAE(_spec(), **hparams)
