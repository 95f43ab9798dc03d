"""Iterative families (DDPM/DDIM, EDM, flow matching, consistency distillation) on a toy
conditional distribution with a known answer.

Toy: 4 x 4 images ``a * P`` (network space) with a fixed bump ``P`` and an amplitude
``a ~ N(mu_c, 0.15^2)``, ``mu = 0.5`` for condition -1 and ``1.5`` for +1 (standardised
condition column 0). A model that learned it generates amplitudes (projection on ``P``) with
the right mean per condition (tolerance 0.12) and a spread of the right size (0.08-0.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.models.generator import ModelSpec, TrainBatch, image_geometry
from calogen.models.io import load_model, save_model
from calogen.models.registry import make_model

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]
SHAPE = (4, 4)
MU = {-1.0: 0.5, 1.0: 1.5}
SPREAD = 0.15
TINY = {"unet_channels": [16], "unet_attention": False, "groups": 4, "cond_dim": 16}
_rows, _cols = np.mgrid[0:4, 0:4]
P = torch.tensor(np.exp(-((_rows - 1.5) ** 2 + (_cols - 1.5) ** 2) / 2.0), dtype=torch.float32)


pytestmark = pytest.mark.usefixtures("one_thread")


def _spec() -> ModelSpec:
    rng = np.random.default_rng(0)
    return ModelSpec(image_geometry(SHAPE, "test"),
                     Transforms.fit(rng.normal(size=(64, 9)), np.full(64, 2112), COLS))


def _batch(n: int, gen: torch.Generator) -> TrainBatch:
    c = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    mu = torch.where(c < 0, MU[-1.0], MU[1.0])
    a = mu + SPREAD * torch.randn(n, generator=gen)
    cond = torch.zeros(n, 9)
    cond[:, 0] = c
    return TrainBatch(a.view(-1, 1, 1, 1) * P, cond, torch.zeros(n, dtype=torch.int64),
                      torch.arange(n))


def _train(model, steps: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.phase_parameters("main"), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(_batch(128, gen), "main")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _amplitudes(model, c: float, n: int = 400, seed: int = 1) -> np.ndarray:
    """Generated amplitudes for condition ``c`` (network space, before clamping matters)."""
    cond = torch.zeros(n, 9)
    cond[:, 0] = c
    model.eval()
    with torch.no_grad():
        y = model.sample_network(cond, torch.zeros(n, dtype=torch.int64),
                                 torch.Generator().manual_seed(seed))[:, 0]
    return ((y * P).sum((1, 2)) / (P * P).sum()).numpy()


def _check_toy(model) -> None:
    for c, mu in MU.items():
        a = _amplitudes(model, c)
        assert abs(a.mean() - mu) < 0.12, (c, a.mean(), a.std())
        assert 0.08 < a.std() < 0.3, (c, a.mean(), a.std())


@pytest.fixture(scope="module")
def edm_teacher():
    torch.manual_seed(0)
    model = make_model("edm", _spec(), **TINY, steps=18)
    _train(model, 500)
    return model


@pytest.mark.parametrize(("family", "options", "steps"), [
    ("ddpm", {"steps": 25}, 800), ("ddpm", {"steps": 25, "prediction": "eps"}, 800),
    ("flow-matching", {"steps": 10}, 500)])
def test_family_learns_the_toy(family: str, options: dict, steps: int) -> None:
    torch.manual_seed(0)
    model = make_model(family, _spec(), **TINY, **options)
    losses = _train(model, steps)
    assert np.mean(losses[-50:]) < 0.7 * np.mean(losses[:20])
    _check_toy(model)


def test_edm_learns_the_toy_with_heun_euler_and_stochastic(edm_teacher) -> None:
    _check_toy(edm_teacher)
    assert edm_teacher.network_calls() == 35
    for sampler in ("euler", "stochastic"):
        edm_teacher.configure_sampling(sampler=sampler)
        _check_toy(edm_teacher)
    edm_teacher.configure_sampling(sampler="heun")


def test_heun_refinement_converges(edm_teacher) -> None:
    """Same noise, finer schedules: successive differences of the samples shrink."""
    outs = []
    for steps in (4, 8, 16, 32):
        edm_teacher.configure_sampling(steps=steps)
        outs.append(_amplitudes(edm_teacher, 1.0, n=200))
    edm_teacher.configure_sampling(steps=18)
    diffs = [np.abs(a - b).mean() for a, b in zip(outs[:-1], outs[1:], strict=True)]
    assert diffs[2] < diffs[1] < diffs[0], diffs


def test_consistency_distillation_closes_the_one_step_gap(edm_teacher, tmp_path: Path) -> None:
    teacher_dir = save_model(edm_teacher, tmp_path / "teacher")

    from calogen.models.io import hparams_on_top_of

    student = make_model("consistency", _spec(), **hparams_on_top_of("consistency", teacher_dir))
    student.train()
    gen = torch.Generator().manual_seed(5)
    student.loss(_batch(8, gen), "main")  # initialises from the teacher
    before = {c: _amplitudes(student, c) for c in MU}
    _train(student, 300, lr=1e-3)
    after = {c: _amplitudes(student, c) for c in MU}
    gap_before = sum(abs(before[c].mean() - MU[c]) for c in MU)
    gap_after = sum(abs(after[c].mean() - MU[c]) for c in MU)
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)
    for c, mu in MU.items():
        assert abs(after[c].mean() - mu) < 0.12, (c, after[c].mean())
    # Not asserted: the one-step spread. After 300 distillation steps it is still ~0.04 (true
    # 0.15; the undistilled one-step teacher gives ~0.04 too): this toy budget teaches the
    # student where the trajectories end on average, not yet their spread.
    # saved without the teacher; samples identically after loading
    loaded = load_model(save_model(student, tmp_path / "student"))
    np.testing.assert_array_equal(_amplitudes(loaded, 1.0, n=20), _amplitudes(student, 1.0, n=20))


def test_sampling_options_are_checked() -> None:
    model = make_model("ddpm", _spec(), **TINY)
    assert model.configure_sampling(steps=10, eta=1.0) == {"steps": 10, "sampler": "ddim",
                                                            "eta": 1.0}
    with pytest.raises(ValueError, match="exceed"):
        model.configure_sampling(steps=5000)
    with pytest.raises(ValueError, match="no sampling option"):
        model.configure_sampling(s_churn=3)
    fm = make_model("flow-matching", _spec(), **TINY)
    with pytest.raises(ValueError, match="sampler"):
        fm.configure_sampling(sampler="rk45")
    assert fm.network_calls() == 20


def test_save_load_sample_identical(tmp_path: Path) -> None:
    for family in ("ddpm", "edm", "flow-matching"):
        model = make_model(family, _spec(), **TINY, steps=3)
        _train(model, 3)
        loaded = load_model(save_model(model, tmp_path / family))
        np.testing.assert_array_equal(_amplitudes(loaded, -1.0, n=8),
                                      _amplitudes(model, -1.0, n=8))


@pytest.mark.parametrize(("family", "options"), [
    ("flow-matching", {"steps": 3, "sampler": "heun"}), ("edm", {"steps": 3}),
    ("ddpm", {"steps": 3}), ("consistency", {"steps": 1})])
def test_deterministic_samplers_export_unrolled_to_onnx(family: str, options: dict,
                                                        tmp_path: Path) -> None:
    """export_onnx runs the file in onnxruntime against PyTorch (batch 1 and 3) itself."""
    from calogen.models.export_onnx import export_onnx

    model = make_model(family, _spec(), **TINY, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    res = export_onnx(model.eval(), tmp_path / f"{family}.onnx")
    assert res.onnx.is_file() and model.latent_dim == 16


@pytest.mark.parametrize(("family", "options"), [
    ("edm", {"sampler": "stochastic"}), ("ddpm", {"eta": 1.0}), ("consistency", {"steps": 2})])
def test_stochastic_samplers_refuse_export(family: str, options: dict, tmp_path: Path) -> None:
    from calogen.models.export_onnx import export_onnx

    model = make_model(family, _spec(), **TINY, **options)
    with pytest.raises(ValueError, match="deterministic"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_karras_list_matches_tensor() -> None:
    from calogen.models.nn.samplers import karras_sigma_list, karras_sigmas

    for steps in (1, 2, 18):
        np.testing.assert_allclose(karras_sigma_list(steps, 0.002, 80.0),
                                   karras_sigmas(steps, 0.002, 80.0).numpy(), rtol=1e-12)
