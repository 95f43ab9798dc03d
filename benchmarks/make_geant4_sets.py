"""Write the Geant4 reference sets the CaloChallenge, point-cloud and ZN benchmarks use.

    python benchmarks/make_geant4_sets.py --workers 2            # a few CPU-hours (table below)
    python benchmarks/make_geant4_sets.py --smoke                # seconds: 16 showers each
    python benchmarks/make_geant4_sets.py --sets ds2 ild         # some of them

Sizes are chosen to fit a few CPU-hours on a laptop (CPU per shower from
``benchmarks/geant4_validation.py``: ~17 ms per GeV in DS2, ~9 ms per GeV in the ILD section,
~7.6 ms per GeV for ZN neutrons):

=====  =====================================  =======  =============================
set    particles                              showers  estimated CPU
=====  =====================================  =======  =============================
ds2    e-, log-uniform 1 GeV - 1 TeV            2 000  ~1.4 h (mean 145 GeV)
ds3    e-, log-uniform 1 GeV - 1 TeV              500  ~0.4 h (the same showers' cost)
ild    gamma, uniform 10 - 90 GeV               2 000  ~0.3 h
zn     n, log-uniform 100 GeV - 2.68 TeV          300  ~0.6 h (em+hadronic)
=====  =====================================  =======  =============================

Every set is written with its own seed as a ShowerSet under ``--out-dir`` (default
``benchmarks/out/geant4_sets/``, not committed) by ``calogen simulate --engine geant4``, one
process per set (a process holds one Geant4 set-up); an interrupted run continues with
``--resume``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SETS: dict[str, tuple[int, str, int]] = {
    "ds2": (2000, "em", 2022), "ds3": (500, "em", 2023), "ild": (2000, "em", 2309),
    "zn": (300, "em+hadronic", 2306),
}
"""Set name -> (showers, physics list, seed); the detector and gun are the set's defaults."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="16 showers per set")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "geant4_sets")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        n, physics, seed = SETS[name]
        n = 16 if args.smoke else n
        out = args.out_dir / f"{name}{'_smoke' if args.smoke else ''}.h5"
        command = [sys.executable, "-m", "calogen", "simulate", name, "--engine", "geant4",
                   "--n", str(n), "--physics", physics, "--seed", str(seed), "--workers",
                   str(args.workers), "--out", str(out),
                   "--resume" if args.resume else "--overwrite"]
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
