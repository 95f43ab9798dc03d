"""Stops and debris: SIGTERM ends fit() with a resumable checkpoint, temporaries of killed runs
are removed by the next run on the folder, the outputs honour the umask."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from calogen.models.generator import Generator, ModelSpec, TrainBatch
from calogen.models.registry import register_family
from calogen.train.checkpoint import load_checkpoint
from calogen.train.data import ShowerTensors, load_training_data
from calogen.train.trainer import TrainConfig, Trainer, TrainingTerminated, validation_loss


@register_family
class StopToy(Generator):
    """Linear model whose loss sends itself ``SIGTERM`` (``signals`` times) in training step
    ``kill_at`` (class attributes, set by the tests)."""

    family = "stop-toy"
    kill_at: int | None = None
    signals = 1

    def __init__(self, spec: ModelSpec, latent_dim: int = 3) -> None:
        super().__init__(spec, latent_dim=latent_dim)
        h, w = spec.shape
        self.net = nn.Linear(spec.n_conditions + latent_dim, h * w)
        self.calls = 0

    def decode(self, noise, cond, species=None):
        h, w = self.spec.shape
        return self.net(torch.cat([cond, noise], 1)).view(-1, 1, h, w)

    def loss(self, batch: TrainBatch, phase: str):
        self.calls += self.training  # validation calls the loss in eval mode
        if self.training and self.calls == self.kill_at:
            for _ in range(self.signals):
                os.kill(os.getpid(), signal.SIGTERM)
        z = 0.05 * torch.randn(len(batch), self.latent_dim)
        return F.mse_loss(self.decode(z, batch.cond), batch.x), {}


@pytest.fixture(scope="module")
def data(shared_toy_file):
    return load_training_data(shared_toy_file, seed=0)


@pytest.fixture(autouse=True)
def _reset_toy():
    yield
    StopToy.kill_at, StopToy.signals = None, 1


def _trainer(data, out: Path, resume: bool = False, val_metric=None, overwrite: bool = False,
             **kw) -> Trainer:
    torch.manual_seed(0)
    base = dict(lr=1e-2, batch_size=64, schedule="cosine", warmup_steps=2, ema_decay=0.9,
                checkpoint_every=4, val_every=3, val_events=32, log_every=1, seed=4,
                max_steps=10, tensorboard=False)
    base.update(kw)
    return Trainer(StopToy(data.spec), data, TrainConfig(**base), out, resume=resume,
                   overwrite=overwrite, val_metric=val_metric, val_key="val_loss",
                   progress=False)


def _tensors(value, prefix: str = ""):
    """(dotted name, tensor) for every tensor in a nested checkpoint value."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}[{i}]")


def _same_state(a: Path, b: Path) -> None:
    """Model, EMA, optimisers, schedulers and RNG states of two checkpoints bit-identical."""
    da, db = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert da["step"] == db["step"]
    keys = ("model", "ema", "optimizers", "schedulers", "rng")
    ta = dict(_tensors({k: da[k] for k in keys}))
    tb = dict(_tensors({k: db[k] for k in keys}))
    assert ta.keys() == tb.keys()
    for name, tensor in ta.items():
        assert torch.equal(tensor, tb[name]), name
    assert da["schedulers"] == db["schedulers"]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigterm_during_a_step_stops_at_its_end_with_a_checkpoint(data, tmp_path, capsys):
    _trainer(data, tmp_path / "full").fit()
    StopToy.kill_at = 6  # during step 6; checkpoints fall at 4 and 8
    with pytest.raises(TrainingTerminated) as info:
        _trainer(data, tmp_path / "cut").fit()
    assert info.value.code == 143
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 6
    assert "stopped by SIGTERM at step 6" in capsys.readouterr().err
    assert _hidden(tmp_path / "cut") == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed
    StopToy.kill_at = None
    assert _trainer(data, tmp_path / "cut", resume=True).fit().steps == 10
    _same_state(tmp_path / "full", tmp_path / "cut")


def test_sigterm_outside_a_step_stops_at_once_with_a_checkpoint(data, tmp_path):
    """SIGTERM during validation (step 6) raises there; the step is complete, so the
    checkpoint is written at step 6 and the resumed run matches an uninterrupted one."""
    calls = []

    def metric(model: Generator, val: ShowerTensors) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt the validation")
        return validation_loss(model, val)

    _trainer(data, tmp_path / "full", val_metric=validation_loss).fit()
    with pytest.raises(TrainingTerminated, match="at step 6.*checkpoint .* is at step 6"):
        _trainer(data, tmp_path / "cut", val_metric=metric).fit()
    doc = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert doc["step"] == 6 and doc["best_step"] == 3
    assert _hidden(tmp_path / "cut") == []
    _trainer(data, tmp_path / "cut", resume=True, val_metric=validation_loss).fit()
    _same_state(tmp_path / "full", tmp_path / "cut")


def test_second_sigterm_inside_a_step_does_not_wait_nor_save_a_half_step(data, tmp_path):
    StopToy.kill_at, StopToy.signals = 6, 2
    with pytest.raises(TrainingTerminated, match="last checkpoint .* is at step 4"):
        _trainer(data, tmp_path).fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert _hidden(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("resume", [False, True])
def test_next_run_removes_temporaries_of_killed_runs(data, tmp_path, resume, caplog):
    out = tmp_path / "run"
    _trainer(data, out, max_steps=4).fit()
    dead, live = _dead_pid(), os.getpid()
    debris = [f".checkpoint.pt.tmp-{dead}-0a1b2c3d.pt", f".checkpoint.{dead}.0a1b2c3d.tmp.pt",
              f".log.csv.tmp-{dead}-77", f".log.csv.tmp-{dead}", f".config.json.tmp-{dead}-ab",
              f".best.tmp-{dead}-abcdef12", f".last.old-{dead}-abcdef12"]
    for name in debris:
        if "best" in name or "last" in name:
            (out / name).mkdir()
            (out / name / "model.safetensors").write_bytes(b"x" * 100)
        else:
            (out / name).write_bytes(b"x" * 100)
    kept = [f".checkpoint.pt.tmp-{live}-0a1b2c3d.pt", f".best.tmp-{live}-0a1b2c3d",
            f".notes.tmp-{dead}-0a"]
    for name in kept:
        (out / name).write_bytes(b"")
    with caplog.at_level("INFO", logger="calogen.train"):
        _trainer(data, out, resume=resume, overwrite=not resume, max_steps=6).fit()
    assert _hidden(out) == sorted(kept)
    assert f"removed {len(debris)} temporaries left by killed runs" in caplog.text


def test_outputs_and_model_folders_honour_the_umask(data, tmp_path):
    old = os.umask(0o002)
    try:
        _trainer(data, tmp_path / "run", max_steps=4).fit()
    finally:
        os.umask(old)
    run = tmp_path / "run"
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert mode["checkpoint.pt"] == mode["log.csv"] == mode["config.json"] == 0o664
    assert stat.S_IMODE(run.stat().st_mode) == 0o775
    for sub in ("best", "last"):
        assert mode[sub] == 0o775, sub
        for f in (run / sub).iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o664, f
