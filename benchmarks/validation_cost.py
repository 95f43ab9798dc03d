"""Cost of content validation: streaming a 300k-event ZN ShowerSet with and without the check.

    python benchmarks/validation_cost.py                 # 300k events (file made once, cached)
    python benchmarks/validation_cost.py --n 30000       # smaller

The file is made once under benchmarks/out/ (``--out-dir``): ``--base`` events are simulated
and tiled (with fresh condition ids) up to ``--n``, because simulating 300k ZN responses takes
minutes on a shared 2-core machine; the check costs the same on tiled data. Timings are
warm-cache (one untimed pass first), the minimum of ``--repeats`` passes, alternating the two
modes. "check only" is the time spent inside :meth:`ContentCheck.batch` during the checked
pass; the float32 row times the check of each batch cast to float32 (NaN/inf, sign and, with
counts, integrality), the path taken by generated float showers.

Target (issue 12): validation <= 10 % of the read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from calogen.data.showerset import ShowerSet, ShowerSetWriter
from calogen.data.validation import ContentCheck, batch_events
from calogen.pipelines.reference import simulate_to_file


def make_file(path: Path, n: int, base: int, seed: int) -> Path:
    """Simulate ``base`` ZN events and tile them to ``n`` events (cached at ``path``)."""
    if path.exists():
        with ShowerSet.open(path) as ss:
            if len(ss) == n:
                return path
    small = path.with_name(f"{path.stem}.base{base}.h5")
    if not small.exists():
        simulate_to_file(small, n=base, seed=seed, progress=False)
    with ShowerSet.open(small) as src:
        m = src.meta
        b = src.read()
        with ShowerSetWriter(path, shower_shape=m.shower_shape, detector=m.detector,
                             geometry=m.geometry, condition_columns=m.condition_columns,
                             condition_units=m.condition_units,
                             producer={**m.producer, "note": f"{base} events tiled to {n}"},
                             shower_dtype=m.shower_dtype, overwrite=True) as w:
            done, tile = 0, 0
            id_step = int(b.condition_id.max()) + 1
            while done < n:
                k = min(len(b), n - done)
                w.append(b.showers[:k], b.conditions[:k], b.pdg[:k],
                         b.condition_id[:k] + tile * id_step)
                done += k
                tile += 1
    return path


def read_pass(ss: ShowerSet, size: int, check: ContentCheck | None) -> tuple[float, float]:
    """Seconds for one streaming pass, and the part spent checking."""
    t0 = time.perf_counter()
    in_check = 0.0
    offset = 0
    for batch in ss.iter_batches(size):
        if check is not None:
            c0 = time.perf_counter()
            check.batch(batch, offset)
            in_check += time.perf_counter() - c0
        offset += len(batch)
    return time.perf_counter() - t0, in_check


def float_check(ss: ShowerSet, size: int, counts: bool) -> float:
    """Seconds inside the check when every batch is cast to float32 first."""
    check = ContentCheck(ss.path, ss.meta, counts=counts)
    total, offset = 0.0, 0
    for batch in ss.iter_batches(size):
        showers = batch.showers.astype(np.float32)
        c0 = time.perf_counter()
        check.showers(showers, offset)
        check.conditions(batch.conditions, offset)
        total += time.perf_counter() - c0
        offset += len(batch)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--base", type=int, default=30_000, help="events simulated, then tiled")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = make_file(args.out_dir / f"validation_zn_{args.n}.h5", args.n, args.base, seed=12)

    with ShowerSet.open(path) as ss:
        size = batch_events(ss.meta)
        read_pass(ss, size, None)  # warm the page cache
        plain, checked, inside = [], [], []
        for _ in range(args.repeats):
            plain.append(read_pass(ss, size, None)[0])
            t, c = read_pass(ss, size, ContentCheck(ss.path, ss.meta))
            checked.append(t)
            inside.append(c)
        f_plain = float_check(ss, size, counts=False)
        f_counts = float_check(ss, size, counts=True)

    read, both, chk = min(plain), min(checked), min(inside)
    print(f"{path}: {args.n} ZN events ({args.base} simulated, tiled), batches of {size} "
          f"events, best of {args.repeats}")
    print(f"{'pass':44s} {'s':>8s} {'ev/s':>10s} {'vs read':>8s}")
    print(f"{'read (iter_batches)':44s} {read:8.2f} {args.n / read:10.0f} {'100 %':>8s}")
    print(f"{'read + validate (int32 showers)':44s} {both:8.2f} {args.n / both:10.0f} "
          f"{100 * both / read:6.1f} %")
    print(f"{'  of which check only (int32)':44s} {chk:8.3f} {'':10s} {100 * chk / read:6.1f} %")
    print(f"{'  check only, showers as float32':44s} {f_plain:8.3f} {'':10s} "
          f"{100 * f_plain / read:6.1f} %")
    print(f"{'  check only, float32 + integral counts':44s} {f_counts:8.3f} {'':10s} "
          f"{100 * f_counts / read:6.1f} %")


if __name__ == "__main__":
    main()
