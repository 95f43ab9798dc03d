"""Peak memory and throughput of ``calogen import-calochallenge`` on a DS3-shaped file.

    nice python benchmarks/calochallenge_io.py              # 50k showers, ~8 GB source file
    python benchmarks/calochallenge_io.py --smoke           # 200 showers, seconds
    python benchmarks/calochallenge_io.py --n 5000 --dir /scratch

A simulated CaloChallenge dataset-3 file (40 500 voxels, float32, uncompressed: 162 kB per
shower; about 30 % of the voxels non-zero, exponential energies; log-uniform incident energies
1 GeV - 1 TeV) is written block by block to ``--dir``, then imported by the ``calogen`` command
in a child process. Reported: the child's peak resident memory (``ru_maxrss`` of
``RUSAGE_CHILDREN``) and, for scale, the child's resident memory once Python and calogen are
imported; wall time and throughput of the import; file sizes. The first and last showers of
the ShowerSet are compared with the source. Both files are deleted at the end (``--keep``
keeps them).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

N_VOXELS_DS3 = 40_500
"""Voxels of CaloChallenge dataset 3 (binning_dataset_3.xml)."""

_CHILD = """
import json, resource, sys, time
from calogen.cli.main import app
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
app(sys.argv[1:], standalone_mode=False)
print(json.dumps({"baseline_kib": base, "seconds": time.perf_counter() - t0}), file=sys.stderr)
"""


def write_source(path: Path, n: int, seed: int, block: int = 256) -> float:
    """Write a DS3-shaped CaloChallenge file of ``n`` showers; returns seconds taken."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.create_dataset("incident_energies",
                         data=(10.0 ** rng.uniform(3.0, 6.0, size=(n, 1))).astype(np.float32))
        showers = f.create_dataset("showers", shape=(n, N_VOXELS_DS3), dtype=np.float32)
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            u = rng.random((hi - lo, N_VOXELS_DS3), dtype=np.float32)
            hit = u < 0.3
            x = np.zeros_like(u)
            x[hit] = -np.log1p(-u[hit] / np.float32(0.3)) * np.float32(5.0)
            showers[lo:hi] = x
    return time.perf_counter() - t0


def run_import(src: Path, out: Path) -> tuple[float, float, int, int, str]:
    """Import ``src`` in a child process: (wall seconds, seconds inside the command, peak RSS
    KiB, RSS KiB after the imports, what the command printed)."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _CHILD, "import-calochallenge", str(src),
                          "--dataset", "3", "--out", str(out)],
                         capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"import failed ({res.returncode}):\n{res.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(res.stderr.strip().splitlines()[-1])
    return seconds, report["seconds"], peak, report["baseline_kib"], res.stdout.strip()


def check_output(src: Path, out: Path, n: int) -> None:
    """The ShowerSet holds ``n`` showers whose first and last rows equal the source's."""
    from calogen.data import ShowerSet

    with ShowerSet(out) as ss, h5py.File(src, "r") as f:
        assert len(ss) == n, (len(ss), n)
        for row in (0, n - 1):
            assert ss.read(row, row + 1).showers.tobytes() == f["showers"][row:row + 1].tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="showers in the source file")
    parser.add_argument("--smoke", action="store_true", help="200 showers (seconds)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the files go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    n = 200 if args.smoke else args.n
    src = args.dir / f"calogen_bench_ds3_{n}.hdf5"
    out = args.dir / f"calogen_bench_ds3_{n}.h5"
    try:
        print(f"writing {n} DS3-shaped showers to {src} ...", flush=True)
        t_write = write_source(src, n, args.seed)
        seconds, inside, peak, base, said = run_import(src, out)
        check_output(src, out, n)
        src_gb, out_gb = src.stat().st_size / 1e9, out.stat().st_size / 1e9
        mb = n * N_VOXELS_DS3 * 4 / 1e6
        rows = [
            ("showers (DS3 shape, float32)", f"{n}"),
            ("source file (uncompressed)", f"{src_gb:.2f} GB (written in {t_write:.0f} s)"),
            ("ShowerSet written (gzip 1 + shuffle)", f"{out_gb:.2f} GB"),
            ("import wall time (child process)", f"{seconds:.1f} s"),
            ("import time inside the command", f"{inside:.1f} s"),
            ("import throughput (inside)", f"{n / inside:.0f} showers/s, "
             f"{mb / inside:.0f} MB/s of float32 showers"),
            ("peak RSS of the import (child)", f"{peak / 1024:.0f} MiB"),
            ("RSS after imports, before work", f"{base / 1024:.0f} MiB"),
        ]
        width = max(len(k) for k, _ in rows)
        print(said)
        print(f"{'quantity':<{width}}  value")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    finally:
        if not args.keep:
            for p in (src, out):
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
