"""Checkpoint documents: every field the trainer reads is checked on load, naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from calogen.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state() -> dict:
    """A small but complete training state, as the trainer writes it."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return {
        "family": "toy", "hparams": json.dumps({"latent_dim": 3}),
        "config": json.dumps({"lr": 0.01}), "config_hash": "abc",
        "train_config": json.dumps({}), "data": json.dumps({"n_events": 10}),
        "model": model.state_dict(), "model_extra": "{}",
        "optimizers": {"main": opt.state_dict()}, "schedulers": {"main": sched.state_dict()},
        "scalers": {}, "ema": {"decay": 0.9, "warmup": True, "num_updates": 1,
                               "shadow": {k: v.clone() for k, v in model.state_dict().items()}},
        "rng": [capture_rng_state()], "step": 4, "epoch": 1, "position": 1,
        "steps_per_epoch": 3, "best_metric": None, "best_step": None, "val_key": "val_loss",
        "world_size": 1, "seconds": 1.5,
    }


def test_a_complete_checkpoint_loads_and_its_rng_state_restores(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "checkpoint.pt")
    doc = load_checkpoint(path)
    assert doc["step"] == 4
    restore_rng_state(doc["rng"][0])
    first = torch.rand(3)
    restore_rng_state(doc["rng"][0])
    assert torch.equal(torch.rand(3), first)


def _set(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


@pytest.mark.parametrize(("field", "value", "named"), [
    ("step", "abc", "step"),
    ("step", -1, "step"),
    ("step", 2.5, "step"),
    ("hparams", 123, "hparams"),
    ("hparams", "[1, 2]", "hparams"),
    ("config", "{not json", "config"),
    ("data", 7, "data"),
    ("family", 5, "family"),
    ("model", {"w": "x"}, "model.w"),
    ("optimizers", [], "optimizers"),
    ("optimizers.main.param_groups", "x", "optimizers.main.param_groups"),
    ("optimizers.main.state", {0: {"exp_avg": "x"}}, "optimizers.main.state.0.exp_avg"),
    ("schedulers.main.last_epoch", "x", "schedulers.main.last_epoch"),
    ("schedulers.main.base_lrs", ["x"], r"schedulers.main.base_lrs\[0\]"),
    ("ema.num_updates", "x", "ema.num_updates"),
    ("ema.shadow", 3, "ema.shadow"),
    ("steps_per_epoch", 0, "steps_per_epoch"),
    ("best_metric", "x", "best_metric"),
    ("seconds", "x", "seconds"),
    ("rng", "x", "rng"),
    ("rng.0.torch", torch.zeros(3, dtype=torch.uint8), r"rng\[0\].torch"),
    ("rng.0.numpy.keys", torch.zeros(3, dtype=torch.int64), r"rng\[0\].numpy.keys"),
    ("rng.0.numpy.keys", torch.full((624,), -1, dtype=torch.int64), r"rng\[0\].numpy.keys"),
    ("rng.0.numpy.pos", 10**6, r"rng\[0\].numpy.pos"),
    ("rng.0.python.state", torch.zeros(3, dtype=torch.int64), r"rng\[0\].python.state"),
    ("rng.0.python.state", torch.full((625,), 10**6, dtype=torch.int64),
     r"rng\[0\].python.state\[624\]"),
    ("rng.0.python.gauss", "x", r"rng\[0\].python.gauss"),
])
def test_malformed_fields_are_named_with_the_file(tmp_path, field, value, named):
    state = _state()
    _set(state, field, value)
    path = save_checkpoint(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=rf"checkpoint\.pt: field '{named}': expected"):
        load_checkpoint(path)


def test_missing_fields_are_named(tmp_path):
    state = _state()
    del state["step"]
    path = save_checkpoint(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: field 'step'"):
        load_checkpoint(path)


def test_restoring_a_malformed_rng_state_names_the_field():
    state = capture_rng_state()
    state["torch"] = torch.zeros(3, dtype=torch.uint8)
    before = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"field 'rng.torch': expected a 1-D uint8 tensor"):
        restore_rng_state(state)
    assert torch.equal(torch.get_rng_state(), before)  # nothing was set
