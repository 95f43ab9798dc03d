"""The no-training baselines through the full evaluation: the first rows of every comparison.

    python benchmarks/baselines.py            # 20k reference (repeats 2) vs each baseline
    python benchmarks/baselines.py --smoke    # 2k, seconds

Reference: ZN, seed 1, each particle simulated twice (so paired MAE and the diversity at
identical conditions have a floor). Training set for the baselines: seed 2. Each baseline is
generated for the reference's conditions and evaluated with the default settings (5 classifier
seeds); reports go under benchmarks/out/baselines/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.pipelines.baselines import run_baseline
from calogen.pipelines.reference import simulate_to_file
from calogen.report import write_report

ROWS = {
    "channel Wasserstein (mean of 5 channels)": "chW1 [ph]",
    "channel MAE paired by condition": "MAE [ph]",
    "diversity at identical conditions (rel. spread of photon sum)": "diversity",
    "classifier AUC (low-level)": "AUC low",
    "classifier AUC (high-level)": "AUC high",
    "FPD (observables) x1e3": "FPDx1e3",
}


def main() -> None:
    ap = argparse.ArgumentParser(description="Baselines through calogen evaluate.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out" / "baselines")
    args = ap.parse_args()
    n = 2_000 if args.smoke else args.n
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    ref = simulate_to_file(out / f"ref_{n}.h5", n=n, seed=1, repeats=2, workers=2,
                           overwrite=True).path
    train = simulate_to_file(out / f"train_{n}.h5", n=2 * n, seed=2, workers=2,
                             overwrite=True).path
    results = {}
    for name in ("shuffled", "nearest", "binned-mean"):
        gen = run_baseline(name, train, ref, out / f"{name}_{n}.h5", overwrite=True)
        t0 = time.perf_counter()
        res = evaluate(ref, gen, config=EvaluationConfig(progress=False))
        write_report(res, out / f"report_{name}_{n}")
        results[name] = ({r.name: r for r in res.summary}, time.perf_counter() - t0)

    print(f"\nZN reference {n} events (repeats 2) vs baselines; value / floor (p)")
    print(f"{'baseline':12s}" + "".join(f"{v:>22s}" for v in ROWS.values()) + f"{'eval s':>8s}")
    for name, (rows, secs) in results.items():
        cells = []
        for key in ROWS:
            r = rows[key]
            v = "-" if r.value is None else f"{r.value:.3g}"
            f = "-" if r.floor is None else f"{r.floor:.3g}"
            p = "" if r.p_value is None else f" ({r.p_value:.2f})"
            cells.append(f"{v} / {f}{p}")
        print(f"{name:12s}" + "".join(f"{c:>22s}" for c in cells) + f"{secs:8.0f}")
    print(f"reports: {out.resolve()}/report_<baseline>_{n}/report.html")


if __name__ == "__main__":
    main()
