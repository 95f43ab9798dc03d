"""Fuzz calogen's file readers with mutated copies of valid files made by calogen itself.

Readers:
  showerset      ShowerSet open + meta + every batch + take + columns + validate_content (seeds:
                 ZN images, a voxel file and a ragged point-cloud file)
  npz-particles  calogen.data.alice_npz.read_alice_particles
  npz-responses  calogen.data.alice_npz.import_alice_npz (mutated responses, valid particles)
  calochallenge  calogen.data.calochallenge.import_calochallenge (dataset-1 photon files)
  caloclouds     calogen.data.caloclouds.import_caloclouds + export_caloclouds (CaloClouds HDF5)
  edm4hep        calogen.data.edm4hep.import_edm4hep, hits and steps (EDM4hep ROOT; uproot)

Engines:
  random   deterministic byte-level mutator (calogen.testing.mutate); every input runs in a forked
           child with a time limit (--timeout, default 10 s); crashes are seen by the exit signal.
  atheris  coverage-guided (libFuzzer via atheris, optional); a forked child fuzzes in-process
           and is restarted after a hang or crash, whose input libFuzzer saves.

Outcomes: "uncaught" is any exception other than ShowerSetError; "hang" a child over the limit;
"crash" a child killed by a signal. Results (summary.json, outcomes.jsonl) and the offending
inputs go to --out (default: fuzz-results/<reader>/).

    python benchmarks/fuzz_readers.py --inputs 100000 --workers 2
    python benchmarks/fuzz_readers.py --reader showerset --inputs 2000 --engine atheris
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from calogen.testing import fuzz


def _save_factory(out: Path, log: object) -> object:
    bad = out / "offending"

    def save(outcome: fuzz.Outcome, data: bytes) -> None:
        if outcome.kind == "ok":
            return
        bad.mkdir(parents=True, exist_ok=True)
        (bad / f"{outcome.kind}-{outcome.index:07d}.bin").write_bytes(data)
        log.write(fuzz.outcome_json(outcome) + "\n")  # type: ignore[attr-defined]
        log.flush()  # type: ignore[attr-defined]

    return save


def run_random(reader: str, n: int, seed: int, out: Path, timeout: float, workers: int,
               scratch: Path) -> fuzz.Tally:
    seeds = [p.read_bytes() for p in fuzz.seed_corpus(reader, scratch / "seeds")]
    tally = fuzz.Tally(reader)
    t0 = time.monotonic()
    with open(out / "outcomes.jsonl", "w") as log:
        save = _save_factory(out, log)
        for outcome in fuzz.run_inputs(fuzz.TARGETS[reader], fuzz.mutated_inputs(seeds, n, seed),
                                       scratch / "work", timeout=timeout, workers=workers,
                                       on_outcome=save):  # type: ignore[arg-type]
            tally.add(outcome)
            if tally.inputs % 1000 == 0:
                print(f"  {reader}: {tally.inputs}/{n} inputs, {tally.n_uncaught} uncaught, "
                      f"{tally.hangs} hangs, {tally.crashes} crashes "
                      f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    return tally


def _atheris_child(reader: str, runs: int, seed: int, out: Path, timeout: float,
                   corpus: Path, scratch: Path, counter: Path, log: Path) -> None:
    import atheris

    from calogen.data.errors import ShowerSetError

    target = fuzz.TARGETS[reader]
    work = scratch / "atheris-work"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"input-{os.getpid()}.bin"
    count_fd = os.open(counter, os.O_WRONLY | os.O_CREAT, 0o644)
    state = {"n": int(counter.read_text() or 0) if counter.exists() else 0}

    def one(data: bytes) -> None:
        state["n"] += 1
        os.pwrite(count_fd, f"{state['n']:<20d}".encode(), 0)
        path.write_bytes(data)
        try:
            target(path, work)
        except ShowerSetError:
            pass
        except Exception as exc:  # noqa: BLE001 - recorded, fuzzing goes on
            with open(log, "a") as fp:
                fp.write(json.dumps({"index": state["n"], "kind": "uncaught",
                                     "detail": f"{type(exc).__name__}: {str(exc)[:300]}"})
                         + "\n")
            bad = out / "offending"
            bad.mkdir(parents=True, exist_ok=True)
            (bad / f"uncaught-{state['n']:07d}.bin").write_bytes(data)

    atheris.instrument_all()
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-timeout={int(timeout)}", f"-seed={seed + 1}",
                   f"-artifact_prefix={out}/offending/", "-rss_limit_mb=4096",
                   str(corpus)], one)
    atheris.Fuzz()


def run_atheris(reader: str, n: int, seed: int, out: Path, timeout: float,
                scratch: Path) -> fuzz.Tally:
    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.exit("error: --engine atheris needs the optional package atheris "
                 "(pip install atheris); use --engine random otherwise")
    corpus = scratch / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for p in fuzz.seed_corpus(reader, scratch / "seeds"):
        (corpus / p.name).write_bytes(p.read_bytes())
    (out / "offending").mkdir(parents=True, exist_ok=True)
    counter, log = out / "atheris-count.txt", out / "outcomes.jsonl"
    log.write_text("")
    tally = fuzz.Tally(reader)
    done, restarts = 0, 0
    while done < n:
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                _atheris_child(reader, n - done, seed + restarts, out, timeout, corpus,
                               scratch, counter, log)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        text = counter.read_text().strip() if counter.exists() else ""
        now = int(text) if text else done
        if now == done:  # no progress: give up rather than loop
            break
        last = now
        if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0:
            # libFuzzer exits with 70 (timeout) or a crash code after saving the input
            arts = sorted((out / "offending").glob("timeout-*"))
            kind = "hang" if len(arts) > tally.hangs else "crash"
            if kind == "hang":
                tally.hangs += 1
            else:
                tally.crashes += 1
                sig = (signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status)
                       else f"exit {os.WEXITSTATUS(status)}")
                tally.crash_signals[sig] = tally.crash_signals.get(sig, 0) + 1
        done = last
        restarts += 1
    tally.inputs = done
    for line in log.read_text().splitlines():
        name = json.loads(line)["detail"].split(":", 1)[0]
        tally.uncaught[name] = tally.uncaught.get(name, 0) + 1
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=10000, help="mutated inputs per reader")
    ap.add_argument("--reader", choices=[*fuzz.ALL_READERS, "all"], default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=["random", "atheris"], default="random")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input (hang limit)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                    help="inputs run at once (random engine)")
    ap.add_argument("--out", type=Path, default=Path("fuzz-results"))
    args = ap.parse_args()
    if args.inputs < 1:
        ap.error("--inputs must be positive")
    readers = fuzz.ALL_READERS if args.reader == "all" else (args.reader,)
    rows = []
    for reader in readers:
        out = args.out / reader
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"calogen-fuzz-{reader}-") as tmp:
            if args.engine == "random":
                tally = run_random(reader, args.inputs, args.seed, out, args.timeout,
                                   args.workers, Path(tmp))
            else:
                tally = run_atheris(reader, args.inputs, args.seed, out, args.timeout, Path(tmp))
        summary = {"reader": reader, "engine": args.engine, "seed": args.seed,
                   "inputs": tally.inputs, "uncaught": tally.uncaught,
                   "hangs": tally.hangs, "crashes": tally.crashes,
                   "crash_signals": tally.crash_signals, "timeout_s": args.timeout,
                   "seconds": round(time.monotonic() - t0, 1)}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        rows.append(summary)
    print(f"\n{'reader':<15} {'inputs':>8} {'uncaught':>9} {'hangs':>6} {'crashes':>8}  "
          f"{'seconds':>8}  uncaught types")
    for r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["uncaught"].items())) or "-"
        print(f"{r['reader']:<15} {r['inputs']:>8} {sum(r['uncaught'].values()):>9} "
              f"{r['hangs']:>6} {r['crashes']:>8}  {r['seconds']:>8}  {kinds}")
    print(f"\nresults and offending inputs: {args.out.resolve()}/<reader>/")


if __name__ == "__main__":
    main()
