"""Fast families (VAE, AE + noise, GAN, SDI-GAN) trained for the same CPU budget and evaluated
on the held-out conditions, beside the floor and the shuffled baseline.

    python benchmarks/fast_families.py                 # 100k ZN, 20 min per family (hours)
    python benchmarks/fast_families.py --smoke         # 3k ZN, 12 s per family (minutes)
    python benchmarks/fast_families.py --families vae gan --minutes 5 --hparam backbone=mlp

Data: ZN simulated with seed 21, split by condition 0.8/0.1/0.1 (seed 0). Each family trains
on the training split for ``--minutes`` of wall-clock time (validation: channel W1 on the
validation split; the best checkpoint is kept), generates for the test split's conditions and
is evaluated against the test split (5 classifier seeds). Generation time per response is
measured at batch 1 and 1000, with 1 thread and with all threads (mean +- std over 5 repeats
after a warm-up). Everything goes under benchmarks/out/fast_families/.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from calogen.data.reference import simulate_to_file
from calogen.data.showerset import ShowerSet
from calogen.data.split import grouped_split, write_rows
from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.metrics.validation import channel_w1_validator
from calogen.models.baselines import make_baseline
from calogen.models.io import load_model
from calogen.train.generation import generate_to_showerset, model_sampler
from calogen.train.run import train_model
from calogen.train.trainer import TrainConfig

FAMILIES = ("vae", "ae-noise", "gan", "sdi-gan")


def generation_ms(model, cond: np.ndarray, pdg: np.ndarray, batch: int, threads: int,
                  repeats: int = 5) -> tuple[float, float]:
    """Mean and std of the time per response (ms) for ``batch`` responses at a time."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        idx = np.arange(batch) % len(pdg)
        g = torch.Generator().manual_seed(0)
        model.sample(cond[idx], pdg[idx], g)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.sample(cond[idx], pdg[idx], g)
            times.append((time.perf_counter() - t0) / batch * 1e3)
        return float(np.mean(times)), float(np.std(times))
    finally:
        torch.set_num_threads(old)


def main() -> None:
    ap = argparse.ArgumentParser(description="Fast families on one CPU budget.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--hparam", action="append", default=[],
                    help="key=value (JSON) applied to every family")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "fast_families")
    args = ap.parse_args()
    n, minutes = (3_000, 0.2) if args.smoke else (args.n, args.minutes)
    hparams = {k: json.loads(v) for k, _, v in (h.partition("=") for h in args.hparam)}
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    data = simulate_to_file(out / f"zn_{n}.h5", n=n, seed=21, workers=2, overwrite=True).path
    with ShowerSet.open(data) as ss:
        split = grouped_split(ss.condition_ids(), (0.8, 0.1, 0.1), seed=0)
        train = ss.take(split["train"])
    test = write_rows(data, split["test"], out / f"test_{n}.h5", overwrite=True)
    with ShowerSet.open(test) as ts:
        test_cond, test_pdg = ts.conditions(), ts.pdg()
    seeds = 1 if args.smoke else 5
    cfg = EvaluationConfig(progress=False, classifier=replace(CALOGEN_DEFAULT, n_seeds=seeds))

    rows = []
    shuffled = make_baseline("shuffled").fit(train.showers, train.conditions, train.pdg)
    gen = generate_to_showerset(shuffled.sample, test, out / "gen_shuffled.h5",
                                producer={"name": "shuffled"}, overwrite=True, progress=False)
    res = {r.name: r for r in evaluate(test, gen, config=cfg).summary}
    rows.append(("shuffled", res, None, 0))
    for family in args.families:
        run = out / f"run_{family}"
        tcfg = TrainConfig(max_minutes=minutes, batch_size=256, lr=1e-3, schedule="constant",
                           val_every=200 if not args.smoke else 20, checkpoint_every=1000,
                           seed=0)
        t0 = time.perf_counter()
        result = train_model(family, data, run, config=tcfg, hparams=hparams, overwrite=True,
                             val_metric=channel_w1_validator("ZN"), progress=False)
        train_s = time.perf_counter() - t0
        model = load_model(run / "best")

        gen = generate_to_showerset(model_sampler(model), test, out / f"gen_{family}.h5",
                                    producer={"name": family}, overwrite=True, progress=False)
        res = {r.name: r for r in evaluate(test, gen, config=cfg).summary}
        timing = {(b, t): generation_ms(model, test_cond, test_pdg, b, t)
                  for b in (1, 1000) for t in (1, torch.get_num_threads())}
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append((family, res, timing, params))
        print(f"{family}: {result.steps} steps in {train_s:.0f} s", flush=True)

    key_w1 = "channel Wasserstein (mean of 5 channels)"
    floor = rows[0][1][key_w1].floor
    print(f"\nZN, {n} events, {minutes:g} min of training per family; test split "
          f"{len(test_pdg)} events; floor (test halves) channel W1 = {floor:.3g} photons")
    print(f"{'model':10s} {'chW1':>8s} {'x floor':>8s} {'MAE':>8s} {'AUC low':>8s} "
          f"{'AUC high':>9s} {'ms b=1/1t':>10s} {'b=1000/1t':>10s} {'b=1000/all':>11s} "
          f"{'params':>9s}")
    for name, res, timing, params in rows:
        w1 = res[key_w1].value
        cells = [f"{w1:8.3g}", f"{w1 / floor:8.2f}",
                 f"{res['channel MAE paired by condition'].value or float('nan'):8.3g}",
                 f"{res['classifier AUC (low-level)'].value:8.3f}",
                 f"{res['classifier AUC (high-level)'].value:9.3f}"]
        if timing:
            all_t = torch.get_num_threads()
            cells += [f"{timing[(1, 1)][0]:10.3f}", f"{timing[(1000, 1)][0]:10.4f}",
                      f"{timing[(1000, all_t)][0]:11.4f}"]
        else:
            cells += [f"{'-':>10s}", f"{'-':>10s}", f"{'-':>11s}"]
        print(f"{name:10s} " + " ".join(cells) + f" {params:9d}")
    print(f"outputs: {out.resolve()}")


if __name__ == "__main__":
    main()
