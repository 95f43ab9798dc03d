"""The CaloFlow families on voxels (issue 15 item 6): a tiny DS1-photons-shaped set (368 voxels
in 5 layers, incident energies 1-100 GeV), tiny networks, a few steps each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet, write_showerset
from calogen.data.transforms import Transforms
from calogen.geometry import calochallenge_binning
from calogen.models.families.caloflow import CaloFlow
from calogen.models.generator import Generator, ModelSpec, TrainBatch, image_geometry
from calogen.models.io import hparams_on_top_of, load_model, save_model
from calogen.models.registry import make_model
from calogen.particles import gun_conditions
from calogen.pipelines.loglik import shower_log_likelihoods

GEOMETRY = calochallenge_binning("1-photons").geometry
N_VOXELS = GEOMETRY.n_voxels
TINY = {"stage1_hidden": [16], "stage1_layers": 2, "stage1_elementwise": "affine",
        "stage2_hidden": [32], "stage2_layers": 2, "cond_dim": 8}
STEPS = 15


def _showers(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 368)`` energies (MeV; ~40 % zeros, the smallest positive 0.05 MeV) and ``(n, 1)``
    incident energies (GeV, log-uniform 1-100): layer fractions around fixed means."""
    rng = np.random.default_rng(seed)
    e_inc = 10 ** rng.uniform(0, 2, size=(n, 1))
    out = np.zeros((n, N_VOXELS))
    fractions = rng.dirichlet([2.0, 8.0, 30.0, 10.0, 1.0], size=n)
    for k, sl in enumerate(GEOMETRY.layer_slices()):
        w = rng.exponential(1.0, size=(n, sl.stop - sl.start))
        w[rng.random(w.shape) < 0.4] = 0.0
        w /= w.sum(1, keepdims=True).clip(min=1e-12)
        out[:, sl] = w * (0.9 * 1e3 * e_inc * fractions[:, k:k + 1])
    out[(out > 0) & (out < 0.05)] = 0.05
    return out.astype(np.float32), e_inc.astype(np.float32)


def _spec(e_inc: np.ndarray) -> ModelSpec:
    columns, _ = gun_conditions("E_inc")
    return ModelSpec(GEOMETRY, Transforms.fit(e_inc, np.full(len(e_inc), 22), list(columns)))


SHOWERS, E_INC = _showers(160)
SPEC = _spec(E_INC)


def _batch(rows: slice = slice(0, 160)) -> TrainBatch:
    n = len(SHOWERS[rows])
    return TrainBatch(SPEC.transforms.showers(SHOWERS[rows]),
                      SPEC.transforms.conditions(E_INC[rows]), torch.zeros(n, dtype=torch.int64),
                      torch.arange(n))


def _train(model: CaloFlow, steps: int = STEPS) -> list[float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.phase_parameters("main"), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _sample(model: Generator, n: int = 20, seed: int = 1) -> np.ndarray:
    cond = 10 ** np.random.default_rng(2).uniform(0, 2, size=(n, 1))
    return model.sample(cond, np.full(n, 22), torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def teacher(one_thread: None) -> CaloFlow:
    torch.manual_seed(0)
    model = make_model("caloflow", SPEC, **TINY)
    assert isinstance(model, CaloFlow)
    losses = _train(model)
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3])
    return model.eval()


def test_voxel_design_is_chosen_from_the_spec() -> None:
    voxel = make_model("caloflow", SPEC, **TINY)
    assert isinstance(voxel, CaloFlow) and voxel.voxels
    assert voxel.n_groups == 5 and voxel.latent_dim == N_VOXELS
    assert voxel.stage2.features == N_VOXELS - 5  # one anchor dropped per layer
    image = make_model("caloflow", ModelSpec(image_geometry((8, 8)), SPEC.transforms), **TINY)
    assert isinstance(image, CaloFlow) and not image.voxels and image.n_groups == 5
    assert not any(k.startswith(("vox_", "le_")) for k in image.state_dict())


def test_incident_energy_comes_back_in_mev() -> None:
    model = make_model("caloflow", SPEC, **TINY)
    assert isinstance(model, CaloFlow)
    e = model.e_inc_mev(SPEC.transforms.conditions(E_INC[:7]))
    np.testing.assert_allclose(e.numpy(), 1e3 * E_INC[:7, 0], rtol=1e-5)


def test_samples_have_the_shape_sign_and_threshold(teacher: CaloFlow) -> None:
    pre = teacher.voxel_preprocessing
    assert pre.threshold_mev == pytest.approx(0.05)  # the data's smallest positive voxel
    a, b = _sample(teacher), _sample(teacher)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, N_VOXELS) and a.dtype == np.float32
    assert np.isfinite(a).all() and (a >= 0).all()
    positive = a[a > 0]
    assert positive.size and positive.min() >= np.float32(0.05)
    assert (a == 0).any()  # the cut removed the training noise and the faint voxels


def test_save_load_samples_identical(teacher: CaloFlow, tmp_path: Path) -> None:
    loaded = load_model(save_model(teacher, tmp_path / "m"))
    assert isinstance(loaded, CaloFlow) and loaded.voxels
    assert loaded.voxel_preprocessing == teacher.voxel_preprocessing
    np.testing.assert_array_equal(_sample(teacher), _sample(loaded))


def test_network_space_round_trips_to_the_noisy_showers(teacher: CaloFlow) -> None:
    """``x -> (u, f) -> x`` is the identity on noisy showers (anchors recovered), up to the
    cut at the threshold (float64; float32 loses ~1e-4 relative in shares near 1)."""
    model = _double(teacher)
    batch = _batch(slice(0, 8))
    cond = batch.cond.double()
    v = model._noisy(model._counts(batch).double(), torch.Generator().manual_seed(3))
    with torch.no_grad():
        y, x, _ = model._to_network(v, cond)
        back = torch.expm1(model._to_voxels(y, x, cond))
    expected = model.voxel_preprocessing.postprocess(v)
    torch.testing.assert_close(back, expected, rtol=1e-9, atol=1e-9)


def _double(model: CaloFlow) -> CaloFlow:
    """A float64 copy of ``model``."""
    out = make_model("caloflow", SPEC, **TINY)
    out.load_state_dict(model.state_dict())
    assert isinstance(out, CaloFlow)
    return out.double()


def test_log_jacobian_is_exact(teacher: CaloFlow) -> None:
    """The preprocessing's log-Jacobian equals ``log |det|`` of the autograd Jacobian of
    ``x -> (y, x')`` (368 x 368, float64) for two showers."""
    model = _double(teacher)
    batch = _batch(slice(0, 2))
    cond = batch.cond.double()
    v = model._noisy(model._counts(batch).double(), torch.Generator().manual_seed(4))
    for i in range(2):
        def forward(row: torch.Tensor, i: int = i) -> torch.Tensor:
            y, x, _ = model._to_network(row[None], cond[i:i + 1])
            return torch.cat([y, x], dim=1)[0]

        jac = torch.autograd.functional.jacobian(forward, v[i])
        sign, expected = torch.linalg.slogdet(jac)
        got = model._to_network(v[i:i + 1], cond[i:i + 1])[2][0]
        assert sign != 0
        assert float(got) == pytest.approx(float(expected), abs=1e-6 * abs(float(expected)))


def test_log_likelihood_per_shower(teacher: CaloFlow) -> None:
    """Finite per-shower bounds; one draw is ``log p(x + delta u) + n log delta`` with the
    same noise; a shower scaled far outside the training set is much less likely."""
    cond = E_INC[:6]
    ll = teacher.log_likelihood(SHOWERS[:6], cond, np.full(6, 22), draws=1,
                                generator=torch.Generator().manual_seed(5))
    assert ll.shape == (6,) and np.isfinite(ll).all()
    batch = _batch(slice(0, 6))
    v = teacher._noisy(teacher._counts(batch), torch.Generator().manual_seed(5))
    with torch.no_grad():
        lp = teacher.log_prob_dequantised(v, batch.cond)[0].double().numpy()
    np.testing.assert_allclose(ll, lp + N_VOXELS * np.log(1e-3), rtol=1e-5)
    odd = teacher.log_likelihood(SHOWERS[:6] * 50.0, cond, np.full(6, 22), draws=2)
    assert (odd < ll - 10).all()
    with pytest.raises(ValueError, match=">= 0"):
        teacher.log_likelihood(-SHOWERS[:2], cond[:2], np.full(2, 22))


@pytest.fixture(scope="module")
def student(teacher: CaloFlow, tmp_path_factory: pytest.TempPathFactory) -> CaloFlow:
    path = save_model(teacher, tmp_path_factory.mktemp("teacher") / "m")
    torch.manual_seed(0)
    model = make_model("caloflow-student", SPEC,
                       **hparams_on_top_of("caloflow-student", path))
    assert isinstance(model, CaloFlow)
    losses = _train(model, 8)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    return model.eval()


def test_student_matches_the_teacher(teacher: CaloFlow, student: CaloFlow) -> None:
    assert student.family == "caloflow-student" and student.stage2.fast_sampling
    assert student.voxel_preprocessing == teacher.voxel_preprocessing
    for name in ("anchor", "keep", "y_mean", "x_scale", "le_mean", "le_scale"):
        assert torch.equal(getattr(student, name), getattr(teacher, name)), name
    a, b = _sample(student), _sample(teacher)
    assert a.shape == b.shape == (20, N_VOXELS) and (a >= 0).all()
    assert a[a > 0].min() >= np.float32(0.05)
    assert student.network_calls() < teacher.network_calls()


def test_calo_inn_trains_and_samples(one_thread: None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = make_model("calo-inn", SPEC, **TINY)
    assert isinstance(model, CaloFlow)
    losses = _train(model, 8)
    assert losses[-1] < losses[0]
    a = _sample(model.eval())
    assert a.shape == (20, N_VOXELS) and (a >= 0).all() and a[a > 0].min() >= np.float32(0.05)
    assert not model.exportable()  # the ONNX signature is ALICE O2's images
    np.testing.assert_array_equal(a, _sample(load_model(save_model(model, tmp_path / "m"))))


def test_bad_voxel_hparams_are_refused() -> None:
    with pytest.raises(ValueError, match="voxel_noise_mev"):
        make_model("caloflow", SPEC, **TINY, voxel_noise_mev=0.0)
    with pytest.raises(ValueError, match="voxel_threshold_mev"):
        make_model("caloflow", SPEC, **TINY, voxel_threshold_mev=-1.0)


def test_cli_trains_teacher_and_student_on_a_voxel_file(tmp_path: Path) -> None:
    """``calogen train`` on a voxel ShowerSet, the student with ``--teacher RUN/best``,
    ``calogen generate``, and the per-shower likelihoods of the loglik pipeline."""
    columns, units = gun_conditions("E_inc")
    data = write_showerset(tmp_path / "ds1.h5", SHOWERS[:120], E_INC[:120],
                           np.full(120, 22, np.int32), detector=GEOMETRY.name, geometry=GEOMETRY,
                           condition_columns=columns, condition_units=units,
                           producer={"name": "tests"})
    flags = [f"--hparam={k}={v}".replace(" ", "") for k, v in TINY.items()]
    runner = CliRunner()
    common = ["--data", str(data), "--steps", "3", "--batch-size", "32", "--val-every", "2",
              "--no-progress"]
    res = runner.invoke(app, ["train", "--model", "caloflow", "--out", str(tmp_path / "t"),
                              *common, *flags])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--model", "caloflow-student", "--teacher",
                              str(tmp_path / "t" / "best"), "--out", str(tmp_path / "s"),
                              *common])
    assert res.exit_code == 0, res.output
    gen = tmp_path / "gen.h5"
    res = runner.invoke(app, ["generate", "--model", str(tmp_path / "s" / "last"),
                              "--conditions", str(data), "--out", str(gen), "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(gen) as g:
        assert len(g) == 120 and g.shower_shape == (N_VOXELS,)
    ll, ids = shower_log_likelihoods(load_model(tmp_path / "t" / "best"), data, max_events=20,
                                     progress=False)
    assert ll.shape == ids.shape == (20,) and np.isfinite(ll).all()
    table = tmp_path / "ll.csv"
    res = runner.invoke(app, ["loglik", "--model", str(tmp_path / "t" / "best"), str(data),
                              "--out", str(table), "--max-events", "20", "--no-progress"])
    assert res.exit_code == 0, res.output  # voxel energies are not refused as non-counts
    assert "voxel energies (MeV)" in table.read_text().splitlines()[0]
