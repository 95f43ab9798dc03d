"""The quickstart chain runs end to end on a tiny budget and writes what it says it wrote; the
CLI's defaults are the pipeline's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calogen.cli import quickstart_cmd
from calogen.pipelines import quickstart


def test_cli_defaults_are_the_pipelines() -> None:
    assert quickstart_cmd.DEFAULT_MODEL == quickstart.DEFAULT_MODEL
    assert quickstart_cmd.DEFAULT_STEPS == quickstart.DEFAULT_STEPS


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_tiny_quickstart_writes_model_generated_set_and_report(tmp_path: Path) -> None:
    lines: list[str] = []
    res = quickstart.run_quickstart(tmp_path / "qs", n_events=1500, minutes=0.03, seed=3,
                                    progress=False, log=lines.append)
    assert lines[0].startswith("expected: 0.03 min of training") and "load" in lines[0]
    assert [ln[:5] for ln in lines[1:]] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "for 0.03 min (wall clock)" in lines[2]
    assert res.report.is_file() and (res.model_dir / "model.json").is_file()
    metrics = json.loads((res.report.parent / "metrics.json").read_text())
    assert metrics["inputs"]["generated"]["path"].endswith("generated_vae.h5")
    rows = quickstart.headline_rows(res)
    assert [r[0] for r in rows] == list(quickstart.HEADLINE)
    # the shuffled baseline ignores the conditions: far from the floor on the paired MAE
    mae = dict((r[0], r) for r in rows)["channel MAE paired by condition"]
    assert mae[2] > 1.5 * mae[3]


def test_default_hparams_pick_the_mlp_backbone_where_there_is_one() -> None:
    assert quickstart.default_hparams("vae") == {"backbone": "mlp"}
    assert quickstart.default_hparams("gan") == {"backbone": "mlp"}
    assert quickstart.default_hparams("edm") == {}
    assert quickstart.default_hparams("latent-flow-matching") == {}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_tiny_quickstart_trains_the_base_model_first(tmp_path: Path) -> None:
    """latent-flow-matching: the VAE is trained first (its share of the budget), the latent
    model on top of it; the kept model carries the VAE inside."""
    lines: list[str] = []
    res = quickstart.run_quickstart(tmp_path / "qs", model="latent-flow-matching",
                                    n_events=1500, steps=40, seed=3, progress=False,
                                    log=lines.append)
    assert lines[0].startswith("expected: about")
    assert [ln[:5] for ln in lines[1:]] == ["[1/4]", "[2/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "training vae (autoencoder of latent-flow-matching) for 30 steps" in lines[2]
    assert "training latent-flow-matching for 10 steps" in lines[3]
    doc = json.loads((res.model_dir / "model.json").read_text())
    assert doc["family"] == "latent-flow-matching"
    assert doc["hparams"]["ae_family"] == "vae"
    assert doc["hparams"]["ae_hparams"]["backbone"] == "mlp"
    assert res.report.is_file()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"model": "nosuch"}, "unknown model family 'nosuch'"),
    ({"hparams": {"nosuch": 1}}, r"vae: unknown hparams \['nosuch'\]"),
    ({"n_events": 10}, "n_events must be an integer >= 100"),
    ({"minutes": 0.0}, "minutes must be a positive"),
    ({"minutes": float("nan")}, "minutes must be a positive"),
    ({"steps": 0}, "steps must be an integer >= 1 for vae"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"model": "latent-flow-matching", "steps": 1},
     "steps must be an integer >= 2 for latent-flow-matching"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, kwargs,
                                                           match) -> None:
    out = tmp_path / "qs"
    lines: list[str] = []
    with pytest.raises(ValueError, match=match):
        quickstart.run_quickstart(out, **{"n_events": 1500, "minutes": 0.03, "progress": False,
                                          "log": lines.append, **kwargs})
    assert lines == [] and not out.exists()


def test_cli_unknown_model_leaves_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from calogen.cli.main import app

    out = tmp_path / "qs"
    res = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--model", "nosuch",
                                   "--n", "1000", "--no-progress"])
    assert res.exit_code == 2 and "unknown model family 'nosuch'" in res.output
    assert not out.exists()
