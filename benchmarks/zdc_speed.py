"""Speed of a one-step ZN model (issue 17 item 2): ms per response at batch 1, 100, 1000 and
10,000 on 1 and 2 CPU threads, for ``model.sample``, the ``calogen generate`` path (to an HDF5
ShowerSet) and ONNX Runtime on the exported model (readout in numpy), in float32, bfloat16 and
int8 (dynamic quantisation of the linear layers; ONNX: float32 and int8).

    python benchmarks/zdc_speed.py --model RUN/best --conditions TEST.h5
    python benchmarks/zdc_speed.py --model RUN/best --conditions TEST.h5 --batches 1000 \\
        --threads 1 --paths sample,onnx

Prints the table (mean +- std over ``--repeats`` timed runs after a warm-up; a run is at least
``--min-responses`` responses) and writes it as JSON (``--out``, default
benchmarks/out/zdc_speed.json). The machine's load changes absolute numbers: compare rows of
one run. :func:`speed_grid` (calogen.pipelines.model_timing) is what benchmarks/zdc_frontier.py
imports.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from calogen.atomic import write_text_atomic
from calogen.pipelines.model_timing import GRID_BATCHES, GRID_PATHS, GRID_THREADS, speed_grid

__all__ = ["speed_grid", "main"]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _words(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a trained run's model folder")
    ap.add_argument("--conditions", type=Path, required=True, help="a ZN ShowerSet")
    ap.add_argument("--batches", type=_ints, default=GRID_BATCHES)
    ap.add_argument("--threads", type=_ints, default=GRID_THREADS)
    ap.add_argument("--precisions", type=_words, default=("float32", "bfloat16", "int8"))
    ap.add_argument("--paths", type=_words, default=GRID_PATHS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-responses", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/zdc_speed.json"))
    args = ap.parse_args(argv)
    rows = speed_grid(args.model, args.conditions, batches=args.batches, threads=args.threads,
                      precisions=args.precisions, paths=args.paths, repeats=args.repeats,
                      min_responses=args.min_responses)
    print(f"{'path':9} {'precision':9} {'batch':>6} {'thr':>3}  ms/response (mean +- std)")
    for r in rows:
        print(f"{r.path:9} {r.precision:9} {r.batch:>6} {r.threads:>3}  "
              f"{r.ms_per_response:.4f} +- {r.ms_std:.4f}")
    doc = {"model": str(args.model.resolve()), "conditions": str(args.conditions.resolve()),
           "cpu_count": os.cpu_count(), "rows": [r.to_dict() for r in rows]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
