"""The ``calogen`` entry point: SIGTERM during a command raises, so its atomic writers delete
their temporaries at once and the exit status is 143 (``train`` keeps its own handling,
checked by tests/train/test_run.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data import alice_npz
from calogen.pipelines.reference import simulate_to_file

runner = CliRunner()


@pytest.fixture(scope="module")
def zn(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("zn")
    return simulate_to_file(d / "zn.h5", n=20, seed=3, progress=False).path


def test_sigterm_during_an_export_leaves_nothing_and_exits_143(zn, tmp_path, monkeypatch):
    write_member = alice_npz._write_npz_member

    def write_then_get_terminated(path, *args, **kwargs):
        write_member(path, *args, **kwargs)  # a complete temporary file now exists
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(alice_npz, "_write_npz_member", write_then_get_terminated)
    before = signal.getsignal(signal.SIGTERM)
    res = runner.invoke(app, ["export-npz", str(zn), "--responses", str(tmp_path / "r.npz"),
                              "--particles", str(tmp_path / "p.npz")])
    assert res.exit_code == 128 + signal.SIGTERM, res.output
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the command

