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
    assert quickstart_cmd.DEFAULT_MINUTES == quickstart.DEFAULT_MINUTES


@pytest.mark.filterwarnings("ignore")
def test_tiny_quickstart_writes_model_generated_set_and_report(tmp_path: Path) -> None:
    lines: list[str] = []
    res = quickstart.run_quickstart(tmp_path / "qs", n_events=1500, minutes=0.03, seed=3,
                                    progress=False, log=lines.append)
    assert [ln[:5] for ln in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert res.report.is_file() and (res.model_dir / "model.json").is_file()
    metrics = json.loads((res.report.parent / "metrics.json").read_text())
    assert metrics["inputs"]["generated"]["path"].endswith("generated_vae.h5")
    rows = quickstart.headline_rows(res)
    assert [r[0] for r in rows] == list(quickstart.HEADLINE)
    # the shuffled baseline ignores the conditions: far from the floor on the paired MAE
    mae = dict((r[0], r) for r in rows)["channel MAE paired by condition"]
    assert mae[2] > 1.5 * mae[3]
