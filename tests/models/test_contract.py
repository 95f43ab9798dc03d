"""One contract over every registered family and every kind of showers it supports (tiny 8x8
images, 36 toy voxels; a few steps each).

Loss finite (and decreasing for the likelihood / regression families), seeded sampling
reproducible, save -> load -> sample identical, outputs of the geometry's shape and
non-negative, exact resume through the trainer, ONNX parity where exportable, and a clear
refusal for unsupported shapes. Families built on another model get their base trained tiny
once per session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from calogen.data.showerset import write_showerset
from calogen.data.transforms import Transforms
from calogen.geometry import Geometry
from calogen.models.families import family_names
from calogen.models.generator import Generator, ModelSpec, TrainBatch, image_geometry
from calogen.models.io import hparams_on_top_of, load_model, save_model
from calogen.models.registry import FAMILIES, families_for, family_class, make_model
from calogen.testing.showersets import TOY_VOLUME, TOY_VOXELS, toy_points
from calogen.train.checkpoint import load_checkpoint
from calogen.train.data import load_training_data
from calogen.train.trainer import TrainConfig, Trainer

COLS = ["E", "vx", "vy", "vz", "px", "py", "pz", "mass", "charge"]
SHAPE = (8, 8)
UNET = {"unet_channels": [8], "unet_attention": False, "groups": 4, "cond_dim": 8}
CNN = {"backbone": "mlp", "mlp_hidden": [16, 16], "cond_dim": 8}
FLOW = {"stage1_hidden": [16], "stage1_layers": 1, "stage1_elementwise": "affine",
        "stage2_hidden": [16], "stage2_layers": 2}
VQ = {"vit_patch": 4, "vit_width": 16, "vit_depth": 1, "vit_heads": 2, "decoder_width": 16,
      "decoder_depth": 1, "cond_dim": 8, "n_codes": 8, "code_dim": 4, "prior_width": 16,
      "prior_depth": 1, "prior_heads": 2}
TINY: dict[str, dict[str, Any]] = {
    "vae": {**CNN, "latent_dim": 2}, "ae-noise": {**CNN, "latent_dim": 2},
    "gan": {**CNN, "latent_dim": 2}, "sdi-gan": {**CNN, "latent_dim": 2},
    "ddpm": {**UNET, "steps": 2}, "edm": {**UNET, "steps": 2},
    "flow-matching": {**UNET, "steps": 2}, "consistency": {"steps": 1},
    "latent-flow-matching": {"hidden": 16, "depth": 1, "cond_dim": 8, "steps": 2},
    "caloflow": FLOW, "calo-inn": FLOW, "caloflow-student": {},
    "vq-vae": VQ, "vq-gan": {**VQ, "channels": [4, 8], "groups": 4, "disc_start": 0},
    # voxel-diffusion (issue 15)
    "voxel-diffusion": {"width": 16, "depth": 1, "heads": 2, "cond_dim": 8, "steps": 2},
}
"""Tiny hparams per family (a new family adds its entry; the test below checks there is one)."""
TINY["icaloflow"] = {"flow1_hidden": [16], "flow1_layers": 1, "flow1_elementwise": "affine",
                     "flow2_hidden": [16], "flow2_layers": 2, "flow3_hidden": [16],
                     "flow3_layers": 2}
TINY["icaloflow-student"] = {}
# point clouds (issue 16)
TINY["caloclouds2"] = {"pointwise_widths": [16, 16], "time_dim": 8, "flow_layers": 2,
                       "flow_hidden": 16, "steps": 2, "calibration_showers": 8}
TINY["caloclouds2-cm"] = {"steps": 1}
TINY["epic-gan"] = {"hidden": 8, "global_dim": 4, "point_noise_dim": 2, "g_layers": 1,
                    "d_layers": 1}
TINY["bib-ae"] = {"channels": [4, 8], "critic_channels": [4], "latent_dim": 4, "hidden": 16,
                  "cond_dim": 8}

STEPS = 12
ADVERSARIAL = {"adversarial"}
GEOMETRIES: dict[str, Geometry] = {"image": image_geometry(SHAPE), "voxels": TOY_VOXELS,
                                   "points": TOY_VOLUME}


def _spec(kind: str = "image") -> ModelSpec:
    rng = np.random.default_rng(0)
    return ModelSpec(GEOMETRIES[kind],
                     Transforms.fit(rng.normal(size=(64, 9)), np.full(64, 2112), COLS))


def _point_batch(spec: ModelSpec, n: int) -> TrainBatch:
    """Ragged toy clouds of :data:`TOY_VOLUME` padded to the largest, with the mask: the first
    shower is empty and the second holds one point (:func:`toy_points`)."""
    gen = torch.Generator().manual_seed(0)
    points, counts = toy_points(n, seed=0)
    width = int(counts.max())
    mask = torch.arange(width)[None, :] < torch.as_tensor(counts)[:, None]
    x = torch.zeros((n, width, 4))
    x[mask] = torch.as_tensor(points)
    return TrainBatch(x, torch.randn(n, spec.n_conditions, generator=gen),
                      torch.zeros(n, dtype=torch.int64), torch.arange(n) // 2, mask)


def _batch(spec: ModelSpec, n: int = 32) -> TrainBatch:
    """Poisson(3) cell values (photons or MeV) in network space, of the spec's shape; toy
    clouds for point-cloud models."""
    if spec.kind == "points":
        return _point_batch(spec, n)
    gen = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.full((n, *spec.tensor_shape), 3.0), generator=gen)
    return TrainBatch(torch.log1p(counts), torch.randn(n, spec.n_conditions, generator=gen),
                      torch.zeros(n, dtype=torch.int64), torch.arange(n) // 2)


def _train(model: Generator, batch: TrainBatch, steps: int = STEPS) -> list[float]:
    """Adam on a fixed batch; the first phase's loss per step."""
    torch.manual_seed(0)
    opts = {ph: torch.optim.Adam(model.phase_parameters(ph), lr=3e-3) for ph in model.phases
            if model.phase_parameters(ph)}
    model.train()
    first = []
    for _ in range(steps):
        for i, phase in enumerate(model.phases):
            loss, _ = model.loss(batch, phase)
            assert torch.isfinite(loss), (model.family, phase)
            if phase in opts:
                opts[phase].zero_grad()
                loss.backward()
                opts[phase].step()
            if i == 0:
                first.append(float(loss.detach()))
    return first


@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """The base families of the families built on another model, trained tiny and saved, per
    kind of showers both support: ``{(base family, kind): directory}``."""
    out: dict[tuple[str, str], Path] = {}
    for cls in _classes():
        if cls.built_on is None:
            continue
        name = cls.built_on.default_family
        for kind in sorted(cls.shapes & family_class(name).shapes):
            if (name, kind) in out:
                continue
            spec = _spec(kind)
            torch.manual_seed(0)
            model = make_model(name, spec, **TINY[name])
            _train(model, _batch(spec), 3)
            out[name, kind] = save_model(model.eval(),
                                         tmp_path_factory.mktemp(f"base-{name}-{kind}"))
    return out


def _classes() -> list[type[Generator]]:
    family_class("vae")  # loads the registry
    return [FAMILIES[n] for n in family_names()]


def _hparams(family: str, bases: dict[tuple[str, str], Path], kind: str = "image"
             ) -> dict[str, Any]:
    cls = family_class(family)
    hp = TINY[family]
    if cls.built_on is not None:
        hp = hparams_on_top_of(family, bases[cls.built_on.default_family, kind], hp)
    return hp


def _build(family: str, kind: str, bases: dict[tuple[str, str], Path]) -> Generator:
    hp = _hparams(family, bases, kind)
    torch.manual_seed(0)
    return make_model(family, _spec(kind), **hp)


def _pairs() -> list[tuple[str, str]]:
    """Every (family, kind of showers it supports)."""
    return [(c.family, kind) for c in _classes() for kind in sorted(c.shapes)]


def test_every_family_module_registers_its_family() -> None:
    assert sorted(c.family for c in _classes()) == sorted(family_names())
    assert set(TINY) >= set(family_names()), "add tiny hparams for the new family"


def test_a_family_runs_on_voxels() -> None:
    assert ("vae", "voxels") in _pairs() and ("ae-noise", "voxels") in _pairs()


def test_vector_families_and_caloflow_run_on_voxels() -> None:
    """The families whose backbone takes a vector, and the CaloFlow family (issue 15)."""
    for family in ("gan", "sdi-gan", "latent-flow-matching", "caloflow", "caloflow-student",
                   "calo-inn"):
        assert (family, "voxels") in _pairs(), family


@pytest.fixture(scope="module", params=_pairs(), ids=lambda p: f"{p[0]}-{p[1]}")
def trained(request: pytest.FixtureRequest, bases: dict[tuple[str, str], Path]
            ) -> tuple[Generator, list[float]]:
    torch.set_num_threads(1)
    family, kind = request.param
    model = _build(family, kind, bases)
    losses = _train(model, _batch(model.spec))
    return model.eval(), losses


def test_loss_finite_and_decreasing(trained: tuple[Generator, list[float]]) -> None:
    model, losses = trained
    assert all(np.isfinite(losses))
    if model.category not in ADVERSARIAL:
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), (model.family, losses)


def _sample(model: Generator, seed: int = 1) -> np.ndarray:
    """Five showers; point clouds as their points followed by the counts (one array)."""
    cond = np.random.default_rng(2).normal(size=(5, 9)).astype(np.float32)
    gen = torch.Generator().manual_seed(seed)
    if model.spec.kind == "points":
        points, counts = model.sample_points(cond, np.full(5, 2112), gen)
        assert points.dtype == np.float32 and counts.dtype == np.int64
        assert points.shape == (int(counts.sum()), 4) and counts.shape == (5,)
        return np.concatenate([points.ravel(), counts.astype(np.float32)])
    return model.sample(cond, np.full(5, 2112), gen)


def test_seeded_sampling_shape_and_sign(trained: tuple[Generator, list[float]]) -> None:
    model, _ = trained
    a, b = _sample(model), _sample(model)
    np.testing.assert_array_equal(a, b)
    if model.spec.kind == "points":  # energies non-negative; counts checked in _sample
        n = int(a[-5:].sum())
        assert np.isfinite(a).all() and (a[:4 * n].reshape(n, 4)[:, 3] >= 0).all()
        return
    assert a.shape == (5, *model.spec.shape) and (a >= 0).all()
    if model.spec.kind == "voxels":  # energies in MeV, never rounded to counts
        assert a.dtype == np.float32 and not np.array_equal(a, np.round(a))


def test_save_load_sample_identical(trained: tuple[Generator, list[float]],
                                    tmp_path: Path) -> None:
    model, _ = trained
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.family == model.family
    np.testing.assert_array_equal(_sample(model), _sample(loaded))


def test_onnx_parity_where_exportable(trained: tuple[Generator, list[float]],
                                      tmp_path: Path) -> None:
    model, _ = trained
    if not model.exportable():
        pytest.skip(f"{model.family} on {model.spec.kind} is not exportable")
    from calogen.models.export_onnx import export_onnx

    res = export_onnx(model, tmp_path / "m.onnx")  # runs the parity check itself
    assert res.onnx.is_file() and res.scales.is_file()


@pytest.mark.parametrize("kind", ["voxels", "points"])
def test_unsupported_shapes_are_refused_with_the_supporting_families(kind: str) -> None:
    spec = _spec(kind)
    supporting = families_for(kind)
    for cls in _classes():
        if kind in cls.shapes:
            continue
        with pytest.raises(ValueError, match=f"does not support {kind!r}") as info:
            make_model(cls.family, spec)
        assert str(supporting or "none yet") in str(info.value)


# -- exact resume through the trainer -------------------------------------------------------


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny ShowerSet per kind: 48 showers in pairs of repeats, 9 condition columns."""
    root = tmp_path_factory.mktemp("contract-data")
    rng = np.random.default_rng(0)
    out = {}
    spec = _spec("points")
    points, counts = toy_points(48, seed=0)
    cond = np.repeat(rng.normal(size=(24, 9)), 2, axis=0).astype(np.float32)
    out["points"] = write_showerset(
        root / "points.h5", points, cond, np.full(48, 22, np.int32), counts=counts,
        condition_id=np.arange(48) // 2, detector=spec.detector, geometry=spec.geometry,
        condition_columns=COLS, condition_units=["GeV"] * 9, producer={"name": "tests/models"})
    for kind in ("image", "voxels"):
        spec = _spec(kind)
        showers = rng.poisson(3.0, size=(48, *spec.shape))
        cond = np.repeat(rng.normal(size=(24, 9)), 2, axis=0).astype(np.float32)
        out[kind] = write_showerset(
            root / f"{kind}.h5", showers.astype(np.int32 if kind == "image" else np.float32),
            cond, np.full(48, 2112, np.int32), condition_id=np.arange(48) // 2,
            detector=spec.detector, geometry=spec.geometry, condition_columns=COLS,
            condition_units=["GeV"] * 9, producer={"name": "tests/models"})
    return out


def _state_equal(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _state_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _state_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize(("family", "kind"), _pairs(), ids=lambda v: str(v))
def test_exact_resume(family: str, kind: str, bases: dict[tuple[str, str], Path],
                      data_files: dict[str, Path], tmp_path: Path) -> None:
    """k steps, checkpoint, resume to 2k == 2k steps without interruption (weights,
    optimisers, step)."""
    torch.set_num_threads(1)
    data = load_training_data(data_files[kind], seed=0)
    hp = _hparams(family, bases, kind)
    k = 2

    def run(steps: int, out: Path, resume: bool = False, seed: int = 0) -> None:
        config = TrainConfig(lr=3e-3, batch_size=16, max_steps=steps, schedule_steps=2 * k,
                             warmup_steps=1, checkpoint_every=k,
                             val_every=0, val_events=8, log_every=1, seed=1, device="cpu",
                             tensorboard=False, ema_decay=0.9)
        torch.manual_seed(seed)
        model = make_model(family, data.spec, **hp)
        Trainer(model, data, config, out, resume=resume, progress=False).fit()

    run(2 * k, tmp_path / "full")
    run(k, tmp_path / "cut")
    run(2 * k, tmp_path / "cut", resume=True, seed=99)  # everything comes from the checkpoint
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["step"] == b["step"] == 2 * k
    for key in ("model", "optimizers", "ema", "step"):
        _state_equal(a[key], b[key], key)
