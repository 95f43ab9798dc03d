"""Fit a no-training baseline (:mod:`calogen.baselines`) on a ShowerSet and generate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calogen import __version__
from calogen.baselines import Baseline, make_baseline
from calogen.data.showerset import ShowerSet
from calogen.train.generation import generate_to_showerset


def fit_baseline(name: str, train_path: str | Path, *, max_events: int | None = None,
                 seed: int = 0) -> Baseline:
    """Fit baseline ``name`` on (at most ``max_events`` seeded random rows of) a ShowerSet."""
    model = make_baseline(name)
    with ShowerSet.open(train_path) as ss:
        if max_events is not None and max_events < len(ss):
            rows = np.sort(np.random.default_rng(seed).choice(len(ss), max_events, replace=False))
            batch = ss.take(rows)
        else:
            batch = ss.read()
    return model.fit(batch.showers, batch.conditions, batch.pdg)


def run_baseline(name: str, train_path: str | Path, conditions_path: str | Path,
                 out: str | Path, *, seed: int = 0, max_train: int | None = None,
                 overwrite: bool = False, progress: bool = True) -> Path:
    """Fit baseline ``name`` on ``train_path`` and write its showers for the conditions of
    ``conditions_path`` to ``out`` (row i answers row i)."""
    model = fit_baseline(name, train_path, max_events=max_train, seed=seed)
    producer = {"name": f"calogen.baselines.{name}", "version": __version__,
                "trained_on": str(Path(train_path)), "note": model.describe()}
    return generate_to_showerset(model.sample, conditions_path, out, producer=producer,
                                 seed=seed, overwrite=overwrite, progress=progress)
