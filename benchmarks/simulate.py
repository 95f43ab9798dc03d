"""Benchmark of the reference simulator: responses/s for ZN and ZP with 1 and 2 workers, and
the wall time of a full ALICE-sized ZN set (300,000 responses with >= 10 photons) on disk.

    python benchmarks/simulate.py            # full: rates + 300k ZN set (a few minutes)
    python benchmarks/simulate.py --smoke    # seconds

Writes its files under benchmarks/out/ (or --out-dir) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from calogen.data.showerset import ShowerSet
from calogen.pipelines.reference import simulate_to_file


def run(out: Path, detector: str, n: int, workers: int, seed: int) -> tuple[float, int, int]:
    """Simulate ``n`` responses; returns (seconds, written, simulated)."""
    t0 = time.perf_counter()
    rep = simulate_to_file(out, detector=detector, n=n, seed=seed, workers=workers,
                           overwrite=True, progress=False)
    return time.perf_counter() - t0, rep.n_written, rep.n_simulated


def main() -> None:
    ap = argparse.ArgumentParser(description="Reference simulator throughput.")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--full-n", type=int, default=300_000)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    n_rate = 2_000 if args.smoke else 30_000
    full_n = 3_000 if args.smoke else args.full_n

    rows = []
    for detector in ("zn", "zp"):
        for workers in (1, 2):
            dt, kept, sim = run(args.out_dir / f"rate_{detector}_{workers}.h5", detector,
                                n_rate, workers, seed=1)
            rows.append((detector.upper(), workers, kept, sim, dt, kept / dt))
    dt_full, kept_full, sim_full = run(args.out_dir / "zn_full.h5", "zn", full_n, 2, seed=7)
    with ShowerSet.open(args.out_dir / "zn_full.h5") as ss:
        assert len(ss) == full_n

    print(f"{'detector':8s} {'workers':>7s} {'kept':>8s} {'simulated':>10s} {'s':>8s} "
          f"{'resp/s':>9s}")
    for det, w, kept, sim, dt, rate in rows:
        print(f"{det:8s} {w:7d} {kept:8d} {sim:10d} {dt:8.2f} {rate:9.0f}")
    r1 = next(r[5] for r in rows if r[0] == "ZN" and r[1] == 1)
    r2 = next(r[5] for r in rows if r[0] == "ZN" and r[1] == 2)
    print(f"ZN speed-up 2 workers / 1 worker: {r2 / r1:.2f}x (same process, same machine)")
    print(f"ZN {kept_full} responses ({sim_full} simulated) with 2 workers: {dt_full:.1f} s "
          f"({dt_full / 60:.2f} min; budget 10 min) -> {args.out_dir / 'zn_full.h5'}")


if __name__ == "__main__":
    main()
