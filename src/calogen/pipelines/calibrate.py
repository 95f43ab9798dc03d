"""Re-fit a trained model's post-training calibrations (:meth:`Generator.calibrate`) on the
training split of a ShowerSet, e.g. after changing how they are fitted, or for a model trained
before a family had them. The model directory is replaced atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from calogen.models.generator import CalibrationData, Generator
from calogen.models.io import load_model, read_model_config, save_model
from calogen.train.data import load_training_data

__all__ = ["calibrate_model"]


def calibrate_model(model_dir: str | Path, data: str | Path, *, split_seed: int = 0,
                    seed: int = 0, out: str | Path | None = None) -> dict[str, float]:
    """Fit the calibrations of the model in ``model_dir`` on the training split of ``data``
    (the grouped 0.8/0.1/0.1 split with ``split_seed``, as ``calogen train`` makes it, with
    the model's own transforms) and save it to ``out`` (default: ``model_dir``). Returns what
    the family's fit reports; ``ValueError`` for a family without calibrations."""
    model = load_model(model_dir, map_location="cpu")
    if type(model).calibrate is Generator.calibrate:
        raise ValueError(f"{model_dir}: family {model.family!r} has no calibrations to fit")
    split = load_training_data(data, seed=split_seed, transforms=model.spec.transforms)
    train = split.train
    calib = CalibrationData(train.showers(), None if train.counts is None
                            else train.counts.numpy(), train.conditions, train.pdg)
    model.eval()
    logs = model.calibrate(calib, torch.Generator().manual_seed(seed))
    doc = read_model_config(model_dir)
    training = dict(doc.get("training_data") or {})
    training["calibrated_on"] = {"data": str(Path(data).resolve()), "split_seed": split_seed,
                                 "seed": seed, **{k: float(v) for k, v in logs.items()}}
    save_model(model, Path(out) if out is not None else Path(model_dir),
               training_data=training)
    return logs
