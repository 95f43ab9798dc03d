"""A short deterministic fuzz run over the file readers (fixed seed; a regression fails CI).

Each mutated input runs in a forked child (calogen.testing.fuzz.run_inputs), so a hang or a
crash is reported as such instead of stopping the suite. Only ShowerSetError may escape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calogen.testing import fuzz

N_INPUTS = {"showerset": 300, "npz-particles": 800, "npz-responses": 500, "calochallenge": 200,
            "caloclouds": 100, "edm4hep": 50}
SEED = 20240612


@pytest.mark.parametrize("reader", fuzz.ALL_READERS)
def test_mutated_inputs_raise_only_showerseterror(reader: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALOGEN_H5_PROBE_TIMEOUT", "1")
    seeds = [p.read_bytes() for p in fuzz.seed_corpus(reader, tmp_path / "seeds")]
    bad = []
    tally = fuzz.Tally(reader)
    for outcome in fuzz.run_inputs(fuzz.TARGETS[reader],
                                   fuzz.mutated_inputs(seeds, N_INPUTS[reader], SEED),
                                   tmp_path / "work", timeout=10.0, workers=1):
        tally.add(outcome)
        if outcome.kind != "ok":
            bad.append(f"input {outcome.index}: {outcome.kind}: {outcome.detail}")
    assert tally.inputs == N_INPUTS[reader]
    assert not bad, f"{len(bad)} of {tally.inputs} inputs escaped:\n" + "\n".join(bad[:20])


def test_mutator_is_deterministic_and_mutates() -> None:
    from calogen.testing.mutate import mutate

    data = bytes(range(256)) * 8
    outs = [mutate(data, s) for s in range(50)]
    assert outs == [mutate(data, s) for s in range(50)]
    assert all(o != data for o in outs[:10]) or sum(o != data for o in outs) >= 45


def test_runner_reports_hangs_crashes_and_uncaught(tmp_path: Path) -> None:
    import os
    import signal
    import time

    def target(path: Path, scratch: Path) -> None:
        kind = path.read_bytes()
        if kind == b"hang":
            time.sleep(60)
        elif kind == b"crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif kind == b"raise":
            raise KeyError("boom")

    inputs = [(0, b"ok"), (1, b"hang"), (2, b"crash"), (3, b"raise")]
    got = {o.index: o for o in fuzz.run_inputs(target, inputs, tmp_path, timeout=1.0,
                                               workers=2)}
    assert [got[i].kind for i in range(4)] == ["ok", "hang", "crash", "uncaught"]
    assert got[2].detail == "SIGSEGV" and got[3].detail.startswith("KeyError")
