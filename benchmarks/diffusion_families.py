"""Iterative families (EDM, flow matching, DDPM/DDIM, consistency distillation) on the data,
split and evaluation of the fast-family benchmark, with a fidelity-vs-steps curve.

    python benchmarks/diffusion_families.py --smoke                  # < 5 minutes
    python benchmarks/diffusion_families.py --stage train --families edm --threads 1 &
    python benchmarks/diffusion_families.py --stage train --families flow-matching --threads 1 &
    wait
    python benchmarks/diffusion_families.py --stage train --families consistency ddpm
    python benchmarks/diffusion_families.py --stage table

Data: as benchmarks/fast_families.py (100k ZN, seed 21, grouped split 0.8/0.1/0.1). Each
family trains for ``--minutes`` of wall-clock time (a small U-Net: ``--hparam`` to change;
constant lr, EMA 0.999; validation channel W1 on 256 validation events every 200 steps; the
best checkpoint is kept). ``consistency`` distils the trained ``edm`` run;
``latent-flow-matching`` learns the latent space of the fast-family benchmark's VAE (batch 256;
its table minutes include the base model's training time, as do consistency's). Sampling is costly
on a CPU (tens of U-Net passes per shower), so the evaluation uses the first
``--eval-events`` test events (default 2000; the floor is computed on the same events). The
table stage adds network calls and generation time per response (batch 1 and 1000, 1 thread
and all threads; the large batch is 1000 for models with at most 16 calls and
``--timing-batch`` for the U-Net samplers, 1 repeat), for the exportable models
with at most 16 calls the time of the exported network in ONNX Runtime (batch 1000, 1 thread,
without the readout), and draws channel W1 against the number of sampling steps
(``steps_curve.png``). Outputs under
benchmarks/out/diffusion_families/ (the data are shared with the fast-family benchmark's
directory when it exists).
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
from fast_families import generation_ms, prepare_data, summarise  # noqa: E402

from calogen.data.showerset import ShowerSet  # noqa: E402
from calogen.data.split import write_rows  # noqa: E402
from calogen.geometry.channels import channel_sums  # noqa: E402
from calogen.geometry.zdc import ZN  # noqa: E402
from calogen.metrics.classifier import CALOGEN_DEFAULT  # noqa: E402
from calogen.metrics.distances import channel_wasserstein  # noqa: E402
from calogen.metrics.evaluate import EvaluationConfig, evaluate  # noqa: E402
from calogen.models.io import (
    hparams_on_top_of,  # noqa: E402
    load_model,  # noqa: E402
)
from calogen.models.registry import families_in, family_class  # noqa: E402
from calogen.pipelines.validation import channel_w1_validator
from calogen.report.style import new_figure, save_figure  # noqa: E402
from calogen.train.generation import generate_to_showerset, model_sampler  # noqa: E402
from calogen.train.run import train_model  # noqa: E402
from calogen.train.trainer import TrainConfig  # noqa: E402

FAMILIES = (*families_in("diffusion"), "vae")
"""``vae`` is the fast-family benchmark's VAE (not retrained), evaluated here for comparison."""
FAST_VAE = Path(__file__).parent / "out" / "fast_families" / "run_vae" / "best"
UNET = {"unet_channels": [16, 32, 48], "unet_attention": True, "groups": 8}
"""The benchmark's U-Net: 3 levels (44x44, 22x22, 11x11), attention at 11x11."""
STEPS_CURVE = {"edm": [2, 4, 8, 18], "flow-matching": [1, 2, 4, 10], "ddpm": [5, 10, 25, 50],
               "consistency": [1, 2, 4], "latent-flow-matching": [1, 2, 4, 8]}


FAMILY_HPARAMS: dict[str, dict] = {}
"""Per-family hparams of the benchmark beyond the U-Net (e.g. ``{"ddpm": {"prediction":
"eps"}}`` for the published DDPM; the result of that run is quoted in the DDPM docstring)."""


def base_model(family: str, out: Path, data: Path, minutes: float, smoke: bool) -> Path:
    """The trained model ``family`` is built on: the ``edm`` run for consistency; for latent
    flow matching the fast-family benchmark's VAE (trained there, on the same data and split),
    or (smoke mode, or without that run) a VAE trained here for ``minutes``."""
    if family == "consistency":
        teacher = out / "run_edm" / "best"
        if not teacher.exists():
            raise SystemExit("consistency needs the edm run first (--families edm)")
        return teacher
    if FAST_VAE.exists() and not smoke:
        return FAST_VAE
    run = out / "run_vae"
    if not (run / "best").exists():
        train_model("vae", data, run, config=TrainConfig(
            max_minutes=minutes, batch_size=256, schedule="constant", val_every=100,
            val_events=256, seed=0, ema_decay=0.999), hparams={"backbone": "mlp"},
            overwrite=True, val_metric=channel_w1_validator("ZN"), progress=False)
    return run / "best"


def train_family(family: str, out: Path, data: Path, test: Path, minutes: float,
                 hparams: dict, smoke: bool, cfg: EvaluationConfig) -> None:
    run = out / f"run_{family}"
    base = None
    if family_class(family).built_on is not None:
        base = base_model(family, out, data, minutes, smoke)
        hparams = hparams_on_top_of(family, base, {})
    else:
        hparams = {**hparams, **FAMILY_HPARAMS.get(family, {})}
    if family == "latent-flow-matching":  # an MLP on a 10-d latent: large batches, cheap checks
        tcfg = TrainConfig(max_minutes=minutes, batch_size=256, lr=1e-3, schedule="constant",
                           val_every=100 if smoke else 500, val_events=256 if smoke else 2000,
                           checkpoint_every=1000, seed=0, ema_decay=0.999)
    else:
        tcfg = TrainConfig(max_minutes=minutes, batch_size=64,
                           lr=1e-3 if family != "consistency" else 2e-4, schedule="constant",
                           val_every=20 if smoke else 200, val_events=64 if smoke else 256,
                           checkpoint_every=1000, seed=0, ema_decay=0.999)
    if family == "vae":  # the fast-family VAE, evaluated on the same events for comparison
        run = base_model("latent-flow-matching", out, data, minutes, smoke).parent
        steps, train_s = log_steps_seconds(run / "log.csv")
    else:
        t0 = time.perf_counter()
        steps = train_model(family, data, run, config=tcfg, hparams=hparams, overwrite=True,
                            val_metric=channel_w1_validator("ZN"), progress=False).steps
        train_s = time.perf_counter() - t0
    model = load_model(run / "best")
    gen = generate_to_showerset(model_sampler(model, batch_size=500), test,
                                out / f"gen_{family}.h5", producer={"name": family},
                                overwrite=True, progress=False)
    doc = {"family": family, "hparams": model.hparams, "steps": steps,
           "model_dir": str(run / "best"),
           "train_seconds": train_s, "threads": torch.get_num_threads(),
           "network_calls": model.network_calls(), "base": None if base is None else str(base),
           "base_train_seconds": base_seconds(base),
           "params": sampling_parameters(model),
           "metrics": summarise(evaluate(test, gen, config=cfg))}
    (out / f"result_{family}.json").write_text(json.dumps(doc, indent=1))
    print(f"{family}: {steps} steps in {train_s:.0f} s -> {out / f'result_{family}.json'}",
          flush=True)


def log_steps_seconds(log: Path) -> tuple[int, float]:
    """(steps, wall-clock seconds) of a finished training run, from its ``log.csv``."""
    import csv

    if not log.exists():
        return 0, float("nan")
    rows = list(csv.DictReader(log.open()))
    return (int(rows[-1]["step"]), float(rows[-1]["seconds"])) if rows else (0, float("nan"))


def base_seconds(base: Path | None) -> float:
    """Training wall-clock time of a base model run (from its log), 0 without one."""
    return 0.0 if base is None else log_steps_seconds(base.parent / "log.csv")[1]


def sampling_parameters(model: torch.nn.Module) -> int:
    """Parameters a model evaluates when sampling: not the encoders of the autoencoders, not
    the EMA target of a consistency model; for latent flow matching the velocity field plus
    the autoencoder's decoder and its condition embedding."""
    family = getattr(model, "family", "")
    if family == "latent-flow-matching":
        mods = [model.velocity_net, model.cond_embed, model.ae.decoder, model.ae.cond_embed]
    elif family in ("vae", "ae-noise"):
        mods = [m for name, m in model.named_children() if name != "encoder"]
    elif family == "consistency":
        mods = [model.net, model.cond_embed]
    else:
        mods = [model]
    return sum(p.numel() for m in mods for p in m.parameters())


def draw_steps_curve(curves: dict, path: Path) -> Path:
    """Channel W1 against network calls per shower, one line per family (log-log)."""
    fig = new_figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    for family, c in curves.items():
        ax.plot(c["calls"], c["channel_w1"], "o-", label=family)
    ax.set_xscale("log")
    ax.set_yscale("log")  # few-step EDM/DDPM samples diverge by orders of magnitude
    ax.set_xlabel("network calls per shower")
    ax.set_ylabel("channel W1 [photons]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def steps_curve(out: Path, test: Path, events: int) -> Path:
    """Channel W1 of each iterative model against its number of sampling steps (PNG), on the
    first ``events`` evaluation events."""
    with ShowerSet.open(test) as ts:
        b = ts.read(0, events)
    ref = channel_sums(b.showers, ZN)
    curves = {}
    for family, steps_list in STEPS_CURVE.items():
        if not (out / f"run_{family}" / "best").exists():
            continue
        model = load_model(out / f"run_{family}" / "best")
        calls, w1 = [], []
        for steps in steps_list:
            model.configure_sampling(steps=steps)
            g = model.sample(b.conditions, b.pdg, torch.Generator().manual_seed(0),
                             batch_size=500)
            calls.append(model.network_calls())
            w1.append(float(channel_wasserstein(ref, channel_sums(g, ZN)).mean))
        curves[family] = {"steps": steps_list, "calls": calls, "channel_w1": w1}
    path = draw_steps_curve(curves, out / "steps_curve.png")
    (out / "steps_curve.json").write_text(json.dumps(curves, indent=1))
    for family, c in curves.items():
        print(f"{family:20s} " + "  ".join(f"{n} calls: {w:.3g}" for n, w in
                                           zip(c["calls"], c["channel_w1"], strict=True)))
    return path


ONNX_MAX_CALLS = 16
"""Models with at most this many network calls are also exported and timed in ONNX Runtime."""


def onnx_ms(model, batch: int, threads: int, repeats: int = 5,  # noqa: ANN001
            max_calls: int = ONNX_MAX_CALLS) -> float | None:
    """Time per response (ms) of the exported network (noise + conditions -> log image, no
    readout) in ONNX Runtime with ``threads`` intra-op threads, at ``batch``; ``None`` for
    models that do not export or need more than ``max_calls`` calls."""
    import tempfile

    import onnxruntime as ort

    from calogen.models.export_onnx import export_onnx

    if not model.exportable() or model.network_calls() > max_calls:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx").onnx
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {"noise": rng.standard_normal((batch, model.latent_dim), dtype=np.float32),
                "conditions": rng.standard_normal((batch, model.spec.n_conditions),
                                                  dtype=np.float32)}
        sess.run(None, feed)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) / batch * 1e3)
    return float(np.median(times))


def print_table(out: Path, families: list[str], test: Path, n: int, big: int) -> None:
    with ShowerSet.open(test) as ts:
        cond, pdg = ts.conditions(), ts.pdg()
    docs = [json.loads((out / f"result_{f}.json").read_text()) for f in families
            if (out / f"result_{f}.json").exists()]
    if not docs:
        raise SystemExit(f"no results in {out}: run --stage train first")
    all_t = torch.get_num_threads()
    floor = docs[0]["metrics"]["chW1"]["floor"]
    print(f"\nZN, {n} events; evaluated on {len(pdg)} test events; floor (halves by condition "
          f"group): channel W1 = {floor:.3g} photons")
    print(f"{'model':20s} {'steps':>6s} {'min':>5s} {'calls':>5s} {'chW1':>7s} {'/floor':>7s} "
          f"{'AUC low':>8s} {'AUC high':>8s} {'ms b1/1t':>9s} {'batch':>5s} {'bN/1t':>9s} "
          f"{f'bN/{all_t}t':>9s} {'ort b1000':>9s} {'params':>8s}")  # params used to sample
    for d in docs:
        m = d["metrics"]
        w1 = m["chW1"]["value"]
        model = load_model(d.get("model_dir", out / f"run_{d['family']}" / "best"))
        # the large batch N: 1000 for models with few calls; ``big`` for the U-Net samplers,
        # where batch 1000 takes minutes on a CPU (one repeat after a warm-up on 8)
        n_big = 1000 if model.network_calls() <= ONNX_MAX_CALLS and model.family != \
            "consistency" else big
        t = {(b, th): generation_ms(model, cond, pdg, b, th, repeats=1 if b > 1 else 5,
                                    warmup=8)[0]
             for b in (1, n_big) for th in (1, all_t)}
        ort_ms = onnx_ms(model, 1000, 1)
        minutes = (d["train_seconds"] + d.get("base_train_seconds", 0.0)) / 60
        print(f"{d['family']:20s} {d['steps']:6d} {minutes:5.1f} "
              f"{d['network_calls']:5d} {w1:7.3g} {w1 / floor:7.2f} "
              f"{m['AUC low']['value']:8.3f} {m['AUC high']['value']:8.3f} "
              f"{t[(1, 1)]:9.2f} {n_big:5d} {t[(n_big, 1)]:9.3f} {t[(n_big, all_t)]:9.3f} "
              f"{'-' if ort_ms is None else f'{ort_ms:.4f}':>9s} "
              f"{sampling_parameters(model):8d}", flush=True)
    print(f"outputs: {out.resolve()}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Iterative families on one CPU budget.")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--stage", choices=("all", "train", "table"), default="all")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--eval-events", type=int, default=2000)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--threads", type=int, default=None, help="torch threads while training")
    ap.add_argument("--timing-batch", type=int, default=1000,
                    help="the large batch of the generation timing")
    ap.add_argument("--curve-events", type=int, default=2000,
                    help="evaluation events used for the fidelity-vs-steps curve")
    ap.add_argument("--hparam", action="append", default=[], help="key=value (JSON)")
    ap.add_argument("--out-dir", type=Path,
                    default=Path(__file__).parent / "out" / "diffusion_families")
    args = ap.parse_args()
    n, minutes = (3_000, 0.15) if args.smoke else (args.n, args.minutes)
    if args.smoke:  # a smoke run checks that every stage runs, in a few minutes: small samples
        args.eval_events = min(args.eval_events, 200)
        args.curve_events = min(args.curve_events, 100)
        args.timing_batch = min(args.timing_batch, 32)
    hparams = {**UNET, **{k: json.loads(v) for k, _, v in
                          (h.partition("=") for h in args.hparam)}}
    if args.smoke:
        hparams = {**hparams, "unet_channels": [8, 16], "unet_attention": False, "groups": 4}
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).parent / "out" / "fast_families"
    data_dir = shared if (shared / f"zn_{n}.h5").exists() and not args.smoke else out
    data, test_full, _ = prepare_data(data_dir, n)
    test = out / f"test_{n}_first{args.eval_events}.h5"
    if not test.exists():
        with ShowerSet.open(test_full) as ts:
            m = min(args.eval_events, len(ts))
        write_rows(test_full, np.arange(m), test)
    seeds = 1 if args.smoke else 5
    cfg = EvaluationConfig(progress=False, classifier=replace(CALOGEN_DEFAULT, n_seeds=seeds))
    if args.stage in ("all", "train"):
        if args.threads:
            torch.set_num_threads(args.threads)
        for family in args.families:
            train_family(family, out, data, test, minutes, hparams, args.smoke, cfg)
    if args.stage in ("all", "table"):
        print_table(out, args.families, test, n, args.timing_batch)
        print(f"steps curve: {steps_curve(out, test, args.curve_events)}")


if __name__ == "__main__":
    main()
