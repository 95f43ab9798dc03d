"""Generation time and size of a trained model, measured as the CaloChallenge paper does
(arXiv:2410.21611, Sec. 5: ms per shower at a fixed batch size on CPU), for ``calogen evaluate
--model``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calogen.data.showerset import ShowerSet
from calogen.models.generator import Generator
from calogen.models.io import load_model

__all__ = ["ModelTiming", "time_model"]


@dataclass(frozen=True)
class ModelTiming:
    """Parameters used to generate and the median ms per shower over ``repeats`` timed calls
    of ``batch`` showers each, on ``threads`` CPU threads (after one untimed warm-up call)."""

    parameters: int
    ms_per_shower: float
    batch: int
    threads: int
    repeats: int


def time_model(model_dir: str | Path, conditions: str | Path, *, batch: int = 100,
               threads: int = 1, repeats: int = 5, seed: int = 0) -> ModelTiming:
    """Time ``model_dir`` generating for the first ``batch`` conditions of the ShowerSet
    ``conditions`` (recycled when it has fewer rows), on the CPU."""
    if batch < 1 or threads < 1 or repeats < 1:
        raise ValueError("time_model: batch, threads and repeats must be >= 1")
    model = load_model(model_dir, map_location="cpu").eval()
    with ShowerSet.open(conditions) as ss:
        if len(ss) == 0:
            raise ValueError(f"{conditions}: no conditions to time the model on")
        first = ss.take(np.arange(min(batch, len(ss))))
    rows = np.arange(batch) % len(first.pdg)
    cond, pdg = first.conditions[rows], first.pdg[rows]
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            _sample(model, cond, pdg, g, batch)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                _sample(model, cond, pdg, g, batch)
                times.append((time.perf_counter() - t0) / batch * 1e3)
    finally:
        torch.set_num_threads(old)
    params = sum(p.numel() for p in model.parameters())
    return ModelTiming(int(params), float(np.median(times)), batch, threads, repeats)


def _sample(model: Generator, cond: np.ndarray, pdg: np.ndarray, g: torch.Generator,
            batch: int) -> None:
    if model.spec.kind == "points":
        model.sample_points(cond, pdg, g, batch_size=batch)
    else:
        model.sample(cond, pdg, g, batch_size=batch)
