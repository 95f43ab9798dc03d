"""The ``epic-gan`` family: network space, the model of the number of points, training on ragged
clouds (empty and 1-point showers), sampling with given or drawn counts, save / load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.families.epic_gan import EPiCGAN, shower_chunks
from calogen.models.generator import ModelSpec, TrainBatch
from calogen.models.io import CONFIG_FILE, ModelFileError, load_model, save_model
from calogen.models.registry import make_model
from calogen.particles import gun_conditions
from calogen.testing.showersets import TOY_VOLUME, toy_points

TINY = {"hidden": 8, "global_dim": 4, "point_noise_dim": 2, "g_layers": 1, "d_layers": 1}


def _spec() -> ModelSpec:
    columns, _ = gun_conditions("E_inc")
    energies = np.linspace(1.0, 100.0, 50)[:, None]
    return ModelSpec(TOY_VOLUME, Transforms.fit(energies, np.full(50, 22), columns))


def _model(**hparams: object) -> EPiCGAN:
    torch.manual_seed(0)
    model = make_model("epic-gan", _spec(), **{**TINY, **hparams})
    assert isinstance(model, EPiCGAN)
    return model


def _batch(points: np.ndarray, counts: np.ndarray, cond: np.ndarray | None = None
           ) -> TrainBatch:
    n = len(counts)
    width = int(counts.max()) if n else 0
    mask = torch.arange(width)[None, :] < torch.as_tensor(counts)[:, None]
    x = torch.zeros((n, width, 4))
    x[mask] = torch.as_tensor(points, dtype=torch.float32)
    c = torch.zeros(n, 1) if cond is None else torch.as_tensor(cond, dtype=torch.float32)
    return TrainBatch(x, c, torch.zeros(n, dtype=torch.int64), torch.arange(n), mask)


def _train(model: EPiCGAN, batch: TrainBatch, steps: int = 5) -> list[dict[str, float]]:
    opts = {ph: torch.optim.Adam(model.phase_parameters(ph), lr=1e-3) for ph in model.phases}
    model.train()
    logs = []
    for _ in range(steps):
        for phase in model.phases:
            loss, log = model.loss(batch, phase)
            assert torch.isfinite(loss), phase
            opts[phase].zero_grad()
            loss.backward()
            opts[phase].step()
            logs.append(log)
    return logs


@pytest.fixture(scope="module")
def trained() -> EPiCGAN:
    """A tiny model trained on toy clouds whose first shower is empty and second has one
    point."""
    torch.set_num_threads(1)
    points, counts = toy_points(16, seed=0)
    assert counts[0] == 0 and counts[1] == 1
    model = _model()
    _train(model, _batch(points, counts, np.random.default_rng(0).normal(size=(16, 1))))
    return model.eval()


def test_network_space_maps_the_volume_to_unit_ranges_and_back() -> None:
    model = _model()
    points, counts = toy_points(8, seed=1)
    model.loss(_batch(points, counts), "discriminator")  # fits the log E standardisation
    corners = torch.tensor([[-50.0, -50.0, 0.0, 1.0], [50.0, 50.0, 30.0, 1.0],
                            [0.0, 25.0, 15.0, 1.0]])
    net = model.to_network(corners)
    torch.testing.assert_close(net[:, :3], torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0],
                                                         [0.0, 0.5, 0.0]]))
    log_e = torch.log(torch.as_tensor(points[:, 3], dtype=torch.float64))
    z = model.to_network(torch.as_tensor(points))[:, 3].double()
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1.0) < 1e-5
    assert abs(model.extra_state_dict()["normalisation"]["log_e_mean"]
               - float(log_e.mean())) < 1e-9
    back = model.to_physical(model.to_network(torch.as_tensor(points)))
    np.testing.assert_allclose(back, points, rtol=1e-5, atol=1e-4)
    # outside the volume: clamped inside, the upper edges excluded (the projection keeps them)
    outside = model.to_physical(torch.tensor([[5.0, -5.0, 9.0, 0.0]]))
    assert outside[0, 0] < 50.0 and outside[0, 1] == -50.0 and outside[0, 2] < 30.0
    assert TOY_VOLUME.project(outside, [1]).sum() == pytest.approx(float(outside[0, 3]))


def test_count_model_recovers_a_known_law() -> None:
    """log(1 + N) = 2 + 0.5 c + 0.1 noise, seen in batches: the running fit finds it."""
    model = _model()
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.normal(size=(64, 1))
        n = np.round(np.expm1(2.0 + 0.5 * c[:, 0] + 0.1 * rng.normal(size=64))).astype(int)
        pts = np.zeros((int(n.sum()), 4), np.float32)
        pts[:, 3] = 1.0
        model._accumulate_counts(torch.as_tensor(c, dtype=torch.float32), torch.as_tensor(n))
    coef, std = model.count_model()
    np.testing.assert_allclose(coef, [2.0, 0.5], atol=0.03)
    assert 0.07 < std < 0.13  # rounding N adds a little
    draws = model.sample_counts(torch.zeros(4000, 1), torch.Generator().manual_seed(0))
    assert abs(float(torch.log1p(draws.double()).mean()) - 2.0) < 0.02
    assert int(draws.max()) <= model.extra_state_dict()["count_sums"]["max_points"]


def test_statistics_are_fitted_only_while_training() -> None:
    model = _model()
    points, counts = toy_points(8, seed=1)
    batch = _batch(points, counts)
    with torch.no_grad():
        model.loss(batch, "discriminator")
    model.eval()
    model.loss(batch, "discriminator")
    assert model.extra_state_dict()["normalisation"] == {}
    assert model.extra_state_dict()["count_sums"]["count"] == 0.0
    model.train()
    model.loss(batch, "discriminator")
    model.loss(batch, "generator")  # the generator phase does not count the batch again
    state = model.extra_state_dict()
    assert state["count_sums"]["count"] == 8.0 and state["normalisation"]
    before = dict(state["normalisation"])
    other, other_counts = toy_points(8, seed=7)
    model.loss(_batch(other * 3, other_counts), "discriminator")
    assert model.extra_state_dict()["normalisation"] == before  # fitted once


def test_trains_on_ragged_clouds_with_empty_and_one_point_showers(trained: EPiCGAN) -> None:
    points, counts = toy_points(16, seed=0)
    batch = _batch(points, counts)
    for phase in trained.phases:
        loss, log = trained.loss(batch, phase)
        assert math.isfinite(float(loss.detach())) and math.isfinite(log["loss"])
    # a batch of only empty showers (zero width) trains too, and fits nothing
    model = _model()
    logs = _train(model, _batch(np.zeros((0, 4), np.float32), np.zeros(4, np.int64)), 2)
    assert all(math.isfinite(log["loss"]) for log in logs)
    assert model.extra_state_dict()["normalisation"] == {}
    # only 1-point showers
    one = np.array([[1.0, 2.0, 5.0, 0.3], [-3.0, 4.0, 25.0, 2.0]], np.float32)
    logs = _train(_model(), _batch(one, np.array([1, 1])), 2)
    assert all(math.isfinite(log["loss"]) for log in logs)


def test_samples_the_requested_counts(trained: EPiCGAN) -> None:
    requested = np.array([0, 1, 5, 0, 3])
    cond = np.full((5, 1), 50.0, np.float32)
    gen = torch.Generator().manual_seed(1)
    points, counts = trained.sample_points(cond, np.full(5, 22), gen, counts=requested)
    assert points.dtype == np.float32 and counts.dtype == np.int64
    np.testing.assert_array_equal(counts, requested)
    assert points.shape == (9, 4)
    assert np.isfinite(points).all() and (points[:, 3] > 0).all()
    assert TOY_VOLUME.project(points, counts).sum() == pytest.approx(float(points[:, 3].sum()),
                                                                     rel=1e-5)
    # batched generation gives clouds of the same sizes (and the same first cloud)
    small, small_counts = trained.sample_points(cond, np.full(5, 22),
                                                torch.Generator().manual_seed(1),
                                                batch_size=2, counts=requested)
    np.testing.assert_array_equal(small_counts, requested)
    assert small.shape == (9, 4)
    # every shower empty
    none, none_counts = trained.sample_points(cond, np.full(5, 22), gen,
                                              counts=np.zeros(5, np.int64))
    assert none.shape == (0, 4) and none_counts.tolist() == [0] * 5
    with pytest.raises(ValueError, match="counts must be"):
        trained.sample_points(cond, np.full(5, 22), gen, counts=[1, 2])
    with pytest.raises(ValueError, match="counts must be"):
        trained.sample_points(cond, np.full(5, 22), gen, counts=np.array([1, -1, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"conditions must have shape \(N, 1\)"):
        trained.sample_points(np.zeros((5, 2)), np.full(5, 22), gen)


def test_drawn_counts_are_seeded_and_within_the_training_range(trained: EPiCGAN) -> None:
    cond = np.linspace(1.0, 100.0, 40)[:, None].astype(np.float32)
    a = trained.sample_points(cond, np.full(40, 22), torch.Generator().manual_seed(4))
    b = trained.sample_points(cond, np.full(40, 22), torch.Generator().manual_seed(4))
    c = trained.sample_points(cond, np.full(40, 22), torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[0].shape == (int(a[1].sum()), 4)
    assert a[1].min() >= 0 and a[1].max() <= 8  # toy clouds hold 0..8 points


def test_save_load_identical(trained: EPiCGAN, tmp_path: Path) -> None:
    loaded = load_model(save_model(trained, tmp_path / "m"))
    assert isinstance(loaded, EPiCGAN)
    assert loaded.extra_state_dict() == trained.extra_state_dict()
    cond = np.linspace(1.0, 100.0, 6)[:, None]
    a = trained.sample_points(cond, np.full(6, 22), torch.Generator().manual_seed(2))
    b = loaded.sample_points(cond, np.full(6, 22), torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_a_corrupt_extra_state_is_refused(trained: EPiCGAN, tmp_path: Path) -> None:
    import json

    path = save_model(trained, tmp_path / "m")
    doc = json.loads((path / CONFIG_FILE).read_text())
    doc["extra"]["count_sums"]["xtx"] = [[1.0]]
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="extra"):
        load_model(path)
    with pytest.raises(ValueError, match="normalisation"):
        _model().load_extra_state_dict({"normalisation": {"log_e_mean": 1.0}})
    with pytest.raises(ValueError, match="normalisation"):
        _model().load_extra_state_dict({"normalisation": {
            "log_e_mean": 0.0, "log_e_std": -1.0, "log_n_mean": 0.0, "log_n_std": 1.0}})


@pytest.mark.parametrize(("key", "value"), [("hidden", 0), ("g_layers", 1.5),
                                            ("sum_scale", 0.0), ("weight_norm", "yes")])
def test_bad_hparams_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        _model(**{key: value})


def test_unknown_phase_and_non_point_batches_are_refused() -> None:
    model = _model()
    points, counts = toy_points(4)
    with pytest.raises(ValueError, match="unknown phase"):
        model.loss(_batch(points, counts), "main")
    with pytest.raises(ValueError, match="point-cloud batch"):
        model.loss(TrainBatch(torch.zeros(2, 36), torch.zeros(2, 1), torch.zeros(2).long(),
                              torch.arange(2)), "generator")


def test_shower_chunks_bound_the_padded_points() -> None:
    counts = np.array([3, 1, 4, 0, 10, 2, 2])
    chunks = shower_chunks(counts, batch_size=3, budget=8)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(counts)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    for start, stop in chunks:
        assert stop - start <= 3
        assert stop - start == 1 or (stop - start) * counts[start:stop].max() <= 8
    assert (4, 5) in chunks  # the 10-point shower alone, over the budget
    assert shower_chunks(np.zeros(0, np.int64), 4) == []
    assert shower_chunks(np.array([0, 0, 0]), 2) == [(0, 2), (2, 3)]
