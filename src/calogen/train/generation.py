"""Generate a ShowerSet for the conditions of another file, with any sampler.

Shared by every generator (the baselines and the trained models): the conditions (and PDG
codes, condition ids) of an input ShowerSet are streamed in batches, the sampler turns them
into showers in physical units, and the result is written atomically as a ShowerSet whose row
i answers row i of the input, so that the evaluation can pair them. A trained model writes
its own geometry (images, voxels; point clouds as ``(points, counts)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from calogen.data.showerset import ShowerSet, ShowerSetWriter
from calogen.geometry import Geometry

Showers = NDArray[np.generic] | tuple[NDArray[np.floating], NDArray[np.integer]]
"""Showers of one batch: ``(n, *shape)``, or for point clouds ``(points (P, 4), counts (n,))``."""

Sampler = Callable[[NDArray[np.float32], NDArray[np.int32], np.random.Generator], Showers]
"""(conditions (n, k), pdg (n,), rng) -> showers in physical units (:data:`Showers`)."""


def model_sampler(model: Any, *, batch_size: int = 4096) -> Sampler:
    """A :data:`Sampler` for a ``calogen.models`` generator: each batch gets a torch generator
    seeded from the numpy ``rng``, so the output is reproducible for a seed."""
    import torch

    def sample(conditions: NDArray[np.float32], pdg: NDArray[np.int32],
               rng: np.random.Generator) -> Showers:
        g = torch.Generator(device=next(model.parameters()).device)
        g.manual_seed(int(rng.integers(2**62)))
        if model.spec.kind == "points":
            points, counts = model.sample_points(conditions, pdg, g, batch_size=batch_size)
            return points, counts
        return model.sample(conditions, pdg, g, batch_size=batch_size)

    return sample


def generate_to_showerset(sample: Sampler, conditions_path: str | Path, out: str | Path, *,
                          producer: Mapping[str, Any], geometry: Geometry | None = None,
                          seed: int = 0, batch_size: int = 8192,
                          shower_dtype: str | None = None, overwrite: bool = False,
                          progress: bool = True) -> Path:
    """Write ``sample``'s showers for every row of the ShowerSet ``conditions_path``.

    ``geometry``: the readout the showers are written with (a trained model's
    ``spec.geometry``; its default shower units and dtype: photons as int32 for images, MeV as
    float32 otherwise); ``None``: the conditions file's geometry, units and dtype (``int32`` for
    images). The detector name and the condition columns and units are the conditions
    file's. The random generator is seeded once with ``seed`` and consumed batch by batch in
    row order, so the output depends on ``batch_size`` only through the sampler.
    """
    with ShowerSet.open(conditions_path) as src:
        meta = src.meta
        batches = ((b.conditions, b.pdg, b.condition_id) for b in src.iter_batches(batch_size))
        if geometry is None:
            dtype = shower_dtype or ("int32" if meta.kind == "image" else str(meta.shower_dtype))
            described: Mapping[str, Any] = meta.geometry
            shape: tuple[int, ...] = meta.shower_shape
            units: str | None = meta.shower_units
        else:
            dtype = shower_dtype or ("int32" if geometry.kind == "image" else "float32")
            described, shape, units = geometry.to_dict(), geometry.shower_shape, None
        return _write(sample, batches, len(src), out, shower_shape=shape,
                      detector=meta.detector, geometry=described,
                      columns=meta.condition_columns, units=meta.condition_units,
                      shower_units=units,
                      producer={**producer, "seed": seed,
                                "conditions_from": str(Path(conditions_path))},
                      seed=seed, shower_dtype=dtype, overwrite=overwrite,
                      progress=progress)


def generate_for_particles(sample: Sampler, conditions: NDArray[np.float32],
                           pdg: NDArray[np.int32], out: str | Path, *, detector: str,
                           producer: Mapping[str, Any], seed: int = 0, batch_size: int = 8192,
                           shower_dtype: str = "int32", overwrite: bool = False,
                           progress: bool = True) -> Path:
    """Like :func:`generate_to_showerset` for particles given as arrays (e.g. an ALICE npz)."""
    from calogen.geometry.zdc import get_grid
    from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS

    grid = get_grid(detector)
    ids = np.arange(len(pdg), dtype=np.int64)
    batches = ((conditions[s:s + batch_size], pdg[s:s + batch_size], ids[s:s + batch_size])
               for s in range(0, len(pdg), batch_size))
    return _write(sample, batches, len(pdg), out, shower_shape=grid.shape, detector=grid.name,
                  geometry=grid.to_dict(), columns=CONDITION_COLUMNS, units=CONDITION_UNITS,
                  shower_units="photons", producer={**producer, "seed": seed}, seed=seed,
                  shower_dtype=shower_dtype, overwrite=overwrite, progress=progress)


def _write(sample: Sampler, batches: Iterator[tuple[NDArray[np.float32], NDArray[np.int32],
                                                    NDArray[np.int64]]],
           total: int, out: str | Path, *, shower_shape: tuple[int, ...], detector: str,
           geometry: Mapping[str, Any], columns: tuple[str, ...], units: tuple[str, ...],
           shower_units: str | None, producer: Mapping[str, Any], seed: int, shower_dtype: str,
           overwrite: bool, progress: bool) -> Path:
    rng = np.random.default_rng(seed)
    with ShowerSetWriter(
        out, shower_shape=shower_shape, detector=detector, geometry=geometry,
        condition_columns=columns, condition_units=units, producer=producer,
        shower_dtype=shower_dtype, shower_units=shower_units, overwrite=overwrite,
    ) as writer, tqdm(total=total, unit="ev", desc="generate", disable=not progress) as bar:
        for cond, pdg, ids in batches:
            showers = sample(cond, pdg, rng)
            if isinstance(showers, tuple):
                points, counts = showers
                writer.append(points, cond, pdg, ids, counts=counts)
            else:
                writer.append(showers, cond, pdg, ids)
            bar.update(len(pdg))
    return Path(out)


def check_conditions_fit(spec: Any, model_path: str | Path, conditions_path: str | Path, *,
                         detector: str | None = None) -> str:
    """Refuse conditions a model cannot answer, before anything is sampled.

    For a ShowerSet the kind of showers, the geometry and the condition columns must equal the
    model's (``spec``: a :class:`calogen.models.generator.ModelSpec`): for images the
    detector name and shape, for voxels and point clouds the whole geometry (binning, volume).
    For particles without a detector (an ALICE npz) the model must be a ZDC image model and
    ``detector`` (default: the model's) must equal its. Returns the detector name (upper case).

    Raises:
        ValueError: naming the conditions file, the model and every mismatch.
    """
    from calogen.train.data import training_geometry

    want_det = str(spec.detector).upper()
    want_cols = tuple(spec.transforms.condition_columns)
    path = Path(conditions_path)
    problems: list[str] = []
    if path.suffix == ".npz":
        given = want_det if detector is None else detector.upper()
        if spec.kind != "image":
            problems.append(f"ALICE particles are for ZDC image models; the model generates "
                            f"{spec.kind} showers")
        elif given != want_det:
            problems.append(f"detector {given} (--detector) vs the model's {want_det}")
    else:
        with ShowerSet.open(path) as ss:
            meta = ss.meta
        given = meta.detector.upper()
        if meta.kind != spec.kind:
            problems.append(f"{meta.kind} showers vs the model's {spec.kind} showers "
                            f"(geometry {spec.detector!r})")
        else:
            geometry = training_geometry(meta, path)
            if spec.kind == "image":
                if geometry.name.upper() != want_det:
                    problems.append(f"detector {geometry.name} vs the model's {spec.detector}")
                if tuple(meta.shower_shape) != tuple(spec.shape):
                    problems.append(f"shower shape {tuple(meta.shower_shape)} vs the model's "
                                    f"{tuple(spec.shape)}")
            elif geometry != spec.geometry:
                problems.append(f"{meta.kind} geometry {geometry.name!r} "
                                f"({_describe(geometry)}) vs the model's {spec.detector!r} "
                                f"({_describe(spec.geometry)})")
        if tuple(meta.condition_columns) != want_cols:
            problems.append(f"condition columns {list(meta.condition_columns)} vs the model's "
                            f"{list(want_cols)}")
    if problems:
        raise ValueError(f"{path}: these conditions do not fit the model {model_path}: "
                         + "; ".join(problems))
    return given


def _describe(geometry: Geometry) -> str:
    """``"3 layers, 36 voxels"`` / ``"3 layers"``: a short description for messages."""
    layers = getattr(geometry, "n_layers", None)
    voxels = getattr(geometry, "n_voxels", None)
    parts = [f"{layers} layers"] if layers is not None else []
    if voxels is not None:
        parts.append(f"{voxels} voxels")
    return ", ".join(parts) or str(geometry.shower_shape)
