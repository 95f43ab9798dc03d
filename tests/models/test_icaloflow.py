"""iCaloFlow (icaloflow, icaloflow-student) on a tiny uniform geometry (6 layers x 3 r x 4
alpha): geometry checks, exact preprocessing and Jacobian, training, thresholded seeded samples,
the likelihood, save/load, the distilled IAF student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calogen.data.transforms import Transforms
from calogen.geometry import calochallenge_binning, uniform_layers
from calogen.models.generator import ModelSpec, TrainBatch, image_geometry
from calogen.models.io import hparams_on_top_of, load_model, save_model
from calogen.models.registry import make_model

pytestmark = pytest.mark.usefixtures("one_thread")

GEOMETRY = uniform_layers("tiny-ds2", 6, [0.0, 5.0, 10.0, 20.0], 4)
SMALL = {"flow1_hidden": [32], "flow1_layers": 2, "flow1_elementwise": "affine",
         "flow2_hidden": [48], "flow2_layers": 2, "flow3_hidden": [48], "flow3_layers": 2}
N = 400


class Showers:
    """Synthetic showers: a longitudinal profile peaking at a depth that grows with E_inc,
    radial shares falling outwards, exponential fluctuations, ~30 % empty voxels (MeV)."""

    def __init__(self, seed: int = 0, n: int = N) -> None:
        rng = np.random.default_rng(seed)
        self.e_inc = rng.uniform(1.0, 100.0, size=(n, 1)).astype(np.float32)   # GeV
        depth = np.arange(6)[None, :]
        peak = 1.5 + np.log10(self.e_inc)
        profile = np.exp(-0.5 * (depth - peak) ** 2)                            # (n, 6)
        radial = np.array([0.6, 0.3, 0.1])[None, None, None, :]                # (alpha, r)
        mean = 10.0 * self.e_inc[:, :, None, None] * profile[:, :, None, None] * radial
        x = rng.exponential(1.0, size=(n, 6, 4, 3)) * mean
        x[rng.random(x.shape) < 0.3] = 0.0
        self.x = x.reshape(n, -1).astype(np.float32)
        self.pdg = np.full(n, 22)
        self.transforms = Transforms.fit(self.e_inc, self.pdg, ["E_inc"])
        self.spec = ModelSpec(GEOMETRY, self.transforms)

    def batch(self, idx: np.ndarray) -> TrainBatch:
        return TrainBatch(torch.log1p(torch.as_tensor(self.x[idx])),
                          self.transforms.conditions(self.e_inc[idx]),
                          torch.zeros(len(idx), dtype=torch.int64),
                          torch.as_tensor(idx, dtype=torch.int64))


def _train(model, data: Showers, steps: int, seed: int = 0, lr: float = 3e-3) -> None:
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.phase_parameters("main"), lr)
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(data.batch(rng.choice(N, 64)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def _held_nll(model, data: Showers) -> float:
    """Mean NLL per voxel of 200 held showers, with fixed noise."""
    return float(-model.log_likelihood(data.x[:200], data.e_inc[:200], draws=1,
                                       generator=torch.Generator().manual_seed(3)).mean()
                 / GEOMETRY.n_voxels)


@pytest.fixture(scope="module")
def data() -> Showers:
    return Showers()


@pytest.fixture(scope="module")
def trained(data: Showers):
    torch.manual_seed(0)
    model = make_model("icaloflow", data.spec, **SMALL)
    model.train()
    model.loss(data.batch(np.arange(64)))  # fits the preprocessing
    before = _held_nll(model, Showers(seed=7))
    _train(model, data, 200)
    model.eval()
    return model, before


@pytest.fixture(scope="module")
def teacher_dir(trained, tmp_path_factory) -> Path:
    return save_model(trained[0], tmp_path_factory.mktemp("icaloflow") / "teacher")


def test_other_geometries_and_images_are_refused(data: Showers):
    ds1 = ModelSpec(calochallenge_binning("1-photons").geometry, data.transforms)
    with pytest.raises(ValueError, match="every layer must have the same angular x radial"):
        make_model("icaloflow", ds1)
    image = ModelSpec(image_geometry((8, 8)), data.transforms)
    with pytest.raises(ValueError, match="does not support 'image'"):
        make_model("icaloflow", image)
    no_energy = ModelSpec(GEOMETRY, Transforms.fit(data.e_inc, data.pdg, ["x"]))
    with pytest.raises(ValueError, match="incident-energy column"):
        make_model("icaloflow", no_energy)


def test_preprocessing_is_exact_and_its_jacobian_matches_autograd(data: Showers):
    torch.manual_seed(0)
    model = make_model("icaloflow", data.spec, **SMALL)
    model.train()
    model.loss(data.batch(np.arange(64)))
    model.double()
    prep = model.preprocessing
    v = prep.add_noise(torch.as_tensor(data.x[:3], dtype=torch.float64),
                       torch.Generator().manual_seed(0))
    e_inc = torch.as_tensor(data.e_inc[:3, 0], dtype=torch.float64) * 1000.0
    yu, xs, _, _, logdet = model._to_network(v, e_inc)
    # the inverse (flow values -> showers) recovers the noisy showers, anchors included
    u = model.logit.inverse(yu * model.u_scale + model.u_mean)
    energy = prep.layer_energies_from_fractions(u, e_inc)
    f = model.logit.inverse(xs * model.x_scale + model.x_mean)
    share = torch.zeros(3, 6, 12, dtype=torch.float64)
    share[:, :, model.keep] = f
    share[:, :, model.anchor] = 1.0 - f.sum(2)
    back = share * energy[:, :, None]
    torch.testing.assert_close(back.reshape(3, -1), v, rtol=1e-6, atol=1e-9)
    for i in range(3):
        def flat(w: torch.Tensor, i: int = i) -> torch.Tensor:
            out = model._to_network(w[None], e_inc[i:i + 1])
            return torch.cat([out[0], out[1].flatten(1)], 1)[0]
        jac = torch.autograd.functional.jacobian(flat, v[i])
        assert jac.shape == (72, 72)
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), rel=1e-6)


def test_training_lowers_the_held_out_nll(trained):
    model, before = trained
    after = _held_nll(model, Showers(seed=7))
    assert after < before - 0.1, (before, after)


def test_samples_are_thresholded_energies_that_follow_e_inc(trained, data: Showers):
    model, _ = trained
    g = torch.Generator().manual_seed(0)
    out = model.sample(data.e_inc[:200], data.pdg[:200], g)
    assert out.shape == (200, 72) and out.dtype == np.float32 and out.min() >= 0
    cut = max(model.preprocessing.threshold_mev, model.preprocessing.noise_mev)
    assert cut > 0 and out[out > 0].min() >= cut * (1 - 1e-5)
    assert (out == 0).any()
    corr = np.corrcoef(out.sum(1), data.e_inc[:200, 0])[0, 1]
    assert corr > 0.8, corr
    ratio = out.sum(1).mean() / data.x[:200].sum(1).mean()
    assert 0.7 < ratio < 1.4, ratio
    again = model.sample(data.e_inc[:200], data.pdg[:200], torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out, again)
    other = model.sample(data.e_inc[:200], data.pdg[:200], torch.Generator().manual_seed(1))
    assert not np.array_equal(out, other)


def test_log_likelihood_flags_showers_unlike_the_training_data(trained):
    model, _ = trained
    held = Showers(seed=5)
    g = torch.Generator().manual_seed(0)
    normal = model.log_likelihood(held.x[:100], held.e_inc[:100], held.pdg[:100], generator=g)
    flipped = held.x[:100].reshape(100, 6, 12)[:, ::-1].reshape(100, -1)  # layers reversed
    odd = model.log_likelihood(np.ascontiguousarray(flipped), held.e_inc[:100], generator=g)
    one = model.log_likelihood(held.x[:50], held.e_inc[:50], draws=1, generator=g)
    many = model.log_likelihood(held.x[:50], held.e_inc[:50], draws=16, generator=g)
    assert many.mean() > one.mean() - 0.5   # the bound tightens (on average) with draws
    assert np.isfinite(normal).all() and normal.dtype == np.float64
    assert (normal > odd).mean() > 0.9   # the same shower, layers in the right order or not


def test_save_load_samples_identical(trained, teacher_dir: Path, data: Showers):
    model, _ = trained
    loaded = load_model(teacher_dir)
    assert loaded.preprocessing == model.preprocessing
    a = model.sample(data.e_inc[:20], data.pdg[:20], torch.Generator().manual_seed(2))
    b = loaded.sample(data.e_inc[:20], data.pdg[:20], torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(a, b)


def test_untrained_model_refuses_to_sample(data: Showers):
    model = make_model("icaloflow", data.spec, **SMALL)
    with pytest.raises(RuntimeError, match="not trained yet"):
        model.sample(data.e_inc[:2], data.pdg[:2])


def test_student_distils_its_teacher_and_samples(teacher_dir: Path, data: Showers,
                                                  tmp_path: Path):
    teacher = load_model(teacher_dir).eval()
    torch.manual_seed(0)
    student = make_model("icaloflow-student", data.spec,
                         **hparams_on_top_of("icaloflow-student", teacher_dir))
    student.train()
    student.loss(data.batch(np.arange(64)))          # copies the teacher in

    def gap() -> float:
        g = torch.Generator().manual_seed(1)
        noise = torch.randn(128, 72, generator=g)
        cond = data.transforms.conditions(data.e_inc[:128])
        with torch.no_grad():
            want = torch.log1p(teacher.generate(noise, cond))
            got = torch.log1p(student.generate(noise, cond))
        return float(((got - want) ** 2).mean() / want.var())

    before = gap()
    _train(student, data, 200, seed=1)
    after = gap()
    assert after < before / 3 and after < 0.2, (before, after)
    assert student.network_calls() < teacher.network_calls() / 5
    student.eval()
    out = student.sample(data.e_inc[:50], data.pdg[:50], torch.Generator().manual_seed(0))
    assert out.shape == (50, 72) and out.min() >= 0
    loaded = load_model(save_model(student, tmp_path / "student"))
    again = loaded.sample(data.e_inc[:50], data.pdg[:50], torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out, again)
    assert student.preprocessing == teacher.preprocessing
    for name in ("anchor", "u_mean", "x_scale", "le_mean", "loge_stats"):
        assert torch.equal(getattr(student, name), getattr(teacher, name))
