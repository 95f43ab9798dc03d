"""CaloClouds II and CaloClouds II (CM): training, the sampling steps, calibrations, save/load,
ragged batches and the consistency boundary condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.families.caloclouds2 import CaloClouds2, largest_remainder
from calogen.models.families.caloclouds2_cm import CaloClouds2CM
from calogen.models.generator import CalibrationData, ModelSpec, TrainBatch
from calogen.models.io import hparams_on_top_of, load_model, save_model
from calogen.models.nn.samplers import consistency_coefficients
from calogen.models.registry import make_model
from calogen.testing.showersets import TOY_VOLUME, toy_points

TINY = {"pointwise_widths": [16, 16], "time_dim": 8, "flow_layers": 2, "flow_hidden": 16,
        "steps": 2, "calibration_showers": 16}


def _spec() -> ModelSpec:
    e = np.random.default_rng(0).uniform(1, 100, size=(64, 1))
    return ModelSpec(TOY_VOLUME, Transforms.fit(e, np.full(64, 22), ["E_inc"]))


def _batch(n: int = 32, seed: int = 0) -> TrainBatch:
    points, counts = toy_points(n, seed)
    width = max(int(counts.max()), 1)
    mask = torch.arange(width)[None, :] < torch.as_tensor(counts)[:, None]
    x = torch.zeros((n, width, 4))
    x[mask] = torch.as_tensor(points)
    gen = torch.Generator().manual_seed(seed)
    return TrainBatch(x, torch.randn(n, 1, generator=gen), torch.zeros(n, dtype=torch.int64),
                      torch.arange(n), mask)


def _train(model: torch.nn.Module, steps: int = 30) -> list[float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.phase_parameters("main"), lr=3e-3)
    batch, out = _batch(), []
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(batch, "main")
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(float(loss.detach()))
    return out


@pytest.fixture(scope="module")
def trained() -> CaloClouds2:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = make_model("caloclouds2", _spec(), **TINY)
    losses = _train(model)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses
    return model.eval()


def test_largest_remainder_sums_to_the_totals() -> None:
    f = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]],
                     dtype=torch.float64)
    got = largest_remainder(f, torch.tensor([3, 4, 0]))
    assert got[0].tolist() == [1, 1, 1]  # remainders 0.5 < 0.75 = 0.75
    assert sorted(got[1].tolist()) == [1, 1, 2] and got[2].tolist() == [0, 0, 0]
    big = largest_remainder(torch.full((2, 7), 1 / 7, dtype=torch.float64),
                            torch.tensor([1000, 3]))
    assert big.sum(1).tolist() == [1000, 3] and (big >= 0).all()


def test_counts_per_layer_energy_and_cog_follow_the_flow(trained: CaloClouds2) -> None:
    cond = torch.linspace(-1.5, 1.5, 12)[:, None]
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        points, counts = trained._generate(cond, gen)
        flow = trained.flow.sample(cond, torch.Generator().manual_seed(3))
        want_counts, want_energy, want_cog = trained._calibrated_features(flow, True)
    layer = torch.as_tensor(TOY_VOLUME.layer_of(points[:, 2].numpy()))
    assert (layer >= 0).all()
    shower = torch.repeat_interleave(torch.arange(12), counts)
    got = torch.zeros(12 * 3, dtype=torch.int64).index_add_(
        0, shower * 3 + layer, torch.ones_like(layer)).view(12, 3)
    torch.testing.assert_close(got, want_counts)
    energy = torch.zeros(36, dtype=torch.float64).index_add_(0, shower * 3 + layer, points[:, 3])
    has = got.reshape(-1) > 0
    torch.testing.assert_close(energy[has], want_energy.reshape(-1)[has].clamp(min=0))
    assert (points[:, 3] >= 0).all()
    middles = torch.tensor([5.0, 15.0, 25.0], dtype=torch.float64)
    torch.testing.assert_close(points[:, 2], middles[layer])
    e_tot = torch.zeros(12, dtype=torch.float64).index_add_(0, shower, points[:, 3])
    cog = torch.zeros(12, 2, dtype=torch.float64).index_add_(
        0, shower, points[:, :2] * points[:, 3:])
    ok = e_tot > 0
    torch.testing.assert_close(cog[ok] / e_tot[ok, None], want_cog[ok])


def test_sampling_is_seeded_and_respects_batch_size(trained: CaloClouds2) -> None:
    cond = np.linspace(5, 90, 7)[:, None].astype(np.float32)
    a = trained.sample_points(cond, np.full(7, 22), torch.Generator().manual_seed(1))
    b = trained.sample_points(cond, np.full(7, 22), torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (int(a[1].sum()), 4) and a[1].shape == (7,)
    c = trained.sample_points(cond, np.full(7, 22), torch.Generator().manual_seed(1),
                              batch_size=2)
    assert c[1].shape == (7,) and c[0].shape == (int(c[1].sum()), 4)


def test_bfloat16_sampling_keeps_counts_and_stays_close(trained: CaloClouds2) -> None:
    """``sampling_dtype="bfloat16"``: the same counts (the flow is not autocast) and points
    within bf16 rounding of the float32 ones; a bad dtype is refused."""
    cond = np.linspace(5, 90, 5)[:, None].astype(np.float32)
    a = trained.sample_points(cond, np.full(5, 22), torch.Generator().manual_seed(3))
    trained.configure_sampling(sampling_dtype="bfloat16")
    try:
        b = trained.sample_points(cond, np.full(5, 22), torch.Generator().manual_seed(3))
    finally:
        trained.configure_sampling(sampling_dtype="float32")
    np.testing.assert_array_equal(a[1], b[1])
    assert np.isfinite(b[0]).all() and (b[0][:, 3] >= 0).all()
    assert not np.array_equal(a[0], b[0])
    np.testing.assert_allclose(b[0][:, :2], a[0][:, :2], rtol=0.05, atol=1.0)  # mm
    with pytest.raises(ValueError, match="sampling_dtype"):
        trained.configure_sampling(sampling_dtype="float16")


def test_ragged_batches_with_empty_and_one_point_showers() -> None:
    torch.manual_seed(0)
    model = make_model("caloclouds2", _spec(), **TINY)
    batch = _batch(4)
    assert batch.mask is not None and batch.mask.sum(1)[:2].tolist() == [0, 1]
    loss, logs = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and np.isfinite(logs["edm"])
    empty = TrainBatch(torch.zeros(3, 1, 4), torch.zeros(3, 1), torch.zeros(3, dtype=torch.int64),
                       torch.arange(3), torch.zeros(3, 1, dtype=torch.bool))
    loss, _ = model.loss(empty)
    assert torch.isfinite(loss)
    points, counts = model.sample_points(np.zeros((0, 1)), np.zeros(0), None)
    assert points.shape == (0, 4) and counts.shape == (0,)


def test_calibrate_fits_and_survives_save_load(trained: CaloClouds2, tmp_path: Path) -> None:
    points, counts = toy_points(60, seed=1)
    cond = np.random.default_rng(1).uniform(1, 100, size=(60, 1)).astype(np.float32)
    data = CalibrationData(points, counts, cond, np.full(60, 22, np.int32))
    assert not trained.calibrations.fitted
    logs = trained.calibrate(data, torch.Generator().manual_seed(0))
    assert trained.calibrations.fitted and np.isfinite(list(logs.values())).all()
    # the energy calibration moves the flow's mean layer energies onto the data's
    assert trained.calibrations.layer_energy.factors != (1.0, 1.0, 1.0)
    loaded = load_model(save_model(trained, tmp_path / "m"))
    assert loaded.calibrations == trained.calibrations
    cond5 = np.linspace(5, 90, 5)[:, None]
    a = trained.sample_points(cond5, np.full(5, 22), torch.Generator().manual_seed(2))
    b = loaded.sample_points(cond5, np.full(5, 22), torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_network_calls() -> None:
    model = make_model("caloclouds2", _spec(), **{**TINY, "steps": 13})
    assert model.network_calls() == 25


# -- CaloClouds II (CM) ---------------------------------------------------------------------


def test_consistency_boundary_condition_is_exact() -> None:
    sigma = torch.tensor([0.002, 0.002, 1.0], dtype=torch.float64)
    c_skip, c_out, _, _ = consistency_coefficients(sigma, 0.5, 0.002)
    assert c_skip[:2].tolist() == [1.0, 1.0] and c_out[:2].tolist() == [0.0, 0.0]
    model = make_model("caloclouds2-cm", _spec(), **{**TINY, "steps": 1})
    assert isinstance(model, CaloClouds2CM)
    torch.manual_seed(0)
    x = torch.randn(6, 4) * 3
    eps = torch.full((6,), 0.002)
    out = model.consistency_fn(x, eps, torch.randn(6, 1), torch.randn(6))
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    away = model.consistency_fn(x, torch.full((6,), 1.0), torch.randn(6, 1), torch.randn(6))
    assert not torch.allclose(away, x)


def test_cm_distils_from_the_teacher(trained: CaloClouds2, tmp_path: Path) -> None:
    teacher_dir = save_model(trained, tmp_path / "teacher")
    hp = hparams_on_top_of("caloclouds2-cm", teacher_dir, {"steps": 1})
    torch.manual_seed(0)
    model = make_model("caloclouds2-cm", _spec(), **hp)
    assert isinstance(model, CaloClouds2CM)
    losses = _train(model, 15)
    assert np.isfinite(losses).all()
    # the flow is the teacher's, frozen; the student started from the teacher's net
    for a, b in zip(model.flow.state_dict().values(), trained.flow.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)
    assert all(not p.requires_grad for p in model.flow.parameters())
    assert model.network_calls() == 1
    cond = np.linspace(5, 90, 4)[:, None]
    points, counts = model.sample_points(cond, np.full(4, 22), torch.Generator().manual_seed(0))
    assert points.shape == (int(counts.sum()), 4) and (points[:, 3] >= 0).all()
    model.configure_sampling(steps=3)
    assert model.network_calls() == 3
    p3, c3 = model.sample_points(cond, np.full(4, 22), torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(c3, counts)  # same flow draw: same counts
    assert not np.array_equal(p3, points)


def test_training_steps_use_at_most_train_points_per_shower() -> None:
    """``train_points`` caps the points per shower of a training step (a random subset of the
    real ones); evaluation and ``train_points=0`` use every point."""
    model = CaloClouds2(_spec(), **{**TINY, "train_points": 3})
    batch = _batch()
    assert batch.mask is not None and int(batch.mask.sum(1).max()) > 3
    model.train()
    points, idx = model._flat(batch)
    per_shower = torch.bincount(idx, minlength=len(batch))
    assert torch.equal(per_shower, batch.mask.sum(1).clamp(max=3))
    real = {tuple(p.tolist()) for p in batch.x[batch.mask]}
    assert all(tuple(p.tolist()) in real for p in points)
    model.eval()
    assert len(model._flat(batch)[0]) == int(batch.mask.sum())
    with pytest.raises(ValueError, match="train_points"):
        CaloClouds2(_spec(), **{**TINY, "train_points": -1})
