"""Resuming a family trained on top of another model (latent flow matching on a VAE)."""

from __future__ import annotations

from pathlib import Path

import torch

from calogen.models.base import make_model
from calogen.models.io import save_model
from calogen.models.latent_fm import hparams_from_autoencoder

from ..models.test_latent_fm import FM_TOY, VAE_TOY


def test_resume_continues_exactly(shared_toy_file: Path, tmp_path: Path) -> None:
    """Killed after 3 steps and resumed with a fresh model, training ends in the state of an
    uninterrupted run: the copied autoencoder and the latent standardisation come from the
    checkpoint, not from a second initialisation."""
    from calogen.train.checkpoint import load_checkpoint
    from calogen.train.data import load_training_data
    from calogen.train.trainer import TrainConfig, Trainer

    data = load_training_data(shared_toy_file, seed=0)
    torch.manual_seed(0)
    vae = save_model(make_model("vae", data.spec, **VAE_TOY), tmp_path / "vae")
    hp = hparams_from_autoencoder(vae, FM_TOY)

    def run(steps: int, out: Path, resume: bool = False, seed: int = 0) -> None:
        torch.manual_seed(seed)
        model = make_model("latent-flow-matching", data.spec, **hp)
        cfg = TrainConfig(lr=1e-3, batch_size=32, max_steps=steps, schedule_steps=6,
                          checkpoint_every=1, val_every=100, ema_decay=0.9, seed=3)
        Trainer(model, data, cfg, out, resume=resume, progress=False).fit()

    run(6, tmp_path / "full")
    run(3, tmp_path / "cut")
    run(6, tmp_path / "cut", resume=True, seed=99)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and int(b["initialised"]) == 1
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_flow_student_resumes_exactly(shared_toy_file: Path, tmp_path: Path) -> None:
    """The IAF student of a caloflow teacher: interrupted and resumed, it ends as an
    uninterrupted run (the teacher's preprocessing is copied once, from the checkpoint)."""
    from calogen.models.caloflow import hparams_from_flow_teacher
    from calogen.train.checkpoint import load_checkpoint
    from calogen.train.data import load_training_data
    from calogen.train.trainer import TrainConfig, Trainer

    from ..models.test_caloflow import SMALL

    data = load_training_data(shared_toy_file, seed=0)
    torch.manual_seed(0)
    teacher = make_model("caloflow", data.spec, **SMALL)
    teacher.train()
    teacher.loss(data.train.batch(torch.arange(32)))   # fits the preprocessing
    hp = hparams_from_flow_teacher(save_model(teacher, tmp_path / "teacher"))

    def run(steps: int, out: Path, resume: bool = False, seed: int = 0) -> None:
        torch.manual_seed(seed)
        model = make_model("caloflow-student", data.spec, **hp)
        cfg = TrainConfig(lr=1e-3, batch_size=32, max_steps=steps, schedule_steps=6,
                          checkpoint_every=1, val_every=100, seed=3)
        Trainer(model, data, cfg, out, resume=resume, progress=False).fit()

    run(6, tmp_path / "full")
    run(3, tmp_path / "cut")
    run(6, tmp_path / "cut", resume=True, seed=99)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and int(b["initialised"]) == 1
    for key in a:
        assert torch.equal(a[key], b[key]), key
