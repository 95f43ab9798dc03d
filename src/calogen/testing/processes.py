"""Process inspection for tests of kills and worker pools (Linux ``/proc``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def _state_and_parent(pid: int | str) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process from ``/proc/<pid>/stat``; ``None`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def children(pid: int) -> list[int]:
    """Pids of the live (non-zombie) processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _state_and_parent(entry.name)
            if info is not None and info[1] == pid and info[0] != "Z":
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    info = _state_and_parent(pid)
    return info is not None and info[0] != "Z"


def wait_for(predicate: Callable[[], bool], seconds: float, poll: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()
