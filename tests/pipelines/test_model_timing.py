"""Generation time and size of a trained model (``calogen evaluate --model``)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from calogen.cli.evaluate_cmd import (
    MODEL_PARAMETERS_ROW,
    MODEL_TIME_ROW,
    POINT_TIME_ROW,
    add_model_rows,
    add_point_model_rows,
)
from calogen.data import write_showerset
from calogen.data.transforms import Transforms
from calogen.models.generator import ModelSpec
from calogen.models.io import save_model
from calogen.models.registry import make_model
from calogen.particles import gun_conditions
from calogen.pipelines.model_timing import time_model, time_point_model
from calogen.report.evaluation_report import leaderboard_measurements
from calogen.testing.showersets import TOY_VOXELS


@pytest.fixture(scope="module")
def model_and_conditions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    d = tmp_path_factory.mktemp("timing")
    columns, units = gun_conditions("E_inc")
    e = np.random.default_rng(0).uniform(1, 100, size=(30, 1)).astype(np.float32)
    model = make_model("vae", ModelSpec(TOY_VOXELS, Transforms.fit(e, np.full(30, 22), columns)),
                       backbone="mlp", mlp_hidden=[16], cond_dim=4, latent_dim=2)
    n_params = sum(p.numel() for p in model.parameters())
    run = save_model(model.eval(), d / "run")
    cond = write_showerset(d / "c.h5", np.ones((30, TOY_VOXELS.n_voxels), np.float32), e,
                           np.full(30, 22, np.int32), detector="toy", geometry=TOY_VOXELS,
                           condition_columns=columns, condition_units=units,
                           producer={"name": "tests"})
    return run, cond, n_params


def test_time_model_counts_parameters_and_times_batches(model_and_conditions) -> None:  # noqa: ANN001
    run, cond, n_params = model_and_conditions
    t = time_model(run, cond, batch=100, repeats=2)  # 100 > 30 rows: conditions recycled
    assert t.parameters == n_params and t.batch == 100 and t.threads == 1
    assert 0 < t.ms_per_shower < 1000
    with pytest.raises(ValueError, match="must be >= 1"):
        time_model(run, cond, batch=0)


def test_model_rows_feed_the_leaderboard(model_and_conditions) -> None:  # noqa: ANN001
    run, cond, n_params = model_and_conditions
    result = SimpleNamespace(summary=[])
    add_model_rows(result, run, cond)
    names = [r.name for r in result.summary]
    assert names == [MODEL_TIME_ROW, MODEL_PARAMETERS_ROW]
    measured = leaderboard_measurements({"summary": [r.to_dict() for r in result.summary]})
    assert measured["params"] == n_params
    assert measured["ms_per_shower_cpu_100"] == result.summary[0].value


class _SlowPoints(torch.nn.Module):
    """A point-cloud 'model' that sleeps 2 ms per call and 0.5 ms per shower."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(7))
        self.spec = SimpleNamespace(kind="points",
                                    transforms=SimpleNamespace(condition_columns=["E_inc"]))
        self.seen: list[np.ndarray] = []

    def sample_points(self, cond, pdg, g, *, batch_size):  # noqa: ANN001, ANN202
        self.seen.append(np.asarray(cond)[:, 0].copy())
        time.sleep(2e-3 + 0.5e-3 * len(cond))
        counts = np.full(len(cond), 3, np.int64)
        return np.zeros((int(counts.sum()), 4), np.float32), counts


def test_point_model_timing_as_caloclouds() -> None:
    model = _SlowPoints()
    t1 = time_point_model(model, batch=1, repeats=3, n_showers=10)  # type: ignore[arg-type]
    assert t1.parameters == 7 and t1.batch == 1 and t1.threads == 1 and t1.device == "cpu"
    assert 2.4 <= t1.ms_per_shower < 50 and t1.ms_std >= 0
    e = np.concatenate(model.seen)
    assert len(e) == 40 and e.min() >= 10 and e.max() <= 90  # warm-up + 3 runs, 10-90 GeV
    t10 = time_point_model(model, batch=10, repeats=2, n_showers=10)  # type: ignore[arg-type]
    assert t10.ms_per_shower < t1.ms_per_shower  # the per-call cost is shared by the batch
    with pytest.raises(ValueError, match="must be >= 1"):
        time_point_model(model, batch=0)  # type: ignore[arg-type]
    model.spec.transforms.condition_columns = ["E"]
    with pytest.raises(ValueError, match="no 'E_inc'"):
        time_point_model(model)  # type: ignore[arg-type]


def test_point_model_rows() -> None:
    result = SimpleNamespace(summary=[])
    add_point_model_rows(result, _SlowPoints(), repeats=2, n_showers=4)
    names = [r.name for r in result.summary]
    assert names[0] == POINT_TIME_ROW and names[-1] == MODEL_PARAMETERS_ROW
    assert result.summary[0].value > 2.0 and result.summary[0].value_std is not None
