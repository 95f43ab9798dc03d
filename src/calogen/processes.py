"""Process lifetime: worker processes that die with their parent, SIGTERM as an exception.

A worker pool must not outlive the command that started it, whatever kills the command:

- :func:`die_with_parent` (a pool initializer) asks Linux to send ``SIGKILL`` to the worker
  when its parent goes away (``prctl(PR_SET_PDEATHSIG)``), which also covers ``kill -9`` of
  the parent; elsewhere a daemon thread polls the parent's pid. Linux delivers the signal
  when the *thread* that created the worker exits, so create and use a pool in one thread
  that outlives it (for example the main thread).
- :func:`raise_on_sigterm` turns ``SIGTERM`` into a :class:`Terminated` exception in the
  main thread, so context managers run: atomic writers delete their temporary files and
  :func:`worker_pool` stops its workers.

Nothing here imports torch; the physics layer and the Dask workers can use it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import Any

from calogen.atomic import linux_libc_function

PR_SET_PDEATHSIG = 1
"""``prctl`` option: signal sent to this process when its parent (creating thread) exits."""

PARENT_POLL_SECONDS = 0.5
"""Interval of the parent-pid watchdog used where ``PR_SET_PDEATHSIG`` does not exist."""

WORKER_JOIN_SECONDS = 5.0
"""How long :func:`worker_pool` waits for a terminated worker before killing it."""


class Terminated(SystemExit):
    """Raised in the main thread by :func:`raise_on_sigterm` when a signal arrives; the exit
    status is ``128 + signal number`` (143 for ``SIGTERM``), as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _set_pdeathsig(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``; ``False`` where it is not available."""
    prctl = linux_libc_function("prctl")
    if prctl is None:
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return bool(prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make the calling process exit when its parent does (call it first in a worker).

    Args:
        parent_pid: the pid of the process that must outlive this one (default: the current
            parent). If it is already gone, the process exits at once: the parent may have
            died between starting the worker and this call.
    """
    expected = os.getppid() if parent_pid is None else parent_pid
    if not _set_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(expected,), daemon=True,
                         name="calogen-parent-watch").start()
    # A handler inherited from the parent (fork) would turn SIGTERM into an exception inside
    # a task; a worker simply stops.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.getppid() != expected:
        os._exit(1)


def _worker_init(parent_pid: int, initializer: Callable[..., object] | None,
                 initargs: tuple[Any, ...]) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(max_workers: int, *, initializer: Callable[..., object] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` whose workers die with this process.

    On normal exit the pool is shut down after its tasks finish. On an exception (including
    :class:`Terminated`, ``KeyboardInterrupt`` and the ``GeneratorExit`` of a generator closed
    early) pending tasks are cancelled and the workers terminated at once, not waited for.
    ``initializer(*initargs)`` runs in each worker after :func:`die_with_parent`.

    Workers are forked on Linux (as Python <= 3.13 does by default) and spawned elsewhere, so
    their parent is this process (not a fork server).
    """
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=max_workers,
                               mp_context=multiprocessing.get_context(method),
                               initializer=_worker_init,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        terminate_pool(pool)
        raise
    pool.shutdown(wait=True)


def terminate_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel pending tasks and stop the workers of ``pool`` without waiting for running
    tasks (``SIGTERM``, then ``SIGKILL`` after :data:`WORKER_JOIN_SECONDS`)."""
    # ``ProcessPoolExecutor`` offers no public way to stop running workers before Python 3.14;
    # its table of workers is read before ``shutdown`` drops it.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + WORKER_JOIN_SECONDS
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    pool.shutdown(wait=True)


@contextmanager
def raise_on_sigterm(signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[None]:
    """Within the block, the given signals raise :class:`Terminated` in the main thread
    (previous handlers restored afterwards). Outside the main thread, where Python cannot
    install handlers, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
