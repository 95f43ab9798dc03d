"""Compare the parametrised ZN engine with the Geant4 engine, particle by particle.

    python benchmarks/geant4_vs_parametrised.py --smoke        # 15 showers, 3 configurations
    python benchmarks/geant4_vs_parametrised.py                # 100 showers, 6 configurations
    python benchmarks/geant4_vs_parametrised.py --reuse-geant4 --tag trial \\
        --set hadron.subshower_light_factor=0.75               # try a recalibration

Each configuration (e- and gamma 50 GeV, n 100 and 300 GeV, pi+ and p 100 GeV; total energy E)
shoots N particles at the ZN face centre along its axis through both engines: the Geant4 engine
(``em+hadronic`` list, kinetic energy E - m) and the parametrised engine (O2 conditions: vertex
at the origin, momentum along +z, so the particle hits the face centre). Per engine:

* photons per GeV of E (mean photon sum / E) and the relative spread std / mean of the sum,
  against the ALICE O2 figures of ``shared/PHYSICS.md``;
* the Wasserstein-1 distance between the engines' photon sums and between their 5 PMT channel
  sums (:func:`calogen.geometry.channel_sums`, O2 convention; mean over channels), each divided
  by the Geant4 mean, beside the same quantity for two halves of the Geant4 sample (the
  statistical floor);
* the radial profile: mean photons per fibre against the distance of the fibre centre from the
  impact point in Moliere radii of the absorber (0.93 cm), and the radii holding 50 % and 90 %
  of the photons seen on the face (r50, r90; the 7.04 cm face ends at 3.8 R_M);
* the number of lit fibres (>= 1 photon) and the hottest fibre's share of the photon sum.

No longitudinal observable exists: the fibres run the full 100 cm depth, so a ZN image
integrates the shower over depth.

``--set GROUP.FIELD=VALUE`` replaces a parameter of the parametrised engine's configuration
(``readout``: :class:`calogen.physics.readout.ReadoutModel`, ``hadron``:
:class:`calogen.physics.showers.HadronShowerModel`, ``absorber``:
:class:`calogen.physics.materials.Absorber`) for a trial; the Geant4 showers are cached under
the output folder and reused with ``--reuse-geant4`` when the cache matches (configuration,
N, seed, physics list, detector). Outputs: ``benchmarks/out/geant4_vs_parametrised/``
(``<tag>.json`` with every number, ``<tag>.txt`` the printed table).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calogen.atomic import atomic_path, write_text_atomic
from calogen.geometry import ZN
from calogen.geometry.channels import channel_sums
from calogen.metrics.distances import wasserstein_1d
from calogen.particles import species_name, species_of
from calogen.physics.gun import Particles
from calogen.physics.materials import TUNGSTEN_ALLOY
from calogen.physics.simulator import SimulatorConfig, get_simulator, simulate_particles

OUT = Path(__file__).resolve().parent / "out" / "geant4_vs_parametrised"

PHYSICS = "em+hadronic"
"""Geant4 physics list of every configuration (it shoots e-, gamma, n, pi+ and p)."""

CONFIGS: tuple[tuple[int, float], ...] = (
    (11, 50.0), (22, 50.0), (2112, 100.0), (2112, 300.0), (211, 100.0), (2212, 100.0))
"""(PDG code, total energy GeV) of the default run."""

SMOKE_CONFIGS: tuple[tuple[int, float], ...] = ((11, 50.0), (2112, 100.0), (211, 100.0))

REFERENCE: dict[int, tuple[float, float, float, str]] = {
    # PDG: (photons/GeV low, high, relative spread, source) -- shared/PHYSICS.md, ALICE O2.
    11: (1.05, 1.05, 0.25, "e/gamma > 20 GeV: 1.05 /GeV, spread 25 %"),
    22: (1.05, 1.05, 0.25, "e/gamma > 20 GeV: 1.05 /GeV, spread 25 %"),
    2112: (0.66, 0.66, 0.30, "n > 100 GeV: 0.66 /GeV, spread 30 %"),
    211: (0.63, 0.69, 0.20, "pi > 20 GeV: 0.63 (35 %); > 100 GeV 0.69 (20 %)"),
    2212: (0.61, 0.61, 0.27, "p > 20 GeV: 0.61 /GeV, spread 27 %"),
}

RADIAL_EDGES_RM = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.5])
"""Bin edges of the radial profile, Moliere radii."""

MOLIERE_CM = TUNGSTEN_ALLOY.moliere_radius_cm
"""Unit of the radial observables (the ZN absorber's R_M, 0.93 cm), fixed whatever ``--set``."""

SETTABLE = ("readout", "hadron", "absorber")


# --- the two engines ------------------------------------------------------------------------

def centre_particles(pdg: int, energy_gev: float, n: int) -> Particles:
    """``n`` particles of total energy ``energy_gev`` from the origin along +z: they hit the
    centre of the ZN face (O2 conditions, :data:`calogen.particles.ZDC_CONDITIONS`)."""
    s = species_of(pdg)
    p = float(np.sqrt(max(energy_gev**2 - (s.mass_mev * 1e-3) ** 2, 0.0)))
    row = [energy_gev, 0.0, 0.0, 0.0, 0.0, 0.0, p, s.mass_mev, s.charge]
    return Particles(np.tile(np.asarray(row, dtype=np.float32), (n, 1)),
                     np.full(n, pdg, dtype=np.int32))


def run_parametrised(config: SimulatorConfig, pdg: int, energy_gev: float, n: int,
                     seed: int) -> tuple[NDArray[np.int32], float]:
    """Images ``(n, 44, 44)`` of the parametrised engine and CPU seconds per shower."""
    rng = np.random.default_rng([seed, pdg % 100003, int(energy_gev * 1000)])
    t0 = time.process_time()
    images = simulate_particles(centre_particles(pdg, energy_gev, n), config, rng)
    return images, (time.process_time() - t0) / max(n, 1)


def _geant4_task(pdg: int, energy_gev: float, n: int, seed: int
                 ) -> tuple[NDArray[np.int32], float]:
    """Images of the Geant4 engine (kinetic energy E - m) and CPU seconds per shower."""
    from calogen.physics.geant4.engine import run_showers

    kinetic_mev = energy_gev * 1e3 - species_of(pdg).mass_mev
    run_showers("zn", pdg, [kinetic_mev], seed, physics=PHYSICS, first_index=10**9)  # set-up
    t0 = time.process_time()
    images = run_showers("zn", pdg, np.full(n, kinetic_mev), seed, physics=PHYSICS)
    return images, (time.process_time() - t0) / max(n, 1)


def _cache_key(pdg: int, energy_gev: float, n: int, seed: int) -> dict[str, Any]:
    from calogen.physics.geant4.detectors import get_detector

    return {"pdg": pdg, "energy_gev": energy_gev, "n": n, "seed": seed, "physics": PHYSICS,
            "detector": get_detector("zn").to_dict()}


def _cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return OUT / "geant4_cache" / f"{species_name(key['pdg'])}_{key['energy_gev']:g}GeV_" \
        f"n{key['n']}_{digest}.npz"


def geant4_showers(configs: list[tuple[int, float]], n: int, seed: int, processes: int,
                   reuse: bool) -> dict[tuple[int, float], tuple[NDArray[np.int32], float]]:
    """Geant4 images per configuration, from the cache when ``reuse`` and it matches, else run
    (in ``processes`` worker processes, one Geant4 set-up each) and cached."""
    out: dict[tuple[int, float], tuple[NDArray[np.int32], float]] = {}
    todo = []
    for pdg, e in configs:
        path = _cache_path(_cache_key(pdg, e, n, seed))
        if reuse and path.exists():
            with np.load(path) as f:
                out[(pdg, e)] = (f["images"], float(f["cpu_s_per_shower"]))
            print(f"  Geant4 {species_name(pdg)} {e:g} GeV: reused {path}", flush=True)
        else:
            todo.append((pdg, e))

    def keep(pdg: int, e: float, result: tuple[NDArray[np.int32], float]) -> None:
        out[(pdg, e)] = result
        path = _cache_path(_cache_key(pdg, e, n, seed))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=result[0], cpu_s_per_shower=result[1])
        print(f"  Geant4 {species_name(pdg)} {e:g} GeV: {n} showers, {result[1]:.2f} s CPU "
              "each", flush=True)

    if processes <= 1 or len(todo) <= 1:
        for pdg, e in todo:
            keep(pdg, e, _geant4_task(pdg, e, n, seed))
        return out
    from calogen.processes import worker_pool

    with worker_pool(min(processes, len(todo))) as pool:
        # Costliest first, so the workers finish together.
        todo.sort(key=lambda c: -c[1])
        futures = {c: pool.submit(_geant4_task, c[0], c[1], n, seed) for c in todo}
        for c, fut in futures.items():
            keep(c[0], c[1], fut.result())
    return out


# --- observables ----------------------------------------------------------------------------

def fibre_radii_rm(moliere_cm: float) -> NDArray[np.float64]:
    """Distance of every fibre centre from the face centre (the impact point), Moliere radii,
    shape ``(44, 44)``."""
    rows, cols = ZN.pixel_centres_cm()
    return np.hypot(rows[:, None], cols[None, :]) / moliere_cm


def containment_radius(mean_image: NDArray[np.float64], radii: NDArray[np.float64],
                       fraction: float) -> float:
    """Radius (same unit as ``radii``) within which ``fraction`` of the image's photons lie:
    fibres sorted by radius, cumulative share interpolated linearly between fibre radii."""
    order = np.argsort(radii, axis=None)
    r = radii.reshape(-1)[order]
    cum = np.cumsum(mean_image.reshape(-1)[order])
    if cum[-1] <= 0:
        return float("nan")
    cum = cum / cum[-1]
    i = int(np.searchsorted(cum, fraction))
    if i == 0:
        return float(r[0])
    c0, c1 = cum[i - 1], cum[i]
    return float(r[i - 1] + (fraction - c0) / max(c1 - c0, 1e-12) * (r[i] - r[i - 1]))


def observables(images: NDArray[np.int32], energy_gev: float,
                radii: NDArray[np.float64]) -> dict[str, Any]:
    """Per-engine summary of a set of ZN images of one configuration."""
    sums = images.reshape(len(images), -1).sum(axis=1).astype(np.float64)
    mean_image = images.mean(axis=0, dtype=np.float64)
    bins = np.digitize(radii, RADIAL_EDGES_RM) - 1
    profile = [float(mean_image[bins == b].mean()) if np.any(bins == b) else float("nan")
               for b in range(len(RADIAL_EDGES_RM) - 1)]
    lit = (images > 0).reshape(len(images), -1).sum(axis=1)
    hot = images.reshape(len(images), -1).max(axis=1) / np.maximum(sums, 1.0)
    total = max(float(mean_image.sum()), 1e-12)
    return {
        "photons_per_gev": float(sums.mean() / energy_gev),
        "relative_spread": float(sums.std() / max(sums.mean(), 1e-12)),
        "photon_sum_mean": float(sums.mean()),
        "photon_sum_quartiles": [float(q) for q in np.percentile(sums, [25, 50, 75])],
        "r50_rm": containment_radius(mean_image, radii, 0.5),
        "r90_rm": containment_radius(mean_image, radii, 0.9),
        "fraction_within_1rm": float(mean_image[radii <= 1.0].sum() / total),
        "radial_profile_photons_per_fibre": profile,
        "lit_fibres": float(lit.mean()),
        "hottest_fibre_fraction": float(hot[sums > 0].mean()) if np.any(sums > 0) else 0.0,
    }


def relative_w1(ref: NDArray[np.float64], other: NDArray[np.float64]) -> float:
    """W1 between two samples divided by the mean of ``ref``."""
    return wasserstein_1d(ref, other) / max(float(np.mean(ref)), 1e-12)


def channel_w1(ref: NDArray[np.float64], other: NDArray[np.float64]) -> float:
    """Mean over the 5 channels of W1(channel) / mean of the reference channel."""
    return float(np.mean([relative_w1(ref[:, c], other[:, c]) for c in range(ref.shape[1])]))


def compare(g4: NDArray[np.int32], par: NDArray[np.int32], energy_gev: float,
            radii: NDArray[np.float64]) -> dict[str, Any]:
    """Both engines' observables and their distances (parametrised against Geant4)."""
    s_g4 = g4.reshape(len(g4), -1).sum(axis=1).astype(np.float64)
    s_par = par.reshape(len(par), -1).sum(axis=1).astype(np.float64)
    c_g4, c_par = channel_sums(g4, ZN), channel_sums(par, ZN)
    half = len(g4) // 2
    return {
        "geant4": observables(g4, energy_gev, radii),
        "parametrised": observables(par, energy_gev, radii),
        "w1_sum_rel": relative_w1(s_g4, s_par),
        "w1_sum_rel_floor": relative_w1(s_g4[:half], s_g4[half:]),
        "w1_channels_rel": channel_w1(c_g4, c_par),
        "w1_channels_rel_floor": channel_w1(c_g4[:half], c_g4[half:]),
    }


# --- table ----------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str], ...] = (
    ("photons_per_gev", "photons / GeV", "{:.3f}"),
    ("relative_spread", "std / mean of sum", "{:.3f}"),
    ("r50_rm", "r50 [R_M]", "{:.3f}"),
    ("r90_rm", "r90 [R_M]", "{:.3f}"),
    ("fraction_within_1rm", "share within 1 R_M", "{:.3f}"),
    ("lit_fibres", "lit fibres", "{:.1f}"),
    ("hottest_fibre_fraction", "hottest fibre share", "{:.3f}"),
)


def table(results: list[dict[str, Any]]) -> str:
    """The printed comparison: per configuration, Geant4 | parametrised | ratio | O2."""
    lines = []
    head = f"{'quantity':<22}{'Geant4':>10}{'param':>10}{'par/G4':>9}   PHYSICS.md (O2)"
    for res in results:
        g4, par = res["geant4"], res["parametrised"]
        lines += ["", f"{res['particle']} {res['energy_gev']:g} GeV  (N = {res['n']}, "
                  f"CPU/shower: Geant4 {res['cpu_s_geant4']:.3f} s, param "
                  f"{res['cpu_s_parametrised'] * 1e3:.2f} ms)", head, "-" * len(head)]
        for key, label, fmt in ROWS:
            a, b = g4[key], par[key]
            ratio = b / a if a else float("nan")
            ref = ""
            if key == "photons_per_gev" and res["pdg"] in REFERENCE:
                lo, hi, _, _ = REFERENCE[res["pdg"]]
                ref = f"{lo:.2f}" if lo == hi else f"{lo:.2f}-{hi:.2f}"
            if key == "relative_spread" and res["pdg"] in REFERENCE:
                ref = f"{REFERENCE[res['pdg']][2]:.2f}"
            lines.append(f"{label:<22}{fmt.format(a):>10}{fmt.format(b):>10}{ratio:>9.3f}   "
                         f"{ref}")
        lines.append(f"{'W1(sum) / mean':<22}{res['w1_sum_rel_floor']:>10.3f}"
                     f"{res['w1_sum_rel']:>10.3f}{'':>9}   (Geant4 column: half vs half)")
        lines.append(f"{'W1(channels) / mean':<22}{res['w1_channels_rel_floor']:>10.3f}"
                     f"{res['w1_channels_rel']:>10.3f}{'':>9}   (Geant4 column: half vs half)")
        edges = RADIAL_EDGES_RM
        prof = "  ".join(f"{edges[i]:g}-{edges[i + 1]:g}: "
                         f"{res['geant4']['radial_profile_photons_per_fibre'][i]:.3g}/"
                         f"{res['parametrised']['radial_profile_photons_per_fibre'][i]:.3g}"
                         for i in range(len(edges) - 1))
        lines.append(f"radial profile, photons per fibre, G4/param by r [R_M]: {prof}")
    lines.append("")
    lines.append("Longitudinal profile: none (the fibres run the full depth; a ZN image "
                 "integrates over z).")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------

def apply_settings(config: SimulatorConfig, settings: list[str]) -> SimulatorConfig:
    """``config`` with each ``GROUP.FIELD=VALUE`` of ``settings`` replaced (float values)."""
    for item in settings:
        name, _, value = item.partition("=")
        group, _, fld = name.partition(".")
        if group not in SETTABLE or not value:
            raise SystemExit(f"--set {item!r}: expected GROUP.FIELD=VALUE with GROUP one of "
                             f"{SETTABLE}")
        part = getattr(config, group)
        if fld not in {f.name for f in dataclasses.fields(part)}:
            raise SystemExit(f"--set {item!r}: {type(part).__name__} has no field {fld!r}")
        config = dataclasses.replace(config, **{group: dataclasses.replace(
            part, **{fld: float(value)})})
    return config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="15 showers, 3 configurations")
    ap.add_argument("-n", type=int, default=None, help="showers per configuration (100)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--processes", type=int, default=1,
                    help="Geant4 worker processes (one configuration each at a time)")
    ap.add_argument("--reuse-geant4", action="store_true",
                    help="reuse cached Geant4 showers of the same configuration, N and seed")
    ap.add_argument("--set", action="append", default=[], metavar="GROUP.FIELD=VALUE",
                    help="replace a parametrised-engine parameter (repeatable)")
    ap.add_argument("--tag", default=None, help="output name (default: smoke or default)")
    args = ap.parse_args(argv)
    n = args.n or (15 if args.smoke else 100)
    if n < 2:
        raise SystemExit("-n must be at least 2")
    configs = list(SMOKE_CONFIGS if args.smoke else CONFIGS)
    tag = args.tag or ("smoke" if args.smoke else "default")
    config = apply_settings(get_simulator("zn"), args.set)
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CI", "true")  # never let Geant4 try to download data

    t0 = time.time()
    print(f"Geant4 ({PHYSICS}) on the ZN, {n} showers per configuration:", flush=True)
    g4 = geant4_showers(configs, n, args.seed, args.processes, args.reuse_geant4)
    radii = fibre_radii_rm(MOLIERE_CM)
    results = []
    for pdg, e in configs:
        par, par_cpu = run_parametrised(config, pdg, e, n, args.seed)
        images, g4_cpu = g4[(pdg, e)]
        res = {"particle": species_name(pdg), "pdg": pdg, "energy_gev": e, "n": n,
               "cpu_s_geant4": g4_cpu, "cpu_s_parametrised": par_cpu}
        res.update(compare(images, par, e, radii))
        if pdg in REFERENCE:
            res["physics_md"] = REFERENCE[pdg][3]
        results.append(res)
    text = table(results)
    print(text)
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                         else sys.argv[1:])]),
        "n": n, "seed": args.seed, "geant4_physics": PHYSICS, "settings": args.set,
        "parametrised_config": config.to_dict(), "moliere_radius_cm": MOLIERE_CM,
        "radial_edges_rm": RADIAL_EDGES_RM.tolist(),
        "longitudinal": "none: the fibres run the full depth, a ZN image integrates over z",
        "wall_s": time.time() - t0, "results": results,
    }
    write_text_atomic(OUT / f"{tag}.json", json.dumps(report, indent=1))
    write_text_atomic(OUT / f"{tag}.txt", text + "\n")
    print(f"\nwrote {OUT / (tag + '.json')} and {OUT / (tag + '.txt')} "
          f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
