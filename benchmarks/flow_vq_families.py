"""Likelihood and token families (two-stage flows: MAF teacher, IAF student, coupling INN;
VQ-VAE / VQ-GAN with a transformer prior) on the data, split and evaluation of the other family
benchmarks.

    python benchmarks/flow_vq_families.py --smoke                       # minutes
    python benchmarks/flow_vq_families.py --stage train --families caloflow --threads 1 \
        --minutes 20 &
    python benchmarks/flow_vq_families.py --stage train --families calo-inn --threads 1 &
    wait
    python benchmarks/flow_vq_families.py --stage train --families caloflow-student --threads 1 \
        --minutes 10 &
    python benchmarks/flow_vq_families.py --stage train --families vq-vae --threads 1 &
    wait
    python benchmarks/flow_vq_families.py --stage train --families vq-vae@16tok --threads 1 \
        --hparam vq-vae@16tok:vit_patch=12 &
    python benchmarks/flow_vq_families.py --stage train --families vq-gan --threads 1 \
        --hparam vq-gan:disc_start=200 --minutes 14 &
    wait
    python benchmarks/flow_vq_families.py --stage eval --families caloflow-student calo-inn \
        vq-vae vq-vae@16tok vq-gan                          # generate + evaluate + loglik
    python benchmarks/flow_vq_families.py --stage table --families caloflow-student calo-inn \
        vq-vae vq-vae@16tok vq-gan                          # timings on an idle machine
    # the MAF teacher samples fibre by fibre (~seconds per shower): it and its student are
    # compared on the first 300 test events, in a directory of their own
    python benchmarks/flow_vq_families.py --stage eval --families caloflow-student caloflow \
        --eval-events 300 --runs-dir benchmarks/out/flow_vq_families \
        --out-dir benchmarks/out/flow_vq_teacher300       # then --stage table, same options

Data: as benchmarks/fast_families.py (100k ZN, seed 21, grouped split 0.8/0.1/0.1; the file is
shared with that benchmark's directory when it exists). Each family trains for ``--minutes``
of wall-clock time (batch 256, constant lr 1e-3 or the family's recommendation, EMA 0.999;
best checkpoint by validation channel W1 on 512 validation events every 500 steps, or by
validation NLL for the MAF teacher, whose sampling is too slow to validate by).
``caloflow-student`` distils the trained ``caloflow`` run (its minutes include the teacher's).
The MAF teacher samples pixel by pixel (seconds per shower on a CPU), so every model is
evaluated on the first ``--eval-events`` test events (default 2000, the floor on the same
events). The eval stage also computes the flows' mean test log-likelihood (lower bound, nats per
shower, 4 dequantisation draws, first 1000 test events; the student's own likelihood is
sequential and is not computed). The table adds network calls, generation time per response
(batch 1 and 1000 — ``--slow-batch`` for the MAF — 1 thread and all threads), the exported
network's time in ONNX Runtime (batch 1000, 1 thread) for the one-pass models, and the two
targets of issue 6: the student's speed-up over its teacher at no more than 20 % worse channel
W1, and VQ generation under 0.2 ms/response at batch 1000. Outputs under
benchmarks/out/flow_vq_families/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from diffusion_families import onnx_ms  # noqa: E402
from fast_families import generation_ms, prepare_data, summarise  # noqa: E402

from calogen.data.showerset import ShowerSet  # noqa: E402
from calogen.data.split import write_rows  # noqa: E402
from calogen.metrics.classifier import CALOGEN_DEFAULT  # noqa: E402
from calogen.metrics.evaluate import EvaluationConfig, evaluate  # noqa: E402
from calogen.models.io import (
    hparams_on_top_of,
    load_model,  # noqa: E402
)
from calogen.models.registry import families_in, family_class, optimizer_defaults
from calogen.pipelines.loglik import shower_log_likelihoods  # noqa: E402
from calogen.pipelines.validation import validator_for
from calogen.train.generation import generate_to_showerset, model_sampler  # noqa: E402
from calogen.train.run import train_model  # noqa: E402
from calogen.train.trainer import TrainConfig  # noqa: E402

FAMILIES = tuple(families_in("flow", "token"))
SMOKE_HPARAMS: dict[str, dict] = {
    "caloflow": {"stage1_layers": 2, "stage1_hidden": [16], "stage2_layers": 2,
                 "stage2_hidden": [32]},
    "calo-inn": {"stage1_layers": 2, "stage1_hidden": [16], "stage2_layers": 2,
                 "stage2_hidden": [32]},
}
"""Tiny networks for ``--smoke`` (families not listed use their defaults)."""
LOGLIK_EVENTS = 1000


def split_name(name: str) -> tuple[str, str]:
    """``"vq-vae@16tok"`` -> (family ``"vq-vae"``, run name ``"vq-vae@16tok"``): a tag after
    ``@`` names a variant of a family (its hparams given as ``--hparam vq-vae@16tok:k=v``)."""
    return name.partition("@")[0], name


def train_family(name: str, out: Path, data: Path, minutes: float, hparams: dict,
                 smoke: bool) -> None:
    """Train ``name`` (a family, or a tagged variant) for ``minutes`` (on top of its base run
    when it has one)."""
    family, _ = split_name(name)
    run = out / f"run_{name}"
    need = family_class(family).built_on
    if need is not None:
        base = out / f"run_{need.default_family}" / "best"
        if not base.exists():
            raise SystemExit(f"{family} needs the {need.default_family} run first "
                             f"(--families {need.default_family})")
        hparams = hparams_on_top_of(family, base, hparams)
    tcfg = TrainConfig(max_minutes=minutes, batch_size=256, schedule="constant",
                       val_every=20 if smoke else 500, val_events=128 if smoke else 512,
                       checkpoint_every=1000, seed=0, ema_decay=0.999,
                       **{"lr": 1e-3, **optimizer_defaults(family)})
    t0 = time.perf_counter()
    result = train_model(family, data, run, config=tcfg, hparams=hparams, overwrite=True,
                         val_metric=validator_for(family, "ZN"), progress=False)
    doc = {"family": name, "steps": result.steps, "best_step": result.best_step,
           "train_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(),
           "base": None if need is None else str(out / f"run_{need.default_family}")}
    (run / "bench_train.json").write_text(json.dumps(doc, indent=1))
    print(f"{name}: {result.steps} steps in {doc['train_seconds']:.0f} s -> {run}", flush=True)


def evaluate_family(name: str, out: Path, test: Path, cfg: EvaluationConfig,
                    runs: Path | None = None) -> None:
    """Generate for the evaluation events, evaluate, and (flows) the test log-likelihood; the
    trained run is ``runs/run_<name>`` (default: under ``out``)."""
    family, _ = split_name(name)
    run = (runs or out) / f"run_{name}"
    train_doc = json.loads((run / "bench_train.json").read_text())
    model = load_model(run / "best")
    t0 = time.perf_counter()
    gen = generate_to_showerset(model_sampler(model, batch_size=500), test,
                                out / f"gen_{name}.h5", producer={"name": name},
                                overwrite=True, progress=True)
    gen_s = time.perf_counter() - t0
    loglik = None
    if hasattr(model, "log_likelihood") and family != "caloflow-student":
        ll, _ = shower_log_likelihoods(model, test, max_events=LOGLIK_EVENTS, progress=False)
        loglik = float(np.mean(ll))
    base_s = 0.0
    if train_doc["base"]:
        base_s = json.loads((Path(train_doc["base"]) / "bench_train.json").read_text())[
            "train_seconds"]
    doc = {**train_doc, "hparams": model.hparams, "model_dir": str(run / "best"),
           "network_calls": model.network_calls(), "base_train_seconds": base_s,
           "params": sum(p.numel() for p in model.parameters()), "generation_seconds": gen_s,
           "test_loglik": loglik, "metrics": summarise(evaluate(test, gen, config=cfg))}
    (out / f"result_{name}.json").write_text(json.dumps(doc, indent=1))
    print(f"{name}: evaluated -> {out / f'result_{name}.json'}", flush=True)


def print_table(out: Path, families: list[str], test: Path, slow_batch: int) -> None:
    """The benchmark table (timings measured now) and the issue's two targets."""
    with ShowerSet.open(test) as ts:
        cond, pdg = ts.conditions(), ts.pdg()
    docs = {f: json.loads((out / f"result_{f}.json").read_text()) for f in families
            if (out / f"result_{f}.json").exists()}
    if not docs:
        raise SystemExit(f"no results in {out}: run --stage train and --stage eval first")
    all_t = torch.get_num_threads()
    floor = next(iter(docs.values()))["metrics"]["chW1"]["floor"]
    print(f"\nZN; evaluated on {len(pdg)} test events; floor (halves by condition group): "
          f"channel W1 = {floor:.3g} photons")
    print(f"{'model':17s} {'steps':>6s} {'min':>5s} {'calls':>6s} {'chW1':>7s} {'/floor':>6s} "
          f"{'AUC low':>7s} {'AUC high':>8s} {'loglik':>8s} {'ms b1/1t':>9s} {'batch':>5s} "
          f"{'bN/1t':>8s} {f'bN/{all_t}t':>8s} {'ort b1000':>9s} {'params':>8s}")
    timing: dict[str, float] = {}
    for family, d in docs.items():
        m = d["metrics"]
        w1 = m["chW1"]["value"]
        model = load_model(d["model_dir"])
        slow = not model.exportable() and model.family == "caloflow"
        n_big = slow_batch if slow else 1000
        t = {(b, th): generation_ms(model, cond, pdg, b, th, repeats=1 if b > 1 else 3,
                                    warmup=2 if slow else 8)[0]
             for b in (1, n_big) for th in (1, all_t)}
        timing[family] = t[(n_big, 1)]
        ort_ms = onnx_ms(model, 1000, 1, max_calls=10_000) if model.exportable() else None
        minutes = (d["train_seconds"] + d.get("base_train_seconds", 0.0)) / 60
        ll = "-" if d.get("test_loglik") is None else f"{d['test_loglik']:.0f}"
        print(f"{family:17s} {d['steps']:6d} {minutes:5.1f} {d['network_calls']:6d} "
              f"{w1:7.3g} {w1 / floor:6.2f} {m['AUC low']['value']:7.3f} "
              f"{m['AUC high']['value']:8.3f} {ll:>8s} {t[(1, 1)]:9.2f} {n_big:5d} "
              f"{t[(n_big, 1)]:8.3f} {t[(n_big, all_t)]:8.3f} "
              f"{'-' if ort_ms is None else f'{ort_ms:.4f}':>9s} {d['params']:8d}", flush=True)
    if "caloflow" in docs and "caloflow-student" in docs:
        speed = timing["caloflow"] / timing["caloflow-student"]
        worse = (docs["caloflow-student"]["metrics"]["chW1"]["value"]
                 / docs["caloflow"]["metrics"]["chW1"]["value"] - 1.0)
        print(f"target IAF student vs MAF teacher: {speed:.0f}x faster (>= 20x), channel W1 "
              f"{100 * worse:+.0f}% (<= +20%) -> "
              f"{'met' if speed >= 20 and worse <= 0.2 else 'NOT met'}")
    for name, ms in timing.items():
        if split_name(name)[0] in ("vq-vae", "vq-gan"):
            print(f"target {name} < 0.2 ms/response at batch 1000 (1 thread): {ms:.3f} ms -> "
                  f"{'met' if ms < 0.2 else 'NOT met'}")
    print(f"outputs: {out.resolve()}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Flow and VQ families on one CPU budget.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--stage", choices=("all", "train", "eval", "table"), default="all")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--eval-events", type=int, default=2000)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES),
                    help="families, or tagged variants family@tag (hparams per name)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads while training")
    ap.add_argument("--slow-batch", type=int, default=100,
                    help="the large batch of the MAF teacher's generation timing")
    ap.add_argument("--hparam", action="append", default=[],
                    help="name:key=value (JSON value), e.g. caloflow:stage2_layers=4 or "
                         "vq-vae@16tok:vit_patch=12")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "flow_vq_families")
    ap.add_argument("--runs-dir", type=Path, default=None,
                    help="where the trained run_* directories are [default: --out-dir]; to "
                         "evaluate trained runs on other events in another directory")
    args = ap.parse_args()
    n, minutes = (3_000, 0.2) if args.smoke else (args.n, args.minutes)
    extra: dict[str, dict] = {}
    for item in args.hparam:
        fam, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        extra.setdefault(fam, {})[key] = json.loads(value)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).parent / "out" / "fast_families"
    data_dir = shared if (shared / f"zn_{n}.h5").exists() and not args.smoke else out
    data, test_full, _ = prepare_data(data_dir, n)
    n_eval = 200 if args.smoke else args.eval_events
    test = out / f"test_{n}_first{n_eval}.h5"
    if not test.exists():
        with ShowerSet.open(test_full) as ts:
            m = min(n_eval, len(ts))
        write_rows(test_full, np.arange(m), test)
    cfg = EvaluationConfig(progress=False, classifier=replace(
        CALOGEN_DEFAULT, n_seeds=1 if args.smoke else 5))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage in ("all", "train"):
        for family in args.families:
            hp = {**(SMOKE_HPARAMS.get(split_name(family)[0], {}) if args.smoke else {}),
                  **extra.get(family, {})}
            train_family(family, out, data, minutes, hp, args.smoke)
    if args.stage in ("all", "eval"):
        for family in args.families:
            evaluate_family(family, out, test, cfg, args.runs_dir)
    if args.stage in ("all", "table"):
        print_table(out, args.families, test, 10 if args.smoke else args.slow_batch)


if __name__ == "__main__":
    main()
