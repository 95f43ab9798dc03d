"""Train a family on a ShowerSet: the glue behind ``calogen train``.

Loads the file with a grouped train/val/test split, fits the transforms on the training split,
builds the model from the registry, runs the :class:`~calogen.train.trainer.Trainer` and
returns where everything went (``out_dir/best``, ``out_dir/last``, ``out_dir/log.csv``,
``out_dir/checkpoint.pt``).

The model's initial weights are drawn from the global RNGs seeded from ``config.seed``
(:func:`~calogen.train.trainer.init_seed`) just before it is built, so the same data, settings
and seed give bit-identical weights, logs and samples on the same machine and software.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from calogen.models.registry import make_model
from calogen.train.data import ShowerTensors, load_training_data
from calogen.train.trainer import (
    TrainConfig,
    Trainer,
    TrainResult,
    init_seed,
    seed_global_rngs,
)


def train_model(family: str, data_path: str | Path, out_dir: str | Path, *,
                config: TrainConfig, hparams: dict[str, Any] | None = None,
                max_events: int | None = None, split_seed: int = 0, resume: bool = False,
                overwrite: bool = False,
                val_metric: Callable[[Any, ShowerTensors], dict[str, float]] | None = None,
                progress: bool = True) -> TrainResult:
    """Train ``family`` on ``data_path``; see the module docstring. ``resume`` continues the
    run in ``out_dir`` (a larger budget in ``config`` extends it)."""
    data = load_training_data(data_path, seed=split_seed, max_events=max_events)
    seed_global_rngs(init_seed(config.seed))
    model = make_model(family, data.spec, **(hparams or {}))
    trainer = Trainer(model, data, config, out_dir, val_metric=val_metric, resume=resume,
                      overwrite=overwrite, progress=progress)
    return trainer.fit()
