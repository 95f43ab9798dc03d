"""CaloChallenge-shaped benchmark: families trained on simulated DS1-photon-shaped (and DS2-shaped)
showers, evaluated with the official CaloChallenge metrics, each beside its floor.

    python benchmarks/calochallenge.py --smoke                     # minutes
    python benchmarks/calochallenge.py --minutes 30                # the full run (hours)
    python benchmarks/calochallenge.py --stage table               # the table from saved results
    python benchmarks/calochallenge.py --eval-cost ds2_120000.h5   # 100k vs 100k: time, memory

Data: ``calogen simulate ds1-photons`` (the parametrised engine's simplified ATLAS-like stack;
15 energies 256 MeV - 4.2 TeV) and, with ``--dataset 2``, ``calogen simulate ds2`` (parametrised)
or a Geant4 DS2 file given with ``--data``. Split by condition 0.8/0.1/0.1 (seed 0). Each family
trains for ``--minutes`` of wall-clock time with its defaults; a student trains on top of its
teacher for the same budget. Generated for the test split's conditions, evaluated against the
test split with ``calogen evaluate`` (default protocol); the floor is the test split against
itself (two halves). Generation time: ms per shower at batch 100 (the paper's protocol) and
1000 on ONE thread. Results under benchmarks/out/calochallenge/ (or ``--out-dir``).
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

FAMILIES: dict[str, tuple[str, ...]] = {
    "1-photons": ("caloflow", "caloflow-student", "calo-inn", "vae", "voxel-diffusion"),
    "2": ("icaloflow", "icaloflow-student", "vae"),
}
STUDENTS = {"caloflow-student": "caloflow", "icaloflow-student": "icaloflow"}
SIMULATE = {"1-photons": "ds1-photons", "1-pions": "ds1-pions", "2": "ds2", "3": "ds3"}
KEYS: dict[str, str] = {
    "AUC low": "classifier AUC (low-level)", "AUC high": "classifier AUC (high-level)",
    "JSD low": "classifier JSD (low-level)", "JSD high": "classifier JSD (high-level)",
    "FPD": "FPD (CaloChallenge high-level vector) x1e3",
    "KPD": "KPD (CaloChallenge high-level vector) x1e3"}
"""Table column -> the summary row of ``metrics.json`` it shows."""


THREADS: dict[str, str] = {}
"""Environment for the ``calogen`` child processes (``--threads``)."""


def _calogen(*args: str) -> None:
    cmd = [sys.executable, "-m", "calogen", *args]
    print("$ calogen " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, **THREADS})


def prepare_data(out: Path, dataset: str, n: int, data: Path | None) -> tuple[Path, Path]:
    """Simulate (once) or take ``data``; write the train and test splits; return them."""
    if data is None:
        data = out / f"ds{dataset}_{n}.h5"
        if not data.exists():
            _calogen("simulate", SIMULATE[dataset], "--n", str(n), "--seed", "21",
                     "--workers", "2", "--out", str(data))
    train, test = out / f"train_{data.stem}.h5", out / f"test_{data.stem}.h5"
    if not (train.exists() and test.exists()):
        with ShowerSet.open(data) as ss:
            split = grouped_split(ss.condition_ids(), (0.8, 0.1, 0.1), seed=0)
        write_rows(data, split["train"], train)
        write_rows(data, split["test"], test)
    return train, test


def generation_ms(model: Any, cond: np.ndarray, pdg: np.ndarray, batch: int,
                  repeats: int = 3) -> float:
    """Mean ms per shower for ``batch`` showers at a time on one thread, after a warm-up."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        idx = np.arange(batch) % len(pdg)
        g = torch.Generator().manual_seed(0)
        model.sample(cond[idx], pdg[idx], g, batch_size=batch)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.sample(cond[idx], pdg[idx], g, batch_size=batch)
            times.append((time.perf_counter() - t0) / batch * 1e3)
        return float(np.median(times))
    finally:
        torch.set_num_threads(old)


def read_metrics(report: Path) -> dict[str, dict[str, float | None]]:
    """``{key: {value, floor}}`` from a report's metrics.json for the :data:`KEYS`."""
    doc = json.loads((report / "metrics.json").read_text())
    rows = {row["name"]: row for row in doc.get("summary", [])}
    return {key: {"value": rows[name].get("value"), "floor": rows[name].get("floor")}
            for key, name in KEYS.items() if name in rows}


def run_family(family: str, out: Path, train: Path, test: Path, minutes: float,
               protocol: list[str]) -> None:
    run = out / f"run_{family}"
    args = ["train", "--model", family, "--data", str(train), "--out", str(run),
            "--max-minutes", str(minutes), "--overwrite"]
    if family in STUDENTS:
        args += ["--teacher", str(out / f"run_{STUDENTS[family]}" / "best")]
    t0 = time.perf_counter()
    _calogen(*args)
    train_s = time.perf_counter() - t0
    gen = out / f"gen_{family}.h5"
    _calogen("generate", "--model", str(run / "best"), "--conditions", str(test),
             "--out", str(gen), "--overwrite")
    report = out / f"report_{family}"
    _calogen("evaluate", "--reference", str(test), "--generated", str(gen), "--out",
             str(report), *protocol)
    model = load_model(run / "best")
    with ShowerSet.open(test) as ts:
        cond, pdg = ts.conditions(), ts.pdg()
    doc = {"family": family, "train_seconds": train_s,
           "params": sum(p.numel() for p in model.parameters()),
           "ms_b100": generation_ms(model, cond, pdg, 100),
           "ms_b1000": generation_ms(model, cond, pdg, 1000),
           "metrics": read_metrics(report)}
    (out / f"result_{family}.json").write_text(json.dumps(doc, indent=1))
    print(f"{family}: -> {out / f'result_{family}.json'}", flush=True)


def print_table(out: Path, families: tuple[str, ...], dataset: str, data_note: str) -> None:
    docs = [json.loads((out / f"result_{f}.json").read_text()) for f in families
            if (out / f"result_{f}.json").exists()]
    print(f"\nCaloChallenge dataset {dataset}-shaped, {data_note}")
    head = f"{'model':18s} {'min':>5s} " + " ".join(f"{k:>15s}" for k in KEYS) + \
        f" {'ms b100':>8s} {'ms b1000':>8s} {'params':>9s}"
    print(head)
    for d in docs:
        report = out / f"report_{d['family']}"
        if (report / "metrics.json").exists():
            d["metrics"] = read_metrics(report)
        cells = []
        for k in KEYS:
            m = d["metrics"].get(k, {})
            v, f = m.get("value"), m.get("floor")
            cells.append(f"{v:7.3g} ({f:5.3g})" if v is not None and f is not None
                         else f"{'-':>15s}")
        print(f"{d['family']:18s} {d['train_seconds'] / 60:5.1f} " + " ".join(cells)
              + f" {d['ms_b100']:8.3f} {d['ms_b1000']:8.3f} {d['params']:9d}", flush=True)
    print("value (floor: the test split against itself); ms: per shower on one CPU thread.")
    print(f"outputs: {out.resolve()}")


def evaluation_cost(data: Path, out: Path, n: int, protocol: list[str]) -> None:
    """Time and peak memory of ``calogen evaluate`` on ``n`` vs ``n`` showers of ``data`` (rows
    ``[0, n)`` against the last ``n`` rows, which overlap when the file holds fewer than ``2 n``:
    the metric values are then meaningless, the cost is not), in a child process."""
    import resource

    with ShowerSet.open(data) as ss:
        total = len(ss)
    if total < n:
        raise SystemExit(f"{data}: {total} showers, fewer than --eval-n {n}")
    ref, gen = out / f"cost_ref_{n}.h5", out / f"cost_gen_{n}.h5"
    if not ref.exists():
        write_rows(data, np.arange(n), ref)
    if not gen.exists():
        write_rows(data, np.arange(total - n, total), gen)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    _calogen("evaluate", "--reference", str(ref), "--generated", str(gen), "--out",
             str(out / f"report_cost_{n}"), "--no-progress", *protocol)
    minutes = (time.perf_counter() - t0) / 60
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB
    note = "" if total >= 2 * n else f" (rows overlap: {2 * n - total})"
    print(f"\nevaluate {n} vs {n} showers of {data.name}{note}: {minutes:.1f} min, peak RSS "
          f"{peak:.2f} GiB{'' if peak > before / 1024 ** 2 else ' (an earlier child was larger)'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=tuple(FAMILIES), default="1-photons")
    ap.add_argument("--data", type=Path, default=None, help="a ShowerSet instead of simulating")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--stage", choices=("all", "table"), default="all")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--families", nargs="+", default=None)
    ap.add_argument("--protocol", default=None, help="e.g. calochallenge-2022")
    ap.add_argument("--eval-cost", type=Path, default=None, metavar="SHOWERSET",
                    help="only measure calogen evaluate on --eval-n vs --eval-n of this file")
    ap.add_argument("--eval-n", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads of each calogen process (e.g. 1 to run two at once)")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "calochallenge")
    args = ap.parse_args()
    if args.threads:
        THREADS.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        torch.set_num_threads(args.threads)
    protocol = ["--protocol", args.protocol] if args.protocol else []
    if args.eval_cost is not None:
        out = args.out_dir / "evaluation_cost"
        out.mkdir(parents=True, exist_ok=True)
        evaluation_cost(args.eval_cost, out, args.eval_n, protocol)
        return
    n, minutes = (2_000, 0.3) if args.smoke else (args.n, args.minutes)
    families = tuple(args.families or FAMILIES[args.dataset])
    out = args.out_dir / f"ds{args.dataset}"
    out.mkdir(parents=True, exist_ok=True)
    train, test = prepare_data(out, args.dataset, n, args.data)
    if args.stage == "all":
        for family in families:
            run_family(family, out, train, test, minutes, protocol)
    note = f"data {args.data or 'simulated by calogen (parametrised engine)'}, {n} showers"
    print_table(out, families, args.dataset, note)


if __name__ == "__main__":
    main()
