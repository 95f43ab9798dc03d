"""Generation time and size of a trained model, for ``calogen evaluate --model``: as the
CaloChallenge paper does (arXiv:2410.21611, Sec. 5: ms per shower at a fixed batch size on
CPU, :func:`time_model`) and, for point-cloud models, as CaloClouds II does (arXiv:2309.05704,
Sec. 4.4: ms per shower at batch 1 on one CPU thread and at batch 64 on a GPU, incident
energies uniform in 10-90 GeV, mean +- std over repeats; :func:`time_point_model`), and the
speed grid of a one-step image model over batch sizes, threads, precisions and the three ways
it runs: ``model.sample``, the ``calogen generate`` path to an HDF5 file, and ONNX Runtime on
the exported model with the readout in numpy (:func:`speed_grid`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calogen.data.showerset import ShowerSet
from calogen.models.generator import Generator
from calogen.models.io import load_model

__all__ = ["GRID_BATCHES", "GRID_THREADS", "ModelTiming", "PointModelTiming", "SpeedRow",
           "speed_grid", "time_model", "time_point_model"]

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


GRID_BATCHES: tuple[int, ...] = (1, 100, 1000, 10_000)
"""Batch sizes of :func:`speed_grid` (issue 17: batch 1, 100, 1000 and 10,000)."""

GRID_THREADS: tuple[int, ...] = (1, 2)
"""CPU threads of :func:`speed_grid`."""

GRID_PATHS: tuple[str, ...] = ("sample", "generate", "onnx")
"""What :func:`speed_grid` times: ``model.sample``; the generate path (batches streamed from a
conditions ShowerSet to an HDF5 ShowerSet); ONNX Runtime (noise and standardised conditions
made in numpy, the exported graph, expm1 and the model's readout)."""


@dataclass(frozen=True)
class SpeedRow:
    """ms per response (mean and std, ddof 0, over ``repeats`` timed runs after one untimed
    warm-up run; a run is ``calls`` calls of ``batch`` responses) of one way of running the
    model (``path``: ``"sample"``, ``"generate"``, ``"onnx"``) at a precision (``float32``,
    ``bfloat16``, ``int8``) on ``threads`` CPU threads."""

    path: str
    precision: str
    batch: int
    threads: int
    ms_per_response: float
    ms_std: float
    repeats: int
    calls: int

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def speed_grid(model_dir: str | Path, conditions: str | Path, *,
               batches: tuple[int, ...] = GRID_BATCHES, threads: tuple[int, ...] = GRID_THREADS,
               precisions: tuple[str, ...] = ("float32", "bfloat16", "int8"),
               paths: tuple[str, ...] = GRID_PATHS, repeats: int = 5,
               min_responses: int = 1000, seed: int = 0,
               workdir: str | Path | None = None) -> list[SpeedRow]:
    """Time the one-step image model ``model_dir`` on the conditions of the ShowerSet
    ``conditions`` (its first rows, recycled when it has fewer) on the CPU.

    Each timed run generates at least ``min_responses`` responses in calls of ``batch`` (so
    batch 1 measures the per-call overhead of every path). ONNX rows are ``float32`` (the
    exported graph) and ``int8`` (``onnxruntime.quantization.quantize_dynamic`` of it; skipped
    when that fails); ONNX Runtime has no bfloat16 CPU kernels. Temporary files (the exported
    models, the generated ShowerSets) go to ``workdir`` (a temporary folder by default).
    ``ValueError`` for a model that is not a one-step image model or an unknown path.
    """
    import tempfile

    from calogen.models.generator import PRECISIONS

    if min(batches, default=0) < 1 or min(threads, default=0) < 1 or repeats < 1:
        raise ValueError("speed_grid: batches, threads and repeats must be >= 1")
    unknown = sorted(set(paths) - set(GRID_PATHS)) + sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise ValueError(f"speed_grid: unknown path(s) or precision(s) {unknown}; paths "
                         f"{GRID_PATHS}, precisions {PRECISIONS}")
    model = load_model(model_dir, map_location="cpu").eval()
    if model.spec.kind != "image" or not model.one_step:
        raise ValueError(f"{model_dir}: speed_grid times one-step image models; this is a "
                         f"{model.family} model of {model.spec.kind}")
    n_max = max(max(batches), min_responses)
    with ShowerSet.open(conditions) as ss:
        if len(ss) == 0:
            raise ValueError(f"{conditions}: no conditions to time the model on")
        first = ss.take(np.arange(min(n_max, len(ss))))
        units = tuple(ss.meta.condition_units)
    rows = np.arange(n_max) % len(first.pdg)
    cond, pdg = first.conditions[rows], first.pdg[rows]
    out: list[SpeedRow] = []
    old = torch.get_num_threads()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmpdir = Path(tmp)
        onnx_files = _onnx_models(model, tmpdir, model_dir) if "onnx" in paths else {}
        cond_files: dict[int, Path] = {}
        try:
            for t in threads:
                torch.set_num_threads(t)
                for path in paths:
                    for precision in precisions:
                        if path == "onnx" and precision not in onnx_files:
                            continue
                        for b in batches:
                            calls = max(1, -(-min_responses // b))
                            run = _runner(path, model, precision, cond, pdg, units, b, calls,
                                          t, tmpdir, cond_files, onnx_files, seed)
                            mean, std = _time_runs(run, repeats, b * calls)
                            out.append(SpeedRow(path, precision, b, t, mean, std, repeats,
                                                calls))
        finally:
            torch.set_num_threads(old)
    return out


def _time_runs(run: Callable[[], object], repeats: int, responses: int) -> tuple[float, float]:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) / responses * 1e3)
    return float(np.mean(times)), float(np.std(times))


def _runner(path: str, model: Generator, precision: str, cond: np.ndarray, pdg: np.ndarray,
            units: tuple[str, ...], batch: int, calls: int, threads: int, tmpdir: Path,
            cond_files: dict[int, Path], onnx_files: dict[str, Path],
            seed: int) -> Callable[[], object]:
    """A function that generates ``batch * calls`` responses by ``path``."""
    n = batch * calls
    c, p = cond[np.arange(n) % len(cond)], pdg[np.arange(n) % len(pdg)]
    if path == "sample":
        g = torch.Generator().manual_seed(seed)

        def run_sample() -> None:
            for a in range(0, n, batch):
                model.sample(c[a:a + batch], p[a:a + batch], g, batch_size=batch,
                             precision=precision)
        return run_sample
    if path == "generate":
        from calogen.train.generation import generate_to_showerset, model_sampler

        if n not in cond_files:
            cond_files[n] = _conditions_file(tmpdir / f"conditions-{n}.h5", c, p, units,
                                             model)

        def run_generate() -> None:
            model.set_sampling_precision(precision)
            try:
                generate_to_showerset(model_sampler(model, batch_size=batch), cond_files[n],
                                      tmpdir / "generated.h5", producer={"name": "timing"},
                                      geometry=model.spec.geometry, seed=seed,
                                      batch_size=batch, overwrite=True, progress=False)
            finally:
                model.set_sampling_precision("float32")
        return run_generate
    return _onnx_runner(model, onnx_files[precision], c, p, batch, threads, seed)


def _conditions_file(path: Path, cond: np.ndarray, pdg: np.ndarray, units: tuple[str, ...],
                     model: Generator) -> Path:
    from calogen.data.showerset import write_showerset

    return write_showerset(path, np.zeros((len(pdg), *model.spec.shape), np.int32), cond, pdg,
                           detector=model.spec.detector, geometry=model.spec.geometry,
                           producer={"name": "timing"},
                           condition_columns=tuple(model.spec.transforms.condition_columns),
                           condition_units=units)


def _onnx_models(model: Generator, tmpdir: Path, source: str | Path) -> dict[str, Path]:
    """The exported float32 model and, when onnxruntime can make it, its int8 version; none
    for a model the ALICE O2 signature cannot carry (a species embedding)."""
    from calogen.models.export_onnx import export_onnx

    if model.hparams.get("use_species"):
        return {}
    fp32 = export_onnx(model, tmpdir / "model.onnx", source=source).onnx
    files = {"float32": fp32}
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # the exporter's intermediate shapes trip the quantiser's shape inference: drop them
        graph = onnx.load(str(fp32))
        del graph.graph.value_info[:]
        onnx.save(graph, str(tmpdir / "model.plain.onnx"))
        quantize_dynamic(str(tmpdir / "model.plain.onnx"), str(tmpdir / "model.int8.onnx"),
                         weight_type=QuantType.QInt8)
        files["int8"] = tmpdir / "model.int8.onnx"
    except Exception as exc:  # noqa: BLE001  (optional: a failing quantiser skips int8)
        import warnings

        warnings.warn(f"speed_grid: no int8 ONNX model ({exc})", stacklevel=2)
    return files


def _onnx_runner(model: Generator, onnx_file: Path, cond: np.ndarray, pdg: np.ndarray,
                 batch: int, threads: int, seed: int) -> Callable[[], object]:
    """Generation as a C++ host would run the export: numpy noise, ONNX Runtime, numpy
    expm1 and the readout."""
    import onnxruntime as ort

    from calogen.models.nn.readout import poisson_counts

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    t = model.spec.transforms
    std = ((cond - np.asarray(t.condition_mean, np.float32))
           / np.asarray(t.condition_std, np.float32)).astype(np.float32)
    poisson = model.hparams.get("readout") == "poisson"
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    latent = model.latent_dim

    def run_onnx() -> None:
        for a in range(0, len(std), batch):
            c = std[a:a + batch]
            noise = rng.standard_normal((len(c), latent), np.float32)
            (y,) = sess.run(None, {"noise": noise, "conditions": c})
            rate = np.expm1(np.clip(y[:, 0], 0.0, 20.0))
            if poisson:
                poisson_counts(torch.from_numpy(rate), g)
            else:
                np.rint(rate).astype(np.int32)
    return run_onnx
