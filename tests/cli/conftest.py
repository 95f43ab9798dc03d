"""Shared helpers of the CLI tests."""

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calogen.cli.main import app


@pytest.fixture
def train_tiny() -> Callable[..., Path]:
    """``train_tiny(data, run, family="vae", steps=4)``: a tiny MLP model trained through
    ``calogen train``; returns ``run / "best"``."""

    def train(data: Path, run: Path, family: str = "vae", steps: int = 4) -> Path:
        res = CliRunner().invoke(app, [
            "train", "--model", family, "--data", str(data), "--out", str(run), "--steps",
            str(steps), "--batch-size", "32", "--val-every", "2", "--checkpoint-every", "2",
            "--hparam", "backbone=mlp", "--hparam", "mlp_hidden=[16,32]", "--no-progress"])
        assert res.exit_code == 0, res.output
        return run / "best"

    return train
