import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from calogen.data.showerset import ShowerBatch, ShowerSet
from calogen.physics.simulator import ZN_SIMULATOR
from calogen.pipelines.reference import ReferenceEngine, simulate_to_file
from calogen.pipelines.shards import (
    OutputLayout,
    ShardOutput,
    ShardPlan,
    ShardSpec,
    run_shards,
    shard_folder,
)
from calogen.testing import processes as procs


@pytest.fixture(autouse=True)
def fixed_creation_time_and_one_physics_shard_per_file(monkeypatch):
    import calogen.pipelines.reference as reference

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(reference, "SHARDS_PER_FILE", 1)  # many shards in tiny runs


def simulate(out, **kw):
    return simulate_to_file(out, n=kw.pop("n", 400), seed=kw.pop("seed", 7), progress=False,
                            **kw)


@dataclass
class Flaky:
    """The reference engine, failing on shard ``fail_on`` as long as ``failures`` remain;
    records the shards it simulates (in-process only)."""

    inner: ReferenceEngine
    fail_on: int
    failures: int = 1
    calls: list = field(default_factory=list)
    watch: Path | None = None
    seen_output: list = field(default_factory=list)

    def __call__(self, spec):
        if self.watch is not None:
            self.seen_output.append(self.watch.exists())
        if spec.index == self.fail_on and self.failures > 0:
            self.failures -= 1
            raise RuntimeError(f"shard {spec.index} failed")
        self.calls.append(spec.index)
        return self.inner(spec)


def test_same_seed_same_file_with_one_and_two_workers(tmp_path):
    one = simulate(tmp_path / "one.h5", workers=1)
    two = simulate(tmp_path / "two.h5", workers=2, batch_size=256)
    assert one.n_written == two.n_written == 400 and one.n_shards == two.n_shards > 2
    assert one.path.read_bytes() == two.path.read_bytes()
    other = simulate(tmp_path / "other.h5", seed=8, workers=1)
    assert other.path.read_bytes() != one.path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "other.h5", "two.h5"]


def test_physics_shards_per_file_do_not_change_the_file(tmp_path, monkeypatch):
    import calogen.pipelines.reference as reference

    one = simulate(tmp_path / "one.h5", n=1000)
    monkeypatch.setattr(reference, "SHARDS_PER_FILE", 3)
    three = simulate(tmp_path / "three.h5", n=1000)
    assert three.n_shards == -(-one.n_shards // 3)
    assert one.path.read_bytes() == three.path.read_bytes()


def _patch_engine(monkeypatch, engine_factory):
    import calogen.pipelines.reference as reference

    monkeypatch.setattr(reference, "ReferenceEngine", engine_factory)


def test_a_failed_run_resumes_to_the_same_file_running_only_missing_shards(tmp_path,
                                                                           monkeypatch):
    clean = simulate(tmp_path / "clean.h5")
    out = tmp_path / "zn.h5"
    engines = []

    def factory(*args):
        engines.append(Flaky(ReferenceEngine(*args), fail_on=3, watch=out))
        return engines[-1]

    _patch_engine(monkeypatch, factory)
    with pytest.raises(RuntimeError, match="shard 3 failed"):
        simulate(out, resume=True)
    assert engines[0].calls == [0, 1, 2]
    assert not out.exists()  # no final file before all shards exist
    kept = sorted(p.name for p in shard_folder(out).glob("shard-*.h5"))
    assert kept == ["shard-000000.h5", "shard-000001.h5", "shard-000002.h5"]
    engines.clear()

    def healthy(*args):
        engines.append(Flaky(ReferenceEngine(*args), fail_on=-1, watch=out))
        return engines[-1]

    _patch_engine(monkeypatch, healthy)
    rep = simulate(out, resume=True)
    assert engines[0].calls == list(range(3, clean.n_shards))  # only the missing shards
    assert rep.n_run == clean.n_shards - 3 and rep.n_shards == clean.n_shards
    assert not any(engines[0].seen_output)
    assert out.read_bytes() == clean.path.read_bytes()
    assert not shard_folder(out).exists()
    assert rep.n_simulated == clean.n_simulated


def test_without_resume_a_failed_run_leaves_nothing(tmp_path, monkeypatch):
    _patch_engine(monkeypatch, lambda *a: Flaky(ReferenceEngine(*a), fail_on=2))
    with pytest.raises(RuntimeError, match="shard 2 failed"):
        simulate(tmp_path / "zn.h5")
    assert list(tmp_path.iterdir()) == []


def test_resume_with_other_parameters_is_refused_naming_them(tmp_path, monkeypatch):
    out = tmp_path / "zn.h5"
    _patch_engine(monkeypatch, lambda *a: Flaky(ReferenceEngine(*a), fail_on=2))
    with pytest.raises(RuntimeError):
        simulate(out, resume=True, seed=3)
    _patch_engine(monkeypatch, ReferenceEngine)
    with pytest.raises(ValueError, match=r"seed: 4 \(this run\) vs 3 \(the kept shards\)"):
        simulate(out, resume=True, seed=4)
    with pytest.raises(ValueError, match=r"repeats: 2 \(this run\) vs 1"):
        simulate(out, resume=True, seed=3, repeats=2)
    # The refused runs kept the shards; without --resume the leftovers are refused too.
    assert len(list(shard_folder(out).glob("shard-*.h5"))) == 2
    with pytest.raises(ValueError, match="--resume to continue it or --overwrite"):
        simulate(out, seed=3)
    assert simulate(out, seed=3, resume=True).n_run > 0
    assert out.exists() and not shard_folder(out).exists()


def test_overwrite_discards_a_stopped_run(tmp_path, monkeypatch):
    out = tmp_path / "zn.h5"
    _patch_engine(monkeypatch, lambda *a: Flaky(ReferenceEngine(*a), fail_on=2))
    with pytest.raises(RuntimeError):
        simulate(out, resume=True)
    _patch_engine(monkeypatch, ReferenceEngine)
    rep = simulate(out, overwrite=True)
    assert rep.n_run == rep.n_shards  # nothing reused


def test_a_corrupt_manifest_is_not_resumed(tmp_path):
    out = tmp_path / "zn.h5"
    shard_folder(out).mkdir()
    (shard_folder(out) / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json: not a calogen shard manifest"):
        simulate(out, resume=True)


# --- the generic runner -----------------------------------------------------------------------


@dataclass(frozen=True)
class RowEngine:
    """Each input row r gives an image filled with r + a random integer of the shard."""

    def __call__(self, spec: ShardSpec) -> ShardOutput:
        rows = np.arange(spec.start, spec.stop)
        noise = spec.rng().integers(0, 5, len(rows))
        showers = np.broadcast_to((rows + noise)[:, None, None], (len(rows), 2, 3)).copy()
        cond = np.stack([rows, rows], axis=1).astype(np.float32)
        return ShardOutput(ShowerBatch(showers.astype(np.int32), cond,
                                       np.full(len(rows), 22, np.int32), rows), len(rows))


LAYOUT = OutputLayout(detector="T", geometry={"name": "T"}, condition_columns=("a", "b"),
                      condition_units=("GeV", "GeV"), producer={"name": "test"},
                      shower_shape=(2, 3))


def test_row_shards_cover_every_row_once_and_truncate_at_the_target(tmp_path):
    plan = ShardPlan.rows(10, 3)
    assert plan.n_shards == 4 and plan.spec(3, 0) == ShardSpec(3, 0, 9, 10)
    rep = run_shards(RowEngine(), tmp_path / "a.h5", layout=LAYOUT, plan=plan, params={},
                     seed=1, progress=False)
    with ShowerSet.open(rep.path) as ss:
        b = ss.read()
        assert ss.meta.producer == {"name": "test"}  # the shards' bookkeeping is not kept
    np.testing.assert_array_equal(b.condition_id, np.arange(10))
    np.testing.assert_array_equal(b.conditions[:, 0], np.arange(10))
    cut = run_shards(RowEngine(), tmp_path / "b.h5", layout=LAYOUT,
                     plan=ShardPlan.rows(10, 3, target=5), params={}, seed=1, progress=False)
    assert cut.n_written == 5 and cut.n_shards == 2
    with ShowerSet.open(cut.path) as ss:
        np.testing.assert_array_equal(ss.read().showers, b.showers[:5])


def test_the_manifest_records_the_parameters_and_the_seed(tmp_path, monkeypatch):
    seen = {}

    def look(_client):
        seen.update(json.loads((shard_folder(tmp_path / "a.h5") / "manifest.json").read_text()))

    run_shards(RowEngine(), tmp_path / "a.h5", layout=LAYOUT, plan=ShardPlan.rows(4, 2),
               params={"what": (1, 2)}, seed=5, progress=False, on_client=look)
    assert seen["params"] == {"what": [1, 2], "seed": 5} and seen["output"] == "a.h5"


def test_a_live_run_on_the_same_output_is_refused(tmp_path):
    out = tmp_path / "a.h5"
    errors = []

    def second_run(_client):
        try:
            run_shards(RowEngine(), out, layout=LAYOUT, plan=ShardPlan.rows(4, 2), params={},
                       seed=5, progress=False, resume=True)
        except ValueError as exc:
            errors.append(str(exc))

    run_shards(RowEngine(), out, layout=LAYOUT, plan=ShardPlan.rows(4, 2), params={},
               seed=5, progress=False, on_client=second_run)
    assert len(errors) == 1 and "another run is writing it" in errors[0]
    assert out.exists()


def test_engine_of_the_reference_simulator_matches_the_physics_shards():
    from calogen.physics.simulator import simulate_shard

    out = ReferenceEngine(ZN_SIMULATOR, min_photons=10)(ShardSpec(2, 9))
    ref = simulate_shard(ZN_SIMULATOR, 9, 2, min_photons=10)
    np.testing.assert_array_equal(out.batch.showers, ref.showers)
    assert out.n_simulated == ref.n_simulated == 256


# --- kills ------------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_leaves_no_worker_and_the_run_resumes_to_the_same_file(tmp_path):
    out = tmp_path / "zn.h5"
    args = [sys.executable, "-m", "calogen", "simulate", "zn", "--n", "6000", "--seed", "2",
            "--out", str(out), "--no-progress", "--batch-size", "256"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    proc = subprocess.Popen([*args, "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    folder = shard_folder(out)
    try:
        assert procs.wait_for(lambda: len(list(folder.glob("shard-*.h5"))) >= 2, 60), \
            proc.stderr.read() if proc.poll() is not None else "no shard after 60 s"
        children = procs.children(proc.pid)
        assert len(children) >= 2
        proc.kill()
        proc.wait(timeout=20)
        gone = procs.wait_for(lambda: not any(procs.alive(c) for c in children), 5)
        assert gone, "orphaned workers"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not out.exists()
    done = len(list(folder.glob("shard-*.h5")))
    res = subprocess.run([*args, "--workers", "1", "--resume"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{done} resumed" in res.stdout
    clean = tmp_path / "clean.h5"
    res = subprocess.run([*args[:-5], "--out", str(clean), "--no-progress", "--workers", "1"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == clean.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "zn.h5"]


def _parent_death_signal():
    import ctypes

    value = ctypes.c_int()
    ctypes.CDLL("libc.so.6").prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
    return value.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")
def test_local_cluster_workers_get_sigkill_when_the_parent_dies():
    import cloudpickle

    from calogen.pipelines.shards import dask_client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with dask_client(2) as client:
            assert set(client.run(_parent_death_signal).values()) == {signal.SIGKILL}
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# --- calogen generate -------------------------------------------------------------------------


def test_generate_gives_the_same_file_with_one_and_two_workers(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import calogen.pipelines.generation as generation
    from calogen.cli.main import app

    runner = CliRunner()
    cond = simulate(tmp_path / "cond.h5", n=150, seed=1).path
    run = tmp_path / "vae"
    res = runner.invoke(app, ["train", "--model", "vae", "--data", str(cond), "--out", str(run),
                              "--steps", "2", "--batch-size", "32", "--val-every", "100",
                              "--no-progress", "--hparam", "backbone=mlp", "--hparam",
                              "mlp_hidden=[16]", "--hparam", "latent_dim=4"])
    assert res.exit_code == 0, res.output
    monkeypatch.setattr(generation, "SHARD_ROWS", 40)  # 4 shards
    outs = []
    for workers in ("1", "2"):
        outs.append(tmp_path / f"gen{workers}.h5")
        res = runner.invoke(app, ["generate", "--model", str(run / "last"), "--conditions",
                                  str(cond), "--out", str(outs[-1]), "--seed", "3",
                                  "--batch-size", "16", "--workers", workers, "--no-progress"])
        assert res.exit_code == 0, res.output
        assert str(outs[-1].resolve()) in res.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with ShowerSet.open(outs[0]) as gen, ShowerSet.open(cond) as src:
        np.testing.assert_array_equal(gen.conditions(), src.conditions())
        np.testing.assert_array_equal(gen.condition_ids(), src.condition_ids())
        assert gen.meta.producer["seed"] == 3
        showers = gen.read().showers.reshape(150, -1)
    # Shards differ from one another (each has its own generator): no repeated block.
    assert not np.array_equal(showers[:40], showers[40:80])
    other = tmp_path / "other.h5"
    res = runner.invoke(app, ["generate", "--model", str(run / "last"), "--conditions",
                              str(cond), "--out", str(other), "--seed", "4", "--batch-size",
                              "16", "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert other.read_bytes() != outs[0].read_bytes()
