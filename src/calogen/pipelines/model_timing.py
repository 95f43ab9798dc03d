"""Generation time and size of a trained model, for ``calogen evaluate --model``: as the
CaloChallenge paper does (arXiv:2410.21611, Sec. 5: ms per shower at a fixed batch size on
CPU, :func:`time_model`) and, for point-cloud models, as CaloClouds II does (arXiv:2309.05704,
Sec. 4.4: ms per shower at batch 1 on one CPU thread and at batch 64 on a GPU, incident
energies uniform in 10-90 GeV, mean +- std over repeats; :func:`time_point_model`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calogen.data.showerset import ShowerSet
from calogen.models.generator import Generator
from calogen.models.io import load_model

__all__ = ["PointModelTiming", "ModelTiming", "time_model", "time_point_model"]

E_INC_RANGE_GEV = (10.0, 90.0)
"""Incident energies of the timed showers (CaloClouds II, Table 3: uniform 10-90 GeV)."""


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


@dataclass(frozen=True)
class PointModelTiming:
    """ms per shower of a point-cloud model: mean and std (ddof 0) over ``repeats`` timed runs
    of ``n_showers`` showers each, generated ``batch`` at a time on ``device`` (after one
    untimed warm-up run; CUDA synchronised before the clock stops)."""

    parameters: int
    ms_per_shower: float
    ms_std: float
    batch: int
    threads: int
    repeats: int
    n_showers: int
    device: str

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def time_point_model(model: str | Path | Generator, *, batch: int = 1, threads: int = 1,
                     repeats: int = 5, n_showers: int = 20, device: str = "cpu",
                     e_inc_gev: tuple[float, float] = E_INC_RANGE_GEV, pdg: int = 22,
                     seed: int = 0) -> PointModelTiming:
    """Time a point-cloud model (a run directory or a loaded model) generating photons with
    E_inc uniform in ``e_inc_gev`` (the model's ``E_inc`` condition column, GeV; other columns
    0), ``batch`` showers per call, on ``device`` (``threads`` CPU threads)."""
    if min(batch, threads, repeats, n_showers) < 1:
        raise ValueError("time_point_model: batch, threads, repeats and n_showers must be >= 1")
    if isinstance(model, (str, Path)):
        model = load_model(model, map_location="cpu")
    if model.spec.kind != "points":
        raise ValueError(f"time_point_model: the model generates {model.spec.kind}, not points")
    columns = list(model.spec.transforms.condition_columns)
    if "E_inc" not in columns:
        raise ValueError(f"time_point_model: the model's conditions {columns} have no 'E_inc'")
    model = model.to(device).eval()
    rng = np.random.default_rng(seed)
    cond = np.zeros((n_showers, len(columns)), np.float32)
    cond[:, columns.index("E_inc")] = rng.uniform(*e_inc_gev, n_showers)
    codes = np.full(n_showers, pdg, np.int32)
    cuda = torch.device(device).type == "cuda"
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator(device=device).manual_seed(seed)
        times = []
        with torch.no_grad():
            for r in range(repeats + 1):  # the first run warms up
                t0 = time.perf_counter()
                for a in range(0, n_showers, batch):
                    model.sample_points(cond[a:a + batch], codes[a:a + batch], g,
                                        batch_size=batch)
                if cuda:
                    torch.cuda.synchronize()
                if r:
                    times.append((time.perf_counter() - t0) / n_showers * 1e3)
    finally:
        torch.set_num_threads(old)
    params = sum(p.numel() for p in model.parameters())
    return PointModelTiming(int(params), float(np.mean(times)), float(np.std(times)), batch,
                            threads, repeats, n_showers, str(device))
