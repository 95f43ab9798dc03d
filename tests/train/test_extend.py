"""Extending a run (resume with a larger budget): the schedule takes the new horizon, a budget
below the current step is refused, a time-only resume keeps the horizon."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from calogen.models.generator import Generator, ModelSpec, TrainBatch
from calogen.models.registry import register_family
from calogen.train.checkpoint import CheckpointError, load_checkpoint
from calogen.train.data import load_training_data
from calogen.train.trainer import TrainConfig, Trainer


@register_family
class ExtendToy(Generator):
    """Linear conditional model on 8x8 images; the loss draws noise from the global RNG."""

    family = "extend-toy"

    def __init__(self, spec: ModelSpec, latent_dim: int = 3) -> None:
        super().__init__(spec, latent_dim=latent_dim)
        h, w = spec.shape
        self.net = nn.Linear(spec.n_conditions + latent_dim, h * w)

    def decode(self, noise, cond, species=None):
        h, w = self.spec.shape
        return self.net(torch.cat([cond, noise], 1)).view(-1, 1, h, w)

    def loss(self, batch: TrainBatch, phase: str):
        z = 0.05 * torch.randn(len(batch), self.latent_dim)
        return F.mse_loss(self.decode(z, batch.cond), batch.x), {}


@pytest.fixture(scope="module")
def data(shared_toy_file):
    return load_training_data(shared_toy_file, seed=0)


def _run(data, out: Path, resume: bool = False, **kw) -> tuple[Trainer, object]:
    torch.manual_seed(0)
    base = dict(lr=1e-2, batch_size=64, schedule="cosine", warmup_steps=3, min_lr_ratio=0.1,
                checkpoint_every=7, val_every=10, val_events=32, log_every=1, seed=2,
                tensorboard=False)
    base.update(kw)
    trainer = Trainer(ExtendToy(data.spec), data, TrainConfig(**base), out, resume=resume,
                      progress=False)
    return trainer, trainer.fit()


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_finished_run_is_extended_on_the_new_horizon(data, tmp_path, capsys, schedule):
    """20 steps, then resumed to 30: continues from 20, ends at 30, and from step 21 on the
    learning rate is that of a run planned for 30 steps from the start."""
    _run(data, tmp_path / "fresh30", max_steps=30, schedule=schedule)
    _run(data, tmp_path / "run", max_steps=20, schedule=schedule)
    capsys.readouterr()
    trainer, result = _run(data, tmp_path / "run", resume=True, max_steps=30,
                           schedule=schedule)
    err = capsys.readouterr().err
    assert f"run extended at step 20: {schedule} schedule horizon 20 -> 30 steps" in err
    assert result.steps == 30 and trainer.step == 30
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 30
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert [r["schedule_horizon"] for r in rows] == ["20"] * 20 + ["30"] * 10
    fresh = _rows(tmp_path / "fresh30")
    assert [r["lr_main"] for r in rows[20:]] == [r["lr_main"] for r in fresh[20:]]
    assert rows[19]["lr_main"] != fresh[19]["lr_main"]  # the first 20 steps were planned for 20
    # the checkpoint now holds the new horizon: resuming it again needs no new budget
    doc = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert '"schedule_horizon":30' in doc["config"]


def test_interrupted_run_is_extended(data, tmp_path):
    """A run planned for 20 steps, stopped at 14 and resumed with a 30-step budget ends at 30
    with every step logged once."""
    _run(data, tmp_path / "run", max_steps=14, schedule_steps=20)
    _, result = _run(data, tmp_path / "run", resume=True, max_steps=30)
    assert result.steps == 30
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(1, 31))


def test_budget_below_the_current_step_is_refused(data, tmp_path):
    _run(data, tmp_path, max_steps=20)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: the run is at step 20, beyond "
                                              r"this run's budget of 10 steps \(max_steps 10\)"):
        _run(data, tmp_path, resume=True, max_steps=10)
    with pytest.raises(CheckpointError, match="at step 20.*budget of 6 steps"):
        _run(data, tmp_path, resume=True, max_epochs=1)  # 6 steps per epoch
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    # resuming at exactly the end is allowed (nothing left to train)
    assert _run(data, tmp_path, resume=True, max_steps=20)[1].steps == 20


def test_other_schedule_settings_still_refused(data, tmp_path):
    _run(data, tmp_path, max_steps=8)
    for change in ({"min_lr_ratio": 0.5}, {"schedule": "onecycle"}, {"lr": 2e-2}):
        with pytest.raises(CheckpointError, match="field 'config"):
            _run(data, tmp_path, resume=True, max_steps=12, **change)


def test_time_only_resume_keeps_the_horizon(data, tmp_path, capsys):
    _run(data, tmp_path, max_steps=6)
    capsys.readouterr()
    trainer, result = _run(data, tmp_path, resume=True, max_minutes=1e-9)
    assert "keeps its horizon of 6 steps" in capsys.readouterr().err
    assert result.steps == 6 and trainer.horizon == 6
    assert '"schedule_horizon":6' in load_checkpoint(tmp_path / "checkpoint.pt")["config"]


def test_onecycle_cannot_run_past_a_fixed_horizon(data, tmp_path):
    with pytest.raises(ValueError, match="onecycle.*past its horizon"):
        _run(data, tmp_path, max_steps=12, schedule="onecycle", schedule_steps=8)
