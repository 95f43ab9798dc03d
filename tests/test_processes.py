"""Process lifetime helpers: workers die with their parent, SIGTERM becomes an exception."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from calogen.processes import Terminated, raise_on_sigterm, worker_pool

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _sleep_and_report_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _pid() -> int:
    return os.getpid()


def _sigterm_is_default() -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@linux_only
def test_workers_die_when_the_parent_is_killed(tmp_path):
    """The parent starts a pool, prints its workers' pids and is then SIGKILLed."""
    script = textwrap.dedent("""
        import os, sys, time
        from calogen.processes import worker_pool

        def pid():
            time.sleep(0.2)
            return os.getpid()

        with worker_pool(2) as pool:
            pids = {f.result() for f in [pool.submit(pid) for _ in range(4)]}
            print(" ".join(map(str, sorted(pids))), flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        assert proc.stdout is not None
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)
        proc.kill()
        proc.wait(timeout=10)
        assert _wait_until_gone(workers, 5), "workers outlived their parent"
    finally:
        proc.kill()
        proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@linux_only
def test_an_exception_stops_running_workers_at_once():
    t0 = time.monotonic()
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="stop"), worker_pool(2) as pool:
        pids = [pool.submit(_pid).result() for _ in range(2)]
        pool.submit(_sleep_and_report_pid, 60)
        time.sleep(0.2)
        raise RuntimeError("stop")
    assert time.monotonic() - t0 < 20  # not the 60 s of the running task
    assert _wait_until_gone(pids, 5)


def test_normal_exit_waits_for_the_tasks():
    with worker_pool(1) as pool:
        future = pool.submit(_sleep_and_report_pid, 0.1)
    assert future.done() and future.result() != os.getpid()


def test_sigterm_raises_terminated_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info, raise_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert info.value.code == 128 + signal.SIGTERM and info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_workers_do_not_inherit_the_sigterm_handler():
    with raise_on_sigterm(), worker_pool(1) as pool:
        assert pool.submit(_sigterm_is_default).result()
