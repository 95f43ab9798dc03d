"""Point-cloud benchmark (CaloClouds II, Buhmann et al. arXiv:2309.05704): the Shower Flow +
PointWise EDM (``caloclouds2``), its consistency distillation (``caloclouds2-cm``), EPiC-GAN
and the cell-level BIB-AE trained for stated CPU budgets on ILD-like photon clouds, then the
paper's W1 table and high-level classifier AUC beside the floor and the published values, and
the timing table beside the Geant4 engine on the same machine.

    python benchmarks/point_clouds.py --smoke                    # minutes
    python benchmarks/point_clouds.py --minutes 30 --threads 1   # train, generate, evaluate
    python benchmarks/point_clouds.py --stage timing             # then the timing, machine idle
    python benchmarks/point_clouds.py --stage table              # the tables from saved results

Data: a Geant4-engine set (``calogen simulate ild --engine geant4``: photons 10-90 GeV uniform,
normal incidence, steps clustered on 1.25 mm squares per Si layer) given with ``--data``, else
the parametrised engine (``calogen simulate ild``). Split by condition 0.8/0.1/0.1 (seed 0).
Each family trains for ``--minutes`` of wall-clock time with its defaults (the student on top
of its teacher for the same budget), generates for the test split's conditions and is
evaluated against the test split with ``calogen evaluate`` (the floor: the test split against
itself). Timing: ms per shower at batch 1 on ONE thread, showers of 10-90 GeV, mean +- std over
repeats (the paper's Table 3 protocol), and the Geant4 engine's own time per shower in the
same process. Results under benchmarks/out/point_clouds/ (or ``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calogen.data.showerset import ShowerSet
from calogen.data.split import grouped_split, write_rows
from calogen.models.io import load_model
from calogen.pipelines.model_timing import time_point_model

FAMILIES: tuple[str, ...] = ("caloclouds2", "caloclouds2-cm", "epic-gan", "bib-ae")
STUDENTS = {"caloclouds2-cm": "caloclouds2"}
PUBLISHED_AUC = {"caloclouds2": 0.928, "caloclouds2-cm": 0.923}
"""CaloClouds II, Table 2 (500k Geant4 vs 500k generated ILD photon showers)."""
PUBLISHED_MS = {"geant4": 3914.80, "caloclouds2": 651.68, "caloclouds2-cm": 84.35}
"""CaloClouds II, Table 3: ms per shower at batch 1 on one Xeon E5-2640 v4 core."""

TRAIN_ARGS: dict[str, tuple[str, ...]] = {
    "caloclouds2": ("--batch-size", "64", "--ema", "0.999"),
    "caloclouds2-cm": ("--batch-size", "64"),
    "epic-gan": ("--batch-size", "16"),
    "bib-ae": ("--batch-size", "16"),
}
"""Per-family training options: showers per step sized for one CPU thread (ILD showers hold
~2,400 points; the paper: 128 showers per step on an A100), EMA for the diffusion model as
the paper."""

THREADS: dict[str, str] = {}
"""Environment for the ``calogen`` child processes (``--threads``)."""


def _calogen(*args: str) -> None:
    cmd = [sys.executable, "-m", "calogen", *args]
    print("$ calogen " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, **THREADS})


def prepare_data(out: Path, n: int, data: Path | None) -> tuple[Path, Path, str]:
    """Simulate (once, parametrised) or take ``data``; write the train and test splits."""
    if data is None:
        data = out / f"ild_param_{n}.h5"
        if not data.exists():
            _calogen("simulate", "ild", "--n", str(n), "--seed", "21", "--out", str(data))
        note = f"parametrised engine, {n} showers"
    else:
        with ShowerSet.open(data) as ss:
            engine = ss.meta.producer.get("engine", "?")
            note = f"{data.name} ({len(ss)} showers, engine {engine})"
    train, test = out / f"train_{data.stem}.h5", out / f"test_{data.stem}.h5"
    if not (train.exists() and test.exists()):
        with ShowerSet.open(data) as ss:
            split = grouped_split(ss.condition_ids(), (0.8, 0.1, 0.1), seed=0)
        write_rows(data, split["train"], train)
        write_rows(data, split["test"], test)
    return train, test, note


def model_timing(run: Path, n: int, repeats: int) -> dict[str, float]:
    """ms per shower at batch 1 on one thread (``calogen.pipelines.model_timing``), in
    float32 and with the PointWise Net in bfloat16 where the family offers it."""
    model = load_model(run)
    t = time_point_model(model, n_showers=n, repeats=repeats)
    out = {"ms": t.ms_per_shower, "ms_std": t.ms_std, "params": float(t.parameters)}
    if "sampling_dtype" in model.hparams:
        model.configure_sampling(sampling_dtype="bfloat16")
        t = time_point_model(model, n_showers=n, repeats=repeats)
        out.update(ms_bf16=t.ms_per_shower, ms_bf16_std=t.ms_std)
    return out


def geant4_timing(n: int, repeats: int) -> dict[str, float]:
    """The Geant4 engine's ms per ILD photon shower (one at a time, 10-90 GeV), mean and std
    over ``repeats`` runs of ``n`` showers after a warm-up shower, in this process."""
    from calogen.physics.geant4.engine import run_points

    energies = np.random.default_rng(5).uniform(10, 90, size=n) * 1e3
    run_points("ild", 22, energies[:1], seed=7)
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for i, e in enumerate(energies):
            run_points("ild", 22, [e], seed=7, first_index=1 + r * n + i)
        runs.append((time.perf_counter() - t0) / n * 1e3)
    return {"ms": float(np.mean(runs)), "ms_std": float(np.std(runs))}


def read_summary(report: Path) -> dict[str, dict[str, Any]]:
    """The summary rows of a report's metrics.json by name."""
    doc = json.loads((report / "metrics.json").read_text())
    return {row["name"]: row for row in doc.get("summary", [])}


def run_family(family: str, out: Path, train: Path, test: Path, minutes: float,
) -> None:
    run = out / f"run_{family}"
    args = ["train", "--model", family, "--data", str(train), "--out", str(run),
            "--max-minutes", str(minutes), "--overwrite", *TRAIN_ARGS.get(family, ())]
    if family in STUDENTS:
        args += ["--teacher", str(out / f"run_{STUDENTS[family]}" / "best")]
    t0 = time.perf_counter()
    _calogen(*args)
    train_s = time.perf_counter() - t0
    best = run / "best" if (run / "best").is_dir() else run / "last"
    gen = out / f"gen_{family}.h5"
    _calogen("generate", "--model", str(best), "--conditions", str(test), "--out", str(gen),
             "--overwrite")
    report = out / f"report_{family}"
    _calogen("evaluate", "--reference", str(test), "--generated", str(gen), "--out",
             str(report), "--protocol", "caloclouds2")
    doc = {"family": family, "train_seconds": train_s, "model": str(best)}
    (out / f"result_{family}.json").write_text(json.dumps(doc, indent=1))
    print(f"{family}: -> {out / f'result_{family}.json'}", flush=True)


def _fmt(row: dict[str, Any] | None, key: str = "value") -> str:
    if not row or row.get(key) is None:
        return "-"
    v, s = row.get(key), row.get(f"{key}_std", row.get("std"))
    return f"{v:.3g}" + (f"±{s:.2g}" if isinstance(s, (int, float)) else "")


def print_tables(out: Path, families: tuple[str, ...], note: str) -> None:
    docs = [json.loads((out / f"result_{f}.json").read_text()) for f in families
            if (out / f"result_{f}.json").exists()]
    print(f"\nILD-like photon clouds, {note}")
    w1_rows: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        report = out / f"report_{d['family']}"
        if (report / "metrics.json").exists():
            w1_rows[d["family"]] = read_summary(report)
    names = sorted({n for rows in w1_rows.values() for n in rows
                    if n.startswith("W1") or "AUC" in n})
    print(f"{'metric':48s} " + " ".join(f"{f:>22s}" for f in w1_rows) + f" {'floor':>16s}")
    for name in names:
        first = next((rows[name] for rows in w1_rows.values() if name in rows), None)
        floor = _fmt(first, "floor")
        print(f"{name:48s} " + " ".join(f"{_fmt(rows.get(name)):>22s}"
                                         for rows in w1_rows.values()) + f" {floor:>16s}")
    print("published AUC (500k vs 500k ILD Geant4): " + ", ".join(
        f"{k} {v}" for k, v in PUBLISHED_AUC.items()))
    g4 = out / "geant4_timing.json"
    g4_ms = json.loads(g4.read_text())["ms"] if g4.exists() else None
    print(f"\n{'simulator':18s} {'min':>5s} {'ms/shower b1 1 thread':>24s} {'speed-up':>9s} "
          f"{'bf16 ms':>16s} {'params':>9s} {'paper ms':>9s}")
    if g4.exists():
        t = json.loads(g4.read_text())
        print(f"{'Geant4 engine':18s} {'':>5s} {t['ms']:15.1f} ± {t['ms_std']:6.1f} "
              f"{'x1':>9s} {'-':>16s} {'':>9s} {PUBLISHED_MS['geant4']:9.1f}")
    for d in docs:
        if "ms" not in d:
            continue
        up = f"x{g4_ms / d['ms']:.0f}" if g4_ms else "-"
        paper = PUBLISHED_MS.get(d["family"])
        bf16 = f"{d['ms_bf16']:7.2f} ± {d['ms_bf16_std']:5.2f}" if "ms_bf16" in d else "-"
        print(f"{d['family']:18s} {d['train_seconds'] / 60:5.1f} {d['ms']:15.2f} ± "
              f"{d['ms_std']:6.2f} {up:>9s} {bf16:>16s} {int(d['params']):9d} "
              f"{'' if paper is None else f'{paper:9.1f}'}")
    print("floor: the test split against itself. Paper: one Xeon E5-2640 v4 core.")
    print(f"outputs: {out.resolve()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="a points ShowerSet (e.g. a Geant4-engine ild set) instead of simulating")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--stage", choices=("all", "timing", "table"), default="all")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--families", nargs="+", default=None)
    ap.add_argument("--timing-showers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads of each calogen process (e.g. 1 to run two at once)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out" / "point_clouds")
    args = ap.parse_args()
    if args.threads:
        THREADS.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        torch.set_num_threads(args.threads)
    n, minutes = (1_000, 0.5) if args.smoke else (args.n, args.minutes)
    timing_n, repeats = (3, 2) if args.smoke else (args.timing_showers, args.repeats)
    families = tuple(args.families or FAMILIES)
    out = args.out_dir / ("smoke" if args.smoke else "full")
    out.mkdir(parents=True, exist_ok=True)
    train, test, note = prepare_data(out, n, args.data)
    if args.stage == "all":
        for family in families:
            run_family(family, out, train, test, minutes)
    if args.stage == "timing":  # separately, on a quiet machine
        for family in families:
            path = out / f"result_{family}.json"
            if path.exists():
                doc = json.loads(path.read_text())
                doc.update(model_timing(Path(doc["model"]), timing_n, repeats))
                path.write_text(json.dumps(doc, indent=1))
        (out / "geant4_timing.json").write_text(json.dumps(geant4_timing(timing_n, repeats)))
    print_tables(out, families, note)


if __name__ == "__main__":
    main()
