"""Validate the Geant4 engine on the CaloChallenge DS2 (Par04) detector against the PDG
parametrisations, and time it.

    python benchmarks/geant4_validation.py --smoke          # minutes: a few energies, few events
    python benchmarks/geant4_validation.py                  # the full table (about an hour)

For electrons and photons at energies from 1 to 500 GeV (1 thread per run):

* longitudinal profile: a Gamma fit by moments of the layer energies in radiation lengths
  (t = depth / X0 of the W/Si mix); shower maximum t_max = (a - 1) / b against ln E, with the PDG
  expectation t_max = ln(E / E_c) + C, C = -0.5 (e), +0.5 (gamma) (PDG Review, "Passage of
  particles through matter", Sec. 34.5);
* transverse: radii holding 90 % and 95 % of the scored energy against the Moliere radius R_M of the
  mix (PDG: ~90 % within R_M, ~95 % within 2 R_M);
* sampling fraction E_Si / E_inc, its linearity in E, and the resolution sigma/E fitted as
  a / sqrt(E) (+) b;
* CPU seconds per shower against energy (1 thread);
* the Dask speed-up of 1 vs 2 workers on the same shards, in one run.

Material constants (PDG "Atomic and nuclear properties"): W X0 = 6.76 g/cm2, E_c(e-) = 7.97 MeV;
Si X0 = 21.82 g/cm2, E_c(e-) = 40.19 MeV; E_s = 21.2052 MeV. The mix of 1.4 mm W (19.3 g/cm3)
and 0.3 mm Si (2.329 g/cm3) gives X0 = 4.22 mm, R_M = 10.9 mm, E_c = 8.2 MeV (computed below).
Outputs under benchmarks/out/geant4_validation/ (a JSON of every number and the printed table).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Layered:
    """A sampling mix of absorber and sensitive layers (thickness mm, density g/cm3)."""

    absorber_mm: float
    absorber_density: float
    absorber_x0_gcm2: float
    absorber_ec_mev: float
    sensitive_mm: float
    sensitive_density: float
    sensitive_x0_gcm2: float
    sensitive_ec_mev: float

    def _weights(self) -> tuple[float, float, float]:
        ma = self.absorber_mm / 10 * self.absorber_density
        ms = self.sensitive_mm / 10 * self.sensitive_density
        return ma / (ma + ms), ms / (ma + ms), (ma + ms) / ((self.absorber_mm
                                                            + self.sensitive_mm) / 10)

    @property
    def x0_mm(self) -> float:
        """Radiation length of the mix, mm (1/X0 = sum w_j / X0_j)."""
        wa, ws, rho = self._weights()
        x0 = 1.0 / (wa / self.absorber_x0_gcm2 + ws / self.sensitive_x0_gcm2)
        return x0 / rho * 10

    @property
    def moliere_mm(self) -> float:
        """Moliere radius of the mix, mm (1/R_M = (1/E_s) sum w_j E_cj / X0_j)."""
        wa, ws, rho = self._weights()
        inv = (wa * self.absorber_ec_mev / self.absorber_x0_gcm2
               + ws * self.sensitive_ec_mev / self.sensitive_x0_gcm2) / 21.2052
        return 1.0 / inv / rho * 10

    @property
    def critical_energy_mev(self) -> float:
        """E_c of the mix, MeV (E_s X0 / R_M)."""
        return 21.2052 * self.x0_mm / self.moliere_mm


PAR04 = Layered(1.4, 19.3, 6.76, 7.97, 0.3, 2.329, 21.82, 40.19)


def gamma_profile_fit(layer_energy: NDArray[np.floating], t_centres: NDArray[np.floating]
                      ) -> tuple[float, float, float]:
    """Gamma fit by moments of a longitudinal profile: ``(a, b, t_max)`` with
    t_max = (a - 1) / b (t in X0)."""
    w = np.asarray(layer_energy, dtype=np.float64)
    t = np.asarray(t_centres, dtype=np.float64)
    mean = float((w * t).sum() / w.sum())
    var = float((w * (t - mean) ** 2).sum() / w.sum())
    a, b = mean ** 2 / var, mean / var
    return a, b, (a - 1) / b


def containment_radius(radial_energy: NDArray[np.floating], r_edges: NDArray[np.floating],
                       fraction: float) -> float:
    """Radius holding ``fraction`` of the energy of a radial histogram (linear within a bin)."""
    cum = np.concatenate([[0.0], np.cumsum(radial_energy)]) / float(np.sum(radial_energy))
    return float(np.interp(fraction, cum, np.asarray(r_edges, dtype=np.float64)))


def resolution_fit(energies_gev: NDArray[np.floating], rel_sigma: NDArray[np.floating]
                   ) -> tuple[float, float]:
    """Least-squares fit of (sigma/E)^2 = a^2 / E + b^2: returns (a, b) (a in sqrt(GeV))."""
    e = np.asarray(energies_gev, dtype=np.float64)
    y = np.asarray(rel_sigma, dtype=np.float64) ** 2
    design = np.stack([1 / e, np.ones_like(e)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return math.sqrt(max(coef[0], 0.0)), math.sqrt(max(coef[1], 0.0))


PARTICLES = {"e-": 11, "gamma": 22}
C_PDG = {"e-": -0.5, "gamma": 0.5}
"""PDG offsets of the shower maximum, t_max = ln(E / E_c) + C."""


def run_point(pdg: int, energy_gev: float, n: int, seed: int) -> dict[str, float]:
    """Simulate ``n`` showers of one particle and energy in DS2 and measure them."""
    from calogen.physics.geant4 import readout_geometry, run_showers, run_totals

    geometry = readout_geometry("ds2")
    energies = np.full(n, energy_gev * 1e3)
    t0 = time.process_time()
    voxels = run_showers("ds2", pdg, energies, seed)
    cpu = (time.process_time() - t0) / n
    totals = run_totals("ds2", pdg, energies, seed)  # same seeds: the same showers, unthresholded
    layers = geometry.layer_energies(voxels).mean(axis=0)
    depth_mm = (np.arange(geometry.n_layers) + 0.5) * 2 * (PAR04.absorber_mm + PAR04.sensitive_mm)
    a, b, t_max = gamma_profile_fit(layers, depth_mm / PAR04.x0_mm)
    layer0 = geometry.layers[0]
    radial = voxels.reshape(n, -1)[:, :geometry.n_voxels]
    r_bins = np.zeros(layer0.n_r)
    for sl in geometry.layer_slices():
        r_bins += radial[:, sl].reshape(n, -1, layer0.n_r).sum(axis=(0, 1))
    edges = np.asarray(layer0.r_edges_mm)
    si = totals[:, 1]
    return {"E_GeV": energy_gev, "n": n, "cpu_s": cpu, "t_max": t_max, "gamma_a": a,
            "gamma_b": b, "r90_mm": containment_radius(r_bins, edges, 0.90),
            "r95_mm": containment_radius(r_bins, edges, 0.95),
            "sampling_fraction": float(si.mean() / (energy_gev * 1e3)),
            "rel_sigma": float(si.std(ddof=1) / si.mean()),
            "contained": float(totals[:, 0].mean() / (energy_gev * 1e3))}


def dask_speedup(n_showers: int, energy_gev: float, seed: int) -> dict[str, float]:
    """Wall time of the same 8 shards of 10 GeV photons on 1 and on 2 local Dask workers."""
    from dask.distributed import Client, LocalCluster

    def shard(k: int) -> float:
        from calogen.physics.geant4 import run_showers

        per = n_showers // 8
        run_showers("ds2", 22, np.full(per, energy_gev * 1e3), seed, first_index=k * per)
        return float(k)

    out: dict[str, float] = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            # The Geant4 set-up of every worker, outside the timing. Not client.run: Geant4's
            # state is per thread, and tasks run in the worker's executor thread.
            addresses = list(client.scheduler_info()["workers"])
            client.gather([client.submit(shard, 100 + i, workers=[a], pure=False)
                           for i, a in enumerate(addresses)])
            t0 = time.perf_counter()
            client.gather(client.map(shard, range(8), pure=False))
            out[f"{workers}_workers_s"] = time.perf_counter() - t0
    out["speedup"] = out["1_workers_s"] / out["2_workers_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--energies", type=float, nargs="+",
                    default=[1, 2, 5, 10, 20, 50, 100, 200, 500], help="GeV")
    ap.add_argument("--events", type=int, default=200, help="showers per point at 10 GeV "
                    "(scaled as 1/sqrt(E/10 GeV), at least 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dask-only", action="store_true", help="only the Dask speed-up")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "geant4_validation")
    args = ap.parse_args()
    energies = [1.0, 4.0, 16.0] if args.smoke else args.energies
    base = 20 if args.smoke else args.events
    print(f"Par04 mix: X0 = {PAR04.x0_mm:.2f} mm, R_M = {PAR04.moliere_mm:.2f} mm, "
          f"E_c = {PAR04.critical_energy_mev:.2f} MeV (Geant4 engine, physics list em, "
          f"cut 0.7 mm, 1 thread)")
    rows: dict[str, list[dict[str, float]]] = {}
    if args.dask_only:
        dask = dask_speedup(80 if args.smoke else 400, 10.0, args.seed)
        print(f"Dask, 10 GeV photons in 8 shards: 1 worker {dask['1_workers_s']:.1f} s, "
              f"2 workers {dask['2_workers_s']:.1f} s, speed-up {dask['speedup']:.2f}")
        return
    for name, pdg in PARTICLES.items():
        rows[name] = []
        for e in energies:
            n = max(20 if not args.smoke else 10, int(base / math.sqrt(max(e, 1.0) / 10)))
            row = run_point(pdg, e, n, args.seed)
            row["t_max_pdg"] = math.log(e * 1e3 / PAR04.critical_energy_mev) + C_PDG[name]
            rows[name].append(row)
            print(f"{name:5s} {e:6.0f} GeV  n={n:4d}  t_max {row['t_max']:5.2f} "
                  f"(PDG {row['t_max_pdg']:5.2f})  r90 {row['r90_mm']:5.1f} mm  "
                  f"r95 {row['r95_mm']:5.1f} mm  Si/E {row['sampling_fraction']:.4f}  "
                  f"sigma/E {row['rel_sigma']:.3f}  contained {row['contained']:.3f}  "
                  f"{row['cpu_s']:.3f} s/shower", flush=True)
    summary: dict[str, object] = {"rows": rows}
    for name, rs in rows.items():
        ln_e = np.log([float(r["E_GeV"]) for r in rs])
        t_max = np.array([float(r["t_max"]) for r in rs])
        slope, offset = np.polyfit(ln_e, t_max, 1)
        sf = np.array([float(r["sampling_fraction"]) for r in rs])
        rel_sigma = np.array([float(r["rel_sigma"]) for r in rs])
        res_a, res_b = resolution_fit(np.exp(ln_e), rel_sigma)
        summary[name] = {"t_max_slope": slope, "t_max_offset": offset,
                         "sampling_fraction_mean": float(sf.mean()),
                         "linearity_max_dev": float(np.max(np.abs(sf / sf.mean() - 1))),
                         "resolution_stochastic": res_a, "resolution_constant": res_b}
        deviation = float(np.max(np.abs(sf / sf.mean() - 1)))
        print(f"{name:5s} t_max slope per ln E {slope:.2f} (PDG 1.00); sampling fraction "
              f"{sf.mean():.4f}, largest deviation from it {deviation:.1%}; "
              f"sigma/E = {res_a:.1%}/sqrt(E) (+) {res_b:.1%}")
    gamma = {float(r["E_GeV"]): float(r["t_max"]) for r in rows["gamma"]}
    electron = {float(r["E_GeV"]): float(r["t_max"]) for r in rows["e-"]}
    shift = float(np.mean([gamma[e] - electron[e] for e in gamma]))
    summary["gamma_minus_electron_t_max"] = shift
    print(f"photons start {shift:.2f} X0 deeper than electrons (PDG: 1.0)")
    dask = dask_speedup(80 if args.smoke else 400, 10.0, args.seed)
    summary["dask"] = dask
    print(f"Dask, 10 GeV photons in 8 shards: 1 worker {dask['1_workers_s']:.1f} s, "
          f"2 workers {dask['2_workers_s']:.1f} s, speed-up {dask['speedup']:.2f}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / ("smoke.json" if args.smoke else "validation.json")
    out.write_text(json.dumps(summary, indent=1, default=float))
    print(f"outputs: {out.resolve()}")


if __name__ == "__main__":
    main()
