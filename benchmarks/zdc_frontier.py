"""The ZDC frontier (issue 17 items 1-2): ZN shape fidelity against speed, every row trained by
the calogen CLI on one CPU thread, evaluated on the same 10k held-out events and timed in the
same process.

    python benchmarks/zdc_frontier.py --stage data                  # 100k ZN + the test split
    python benchmarks/zdc_frontier.py --stage train --rows vae      # one row at a time (1 thread)
    python benchmarks/zdc_frontier.py --stage evaluate              # calogen evaluate, 5 seeds
    python benchmarks/zdc_frontier.py --stage speed                 # on an otherwise idle machine
    python benchmarks/zdc_frontier.py --stage table                 # calogen compare -> Markdown
    python benchmarks/zdc_frontier.py --print-commands              # the commands of every row

Data: ``calogen simulate zn --n 100000 --seed 21`` split by condition group 0.8/0.1/0.1 (seed
0, the trainer's own split), so the test split (10,000 events) is never trained on. Every row
is a list of ``calogen`` commands (printed with ``--print-commands``); training runs with one
torch thread, so its wall-clock minutes are CPU minutes on an idle machine. Evaluation is
``calogen evaluate`` with 5 classifier seeds (the default classifier), and the table is
``calogen compare`` over the reports (its floor row: the test split's two halves). Speed:
:func:`speed_rows` (ms per response at batch 1, 100, 1000, 10,000 on 1 and 2 threads, for the
model's ``sample``, the ``generate`` path to a file and ONNX Runtime), written to
``timing.json`` beside each report so ``calogen compare`` shows it.
Everything goes under benchmarks/out/zdc_frontier/ (or ``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

N_EVENTS = 100_000
SEED = 21
STEPS = 16_000
"""Training steps of the fast rows (batch 256)."""

TRAIN = ["train", "--model", "vae", "--data", "{data}", "--steps", "{steps}",
         "--hparam", "backbone=mlp"]

ROWS: dict[str, list[list[str]]] = {
    # calogen's ZN fast family before issue 17 (latent 10, flow prior, Poisson ELBO + readout)
    "vae": [[*TRAIN, "--out", "{runs}/vae", "--hparam", "rate_noise=off",
             "--hparam", "condition_features=raw"]],
    # + log E and the impact point as inputs, a 32-dimensional latent
    "vae-32": [[*TRAIN, "--out", "{runs}/vae-32", "--hparam", "latent_dim=32",
                "--hparam", "rate_noise=off"]],
    # the same model read out with the fitted Cox readout (rate noise)
    "vae-32-cox": [["calibrate", "--model", "{runs}/vae-32/best", "--data", "{data}",
                    "--out", "{runs}/vae-32-cox/best"]],
    # + the shower frame (recentre); the Cox readout fitted at the end of training
    "vae-32-frame": [[*TRAIN, "--out", "{runs}/vae-32-frame", "--hparam", "latent_dim=32",
                      "--hparam", "recentre=true", "--hparam", "rate_noise=fit"]],
    # the frame model read out with plain Poisson counts (the same weights: training with
    # rate_noise=off is identical for the seed, only the final fit is skipped)
    "vae-32-frame-poisson": [[*TRAIN, "--out", "{runs}/vae-32-frame-poisson",
                              "--hparam", "latent_dim=32", "--hparam", "recentre=true",
                              "--hparam", "rate_noise=off"]],
}
"""Row name -> the ``calogen`` commands that make its model ``{runs}/<row>/best`` ({data},
{runs}, {steps} filled in); rows are made in this order (``vae-32-cox`` needs ``vae-32``)."""

BUILT_ON: dict[str, str] = {"vae-32-cox": "vae-32", "vae-32-frame-poisson": "vae-32-frame"}
"""Rows made from another row's model: their training minutes include that row's."""

SAMPLING: dict[str, list[str]] = {}
"""Row name -> extra ``calogen generate`` arguments (sampling options)."""


def paths(out: Path) -> dict[str, Path]:
    return {"data": out / f"zn_{N_EVENTS}.h5", "test": out / f"test_{N_EVENTS}.h5",
            "runs": out / "runs", "gen": out / "gen", "reports": out / "reports"}


def fill(cmd: list[str], out: Path, steps: int) -> list[str]:
    p = paths(out)
    return [c.format(data=p["data"], runs=p["runs"], steps=steps) for c in cmd]


def calogen(args: list[str], threads: int | None = None) -> float:
    """Run ``calogen args`` (with ``threads`` torch threads); returns its CPU minutes."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$ calogen " + shlex.join(args), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "calogen", *args], check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / 60.0


def model_dir(out: Path, row: str) -> Path:
    return paths(out)["runs"] / row / "best"


def stage_data(out: Path) -> None:
    from calogen.data.showerset import ShowerSet
    from calogen.data.split import grouped_split, write_rows

    p = paths(out)
    if not p["data"].exists():
        calogen(["simulate", "zn", "--n", str(N_EVENTS), "--seed", str(SEED),
                 "--out", str(p["data"]), "--workers", "2"])
    if not p["test"].exists():
        with ShowerSet.open(p["data"]) as ss:
            split = grouped_split(ss.condition_ids(), (0.8, 0.1, 0.1), seed=0)
        write_rows(p["data"], split["test"], p["test"])
    print(f"data: {p['data']}  test split: {p['test']}")


def stage_train(out: Path, rows: list[str], steps: int) -> None:
    for row in rows:
        t0 = time.perf_counter()
        cpu = sum(calogen(fill(cmd, out, steps), threads=1) for cmd in ROWS[row])
        wall = (time.perf_counter() - t0) / 60
        record = paths(out)["runs"] / row / "train_cpu.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"cpu_minutes": cpu, "wall_minutes": wall}))
        print(f"{row}: trained in {cpu:.1f} CPU minutes ({wall:.1f} min wall, 1 thread) -> "
              f"{record}", flush=True)


def stage_evaluate(out: Path, rows: list[str], seeds: int) -> None:
    p = paths(out)
    for row in rows:
        gen = p["gen"] / f"{row}.h5"
        p["gen"].mkdir(parents=True, exist_ok=True)
        calogen(["generate", "--model", str(model_dir(out, row)), "--conditions", str(p["test"]),
                 "--out", str(gen), "--overwrite", "--no-progress", *SAMPLING.get(row, [])])
        calogen(["evaluate", "--reference", str(p["test"]), "--generated", str(gen),
                 "--out", str(p["reports"] / row), "--seeds", str(seeds), "--no-progress"])


def speed_rows(model: Path, conditions: Path, workdir: Path) -> list[dict]:
    """The timing grid of one model (:func:`calogen.pipelines.model_timing.speed_grid`)."""
    from calogen.pipelines.model_timing import speed_grid

    return [r.to_dict() for r in speed_grid(model, conditions, workdir=workdir, repeats=3)]


def stage_speed(out: Path, rows: list[str]) -> None:
    p = paths(out)
    for row in rows:
        (out / "speed_tmp").mkdir(exist_ok=True)
        grid = speed_rows(model_dir(out, row), p["test"], out / "speed_tmp")
        (p["reports"] / row / "speed.json").write_text(json.dumps(grid, indent=1))
        print(f"{row}: {len(grid)} timings -> {p['reports'] / row / 'speed.json'}", flush=True)


def write_sidecars(out: Path, rows: list[str]) -> None:
    """``timing.json`` beside each report (read by ``calogen compare``): CPU minutes of
    training (incl. the row it is built on), parameters, and ms per response of
    ``model.sample`` (float32, batch 1000, 1 thread) when the speed stage ran."""
    from calogen.models.io import load_model
    from calogen.report.compare import write_timing

    p = paths(out)

    def cpu(row: str) -> float:
        f = p["runs"] / row / "train_cpu.json"
        own = json.loads(f.read_text())["cpu_minutes"] if f.exists() else 0.0
        return own + (cpu(BUILT_ON[row]) if row in BUILT_ON else 0.0)

    for row in rows:
        report = p["reports"] / row
        if not report.exists():
            continue
        model = load_model(model_dir(out, row))
        params = sum(t.numel() for t in model.parameters())
        ms = None
        f = report / "speed.json"
        if f.exists():
            hit = [r for r in json.loads(f.read_text())
                   if (r["path"], r["precision"], r["batch"], r["threads"])
                   == ("sample", "float32", 1000, 1)]
            ms = float(hit[0]["ms_per_response"]) if hit else None
        write_timing(report, ms_per_response=ms, batch=1000 if ms else None,
                     threads=1 if ms else None, parameters=params,
                     training_minutes=round(cpu(row), 2),
                     note="CPU minutes of training on one thread; ms: model.sample, "
                          "float32, batch 1000, 1 thread")


def stage_table(out: Path, rows: list[str]) -> None:
    p = paths(out)
    write_sidecars(out, rows)
    reports = [str(p["reports"] / r) for r in rows if (p["reports"] / r).exists()]
    labels = [x for r in rows if (p["reports"] / r).exists() for x in ("--label", r)]
    calogen(["compare", *reports, *labels, "--out", str(out / "board"),
             "--markdown", str(out / "board" / "frontier.md")])
    for row in rows:
        f = p["reports"] / row / "speed.json"
        if not f.exists():
            continue
        grid = json.loads(f.read_text())
        print(f"\n{row}: ms per response, mean +- std (path, precision; batch x threads)")
        keys = sorted({(r["batch"], r["threads"]) for r in grid})
        print(f"{'path':9s} {'precision':9s} " + " ".join(f"{f'b{b}/{t}t':>15s}"
                                                         for b, t in keys))
        for path, prec in dict.fromkeys((r["path"], r["precision"]) for r in grid):
            cells = {(r["batch"], r["threads"]): r for r in grid
                     if (r["path"], r["precision"]) == (path, prec)}
            print(f"{path:9s} {prec:9s} " + " ".join(
                f"{cells[k]['ms_per_response']:8.4f}+-{cells[k]['ms_std']:<6.4f}" if k in cells
                else f"{'-':>15s}" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser(description="The ZDC frontier: fidelity against speed on ZN.")
    ap.add_argument("--stage", choices=("data", "train", "evaluate", "speed", "table", "all"),
                    default="all")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--print-commands", action="store_true")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "zdc_frontier")
    args = ap.parse_args()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if args.print_commands:
        for row in args.rows:
            for cmd in ROWS.get(row, []):
                print(f"{row}: calogen " + shlex.join(fill(cmd, out, args.steps)))
            if row in SAMPLING:
                print(f"{row}: calogen generate ... " + shlex.join(SAMPLING[row]))
        return
    if args.stage in ("data", "all"):
        stage_data(out)
    if args.stage in ("train", "all"):
        stage_train(out, args.rows, args.steps)
    if args.stage in ("evaluate", "all"):
        stage_evaluate(out, args.rows, args.seeds)
    if args.stage in ("speed", "all"):
        stage_speed(out, args.rows)
    if args.stage in ("table", "all"):
        stage_table(out, args.rows)
    print(f"outputs: {out.resolve()}")


if __name__ == "__main__":
    main()
