"""Amplification study (issue 17 item 5; arXiv:2008.06545): a ZN model trained on N simulated
responses generates M = 10 N ... 100 N; for each observable, how many true responses are the M
generated ones worth?

    python benchmarks/amplification.py --smoke      # tiny N, M, truth: end to end (~2 min)
    python benchmarks/amplification.py              # N 1k..100k, M to 100 N, 10^6 truth (hours)
    python benchmarks/amplification.py --stage table   # table and plot from results.json

Data (built-in simulator, ZN, three independent seeds): the truth (``--truth`` responses, seed
101), a training pool (seed 102; the first N / 0.8 rows train a model, whose 0.8/0.1/0.1 grouped
split leaves ~N training events) and a conditions pool (``--pool`` responses, seed 103) whose
conditions the model generates for (rows resampled with replacement when M exceeds the pool,
which then limits what the conditions can add, as the truth's size limits what is resolved).
Each model: family ``--family`` (default ``vae``, MLP backbone), a step budget (``--steps``),
EMA weights, best checkpoint by channel W1 on its validation split.

Observables: the 5 PMT channel sums, the photon sum, the lit-fibre count, and the photon sum
per species (species with enough responses). For each: the error of the first N true
training-pool responses and of the M generated ones against the truth's quantile bins
(:mod:`calogen.metrics.amplification`), the generated sample's effective size n_eff and the
amplification n_eff / N. n_eff near the truth's size (flagged ``>``) is not resolved.
Everything goes under benchmarks/out/amplification/ (or ``--out-dir``): results.json and
amplification.png.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from calogen.atomic import write_text_atomic
from calogen.data.showerset import ShowerSet
from calogen.data.split import write_rows
from calogen.geometry.zdc import get_grid
from calogen.metrics.amplification import DEFAULT_BINS, amplification
from calogen.metrics.observables import ZDCObservables
from calogen.models.io import load_model
from calogen.models.registry import optimizer_defaults
from calogen.particles import species_name
from calogen.pipelines.reference import simulate_to_file
from calogen.pipelines.validation import channel_w1_validator
from calogen.train.run import train_model
from calogen.train.trainer import TrainConfig

TRAIN_SHARE = 0.8
"""Share of a training file the model trains on (train_model's grouped split 0.8/0.1/0.1)."""

MIN_SPECIES = 50
"""Photon sums per species are measured for species with at least this many training events."""

OBS = ZDCObservables(get_grid("zn"))
KEEP = (*OBS.channel_names, "photon_sum", "lit_fibres")
COLS = [OBS.names.index(k) for k in KEEP]


def observables(showers: np.ndarray) -> np.ndarray:
    """``(B, len(KEEP))`` observables of a batch of ZN images."""
    return OBS(showers)[:, COLS]


def file_observables(path: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Observables and PDG codes of every response in ``path`` (streamed; cached in ``cache``)."""
    if cache.exists():
        with np.load(cache) as z:
            return z["obs"], z["pdg"]
    obs, pdg = [], []
    with ShowerSet.open(path) as ss:
        for b in ss.iter_batches(8192):
            obs.append(observables(b.showers))
            pdg.append(b.pdg)
    o, p = np.concatenate(obs), np.concatenate(pdg)
    np.savez(cache, obs=o, pdg=p)
    return o, p


def simulate(path: Path, n: int, seed: int) -> Path:
    if not path.exists():
        simulate_to_file(path, n=n, seed=seed, workers=2, progress=False)
    return path


def train(out: Path, pool: Path, n: int, family: str, steps: int, smoke: bool) -> Path:
    """Train on the first ``n / TRAIN_SHARE`` rows of ``pool``; returns the best checkpoint."""
    run = out / f"run_{family}_{n}"
    if (run / "best").exists():
        return run / "best"
    data = out / f"train_{n}.h5"
    if not data.exists():
        write_rows(pool, np.arange(math.ceil(n / TRAIN_SHARE)), data)
    cfg = TrainConfig(max_steps=steps, batch_size=256, schedule="constant",
                      val_every=max(steps // 10, 10), checkpoint_every=max(steps, 1000),
                      seed=0, ema_decay=0.999, **optimizer_defaults(family))
    t0 = time.perf_counter()
    train_model(family, data, run, config=cfg, hparams={"backbone": "mlp"}, overwrite=True,
                val_metric=channel_w1_validator("ZN"), progress=False)
    print(f"trained {family} on N={n}: {steps} steps in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return run / "best"


def generated_observables(model_dir: Path, cond: np.ndarray, pdg: np.ndarray, m: int,
                          seed: int, batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Observables of ``m`` generated responses for pool conditions (resampled with
    replacement beyond the pool's size), computed batch by batch (nothing written)."""
    model = load_model(model_dir)
    rng = np.random.default_rng(seed)
    rows = np.arange(m) if m <= len(pdg) else rng.integers(0, len(pdg), size=m)
    g = torch.Generator().manual_seed(seed)

    def batches() -> Iterator[np.ndarray]:
        for s in range(0, m, batch):
            r = rows[s:s + batch]
            yield observables(model.sample(cond[r], pdg[r], g, batch_size=batch))

    return np.concatenate(list(batches())), pdg[rows]


def observable_sets(obs: np.ndarray, pdg: np.ndarray, species: list[int]
                    ) -> dict[str, np.ndarray]:
    """Values per observable name (photon sums per species as ``photon_sum|<species>``)."""
    out = {k: obs[:, j] for j, k in enumerate(KEEP)}
    s = obs[:, KEEP.index("photon_sum")]
    for code in species:
        out[f"photon_sum|{species_name(code)}"] = s[pdg == code]
    return out


def run_study(out: Path, ns: list[int], factors: list[int], truth_n: int, pool_n: int,
              family: str, steps: int, smoke: bool, n_bins: int) -> list[dict]:
    truth_obs, truth_pdg = file_observables(simulate(out / "truth.h5", truth_n, 101),
                                            out / "truth_obs.npz")
    train_pool = simulate(out / "train_pool.h5", math.ceil(max(ns) / TRAIN_SHARE), 102)
    pool_obs, pool_pdg = file_observables(train_pool, out / "train_pool_obs.npz")
    with ShowerSet.open(simulate(out / "cond_pool.h5", pool_n, 103)) as ss:
        cond, pdg = ss.conditions(), ss.pdg()
    rows = []
    for n in ns:
        model_dir = train(out, train_pool, n, family, steps, smoke)
        tr_obs, tr_pdg = pool_obs[:n], pool_pdg[:n]
        codes, counts = np.unique(tr_pdg, return_counts=True)
        species = [int(c) for c, k in zip(codes, counts, strict=True) if k >= MIN_SPECIES
                   and (truth_pdg == c).sum() >= 2 * n_bins]
        truth_sets = observable_sets(truth_obs, truth_pdg, species)
        train_sets = observable_sets(tr_obs, tr_pdg, species)
        for f in factors:
            g_obs, g_pdg = generated_observables(model_dir, cond, pdg, f * n, seed=n + f)
            gen_sets = observable_sets(g_obs, g_pdg, species)
            for name, t in truth_sets.items():
                if len(gen_sets[name]) == 0:
                    continue
                a = amplification(t, train_sets[name], gen_sets[name], n_bins=n_bins)
                rows.append({"N": n, "M": f * n, "factor": f, "observable": name,
                             "n_train": a.n_train, "n_generated": a.n_generated,
                             "n_truth": a.n_truth, "bins": a.n_bins,
                             "error_train": a.error_train, "error_generated": a.error_generated,
                             "n_eff_train": a.n_eff_train, "n_eff": a.n_eff,
                             "amplification": a.amplification, "resolved": a.resolved})
            # written after every (N, M): a stopped study keeps what it measured
            doc = {"family": family, "steps": steps, "truth": truth_n, "pool": pool_n,
                   "bins": n_bins, "rows": rows}
            write_text_atomic(out / "results.json", json.dumps(doc, indent=1, allow_nan=True))
            print(f"N={n} M={f * n}: {len(rows)} rows -> {out / 'results.json'}", flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'N':>7s} {'M':>9s} {'observable':24s} {'err N':>9s} {'err M':>9s} "
          f"{'n_eff(N)':>9s} {'n_eff(M)':>10s} {'ampl.':>7s}")
    for r in rows:
        flag = " " if r["resolved"] else ">"
        print(f"{r['N']:7d} {r['M']:9d} {r['observable']:24s} {r['error_train']:9.2e} "
              f"{r['error_generated']:9.2e} {r['n_eff_train']:9.3g} {flag}{r['n_eff']:9.3g} "
              f"{flag}{r['amplification']:6.3g}")
    print("err: mean over truth-quantile bins of (f - p)^2 / p; n_eff: true responses with the "
          "same expected error; ampl. = n_eff(M) / (training events of that observable: N,\n"
          "or the species' count for photon_sum|<species>); '>': beyond the truth's resolution.")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["observable"] for r in rows))
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        sel = [r for r in rows if r["observable"] == name]
        for n in sorted({r["N"] for r in sel}):
            pts = sorted((r["factor"], min(r["amplification"], r["n_truth"] / n))
                         for r in sel if r["N"] == n)
            ax.plot(*zip(*pts, strict=True), "o-", label=f"N={n}")
        f = sorted({r["factor"] for r in sel})
        ax.plot(f, f, "k--", lw=0.8, label="M / N (perfect)")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", title=name, xlabel="M / N", ylabel="n_eff / N")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description="Amplification of generated ZN responses.")
    ap.add_argument("--smoke", action="store_true", help="tiny N, M and truth (minutes)")
    ap.add_argument("--stage", choices=("all", "table"), default="all")
    ap.add_argument("--n", type=int, nargs="+", default=[1_000, 3_000, 10_000, 30_000, 100_000])
    ap.add_argument("--factors", type=int, nargs="+", default=[10, 30, 100], help="M / N")
    ap.add_argument("--truth", type=int, default=1_000_000)
    ap.add_argument("--pool", type=int, default=1_000_000, help="conditions to generate for")
    ap.add_argument("--family", default="vae")
    ap.add_argument("--steps", type=int, default=5_000)
    ap.add_argument("--bins", type=int, default=DEFAULT_BINS)
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "amplification")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.factors, args.truth, args.pool, args.steps = [300, 1000], [10, 30], \
            20_000, 10_000, 60
        args.out_dir = args.out_dir.with_name(args.out_dir.name + "_smoke")
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "all":
        rows = run_study(out, args.n, args.factors, args.truth, args.pool, args.family,
                         args.steps, args.smoke, args.bins)
    else:
        rows = json.loads((out / "results.json").read_text())["rows"]
    print_table(rows)
    plot(rows, out / "amplification.png")
    print(f"outputs: {out.resolve()} (results.json, amplification.png)")


if __name__ == "__main__":
    main()
