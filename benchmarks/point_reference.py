"""Compare the parametrised point engine with the Geant4 engine on ILD-like photon clouds.

    python benchmarks/point_reference.py --smoke                     # 32 photons, Geant4 run here
    python benchmarks/point_reference.py --n 200                     # 200 photons, Geant4 run here
    python benchmarks/point_reference.py --geant4 A.h5 [B.h5 ...]    # reuse Geant4 ild sets

Both engines shoot photons at normal incidence with the same incident energies (the Geant4
set's conditions, or ``--n`` energies uniform in 10-90 GeV drawn from ``--seed``). Per engine:
visible energy / E_inc (MeV per GeV) and its relative spread, points per shower and per GeV,
cells above 0.1 MeV (half a MIP) after projection onto the 5 x 5 mm grid per GeV, the
energy-weighted mean depth and radius, per-point energy quantiles, and the time per shower on
one thread (Geant4: timed on ``--time-geant4`` showers when a set is reused). Outputs:
``benchmarks/out/point_reference/<tag>.json`` and ``<tag>.txt`` (the printed table).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from calogen.atomic import write_text_atomic  # noqa: E402
from calogen.data.showerset import ShowerSet  # noqa: E402
from calogen.geometry.points import ild_like_ecal  # noqa: E402
from calogen.physics.point_readout import point_engine, simulate_points  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "point_reference"
HALF_MIP_MEV = 0.1
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def observables(points: NDArray[np.float64], counts: NDArray[np.int64],
                energy_gev: NDArray[np.float64]) -> dict[str, Any]:
    """The table's numbers for ragged clouds ``(P, 4)`` mm / MeV of showers of ``energy_gev``."""
    n = len(counts)
    shower = np.repeat(np.arange(n), counts)
    vis = np.bincount(shower, weights=points[:, 3], minlength=n)
    ratio = vis / energy_gev
    cells = ild_like_ecal().project(points, counts, threshold_mev=HALF_MIP_MEV)
    depth = np.bincount(shower, weights=points[:, 3] * points[:, 2], minlength=n) / vis
    r = np.hypot(points[:, 0], points[:, 1])
    radius = np.bincount(shower, weights=points[:, 3] * r, minlength=n) / vis
    return {"visible_mev_per_gev": float(ratio.mean()),
            "visible_rel_spread": float(ratio.std() / ratio.mean()),
            "points_per_shower": float(counts.mean()),
            "points_per_gev": float((counts / energy_gev).mean()),
            "cells_per_gev": float(((cells > 0).sum(axis=(1, 2, 3)) / energy_gev).mean()),
            "mean_depth_mm": float(depth.mean()), "mean_radius_mm": float(radius.mean()),
            "point_energy_quantiles_mev": [float(q) for q in np.quantile(points[:, 3],
                                                                         QUANTILES)]}


def read_sets(paths: list[Path], n: int) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                  NDArray[np.float64]]:
    """The first ``n`` showers of the ShowerSets ``paths``, one after the other."""
    points, counts, energy = [], [], []
    left = n
    for path in paths:
        with ShowerSet.open(path) as ss:
            batch = ss.read(0, min(left, len(ss)))
        if batch.counts is None:
            raise ValueError(f"{path}: not a point-cloud ShowerSet")
        points.append(batch.showers.astype(np.float64))
        counts.append(batch.counts.astype(np.int64))
        energy.append(batch.conditions[:, 0].astype(np.float64))
        left -= len(batch)
        if left <= 0:
            break
    return np.concatenate(points), np.concatenate(counts), np.concatenate(energy)


def run_geant4(energy_gev: NDArray[np.float64], seed: int
               ) -> tuple[NDArray[np.float64], NDArray[np.int64], float]:
    from calogen.physics import geant4

    geant4.run_points("ild", 22, energy_gev[:1] * 1e3, seed + 1)  # build and warm up
    t0 = time.perf_counter()
    p, c = geant4.run_points("ild", 22, energy_gev * 1e3, seed)
    return p.astype(np.float64), c, (time.perf_counter() - t0) / len(energy_gev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--geant4", type=Path, nargs="+",
                    help="Geant4 ild ShowerSets (read in order) to compare against")
    ap.add_argument("--n", type=int, default=None, help="photons (default 200; smoke 32)")
    ap.add_argument("--time-geant4", type=int, default=8,
                    help="showers the Geant4 engine is timed on when a set is reused")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    n = args.n or (32 if args.smoke else 200)
    tag = args.tag or ("smoke" if args.smoke else "default")
    if args.geant4:
        g_points, g_counts, energy = read_sets(args.geant4, n)
        timing_e = energy[:args.time_geant4]
        _, _, g_time = run_geant4(timing_e, args.seed)
        source = f"{len(args.geant4)} file(s) from {args.geant4[0].parent}"
    else:
        energy = np.random.default_rng(args.seed).uniform(10.0, 90.0, n)
        g_points, g_counts, g_time = run_geant4(energy, args.seed)
        source = f"run here, seed {args.seed}"
    config = point_engine("ild")
    simulate_points(np.full(2, 22), energy[:2], config, np.random.default_rng(0))  # warm up
    t0 = time.perf_counter()
    p_points, p_counts = simulate_points(np.full(len(energy), 22), energy, config,
                                         np.random.default_rng(args.seed))
    p_time = (time.perf_counter() - t0) / len(energy)
    rows = {"geant4": {**observables(g_points, g_counts, energy), "ms_per_shower":
                       1e3 * g_time},
            "parametrised": {**observables(p_points.astype(np.float64), p_counts, energy),
                             "ms_per_shower": 1e3 * p_time}}
    lines = [f"ILD-like photons, {len(energy)} showers of {energy.min():.1f}-{energy.max():.1f} "
             f"GeV (Geant4: {source}); one thread",
             f"{'observable':<34}{'Geant4':>14}{'parametrised':>14}"]
    for key in rows["geant4"]:
        g, p = rows["geant4"][key], rows["parametrised"][key]
        if isinstance(g, list):
            for q, gv, pv in zip(QUANTILES, g, p, strict=True):
                lines.append(f"{'point E q' + str(q) + ' [MeV]':<34}{gv:>14.3f}{pv:>14.3f}")
        else:
            lines.append(f"{key:<34}{g:>14.3f}{p:>14.3f}")
    speedup = rows["geant4"]["ms_per_shower"] / rows["parametrised"]["ms_per_shower"]
    lines.append(f"{'speed-up (Geant4 / parametrised)':<34}{speedup:>28.0f}")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    write_text_atomic(OUT / f"{tag}.json", json.dumps(
        {"n": len(energy), "geant4_source": source, "rows": rows}, indent=2))
    write_text_atomic(OUT / f"{tag}.txt", table + "\n")
    print(f"wrote {OUT / (tag + '.json')} and {OUT / (tag + '.txt')}")


if __name__ == "__main__":
    main()
