"""Tests of the Trainer: learning, exact resume, two phases, checkpoints, best model, logs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from calogen.models.generator import Generator, ModelSpec, TrainBatch
from calogen.models.io import load_model
from calogen.models.registry import register_family
from calogen.train import checkpoint as ckpt
from calogen.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from calogen.train.data import ShowerTensors, load_training_data
from calogen.train.ema import EMA
from calogen.train.schedules import make_scheduler
from calogen.train.trainer import TrainConfig, Trainer, validation_loss


@register_family
class TrainToyLinear(Generator):
    """Linear conditional model on 8x8 images; the loss draws noise from the global RNG."""

    family = "train-toy-linear"

    def __init__(self, spec: ModelSpec, latent_dim: int = 4, noise: float = 0.05) -> None:
        super().__init__(spec, latent_dim=latent_dim, noise=noise)
        h, w = spec.shape
        self.species_embed = nn.Embedding(spec.n_species, 2)
        self.net = nn.Linear(spec.n_conditions + 2 + latent_dim, h * w)

    def decode(self, noise, cond, species=None):
        if species is None:
            species = torch.zeros(len(cond), dtype=torch.int64, device=cond.device)
        h, w = self.spec.shape
        inp = torch.cat([cond, self.species_embed(species), noise], 1)
        return self.net(inp).view(-1, 1, h, w)

    def loss(self, batch: TrainBatch, phase: str):
        z = self.hparams["noise"] * torch.randn(len(batch), self.latent_dim)
        loss = F.mse_loss(self.decode(z, batch.cond, batch.species), batch.x)
        return loss, {"mse": float(loss.detach())}


@register_family
class TrainToyTwoPhase(Generator):
    """A minimal GAN-like family with two optimisers."""

    family = "train-toy-two-phase"
    phases = ("discriminator", "generator")

    def __init__(self, spec: ModelSpec, latent_dim: int = 4) -> None:
        super().__init__(spec, latent_dim=latent_dim)
        h, w = spec.shape
        self.gen = nn.Linear(spec.n_conditions + latent_dim, h * w)
        self.disc = nn.Linear(h * w + spec.n_conditions, 1)

    def phase_parameters(self, phase: str):
        super().phase_parameters(phase)  # validates the name
        return list((self.disc if phase == "discriminator" else self.gen).parameters())

    def decode(self, noise, cond, species=None):
        h, w = self.spec.shape
        return self.gen(torch.cat([cond, noise], 1)).view(-1, 1, h, w)

    def _d(self, x, cond):
        return self.disc(torch.cat([x.flatten(1), cond], 1))

    def loss(self, batch: TrainBatch, phase: str):
        fake = self.decode(self.noise(len(batch)), batch.cond)
        if phase == "discriminator":
            loss = F.softplus(-self._d(batch.x, batch.cond)).mean() + \
                F.softplus(self._d(fake.detach(), batch.cond)).mean()
        else:
            loss = F.softplus(-self._d(fake, batch.cond)).mean()
        return loss, {}


@pytest.fixture(scope="module")
def data(shared_toy_file):
    return load_training_data(shared_toy_file, seed=0)


def _model(data, cls=TrainToyLinear, seed=0, **hp):
    torch.manual_seed(seed)
    return cls(data.spec, **hp)


def _config(**kw) -> TrainConfig:
    base = dict(lr=1e-2, batch_size=64, schedule="cosine", warmup_steps=3, schedule_steps=14,
                ema_decay=0.9, checkpoint_every=4, val_every=5, val_events=32, log_every=2,
                seed=3, grad_clip=1.0, tensorboard=True)
    base.update(kw)
    return TrainConfig(**base)


def _val_loss(model: Generator, val: ShowerTensors) -> dict[str, float]:
    return validation_loss(model, val)


def test_loss_decreases_and_outputs_are_written(data, tmp_path):
    model = _model(data)
    before = validation_loss(model, data.val)["val_loss"]
    cfg = _config(schedule="constant", max_steps=40, ema_decay=None, val_every=10,
                  checkpoint_every=0, log_every=5)
    result = Trainer(model, data, cfg, tmp_path / "run", progress=False).fit()
    after = validation_loss(model, data.val)["val_loss"]
    assert after < 0.5 * before
    assert result.steps == 40 and result.epochs == pytest.approx(40 / 6)
    assert result.best_metric is not None and result.best_metric < before
    # CSV log: header once, one row per 5 steps, validation columns filled every 10 steps
    with result.paths["log"].open() as f:
        rows = list(csv.DictReader(f))
    assert result.paths["log"].read_text().count("step,") == 1
    assert [int(r["step"]) for r in rows] == list(range(5, 41, 5))
    assert [r["val/val_loss"] != "" for r in rows] == [False, True] * 4
    assert {"epoch", "seconds", "loss_main", "lr_main", "main/mse", "val/val_loss"} <= set(rows[0])
    assert rows[0]["val/val_loss"] == "" and rows[1]["val/val_loss"] != ""
    assert float(rows[-1]["loss_main"]) < float(rows[0]["loss_main"])
    for key in ("checkpoint", "best", "last", "log", "config"):
        assert result.paths[key].exists(), key


def test_best_model_is_saved_and_loadable(data, tmp_path):
    model = _model(data)
    cfg = _config(max_steps=10, val_every=5)
    result = Trainer(model, data, cfg, tmp_path, val_metric=_val_loss, val_key="val_loss",
                     progress=False).fit()
    best = load_model(result.paths["best"])
    assert isinstance(best, TrainToyLinear)
    assert best.spec.transforms == data.transforms
    # best weights are the EMA weights at the best step; the last model exists too
    last = load_model(result.paths["last"])
    assert result.best_step in (5, 10)
    assert best.hparams == model.hparams and isinstance(last, TrainToyLinear)
    doc = json.loads((result.paths["best"] / "model.json").read_text())
    assert doc["training_data"]["sha256"] == data.fingerprint["sha256"]
    assert doc["training_data"]["val_key"] == "val_loss"
    out = best.sample(data.val.conditions[:5], data.val.pdg[:5])
    assert out.shape == (5, 8, 8)


def test_validation_key_must_exist(data, tmp_path):
    model = _model(data)
    trainer = Trainer(model, data, _config(max_steps=2), tmp_path, val_metric=_val_loss,
                      progress=False)  # default key channel_w1 is not returned
    with pytest.raises(KeyError, match="channel_w1"):
        trainer.fit()


def _assert_same_state(a: dict, b: dict, path=""):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("k", [8, 5])
def test_resume_is_bitwise_identical(data, tmp_path, k):
    steps = 14  # crosses two epoch boundaries (6 steps per epoch)
    full = _config(max_steps=steps)
    Trainer(_model(data), data, full, tmp_path / "full", progress=False).fit()

    # "killed" after k steps (k=5 is not a multiple of checkpoint_every: checkpoint every step)
    every = 4 if k % 4 == 0 else 1
    Trainer(_model(data), data, _config(max_steps=k, checkpoint_every=every),
            tmp_path / "cut", progress=False).fit()
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == k
    # resumed with a freshly initialised model (different seed): everything comes from disk
    result = Trainer(_model(data, seed=99), data, _config(max_steps=steps), tmp_path / "cut",
                     resume=True, progress=False).fit()
    assert result.steps == steps

    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for key in ("model", "optimizers", "schedulers", "ema", "rng", "step", "epoch", "position"):
        _assert_same_state(a[key], b[key], key)
    with (tmp_path / "cut" / "log.csv").open() as f:
        logged = [int(r["step"]) for r in csv.DictReader(f)]
    assert logged == sorted(set(logged)) and logged[-1] == steps


def test_resume_refuses_other_config_or_family(data, tmp_path):
    Trainer(_model(data), data, _config(max_steps=4), tmp_path, progress=False).fit()
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: field 'config\.lr'"):
        Trainer(_model(data), data, _config(max_steps=8, lr=5e-3), tmp_path, resume=True,
                progress=False).fit()
    with pytest.raises(CheckpointError, match="field 'family'"):
        Trainer(_model(data, TrainToyTwoPhase), data, _config(max_steps=8), tmp_path,
                resume=True, progress=False).fit()
    with pytest.raises(CheckpointError, match=r"field 'hparams\.latent_dim'"):
        Trainer(_model(data, latent_dim=3), data, _config(max_steps=8), tmp_path,
                resume=True, progress=False).fit()
    # a new horizon is allowed (tests/train/test_extend.py), other schedule settings are not
    with pytest.raises(CheckpointError, match=r"field 'config\.warmup_steps'"):
        Trainer(_model(data), data, _config(max_steps=8, schedule_steps=None, warmup_steps=1),
                tmp_path, resume=True, progress=False).fit()
    # a new run does not silently overwrite the old one
    with pytest.raises(CheckpointError, match="resume=True"):
        Trainer(_model(data), data, _config(max_steps=8), tmp_path, progress=False).fit()
    assert load_checkpoint(path)["step"] == 4
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(_model(data), data, _config(max_steps=8), tmp_path / "nothing", resume=True,
                progress=False).fit()


def test_corrupt_checkpoint_gives_clear_error(data, tmp_path):
    Trainer(_model(data), data, _config(max_steps=2), tmp_path, progress=False).fit()
    path = tmp_path / "checkpoint.pt"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: cannot read checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        Trainer(_model(data), data, _config(max_steps=4), tmp_path, resume=True,
                progress=False).fit()
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="field 'format'"):
        load_checkpoint(path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"family": "x", "hparams": "{}", "config": "{}", "model": {},
                     "optimizers": {}, "schedulers": {}, "step": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["step"] == 1
    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"step": 3}, tmp_path / "fresh.pt")
    assert not (tmp_path / "fresh.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_two_phase_family_trains_both_phases(data, tmp_path):
    model = _model(data, TrainToyTwoPhase)
    gen0 = [p.detach().clone() for p in model.gen.parameters()]
    disc0 = [p.detach().clone() for p in model.disc.parameters()]
    cfg = _config(max_steps=6, schedule="onecycle", warmup_steps=2, schedule_steps=None,
                  phase_lr={"discriminator": 2e-2})
    trainer = Trainer(model, data, cfg, tmp_path, progress=False)
    result = trainer.fit()
    assert all(not torch.equal(a, b) for a, b in zip(gen0, model.gen.parameters(), strict=True))
    assert all(not torch.equal(a, b)
               for a, b in zip(disc0, model.disc.parameters(), strict=True))
    assert set(trainer.optimizers) == {"discriminator", "generator"}
    for phase, opt in trainer.optimizers.items():
        own = {id(p) for p in model.phase_parameters(phase)}
        assert {id(p) for g in opt.param_groups for p in g["params"]} == own
        assert all(int(s["step"]) == 6 for s in opt.state.values())
    # phase-specific peak learning rate under one-cycle
    with result.paths["log"].open() as f:
        rows = list(csv.DictReader(f))
    lr_d = max(float(r["lr_discriminator"]) for r in rows if r["lr_discriminator"])
    lr_g = max(float(r["lr_generator"]) for r in rows if r["lr_generator"])
    assert lr_d == pytest.approx(2 * lr_g, rel=1e-6)
    doc = load_checkpoint(result.paths["checkpoint"])
    assert set(doc["optimizers"]) == set(doc["schedulers"]) == {"discriminator", "generator"}


def test_ema_and_schedules_round_trip():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # warm-up: decay min(0.99, 1/10) = 0.1
    assert torch.allclose(ema.shadow["weight"], model.weight - 0.1)
    with ema.average_parameters(model):
        assert torch.equal(model.weight, ema.shadow["weight"])
    assert not torch.equal(model.weight, ema.shadow["weight"])
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.shadow["weight"], ema.shadow["weight"])

    for name in ("constant", "cosine", "onecycle"):
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        sched = make_scheduler(opt, name, total_steps=10, warmup_steps=2)
        lrs = []
        for _ in range(5):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        opt2 = torch.optim.AdamW(model.parameters(), lr=0.1)
        sched2 = make_scheduler(opt2, name, total_steps=10, warmup_steps=2)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(sched.state_dict())
        opt.step(), sched.step(), opt2.step(), sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"], name
    with pytest.raises(ValueError, match="horizon"):
        make_scheduler(opt, "cosine", total_steps=None)


def test_config_json_round_trip_and_validation():
    cfg = _config(max_steps=3, phase_lr={"generator": 1e-4}, betas=[0.5, 0.9])
    again = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.betas == (0.5, 0.9)
    with pytest.raises(ValueError, match="stopping rule"):
        TrainConfig()
    with pytest.raises(ValueError, match="schedule 'linear'"):
        TrainConfig(max_steps=1, schedule="linear")
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"max_steps": 1, "learning_rate": 1.0})


def test_stopping_rules_progress_and_overwrite(data, tmp_path, capsys):
    cfg = _config(max_epochs=1, schedule="constant", schedule_steps=None)
    result = Trainer(_model(data), data, cfg, tmp_path, progress=True).fit()
    assert result.steps == 6 and result.epochs == 1.0  # 384 train rows / 64
    err = capsys.readouterr().err
    assert f"writing to {tmp_path}" in err
    assert str(result.paths["checkpoint"]) in err and str(result.paths["best"]) in err
    # max_minutes: the first rule reached wins; overwrite=True starts afresh in the same dir
    cfg = _config(max_minutes=1e-9, schedule_steps=None)  # cosine without a horizon
    result = Trainer(_model(data), data, cfg, tmp_path, overwrite=True, progress=False).fit()
    assert result.steps == 0  # the time budget is spent before the first step
    assert load_checkpoint(result.paths["checkpoint"])["step"] == 0
    with result.paths["log"].open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [0]  # old rows are gone


@register_family
class TrainToyCalibrated(TrainToyLinear):
    """The linear toy with a calibration: the mean training image sum over the mean sampled
    sum, fitted on the weights being saved, kept in the extra state."""

    family = "train-toy-calibrated"
    calls: list[tuple[int, float]] = []

    def __init__(self, spec: ModelSpec, **hp) -> None:
        super().__init__(spec, **hp)
        self.scale = 1.0

    def calibrate(self, data, generator):
        sampled = self.sample(data.conditions[:16], data.pdg[:16], generator, rounding=False)
        self.scale = float(data.showers.sum() / len(data) / max(sampled.sum() / 16, 1e-9))
        first = next(self.parameters()).detach().flatten()[0].item()
        TrainToyCalibrated.calls.append((len(data), first))
        return {"scale": self.scale}

    def extra_state_dict(self):
        return {"scale": self.scale}

    def load_extra_state_dict(self, state):
        self.scale = float(state["scale"])


def test_calibrate_runs_once_per_saved_model_at_the_end(data, tmp_path):
    """The hook runs at the end only (not at every improvement of the validation metric): once
    on the EMA weights saved as ``last``, once on ``best``; both carry their calibration."""
    TrainToyCalibrated.calls.clear()
    model = _model(data, TrainToyCalibrated)
    result = Trainer(model, data, _config(max_steps=15, val_every=3), tmp_path / "run",
                     val_metric=_val_loss, val_key="val_loss", progress=False).fit()
    assert len(TrainToyCalibrated.calls) == 2
    assert all(n == len(data.train) for n, _ in TrainToyCalibrated.calls)
    last, best = load_model(result.paths["last"]), load_model(result.paths["best"])
    assert last.scale != 1.0 and best.scale != 1.0
    # the last model was calibrated on its own (EMA) weights, not on the raw ones
    assert TrainToyCalibrated.calls[0][1] == pytest.approx(
        next(last.parameters()).detach().flatten()[0].item())
    assert TrainToyCalibrated.calls[1][1] == pytest.approx(
        next(best.parameters()).detach().flatten()[0].item())
    doc = json.loads((result.paths["best"] / "model.json").read_text())
    assert doc["training_data"]["step"] == result.best_step
