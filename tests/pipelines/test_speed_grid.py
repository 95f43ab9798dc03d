"""The speed grid of a one-step image model (calogen.pipelines.model_timing.speed_grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calogen.data import write_showerset
from calogen.data.transforms import Transforms
from calogen.geometry import ZN
from calogen.models.generator import ModelSpec
from calogen.models.io import save_model
from calogen.models.registry import make_model
from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS
from calogen.pipelines.model_timing import speed_grid


@pytest.fixture(scope="module")
def zn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("grid")
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(12, len(CONDITION_COLUMNS))).astype(np.float32)
    pdg = np.full(12, 2112, np.int32)
    spec = ModelSpec(ZN, Transforms.fit(cond, pdg, list(CONDITION_COLUMNS)))
    model = make_model("vae", spec, backbone="mlp", mlp_hidden=[8], cond_dim=4, latent_dim=2,
                       flow_layers=1, flow_hidden=8)
    run = save_model(model.eval(), d / "run")
    data = write_showerset(d / "c.h5", np.zeros((12, *ZN.shape), np.int32), cond, pdg,
                           detector="ZN", geometry=ZN, producer={"name": "tests"},
                           condition_columns=CONDITION_COLUMNS,
                           condition_units=CONDITION_UNITS)
    return run, data


def test_grid_times_every_path_precision_batch_and_thread(zn_run) -> None:  # noqa: ANN001
    run, data = zn_run
    rows = speed_grid(run, data, batches=(1, 7), threads=(1, 2), repeats=2, min_responses=14)
    got = {(r.path, r.precision, r.batch, r.threads) for r in rows}
    for path, precisions in (("sample", ("float32", "bfloat16", "int8")),
                             ("generate", ("float32", "bfloat16", "int8")),
                             ("onnx", ("float32", "int8"))):
        for p in precisions:
            for b in (1, 7):
                for t in (1, 2):
                    assert (path, p, b, t) in got
    assert all(r.ms_per_response > 0 and r.ms_std >= 0 and r.repeats == 2 for r in rows)
    assert all(r.batch * r.calls >= 14 for r in rows)
    one = {r.path: r.calls for r in rows if r.batch == 1}
    assert one == {"sample": 14, "generate": 14, "onnx": 14}
    # batch 1 pays the per-call overhead 14 times: slower per response than batch 7
    ms = {(r.path, r.precision, r.batch, r.threads): r.ms_per_response for r in rows}
    assert ms[("generate", "float32", 1, 1)] > ms[("generate", "float32", 7, 1)]


def test_grid_refuses_voxel_models_and_unknown_paths(zn_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, data = zn_run
    with pytest.raises(ValueError, match="unknown path"):
        speed_grid(run, data, paths=("gpu",))
    with pytest.raises(ValueError, match="must be >= 1"):
        speed_grid(run, data, batches=(0,))
