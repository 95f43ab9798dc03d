"""Resuming families trained on top of another model (latent flow matching on a VAE, the IAF
student of a caloflow teacher): interrupted and resumed, training ends in the state of an
uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from calogen.models.io import hparams_on_top_of, save_model
from calogen.models.registry import make_model

from ..models.test_caloflow import SMALL
from ..models.test_latent_fm import FM_TOY, VAE_TOY


def _assert_resume_is_exact(data: Any, family: str, hp: dict[str, Any], tmp_path: Path,
                            **config: Any) -> None:
    """6 uninterrupted steps against 3 steps, then a resume to 6 with a fresh model and
    another seed: identical checkpoints (the base's copy and the fitted preprocessing come
    from the checkpoint, not from a second initialisation)."""
    from calogen.train.checkpoint import load_checkpoint
    from calogen.train.trainer import TrainConfig, Trainer

    def run(steps: int, out: Path, resume: bool = False, seed: int = 0) -> None:
        torch.manual_seed(seed)
        model = make_model(family, data.spec, **hp)
        cfg = TrainConfig(lr=1e-3, batch_size=32, max_steps=steps, schedule_steps=6,
                          checkpoint_every=1, val_every=100, seed=3, **config)
        Trainer(model, data, cfg, out, resume=resume, progress=False).fit()

    run(6, tmp_path / "full")
    run(3, tmp_path / "cut")
    run(6, tmp_path / "cut", resume=True, seed=99)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and int(b["initialised"]) == 1
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_latent_flow_matching_resumes_exactly(shared_toy_file: Path, tmp_path: Path) -> None:
    from calogen.train.data import load_training_data

    data = load_training_data(shared_toy_file, seed=0)
    torch.manual_seed(0)
    vae = save_model(make_model("vae", data.spec, **VAE_TOY), tmp_path / "vae")
    _assert_resume_is_exact(data, "latent-flow-matching",
                            hparams_on_top_of("latent-flow-matching", vae, FM_TOY),
                            tmp_path, ema_decay=0.9)


def test_flow_student_resumes_exactly(shared_toy_file: Path, tmp_path: Path) -> None:
    from calogen.train.data import load_training_data

    data = load_training_data(shared_toy_file, seed=0)
    torch.manual_seed(0)
    teacher = make_model("caloflow", data.spec, **SMALL)
    teacher.train()
    teacher.loss(data.train.batch(torch.arange(32)))   # fits the preprocessing
    hp = hparams_on_top_of("caloflow-student", save_model(teacher, tmp_path / "teacher"))
    _assert_resume_is_exact(data, "caloflow-student", hp, tmp_path)
