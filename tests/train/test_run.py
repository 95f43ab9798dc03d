"""``calogen train`` as a user runs it, in fresh processes: the same seed reproduces a run bit
for bit, a run killed (SIGKILL) or stopped (SIGTERM) leaves nothing a user must clean and is
resumed, a finished run is extended with ``--resume --steps N``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import calogen
from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.pipelines.reference import simulate_to_file
from calogen.train.checkpoint import load_checkpoint

runner = CliRunner()

TINY = ["--model", "vae", "--batch-size", "32", "--hparam", "backbone=mlp",
        "--hparam", "mlp_hidden=[16,16]", "--no-progress", "--seed", "0"]
"""A VAE small enough to train a handful of steps in well under a second."""

WALL_CLOCK = {"seconds"}
"""log.csv columns that may differ between two identical runs."""

SLOW_SAVE = textwrap.dedent('''
    """`python -m calogen` whose n-th torch.save (the n-th checkpoint) signals through a file
    and then sleeps, so a test can kill or stop it while the checkpoint is being written."""
    import os, runpy, sys, time

    import torch

    real_save, calls = torch.save, []

    def slow_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        calls.append(1)
        if len(calls) == int(os.environ["SAVE_NUMBER"]):
            f.flush()
            open(os.environ["SAVE_FLAG"], "w").close()
            time.sleep(float(os.environ["SAVE_SLEEP"]))

    torch.save = slow_save
    sys.argv = ["calogen", *sys.argv[1:]]
    runpy.run_module("calogen", run_name="__main__")
''')


@pytest.fixture(scope="module")
def zn(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    return simulate_to_file(d / "zn.h5", n=200, seed=3, repeats=2, progress=False).path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    src = str(Path(calogen.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _train_args(data: Path, out: Path, *more: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), *TINY, *more]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _log(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [{k: v for k, v in row.items() if k not in WALL_CLOCK}
                for row in csv.DictReader(f)]


def test_same_seed_gives_bit_identical_runs_in_fresh_processes(zn, tmp_path):
    args = ["--steps", "4", "--val-every", "2", "--checkpoint-every", "2"]
    procs = [subprocess.Popen([sys.executable, "-m", "calogen",
                               *_train_args(zn, tmp_path / f"run{i}", *args)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in (1, 2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    one, two = tmp_path / "run1", tmp_path / "run2"
    for sub in ("best", "last"):
        a, b = (load_file(run / sub / "model.safetensors") for run in (one, two))
        assert a.keys() == b.keys() and len(a) > 10
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{sub}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
        docs = [json.loads((run / sub / "model.json").read_text()) for run in (one, two)]
        for doc in docs:
            doc.pop("created")
        assert docs[0] == docs[1]
    assert _log(one / "log.csv") == _log(two / "log.csv")
    assert (one / "config.json").read_text() == (two / "config.json").read_text()

    samples = []
    for run in (one, two):
        res = runner.invoke(app, ["generate", "--model", str(run / "best"), "--conditions",
                                  str(zn), "--out", str(run / "gen.h5"), "--seed", "0",
                                  "--no-progress"])
        assert res.exit_code == 0, res.output
        with ShowerSet.open(run / "gen.h5") as g:
            samples.append(g.read().showers)
    np.testing.assert_array_equal(samples[0], samples[1])


def _start_slow_save(data: Path, out: Path, tmp_path: Path, sleep: float, *args: str
                     ) -> tuple[subprocess.Popen[str], Path]:
    script, flag = tmp_path / "slow_save.py", tmp_path / "saving"
    script.write_text(SLOW_SAVE)
    proc = subprocess.Popen([sys.executable, str(script), *_train_args(data, out, *args)],
                            env=_env(SAVE_NUMBER="2", SAVE_FLAG=str(flag),
                                     SAVE_SLEEP=str(sleep)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its second checkpoint:\n"
                                 f"{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no second checkpoint within 240 s")
        time.sleep(0.05)
    return proc, flag


def test_kill_9_while_checkpointing_then_resume_leaves_nothing(zn, tmp_path):
    run = tmp_path / "run"
    args = ("--steps", "6", "--val-every", "2", "--checkpoint-every", "2")
    proc, _ = _start_slow_save(zn, run, tmp_path, 120.0, *args)
    try:
        debris = _hidden(run)
        assert any(name.startswith(f".checkpoint.pt.tmp-{proc.pid}-") for name in debris), debris
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert _hidden(run) == debris  # what the killed run left behind
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2

    res = runner.invoke(app, _train_args(zn, run, *args, "--resume"))
    assert res.exit_code == 0, res.output
    assert _hidden(run) == []
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
    assert [int(r["step"]) for r in _log(run / "log.csv")] == [2, 4, 6]


def test_sigterm_stops_cleanly_with_a_resumable_checkpoint(zn, tmp_path):
    run = tmp_path / "run"
    args = ("--steps", "8", "--val-every", "2", "--checkpoint-every", "2")
    proc, _ = _start_slow_save(zn, run, tmp_path, 1.0, *args)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM at step 4" in err and "--resume" in err
    assert "Traceback" not in err
    assert _hidden(run) == []
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    res = runner.invoke(app, _train_args(zn, run, *args, "--resume"))
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 8


def test_resume_with_more_steps_extends_a_finished_run(zn, tmp_path):
    """The 20 -> 30 rule in detail is tests/train/test_extend.py; here the command's side."""
    run = tmp_path / "run"
    args = ("--val-every", "2", "--checkpoint-every", "2")
    res = runner.invoke(app, _train_args(zn, run, "--steps", "4", *args))
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _train_args(zn, run, "--steps", "6", "--resume", *args))
    assert res.exit_code == 0, res.output
    assert "run extended at step 4: cosine schedule horizon 4 -> 6 steps" in res.output
    assert "trained vae: 6 steps" in res.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
    assert [int(r["step"]) for r in _log(run / "log.csv")] == [2, 4, 6]
    assert json.loads((run / "config.json").read_text())["max_steps"] == 6

    res = runner.invoke(app, _train_args(zn, run, "--steps", "5", "--resume", *args))
    assert res.exit_code == 2
    assert "the run is at step 6, beyond this run's budget of 5 steps" in res.output
    assert "Traceback" not in res.output
