"""``calogen generate`` as seeded shards of rows (:mod:`calogen.pipelines.shards`).

The conditions (a ShowerSet, or an ALICE particles npz) are cut into shards of
:data:`SHARD_ROWS` rows; shard ``k`` samples its rows with the generator of ``(seed, k)``,
batch by batch, so the output is the same whatever the number of workers (each worker loads
the model once and computes with one thread: the sums of a multi-threaded CPU kernel may
round differently). Row ``i`` of the output answers row ``i`` of the conditions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calogen.data.showerset import ShowerBatch, ShowerSet
from calogen.pipelines.shards import (
    OutputLayout,
    ShardOutput,
    ShardPlan,
    ShardRunReport,
    ShardSpec,
    run_shards,
)

SHARD_ROWS = 4096
"""Condition rows per shard, the unit of seeding. Part of the algorithm: changing it changes
the generated files."""

_MODELS: dict[tuple[str, str, str, str], Any] = {}
"""Models loaded in this process, by (directory, its files' state, sampling options,
device)."""

_CONDITIONS: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
"""Conditions read in this process, by (file, its state)."""


def _state(path: str) -> str:
    """Size and modification time of a file, or of a folder's files: a changed file is
    read again."""
    root = Path(path)
    files = sorted(f for f in root.iterdir() if f.is_file()) if root.is_dir() else [root]
    return ";".join(f"{f.name}:{st.st_size}:{st.st_mtime_ns}" for f in files
                    for st in [f.stat()])


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


PRECISION_OPTION = "precision"
"""Key of ``options`` that sets the network pass's arithmetic (``Generator.
set_sampling_precision``) rather than a family's sampling option."""


def _model(directory: str, options: Mapping[str, Any]) -> Any:
    """The model of ``directory`` with ``options`` in force, loaded once per process."""
    from calogen.models.io import load_model

    key = _model_key(directory, options)
    if key not in _MODELS:
        net: Any = load_model(directory, map_location=key[3])
        family_options = {k: v for k, v in options.items() if k != PRECISION_OPTION}
        if family_options:
            net.configure_sampling(**family_options)  # a SamplingOptions family (CLI-checked)
        if PRECISION_OPTION in options:
            net.set_sampling_precision(str(options[PRECISION_OPTION]))
        _MODELS[key] = net
    return _MODELS[key]


def _model_key(directory: str, options: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (directory, _state(directory), json.dumps(dict(options), sort_keys=True, default=str),
            _device())


def _conditions(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conditions, pdg, condition ids) of a ShowerSet or an ALICE npz, read once."""
    key = (path, _state(path))
    if key not in _CONDITIONS:
        if Path(path).suffix == ".npz":
            from calogen.data.alice_npz import read_alice_particles

            cond, pdg = read_alice_particles(path)
            ids = np.arange(len(pdg), dtype=np.int64)
        else:
            with ShowerSet.open(path) as ss:
                cond, pdg, ids = ss.conditions(), ss.pdg(), ss.condition_ids()
        _CONDITIONS[key] = (np.asarray(cond, np.float32), np.asarray(pdg, np.int32),
                            np.asarray(ids, np.int64))
    return _CONDITIONS[key]


@dataclass(frozen=True)
class ModelEngine:
    """A trained model as a shard engine: samples rows ``spec.start:spec.stop`` of the
    conditions in batches of ``batch_size`` (a torch generator per batch, seeded from the
    shard's generator)."""

    model: str
    conditions: str
    batch_size: int = 4096
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        import torch

        from calogen.train.generation import model_sampler

        cond, pdg, ids = _conditions(self.conditions)
        lo, hi = int(spec.start or 0), int(spec.stop if spec.stop is not None else len(pdg))
        sample = model_sampler(_model(self.model, self.options), batch_size=self.batch_size)
        rng = spec.rng()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            parts = [sample(cond[s:min(s + self.batch_size, hi)],
                            pdg[s:min(s + self.batch_size, hi)], rng)
                     for s in range(lo, hi, self.batch_size)]
        finally:
            torch.set_num_threads(threads)
        rows = slice(lo, hi)
        if parts and isinstance(parts[0], tuple):
            points = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 4))
            counts = np.concatenate([p[1] for p in parts])
            batch = ShowerBatch(points, cond[rows], pdg[rows], ids[rows], counts)
        else:
            showers = np.concatenate([np.asarray(p) for p in parts])
            batch = ShowerBatch(showers, cond[rows], pdg[rows], ids[rows])
        return ShardOutput(batch, hi - lo)


def generate_sharded(net: Any, model: str | Path, conditions: str | Path, out: str | Path, *,
                     producer: Mapping[str, Any], detector: str | None = None,
                     options: Mapping[str, Any] | None = None, seed: int = 0,
                     batch_size: int = 4096, workers: int = 1, scheduler: str | None = None,
                     resume: bool = False, overwrite: bool = False,
                     progress: bool = True) -> ShardRunReport:
    """Generate showers with the model ``net`` (loaded from ``model``) for every row of
    ``conditions`` (a ShowerSet, or an ALICE npz with ``detector``), as seeded shards.

    The output has the model's geometry (images: photons as int32; voxels and points: MeV as
    float32), the conditions file's detector name, condition columns and units, and
    ``producer`` (plus the seed and the conditions file).
    """
    from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS

    model_dir = str(Path(model).resolve())
    cond_path = str(Path(conditions).resolve())
    geometry = net.spec.geometry
    dtype = "int32" if geometry.kind == "image" else "float32"
    record = {**producer, "seed": seed, "conditions_from": str(Path(conditions))}
    if Path(conditions).suffix == ".npz":
        from calogen.geometry.zdc import get_grid

        if detector is None:
            raise ValueError(f"{conditions}: ALICE particles need a detector")
        grid = get_grid(detector)
        layout = OutputLayout(detector=grid.name, geometry=grid.to_dict(),
                              condition_columns=tuple(CONDITION_COLUMNS),
                              condition_units=tuple(CONDITION_UNITS), producer=record,
                              shower_shape=grid.shape, shower_dtype=dtype,
                              shower_units="photons")
    else:
        with ShowerSet.open(conditions) as ss:
            meta = ss.meta
        layout = OutputLayout(detector=meta.detector, geometry=geometry.to_dict(),
                              condition_columns=tuple(meta.condition_columns),
                              condition_units=tuple(meta.condition_units), producer=record,
                              shower_shape=tuple(geometry.shower_shape), shower_dtype=dtype)
    options = dict(options or {})
    try:
        n_rows = len(_conditions(cond_path)[1])
        if n_rows == 0:
            raise ValueError(f"{conditions}: no conditions to generate for")
        # In-process shards use the model already loaded (and configured) here.
        _MODELS[_model_key(model_dir, options)] = net
        return _run(model_dir, cond_path, n_rows, out, layout=layout, options=options,
                    seed=seed, batch_size=batch_size, workers=workers, scheduler=scheduler,
                    resume=resume, overwrite=overwrite, progress=progress)
    finally:  # the in-process caches hold only one run
        _MODELS.clear()
        _CONDITIONS.clear()


def _run(model_dir: str, cond_path: str, n_rows: int, out: str | Path, *,
         layout: OutputLayout, options: dict[str, Any], seed: int, batch_size: int,
         workers: int, scheduler: str | None, resume: bool, overwrite: bool,
         progress: bool) -> ShardRunReport:
    params = {"engine": "model", "model": model_dir, "model_digest": _digest(Path(model_dir)),
              "conditions": cond_path, "conditions_digest": _digest(Path(cond_path)),
              "options": {k: str(v) for k, v in options.items()}, "batch_size": batch_size,
              "shard_rows": SHARD_ROWS}
    return run_shards(ModelEngine(model_dir, cond_path, batch_size, options), out,
                      layout=layout, plan=ShardPlan.rows(n_rows, SHARD_ROWS), params=params,
                      seed=seed, workers=workers, scheduler=scheduler, resume=resume,
                      overwrite=overwrite, progress=progress, label="generate")


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents)."""
    import hashlib

    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
