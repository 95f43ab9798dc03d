"""Fast families (VAE, AE + noise, GAN, SDI-GAN) trained for the same CPU budget and evaluated
on the held-out conditions, beside the floor and the shuffled baseline.

    python benchmarks/fast_families.py                 # 100k ZN, 20 min per family (~2 h)
    python benchmarks/fast_families.py --smoke         # 3k ZN, 12 s per family (minutes)
    # the same in two processes at once (1 thread each), then the table with timings:
    python benchmarks/fast_families.py --stage train --families vae ae-noise --threads 1 &
    python benchmarks/fast_families.py --stage train --families gan sdi-gan --threads 1 &
    wait; python benchmarks/fast_families.py --stage table

Data: ZN simulated with seed 21, split by condition 0.8/0.1/0.1 (seed 0). Each family trains
on the training split for ``--minutes`` of wall-clock time (MLP backbone unless ``--hparam``
says otherwise; the family's recommended optimiser settings, constant learning rate, EMA of the
weights; validation: channel W1 on 2000 validation events, the best checkpoint is kept),
generates for the test split's conditions and is evaluated against the test split (5 classifier
seeds); the results go to
``result_<family>.json``. The table stage reads them and measures generation time per response
at batch 1 and 1000, with 1 thread and with all threads (mean +- std over 5 repeats after a
warm-up), on a machine that should otherwise be idle. Everything goes under
benchmarks/out/fast_families/ (or ``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from calogen.baselines import make_baseline
from calogen.data.showerset import ShowerSet
from calogen.data.split import grouped_split, write_rows
from calogen.metrics.classifier import CALOGEN_DEFAULT
from calogen.metrics.evaluate import EvaluationConfig, evaluate
from calogen.models.io import load_model
from calogen.models.registry import families_in, optimizer_defaults
from calogen.pipelines.reference import simulate_to_file
from calogen.pipelines.validation import channel_w1_validator
from calogen.train.generation import generate_to_showerset, model_sampler
from calogen.train.run import train_model
from calogen.train.trainer import TrainConfig

FAMILIES = tuple(families_in("autoencoder", "adversarial"))
DEFAULT_HPARAMS = {"backbone": "mlp"}
"""The CNN backbone takes 0.7-1.8 s per step at batch 256 on 2 cores (the MLP ~0.05-0.12 s):
within a CPU budget of minutes the MLP gets ~10x more steps."""

EMA_DECAY = 0.999
"""Weights are averaged (EMA) during training; validation, the best checkpoint and sampling use
the averaged weights."""

KEYS = {"chW1": "channel Wasserstein (mean of 5 channels)",
        "MAE": "channel MAE paired by condition",
        "AUC low": "classifier AUC (low-level)", "AUC high": "classifier AUC (high-level)",
        "FPD": "FPD (observables) x1e3"}


def generation_ms(model, cond: np.ndarray, pdg: np.ndarray, batch: int, threads: int,
                  repeats: int = 5, warmup: int | None = None) -> tuple[float, float]:
    """Mean and std of the time per response (ms) for ``batch`` responses at a time, after a
    warm-up call on ``warmup`` responses (default ``batch``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        idx = np.arange(batch) % len(pdg)
        g = torch.Generator().manual_seed(0)
        w = idx[:warmup] if warmup else idx
        model.sample(cond[w], pdg[w], g)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.sample(cond[idx], pdg[idx], g, batch_size=batch)
            times.append((time.perf_counter() - t0) / batch * 1e3)
        return float(np.mean(times)), float(np.std(times))
    finally:
        torch.set_num_threads(old)


def prepare_data(out: Path, n: int) -> tuple[Path, Path, np.ndarray]:
    """Simulate (once; reused when present) and split; returns data, test file, train rows."""
    data = out / f"zn_{n}.h5"
    if not data.exists():
        simulate_to_file(data, n=n, seed=21, workers=2)
    with ShowerSet.open(data) as ss:
        split = grouped_split(ss.condition_ids(), (0.8, 0.1, 0.1), seed=0)
    test = out / f"test_{n}.h5"
    if not test.exists():
        write_rows(data, split["test"], test)
    return data, test, split["train"]


def summarise(res) -> dict[str, dict[str, float | None]]:  # noqa: ANN001
    rows = {r.name: r for r in res.summary}
    return {k: {"value": rows[name].value, "floor": rows[name].floor,
                "p": rows[name].p_value} for k, name in KEYS.items() if name in rows}


def run_shuffled(out: Path, data: Path, test: Path, train_rows: np.ndarray,
                 cfg: EvaluationConfig) -> None:
    with ShowerSet.open(data) as ss:
        train = ss.take(train_rows)
    shuffled = make_baseline("shuffled").fit(train.showers, train.conditions, train.pdg)
    gen = generate_to_showerset(shuffled.sample, test, out / "gen_shuffled.h5",
                                producer={"name": "shuffled"}, overwrite=True, progress=False)
    doc = {"family": "shuffled", "metrics": summarise(evaluate(test, gen, config=cfg))}
    (out / "result_shuffled.json").write_text(json.dumps(doc, indent=1))


def run_family(family: str, out: Path, data: Path, test: Path, minutes: float,
               hparams: dict, smoke: bool, cfg: EvaluationConfig) -> None:
    run = out / f"run_{family}"
    tcfg = TrainConfig(max_minutes=minutes, batch_size=256, schedule="constant",
                       val_every=20 if smoke else 200, checkpoint_every=1000, seed=0,
                       ema_decay=EMA_DECAY,
                       **optimizer_defaults(family))
    t0 = time.perf_counter()
    result = train_model(family, data, run, config=tcfg, hparams=hparams, overwrite=True,
                         val_metric=channel_w1_validator("ZN"), progress=False)
    train_s = time.perf_counter() - t0
    model = load_model(run / "best")
    gen = generate_to_showerset(model_sampler(model), test, out / f"gen_{family}.h5",
                                producer={"name": family}, overwrite=True, progress=False)
    doc = {"family": family, "hparams": model.hparams, "steps": result.steps,
           "best_step": result.best_step, "train_seconds": train_s,
           "threads": torch.get_num_threads(),
           "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "metrics": summarise(evaluate(test, gen, config=cfg))}
    (out / f"result_{family}.json").write_text(json.dumps(doc, indent=1))
    print(f"{family}: {result.steps} steps in {train_s:.0f} s -> {out / f'result_{family}.json'}",
          flush=True)


def print_table(out: Path, families: list[str], test: Path, n: int) -> None:
    with ShowerSet.open(test) as ts:
        cond, pdg = ts.conditions(), ts.pdg()
    docs = [json.loads((out / "result_shuffled.json").read_text())]
    docs += [json.loads((out / f"result_{f}.json").read_text()) for f in families
             if (out / f"result_{f}.json").exists()]
    all_t = torch.get_num_threads()
    floor = docs[0]["metrics"]["chW1"]["floor"]
    print(f"\nZN, {n} events (grouped split 0.8/0.1/0.1), test split {len(pdg)} events; "
          f"floor (test halves by condition group): channel W1 = {floor:.3g} photons")
    head = (f"{'model':9s} {'steps':>6s} {'min':>5s} {'chW1':>7s} {'/floor':>7s} {'p':>6s} "
            f"{'MAE':>6s} {'AUC low':>8s} {'AUC high':>8s} {'FPDx1e3':>8s} "
            f"{'ms b1/1t':>9s} {'b1000/1t':>9s} {f'b1000/{all_t}t':>9s} {'params':>8s}")
    print(head)
    for d in docs:
        m = d["metrics"]
        w1 = m["chW1"]["value"]
        p = m["chW1"]["p"]
        cells = [f"{d.get('steps', '-')!s:>6s}",
                 f"{d['train_seconds'] / 60:5.1f}" if "train_seconds" in d else f"{'-':>5s}",
                 f"{w1:7.3g}", f"{w1 / floor:7.2f}", f"{p:6.2f}" if p is not None else "     -",
                 f"{m['MAE']['value'] or float('nan'):6.3g}",
                 f"{m['AUC low']['value']:8.3f}", f"{m['AUC high']['value']:8.3f}",
                 f"{m['FPD']['value']:8.3g}"]
        if d["family"] != "shuffled":
            model = load_model(out / f"run_{d['family']}" / "best")
            t = {(b, th): generation_ms(model, cond, pdg, b, th)
                 for b in (1, 1000) for th in (1, all_t)}
            cells += [f"{t[(1, 1)][0]:9.3f}", f"{t[(1000, 1)][0]:9.4f}",
                      f"{t[(1000, all_t)][0]:9.4f}", f"{d['params']:8d}"]
        else:
            cells += [f"{'-':>9s}"] * 3 + [f"{'-':>8s}"]
        print(f"{d['family']:9s} " + " ".join(cells), flush=True)
    print("chW1: channel Wasserstein (photons), mean of 5 channels; p: its p-value against "
          "reference re-splits; MAE: channel MAE paired by condition (photons); AUC: "
          "classifier two-sample test (5 seeds); ms: generation time per response.")
    print(f"outputs: {out.resolve()}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Fast families on one CPU budget.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--stage", choices=("all", "train", "table"), default="all")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--threads", type=int, default=None, help="torch threads while training")
    ap.add_argument("--hparam", action="append", default=[],
                    help="key=value (JSON) applied to every family (default backbone=mlp)")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "fast_families")
    args = ap.parse_args()
    n, minutes = (3_000, 0.2) if args.smoke else (args.n, args.minutes)
    hparams = {**DEFAULT_HPARAMS,
               **{k: json.loads(v) for k, _, v in (h.partition("=") for h in args.hparam)}}
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    data, test, train_rows = prepare_data(out, n)
    seeds = 1 if args.smoke else 5
    cfg = EvaluationConfig(progress=False, classifier=replace(CALOGEN_DEFAULT, n_seeds=seeds))

    if args.stage in ("all", "train"):
        before = torch.get_num_threads()
        if args.threads:
            torch.set_num_threads(args.threads)
        if not (out / "result_shuffled.json").exists():
            run_shuffled(out, data, test, train_rows, cfg)
        for family in args.families:
            run_family(family, out, data, test, minutes, hparams, args.smoke, cfg)
        torch.set_num_threads(before)
    if args.stage in ("all", "table"):
        print_table(out, args.families, test, n)


if __name__ == "__main__":
    main()
