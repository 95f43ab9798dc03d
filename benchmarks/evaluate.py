"""Benchmark of ``calogen evaluate``: 100k reference vs 100k generated ZN responses, every
metric (5 classifier seeds), with the time and peak memory of each stage.

    python benchmarks/evaluate.py            # full: 100k vs 100k (budget: 10 min, 8 GB)
    python benchmarks/evaluate.py --smoke    # 3k vs 3k, seconds

Data (not timed against the budget): a reference simulated with seed 11, a training set with
seed 12, and the binned-mean baseline fitted on the training set and generated for the
reference's conditions. Files and the report go under benchmarks/out/evaluate/.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace
from pathlib import Path

from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.pipelines.baselines import run_baseline
from calogen.pipelines.reference import simulate_to_file
from calogen.report import write_report


def main() -> None:
    ap = argparse.ArgumentParser(description="Evaluation time and memory.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out" / "evaluate")
    args = ap.parse_args()
    n = 3_000 if args.smoke else args.n
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    ref = out / f"ref_{n}.h5"
    gen = out / f"binned-mean_{n}.h5"
    if not ref.exists():
        simulate_to_file(ref, n=n, seed=11, workers=2)
    if not gen.exists():
        train = simulate_to_file(out / f"train_{n}.h5", n=n, seed=12, workers=2).path
        run_baseline("binned-mean", train, ref, gen)
    prep = time.perf_counter() - t0

    cfg = EvaluationConfig(classifier=replace(CALOGEN_DEFAULT, n_seeds=args.seeds))
    t1 = time.perf_counter()
    result = evaluate(ref, gen, config=cfg)
    t_eval = time.perf_counter() - t1
    t2 = time.perf_counter()
    paths = write_report(result, out / f"report_{n}")
    t_report = time.perf_counter() - t2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\n{n} reference vs {n} generated ZN responses, {args.seeds} classifier seeds")
    print(f"{'stage':40s} {'seconds':>9s} {'peak RSS so far [MB]':>22s}")
    for stage, rec in result.timing.items():
        print(f"{stage:40s} {rec['seconds']:9.1f} {rec['peak_rss_mb']:22.0f}")
    print(f"{'report (plots + html)':40s} {t_report:9.1f} {peak:22.0f}")
    total = t_eval + t_report
    print(f"{'TOTAL evaluate + report':40s} {total:9.1f}   (budget 600 s; data prep {prep:.0f} s)")
    print(f"peak resident memory {peak / 1024:.2f} GB (budget 8 GB)")
    print("\nsummary (value / floor / p):")
    for row in result.summary:
        p = "-" if row.p_value is None else f"{row.p_value:.3f}"
        v = "-" if row.value is None else f"{row.value:.4g}"
        f = "-" if row.floor is None else f"{row.floor:.4g}"
        print(f"  {row.name:62s} {v:>10s} {f:>10s} {p:>7s}")
    print(f"\nreport: {paths.html.resolve()}")


if __name__ == "__main__":
    main()
