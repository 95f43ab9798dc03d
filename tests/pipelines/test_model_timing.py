"""Generation time and size of a trained model (``calogen evaluate --model``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from calogen.cli.evaluate_cmd import MODEL_PARAMETERS_ROW, MODEL_TIME_ROW, add_model_rows
from calogen.data import write_showerset
from calogen.data.transforms import Transforms
from calogen.models.generator import ModelSpec
from calogen.models.io import save_model
from calogen.models.registry import make_model
from calogen.particles import gun_conditions
from calogen.pipelines.model_timing import time_model
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
