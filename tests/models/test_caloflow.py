"""Two-stage flows (caloflow, calo-inn, caloflow-student) on tiny images: exact preprocessing
(dequantised counts recovered, Jacobian equal to autograd's), the likelihood flags showers
unlike the training data, the IAF student matches its MAF teacher, save/load, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.geometry.channels import N_CHANNELS
from calogen.models.export_onnx import export_onnx
from calogen.models.families.caloflow import pixel_channels
from calogen.models.generator import ModelSpec, image_geometry
from calogen.models.io import hparams_on_top_of, load_model, save_model
from calogen.models.nn.flow_preprocessing import dequantise
from calogen.models.registry import make_model

from .test_families import Data

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"stage1_hidden": [32], "stage1_layers": 2, "stage1_elementwise": "affine",
         "stage2_hidden": [64], "stage2_layers": 2}


def _train(model, data: Data, steps: int, lr: float = 2e-3, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.phase_parameters("main"), lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(data.batch(rng.choice(len(data.cond), 64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


@pytest.fixture(scope="module")
def teacher(data: Data):
    torch.manual_seed(0)
    model = make_model("caloflow", data.spec, **SMALL)
    losses = _train(model, data, 250)
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) - 0.3
    return model.eval()


@pytest.fixture(scope="module")
def teacher_dir(teacher, tmp_path_factory) -> Path:
    return save_model(teacher, tmp_path_factory.mktemp("flow") / "teacher")


def _tiny_spec() -> ModelSpec:
    cond = np.random.default_rng(0).normal(size=(20, 9))
    return ModelSpec(image_geometry((4, 4), "test"),
                     Transforms.fit(cond, np.full(20, 2112), list("abcdefghi")))


def test_channels_cover_every_pixel_once():
    ch = pixel_channels((44, 44), "ZN")
    assert ch.shape == (1936,) and set(ch.tolist()) == set(range(N_CHANNELS))
    assert int((ch == 0).sum()) == 968            # the common PMT sees every other fibre
    tiny = pixel_channels((4, 4), "test")
    assert torch.bincount(tiny, minlength=5).tolist() == [8, 2, 2, 2, 2]


def test_preprocessing_is_exact_and_its_jacobian_matches_autograd():
    torch.manual_seed(0)
    model = make_model("caloflow", _tiny_spec(), **SMALL)
    counts = torch.poisson(torch.full((32, 16), 30.0)) * (torch.rand(32, 16) > 0.2)
    model._initialise(dequantise(counts, width=model.width))
    v = dequantise(counts[:3], width=model.width)
    y, x, logdet = model._to_network(v)
    # the inverse recovers the counts exactly, anchors included
    image = model._to_image(y, x)
    torch.testing.assert_close(torch.expm1(image).round().flatten(1), counts[:3])
    model.double()
    for i in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda u: torch.cat(model._to_network(u[None])[:2], 1)[0], v[i].double())
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), rel=1e-5)


def test_sampling_gives_counts_and_stage_one_sums(teacher, data: Data):
    g = torch.Generator().manual_seed(0)
    out = teacher.sample(data.cond[:50], data.pdg[:50], g)
    assert out.shape == (50, 12, 12) and out.dtype == np.int32 and out.min() >= 0
    # generated photon sums follow the conditions as the data do
    ratio = out.sum((1, 2)).mean() / data.photons[:50].sum((1, 2)).mean()
    assert 0.8 < ratio < 1.25
    corr = np.corrcoef(out.sum((1, 2)), data.cond[:50, 0])[0, 1]
    assert corr > 0.8
    # channel sums equal stage I's up to rounding (at most one photon per fibre)
    noise = torch.randn(8, teacher.latent_dim, generator=g)
    cond = data.transforms.conditions(data.cond[:8])
    with torch.no_grad():
        y = teacher.stage1.sample(noise[:, :N_CHANNELS], teacher._context1(cond, None))
        s = torch.exp(y * teacher.y_scale + teacher.y_mean)
        counts = torch.expm1(teacher.decode(noise, cond)).round().flatten(1)
    sums = counts @ teacher.assignment
    assert bool(((sums - s).abs() <= teacher.channel_size).all())


def test_log_likelihood_flags_showers_unlike_the_training_data(teacher, data: Data):
    held = Data(seed=5)
    normal = teacher.log_likelihood(held.photons[:100], held.cond[:100], held.pdg[:100])
    moved = np.ascontiguousarray(np.flip(held.photons[:100], axis=(1, 2)))  # blob mirrored
    odd = teacher.log_likelihood(moved, held.cond[:100], held.pdg[:100])
    auc = (normal[:, None] > odd[None, :]).mean()
    assert auc > 0.9, auc
    one = teacher.log_likelihood(held.photons[:20], held.cond[:20], held.pdg[:20], draws=1)
    many = teacher.log_likelihood(held.photons[:20], held.cond[:20], held.pdg[:20], draws=16)
    assert many.mean() > one.mean() - 0.5   # the bound tightens (on average) with draws
    assert np.isfinite(normal).all()


def test_student_matches_its_teacher(teacher_dir: Path, data: Data):
    teacher = load_model(teacher_dir).eval()
    student = make_model("caloflow-student", data.spec,
                         **hparams_on_top_of("caloflow-student", teacher_dir))

    def gap() -> float:
        g = torch.Generator().manual_seed(1)
        c = data.transforms.conditions(data.cond[:128])
        y = torch.randn(128, N_CHANNELS, generator=g)
        z = torch.randn(128, teacher.n_pixels - N_CHANNELS, generator=g)
        with torch.no_grad():
            c2 = teacher._context2(c, None, y)
            want = teacher.stage2.sample(z, c2)
            got = student.stage2.sample(z, c2)
        return float(((got - want) ** 2).mean() / want.var())

    torch.manual_seed(0)
    student.train()
    student.loss(data.batch(np.arange(64)))          # copies the teacher's stage I in
    before = gap()
    _train(student, data, 300, seed=1)
    after = gap()
    assert after < 0.1 and after < before / 5, (before, after)
    for name in ("stage1", "embed1", "embed2"):
        for a, b in zip(getattr(student, name).parameters(), getattr(teacher, name).parameters(),
                        strict=True):
            assert torch.equal(a, b)
    assert student.network_calls() == 2 * N_CHANNELS + 2
    assert teacher.network_calls() == 2 * N_CHANNELS + 2 * (144 - N_CHANNELS)


def test_save_load_gives_identical_samples(teacher, tmp_path: Path, data: Data):
    loaded = load_model(save_model(teacher, tmp_path / "m"))
    a = teacher.sample(data.cond[:10], data.pdg[:10], torch.Generator().manual_seed(3))
    b = loaded.sample(data.cond[:10], data.pdg[:10], torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)
    ll_a = teacher.log_likelihood(data.photons[:5], data.cond[:5], data.pdg[:5],
                                  generator=torch.Generator().manual_seed(0))
    ll_b = loaded.log_likelihood(data.photons[:5], data.cond[:5], data.pdg[:5],
                                 generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(ll_a, ll_b)


@pytest.mark.parametrize("family", ["calo-inn", "caloflow-student"])
def test_one_pass_flows_export_with_parity(family, teacher_dir: Path, data: Data, tmp_path):
    torch.manual_seed(0)
    hp = (hparams_on_top_of("caloflow-student", teacher_dir) if family == "caloflow-student"
          else SMALL)
    model = make_model(family, data.spec, **hp)
    model.train()
    model.loss(data.batch(np.arange(64)))            # fits / copies the preprocessing
    res = export_onnx(model.eval(), tmp_path / "flow.onnx")   # runs the parity check
    assert res.onnx.is_file()


def test_teacher_is_not_exported_and_bad_settings_are_refused(teacher, data: Data, tmp_path):
    with pytest.raises(ValueError, match="not a deterministic function"):
        export_onnx(teacher, tmp_path / "maf.onnx")
    with pytest.raises(ValueError, match="readout"):
        make_model("caloflow", data.spec, readout="poisson")
    with pytest.raises(ValueError, match="stage2_arrangement"):
        make_model("caloflow", data.spec, stage2_arrangement="iaf")
    untrained = make_model("caloflow", data.spec, **SMALL)
    with pytest.raises(RuntimeError, match="not trained"):
        untrained.sample(data.cond[:2], data.pdg[:2])
    student = make_model("caloflow-student", data.spec, **SMALL)
    with pytest.raises(ValueError, match="teacher"):
        student.train()
        student.loss(data.batch(np.arange(8)))


def test_student_needs_a_caloflow_teacher(tmp_path: Path, data: Data):
    other = save_model(make_model("calo-inn", data.spec, **SMALL), tmp_path / "inn")
    with pytest.raises(ValueError, match="caloflow"):
        hparams_on_top_of("caloflow-student", other)
