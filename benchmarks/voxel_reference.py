"""The parametrised voxel engine against the Geant4 engine on the CaloChallenge DS2 detector.

    python benchmarks/voxel_reference.py --geant4 g4_ds2.h5     # compare with an existing file
    python benchmarks/voxel_reference.py --n 208                # runs Geant4 first (minutes)

The parametrised engine is run on the Geant4 file's own incident energies (same electrons,
same energies), so every difference is the engine's. Printed per energy band: E_vis / E_inc
(mean and relative spread sigma/E), the energy-weighted mean depth (layers) and its slope per
ln E, the mean energy-weighted radius (mm), the fraction of non-zero voxels, and the mean
longitudinal profile (energy fraction in groups of layers). Also the parametrised engine's
speed (showers per CPU second, one process) on DS2 and DS1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from calogen.data.showerset import ShowerSet
from calogen.physics.voxel_readout import simulate_voxels, voxel_engine

BANDS = ((1.0, 10.0), (10.0, 100.0), (100.0, 1000.0))


def features(showers: NDArray[np.float32], energy_gev: NDArray[np.float64],
             detector: str = "ds2") -> dict[str, NDArray[np.float64]]:
    """Per-shower observables of DS2-like showers."""
    config, _ = voxel_engine(detector)
    geometry = config.geometry
    x = np.asarray(showers, dtype=np.float64)
    le = geometry.layer_energies(x)
    total = le.sum(axis=1)
    depth = (le * np.arange(le.shape[1])).sum(axis=1) / np.maximum(total, 1e-12)
    r, _ = geometry.voxel_centres()
    radius = (x * r).sum(axis=1) / np.maximum(total, 1e-12)
    core = (x * (r < geometry.layers[0].r_edges_mm[1])).sum(axis=1) / np.maximum(total, 1e-12)
    n_hit = np.maximum((x > 0).sum(axis=1), 1)
    return {"ratio": total / (energy_gev * 1e3), "depth": depth, "radius": radius,
            "core": core, "voxel_mev": total / n_hit,
            "nonzero": (x > 0).mean(axis=1), "profile": le / np.maximum(total, 1e-12)[:, None]}


def table(g4: dict, par: dict, energy: NDArray[np.float64]) -> list[str]:
    rows = [f"{'observable':34s} {'band GeV':>10s} {'Geant4':>10s} {'parametrised':>13s}"]

    def add(name: str, band: str, a: float, b: float, fmt: str = "{:.4f}") -> None:
        rows.append(f"{name:34s} {band:>10s} {fmt.format(a):>10s} {fmt.format(b):>13s}")

    for lo, hi in BANDS:
        m = (energy >= lo) & (energy < hi)
        if m.sum() < 3:
            continue
        band = f"{lo:g}-{hi:g}"
        add("E_vis/E_inc mean", band, g4["ratio"][m].mean(), par["ratio"][m].mean())
        add("sigma/E of E_vis (relative)", band, g4["ratio"][m].std() / g4["ratio"][m].mean(),
            par["ratio"][m].std() / par["ratio"][m].mean())
        add("mean depth (layers)", band, g4["depth"][m].mean(), par["depth"][m].mean(), "{:.2f}")
        add("sd of depth (layers)", band, g4["depth"][m].std(), par["depth"][m].std(), "{:.2f}")
        add("energy-weighted radius (mm)", band, g4["radius"][m].mean(), par["radius"][m].mean(),
            "{:.2f}")
        add("energy fraction in the first ring", band, g4["core"][m].mean(),
            par["core"][m].mean())
        add("mean non-zero voxel energy (MeV)", band, g4["voxel_mev"][m].mean(),
            par["voxel_mev"][m].mean(), "{:.3f}")
        add("non-zero voxel fraction", band, g4["nonzero"][m].mean(), par["nonzero"][m].mean())
    ln_e = np.log(energy)
    add("depth slope per ln E (layers)", "all", np.polyfit(ln_e, g4["depth"], 1)[0],
        np.polyfit(ln_e, par["depth"], 1)[0], "{:.3f}")
    p_g4, p_par = g4["profile"].mean(axis=0), par["profile"].mean(axis=0)
    for k in range(0, len(p_g4), 5):
        add(f"profile: layers {k}-{k + 4}", "all", p_g4[k:k + 5].sum(), p_par[k:k + 5].sum())
    return rows


def speed(detector: str, n: int) -> float:
    """Showers per CPU second of the parametrised engine (its default gun)."""
    config, gun = voxel_engine(detector)
    rng = np.random.default_rng(0)
    energy = gun.draw(rng, n)
    t0 = time.process_time()
    simulate_voxels(np.full(n, gun.pdg), energy, config, rng)
    return n / (time.process_time() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geant4", type=Path,
                        help="an existing Geant4 ds2 ShowerSet (or a folder of them)")
    parser.add_argument("--n", type=int, default=208, help="Geant4 showers to simulate")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/voxel_reference"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.geant4
    if path is None:
        from calogen.pipelines.geant4_reference import simulate_geant4_to_file

        path = args.out / "geant4_ds2.h5"
        if not path.exists():
            simulate_geant4_to_file(path, detector="ds2", n=args.n, seed=args.seed)
    files = sorted(path.glob("*.h5")) if path.is_dir() else [path]
    parts = []
    for f in files:  # a folder: the shard files of a stopped Geant4 run
        with ShowerSet.open(f) as ss:
            parts.append(ss.read())
    showers = np.concatenate([b.showers for b in parts])
    pdg = np.concatenate([b.pdg for b in parts])
    energy = np.concatenate([b.conditions[:, 0] for b in parts]).astype(np.float64)
    config, _ = voxel_engine("ds2")
    t0 = time.process_time()
    par = simulate_voxels(pdg, energy, config, np.random.default_rng(args.seed))
    cpu = time.process_time() - t0
    rows = table(features(showers, energy), features(par, energy), energy)
    rows.append(f"{len(energy)} electrons of the Geant4 file ({path}), E {energy.min():.1f} - "
                f"{energy.max():.1f} GeV; parametrised on the same energies in {cpu:.2f} CPU s")
    rows.append(f"parametrised speed (one process, default guns): ds2 {speed('ds2', 400):.0f} "
                f"showers/s, ds1-photons {speed('ds1-photons', 1000):.0f}/s, ds1-pions "
                f"{speed('ds1-pions', 1000):.0f}/s, ds3 {speed('ds3', 100):.0f}/s")
    text = "\n".join(rows)
    print(text)
    (args.out / "table.txt").write_text(text + "\n")
    print(f"wrote {(args.out / 'table.txt').resolve()}")


if __name__ == "__main__":
    main()
