import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from calogen.cli.main import app
from calogen.data.showerset import ShowerSet
from calogen.testing import processes as procs

runner = CliRunner()


def test_simulate_writes_a_showerset_and_says_where(tmp_path):
    out = tmp_path / "zn.h5"
    res = runner.invoke(app, ["simulate", "zn", "--n", "150", "--seed", "5", "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert str(out.resolve()) in res.output
    with ShowerSet.open(out) as ss:
        assert len(ss) == 150 and ss.meta.detector == "ZN"


def test_simulate_zp_with_repeats(tmp_path):
    out = tmp_path / "zp.h5"
    res = runner.invoke(app, ["simulate", "zp", "--n", "60", "--repeats", "3", "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        assert ss.shower_shape == (56, 30)
        ids = ss.condition_ids()
    assert len(np.unique(ids)) < len(ids)


def test_resimulate_particles_file(tmp_path):
    particles = np.zeros((4, 10), dtype=np.float64)
    particles[:, 0] = [100.0, 500.0, 1000.0, 2680.0]
    particles[:, 6] = particles[:, 0]  # pz: along the beam, side A
    particles[:, 7] = 939.565
    particles[:, 9] = 2112
    path = tmp_path / "particles.npz"
    np.savez_compressed(path, particles)
    out = tmp_path / "resim.h5"
    res = runner.invoke(app, ["simulate", "zn", "--particles", str(path), "--out", str(out),
                              "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        b = ss.read()
    np.testing.assert_allclose(b.conditions[:, 0], particles[:, 0])
    assert b.showers.reshape(4, -1).sum(1)[-1] > b.showers.reshape(4, -1).sum(1)[0]


def test_bad_input_exits_2_with_a_message_and_no_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, np.zeros((4, 7)))
    out = tmp_path / "o.h5"
    res = runner.invoke(app, ["simulate", "zn", "--particles", str(path), "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 2
    assert "bad.npz" in res.output
    assert not out.exists()
    res = runner.invoke(app, ["simulate", "zn", "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and "n (number of responses)" in res.output


def test_python_dash_m_calogen_runs():
    res = subprocess.run([sys.executable, "-m", "calogen", "--help"], capture_output=True,
                         text=True, check=True)
    assert "simulate" in res.stdout


def test_gun_config_round_trips_through_simulate(tmp_path):
    res = runner.invoke(app, ["gun-config", "zn"])
    assert res.exit_code == 0
    cfg = tmp_path / "gun.json"
    # Only neutrons: the file must then hold nothing else.
    data = json.loads(res.output)
    data["sources"] = {"2112": data["sources"]["2112"]}
    cfg.write_text(json.dumps(data))
    out = tmp_path / "n.h5"
    res = runner.invoke(app, ["simulate", "zn", "--n", "50", "--out", str(out), "--gun-config",
                              str(cfg), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ShowerSet.open(out) as ss:
        assert set(ss.pdg().tolist()) == {2112}
    cfg.write_text("{not json")
    res = runner.invoke(app, ["simulate", "zn", "--n", "5", "--out", str(tmp_path / "x.h5"),
                              "--gun-config", str(cfg), "--no-progress"])
    assert res.exit_code == 2 and "gun.json" in res.output


# --- kills, absurd options ------------------------------------------------------------------


def _worker_children(pid):
    """The Dask worker processes (spawned by multiprocessing) among ``pid``'s children."""
    found = []
    for child in procs.children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


def _start_long_simulation(out, *extra):
    """``calogen simulate`` with 2 workers, far from done; returns (process, child pids: the
    workers and any helper such as multiprocessing's resource tracker) once both workers run,
    the temporary file exists and a shard is done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "calogen", "simulate", "zn", "--n", "10000000", "--workers", "2",
         "--out", str(out), "--no-progress", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    shards = out.parent / f".{out.name}.shards"
    started = procs.wait_for(lambda: len(_worker_children(proc.pid)) == 2
                        and any(out.parent.glob(f".{out.name}.tmp-*"))
                        and any(shards.glob("shard-*.h5")), 60)
    workers = procs.children(proc.pid)
    if not started:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the simulation did not start its workers: {proc.communicate()[1]!r}")
    return proc, workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_workers_and_removes_the_temporary_file(tmp_path):
    out = tmp_path / "zn.h5"
    proc, workers = _start_long_simulation(out)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        gone = procs.wait_for(lambda: not any(procs.alive(w) for w in workers), 5)
        assert gone, "orphaned workers"
        assert proc.returncode == 128 + signal.SIGTERM
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        for pid in [proc.pid, *workers]:
            if procs.alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_the_parent_kills_the_workers(tmp_path):
    out = tmp_path / "zn.h5"
    proc, workers = _start_long_simulation(out)
    try:
        proc.kill()
        proc.wait(timeout=20)
        gone = procs.wait_for(lambda: not any(procs.alive(w) for w in workers), 5)
        assert gone, "orphaned workers"
    finally:
        for pid in workers:
            if procs.alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_huge_batch_size_finishes_quickly(tmp_path):
    out = tmp_path / "zn.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "calogen", "simulate", "zn", "--n", "10", "--workers", "2",
         "--batch-size", "1000000000", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("--batch-size 1000000000 --n 10 ran for more than 60 s")
    assert proc.returncode == 0, err
    with ShowerSet.open(out) as ss:
        assert len(ss) == 10


def test_negative_seed_names_the_option(tmp_path):
    res = runner.invoke(app, ["simulate", "zn", "--n", "10", "--seed", "-1", "--out",
                              str(tmp_path / "o.h5"), "--no-progress"])
    assert res.exit_code == 2
    assert "--seed" in res.output
    assert not (tmp_path / "o.h5").exists()


def test_simulate_ds1_pions_with_the_parametrised_engine(tmp_path):
    out = tmp_path / "pions.h5"
    res = runner.invoke(app, ["simulate", "ds1-pions", "--n", "12", "--seed", "1", "--out",
                              str(out), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert str(out.resolve()) in res.output and "parametrised" in res.output
    with ShowerSet.open(out) as ss:
        assert len(ss) == 12 and ss.meta.shower_shape == (533,)
        assert ss.meta.producer["engine"] == "parametrised"
        assert np.all(ss.read().pdg == 211)


def test_simulate_voxels_refuses_zdc_options(tmp_path):
    res = runner.invoke(app, ["simulate", "ds2", "--n", "5", "--repeats", "2", "--out",
                              str(tmp_path / "x.h5"), "--no-progress"])
    assert res.exit_code == 2 and "--repeats" in res.output
    res = runner.invoke(app, ["simulate", "hcal", "--n", "5", "--out",
                              str(tmp_path / "x.h5"), "--no-progress"])
    assert res.exit_code == 2 and "the parametrised engine simulates" in res.output
