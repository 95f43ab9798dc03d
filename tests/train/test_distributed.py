"""Data-parallel training on CPU: 2 gloo processes (torchrun) vs one process, same global batch.

The launched script builds its model from a *different* seed on each rank, so equal weights at
the end also test :func:`broadcast_parameters`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import calogen.train.distributed as D

SCRIPT = textwrap.dedent('''
    import hashlib, sys
    from pathlib import Path

    import torch
    import torch.nn.functional as F
    from torch import nn

    from calogen.models.generator import Generator
    from calogen.models.registry import register_family
    from calogen.train import distributed as D
    from calogen.train.data import load_training_data
    from calogen.train.trainer import Trainer, TrainConfig


    @register_family
    class DistToy(Generator):
        family = "dist-toy"

        def __init__(self, spec, latent_dim=2):
            super().__init__(spec, latent_dim=latent_dim)
            h, w = spec.shape
            self.net = nn.Sequential(nn.Linear(spec.n_conditions, 16), nn.Tanh(),
                                     nn.Linear(16, h * w))

        def decode(self, noise, cond, species=None):
            h, w = self.spec.shape
            return self.net(cond).view(-1, 1, h, w)

        def loss(self, batch, phase):
            loss = F.mse_loss(self.decode(None, batch.cond), batch.x)
            return loss, {}


    data_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    ctx = D.init_from_env("cpu")
    data = load_training_data(data_path, seed=0)
    torch.manual_seed(100 + ctx.rank)  # different on each rank: broadcast must fix it
    model = DistToy(data.spec)
    cfg = TrainConfig(lr=1e-2, batch_size=64, schedule="cosine", warmup_steps=2, max_steps=8,
                      ema_decay=0.8, checkpoint_every=4, val_every=4, val_events=32, seed=5,
                      device="cpu", num_threads=1)
    result = Trainer(model, data, cfg, out / "run", progress=False).fit()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, out / f"weights_rank{ctx.rank}.pt")
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in state.values())).hexdigest()
    (out / f"checksum_rank{ctx.rank}.txt").write_text(digest)
    print(f"rank {ctx.rank}/{ctx.world_size} steps {result.steps} backend {ctx.backend}")
    D.shutdown()
''')


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.skipif(not D.dist.is_available(), reason="torch.distributed not available")
def test_two_gloo_ranks_match_each_other_and_one_process(make_showerset, tmp_path):
    data_path = make_showerset()
    script = tmp_path / "ddp_toy.py"
    script.write_text(SCRIPT)
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", str(script), str(data_path), str(two)], tmp_path)
    _run([sys.executable, str(script), str(data_path), str(one)], tmp_path)
    assert "rank 1/2 steps 8 backend gloo" in out

    c0 = (two / "checksum_rank0.txt").read_text()
    c1 = (two / "checksum_rank1.txt").read_text()
    assert c0 == c1, "ranks ended with different weights"
    w0 = torch.load(two / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(two / "weights_rank1.pt", weights_only=True)
    ws = torch.load(one / "weights_rank0.pt", weights_only=True)
    init = _initial_weights(ws)
    for key in ws:
        assert torch.equal(w0[key], w1[key]), key
        torch.testing.assert_close(w0[key], ws[key], rtol=1e-5, atol=1e-6, msg=key)
        assert not torch.equal(ws[key], init[key]), f"{key} did not train"
    assert (two / "run" / "checkpoint.pt").is_file() and (two / "run" / "last").is_dir()
    assert not list((two / "run").glob(".checkpoint.pt.tmp-*"))


def _initial_weights(like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rank 0's initial weights (seed 100), rebuilt without the family class."""
    from torch import nn
    torch.manual_seed(100)
    k, hw = like["net.0.weight"].shape[1], like["net.2.weight"].shape[0]
    net = nn.Sequential(nn.Linear(k, 16), nn.Tanh(), nn.Linear(16, hw))
    return {f"net.{key}": v for key, v in net.state_dict().items()}


def test_single_process_helpers_are_no_ops(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = D.init_from_env("cpu")
    assert ctx.world_size == 1 and ctx.is_main and not ctx.distributed
    assert D.is_main() and D.get_world_size() == 1
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    D.average_gradients([p])
    assert torch.equal(p.grad, torch.full((3,), 2.0))
    D.barrier()
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        D.init_from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        D.init_from_env("cpu")


def test_bucketing_respects_dtype_and_size():
    ts = [torch.zeros(10), torch.zeros(10), torch.zeros(4, dtype=torch.float64), torch.zeros(30)]
    buckets = list(D._buckets(ts, bucket_bytes=100))
    assert [len(b) for b in buckets] == [2, 1, 1]
