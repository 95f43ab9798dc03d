"""Fuzz calogen's file readers: seed corpora, reader targets and a forking runner.

Every input runs in a forked child (its own process group) with a time limit, so a hang or a
crash in native code (HDF5, zlib) is observed rather than suffered. An input's outcome is one of

* ``ok``: the reader accepted it, or refused it with :class:`~calogen.data.errors.ShowerSetError`;
* ``uncaught``: any other exception escaped (its type and message are recorded);
* ``hang``: the child ran longer than the limit and was killed;
* ``crash``: the child died by a signal (e.g. SIGSEGV, SIGABRT) or exited abnormally.

Used by ``benchmarks/fuzz_readers.py`` and ``tests/data/test_fuzz_readers.py``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import selectors
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Target = Callable[[Path, Path], None]
"""A reader under test: ``target(input_file, scratch_dir)`` raises on refusal."""

READERS: tuple[str, ...] = ("showerset", "npz-particles", "npz-responses", "calochallenge")
"""Names of the fuzzed readers."""

POINT_READERS: tuple[str, ...] = ("caloclouds", "edm4hep")
"""Point-cloud importers (``edm4hep`` needs uproot)."""

ALL_READERS: tuple[str, ...] = READERS + POINT_READERS
"""Every reader :data:`TARGETS` knows."""

N_SEED_EVENTS = 6
"""Events in each seed file (small files keep each input fast)."""


# --------------------------------------------------------------------------------------------
# Seed corpora
# --------------------------------------------------------------------------------------------


def _events(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from calogen.data import schema as S

    rng = np.random.default_rng(seed)
    showers = rng.poisson(0.4, size=(n, 44, 44)).astype(np.int32)
    conditions = rng.normal(size=(n, len(S.ZDC_CONDITION_COLUMNS))).astype(np.float32)
    pdg = rng.choice([2112, 2212, 22], size=n).astype(np.int32)
    return showers, conditions, pdg


def showerset_seeds(folder: Path) -> list[Path]:
    """Tiny valid ShowerSets: a ZN one from the reference simulator, two ZN ones from
    write_showerset, a voxel and a point-cloud one (several chunks each)."""
    from calogen.data import write_showerset
    from calogen.geometry import ZN
    from calogen.pipelines.reference import simulate_to_file

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    sim = folder / "zn-simulated.h5"
    simulate_to_file(sim, detector="zn", n=N_SEED_EVENTS, seed=1, progress=False,
                     overwrite=True)
    seeds.append(sim)
    showers, conditions, pdg = _events(N_SEED_EVENTS, 2)
    for name, dtype, chunk in (("zn-int32.h5", np.int32, 2), ("zn-float32.h5", np.float32, 4)):
        path = folder / name
        write_showerset(path, showers.astype(dtype), conditions, pdg, detector="ZN",
                        geometry=ZN.to_dict(), producer={"name": "calogen.testing.fuzz"},
                        chunk_events=chunk, overwrite=True)
        seeds.append(path)
    from calogen.testing.showersets import write_toy_points, write_toy_voxels

    seeds.append(write_toy_voxels(folder / "voxels.h5", N_SEED_EVENTS, seed=5, chunk_events=2,
                                  overwrite=True))
    seeds.append(write_toy_points(folder / "points.h5", N_SEED_EVENTS, seed=6, chunk_events=2,
                                  chunk_points=4, overwrite=True))
    return seeds


def particles_array(n: int = N_SEED_EVENTS, seed: int = 3) -> np.ndarray:
    """A valid ``(n, 10)`` ALICE particles array (9 conditions then the PDG code)."""
    _, conditions, pdg = _events(n, seed)
    return np.concatenate([conditions.astype(np.float64), pdg[:, None]], axis=1)


def npz_seeds(folder: Path, kind: str) -> list[Path]:
    """Valid ``.npz`` files of ``kind`` ``"particles"`` or ``"responses"`` (plain + compressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "particles":
        arr = particles_array()
    else:
        arr = _events(N_SEED_EVENTS, 4)[0].astype(np.float64 if kind == "responses" else None)
    seeds = []
    for name, save in (("savez", np.savez), ("savez_compressed", np.savez_compressed)):
        path = folder / f"{kind}-{name}.npz"
        save(path, arr)
        seeds.append(path)
    return seeds


def calochallenge_seeds(folder: Path) -> list[Path]:
    """Tiny CaloChallenge HDF5 files of the dataset-1 photon binning (float32 and float64)."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    seeds = []
    for dtype in ("float32", "float64"):
        path = folder / f"calochallenge-{dtype}.hdf5"
        with h5py.File(path, "w") as f:
            f["incident_energies"] = (256.0 * 2.0 ** rng.integers(0, 15, (N_SEED_EVENTS, 1))
                                      ).astype(dtype)
            f["showers"] = rng.exponential(1.0, (N_SEED_EVENTS, 368)).astype(dtype)
        seeds.append(path)
    return seeds


def caloclouds_seeds(folder: Path) -> list[Path]:
    """Tiny CaloClouds HDF5 files: zero-padded toy clouds (with an empty and a 1-point
    shower), energies (N, 1) float32 and (N,) float64."""
    import h5py

    from calogen.testing.showersets import toy_points

    folder.mkdir(parents=True, exist_ok=True)
    points, counts = toy_points(N_SEED_EVENTS, seed=4)
    events = np.zeros((N_SEED_EVENTS, 4, int(counts.max())), dtype=np.float32)
    starts = np.cumsum(counts) - counts
    for i, (lo, c) in enumerate(zip(starts, counts, strict=True)):
        events[i, :, :c] = points[lo:lo + c].T
    seeds = []
    for dtype, shape in (("float32", (N_SEED_EVENTS, 1)), ("float64", (N_SEED_EVENTS,))):
        path = folder / f"caloclouds-{dtype}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("events", data=events, chunks=(2, 4, events.shape[2]))
            f["energy"] = np.linspace(10.0, 90.0, N_SEED_EVENTS).astype(dtype).reshape(shape)
        seeds.append(path)
    return seeds


def edm4hep_seeds(folder: Path) -> list[Path]:
    """A tiny EDM4hep-layout ROOT file (hits ``ECal``, their contributions and relation,
    ``MCParticles``), written with uproot."""
    import awkward as ak
    import uproot

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    n_hits = rng.integers(0, 4, N_SEED_EVENTS)
    branches: dict[str, list[list[float]]] = {}

    def put(name: str, values: list[list[float]]) -> None:
        branches[name] = values

    for m in ("x", "y", "z"):
        put(f"ECal.position.{m}", [list(rng.uniform(0, 20, k)) for k in n_hits])
        put(f"ECalContributions.stepPosition.{m}",
            [list(rng.uniform(0, 20, 2 * k)) for k in n_hits])
    put("ECal.energy", [list(rng.exponential(1e-3, k)) for k in n_hits])
    put("ECal.contributions_begin", [list(range(0, 2 * k, 2)) for k in n_hits])
    put("ECal.contributions_end", [list(range(2, 2 * k + 1, 2)) for k in n_hits])
    put("_ECal_contributions.index", [list(range(2 * k)) for k in n_hits])
    put("ECalContributions.energy", [list(rng.exponential(5e-4, 2 * k)) for k in n_hits])
    put("MCParticles.generatorStatus", [[1, 0]] * N_SEED_EVENTS)
    put("MCParticles.PDG", [[22, 11]] * N_SEED_EVENTS)
    for m in ("x", "y"):
        put(f"MCParticles.momentum.{m}", [[0.0, 0.1]] * N_SEED_EVENTS)
    put("MCParticles.momentum.z", [[float(e), 0.5] for e in rng.uniform(10, 90, N_SEED_EVENTS)])
    put("MCParticles.mass", [[0.0, 0.000511]] * N_SEED_EVENTS)
    ints = ("contributions", "generatorStatus", "PDG", "index")
    arrays = {k: ak.values_astype(ak.Array(v), "int32" if any(t in k for t in ints)
                                  else "float32") for k, v in branches.items()}
    path = folder / "edm4hep.root"
    with uproot.recreate(path) as f:
        tree = f.mktree("events", {k: a.type.content for k, a in arrays.items()})
        tree.extend(arrays)
    return [path]


def seed_corpus(reader: str, folder: Path) -> list[Path]:
    """The seed files of ``reader`` (made in ``folder``)."""
    if reader == "showerset":
        return showerset_seeds(folder)
    if reader == "npz-particles":
        return npz_seeds(folder, "particles")
    if reader == "npz-responses":
        return npz_seeds(folder, "responses")
    if reader == "calochallenge":
        return calochallenge_seeds(folder)
    if reader == "caloclouds":
        return caloclouds_seeds(folder)
    if reader == "edm4hep":
        return edm4hep_seeds(folder)
    raise ValueError(f"unknown reader {reader!r}; expected one of {ALL_READERS}")


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def read_showerset(path: Path, scratch: Path) -> None:
    """Open, read the header, stream every batch, take rows, read columns, validate content."""
    from calogen.data import ShowerSet

    with ShowerSet(path) as ss:
        _ = ss.meta, repr(ss)
        for _batch in ss.iter_batches(batch_size=4):
            pass
        n = len(ss)
        if n:
            ss.take([n - 1, 0, n // 2])
        ss.conditions()
        ss.pdg()
        ss.condition_ids()
        if ss.kind == "points":
            ss.counts()
            if n:
                ss.read().padded()
        ss.validate_content(batch_size=4)


def read_npz_particles(path: Path, scratch: Path) -> None:
    """``read_alice_particles`` of the input."""
    from calogen.data.alice_npz import read_alice_particles

    read_alice_particles(path)


def import_npz_responses(path: Path, scratch: Path) -> None:
    """``import_alice_npz`` of the input (responses) with valid particles into a temp file."""
    from calogen.data.alice_npz import import_alice_npz

    particles = scratch / "particles.npz"
    if not particles.exists():
        tmp = scratch / f".particles-{os.getpid()}.npz"
        np.savez(tmp, particles_array())
        os.replace(tmp, particles)
    out = scratch / f"out-{os.getpid()}.h5"
    try:
        import_alice_npz(path, particles, out, overwrite=True, batch_events=4)
    finally:
        out.unlink(missing_ok=True)


def import_calochallenge_file(path: Path, scratch: Path) -> None:
    """``import_calochallenge`` of the input (dataset 1 photons) into a temp file."""
    from calogen.data.calochallenge import import_calochallenge

    out = scratch / f"out-{os.getpid()}.h5"
    try:
        import_calochallenge(path, out, dataset="1-photons", overwrite=True, progress=False)
    finally:
        out.unlink(missing_ok=True)


def import_caloclouds_file(path: Path, scratch: Path) -> None:
    """``import_caloclouds`` of the input into a temp file, then ``export_caloclouds`` back."""
    from calogen.data.caloclouds import export_caloclouds, import_caloclouds
    from calogen.testing.showersets import TOY_VOLUME

    out = scratch / f"out-{os.getpid()}.h5"
    back = scratch / f"back-{os.getpid()}.h5"
    try:
        import_caloclouds(path, out, volume=TOY_VOLUME, overwrite=True, block_rows=4)
        export_caloclouds(out, back, overwrite=True)
    finally:
        out.unlink(missing_ok=True)
        back.unlink(missing_ok=True)


def import_edm4hep_file(path: Path, scratch: Path) -> None:
    """``import_edm4hep`` of the input (collection ``ECal``), hits then steps."""
    from calogen.data.edm4hep import import_edm4hep

    out = scratch / f"out-{os.getpid()}.h5"
    try:
        for steps in (False, True):
            import_edm4hep(path, out, collection="ECal", steps=steps, overwrite=True,
                           block_events=4)
    finally:
        out.unlink(missing_ok=True)


TARGETS: dict[str, Target] = {
    "showerset": read_showerset,
    "npz-particles": read_npz_particles,
    "npz-responses": import_npz_responses,
    "calochallenge": import_calochallenge_file,
    "caloclouds": import_caloclouds_file,
    "edm4hep": import_edm4hep_file,
}


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one input."""

    index: int
    kind: str  # "ok" | "uncaught" | "hang" | "crash"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Tally:
    """Counts over a run of one reader."""

    reader: str
    inputs: int = 0
    uncaught: dict[str, int] = field(default_factory=dict)
    hangs: int = 0
    crashes: int = 0
    crash_signals: dict[str, int] = field(default_factory=dict)
    max_seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.inputs += 1
        self.max_seconds = max(self.max_seconds, outcome.seconds)
        if outcome.kind == "uncaught":
            name = outcome.detail.split(":", 1)[0]
            self.uncaught[name] = self.uncaught.get(name, 0) + 1
        elif outcome.kind == "hang":
            self.hangs += 1
        elif outcome.kind == "crash":
            self.crashes += 1
            self.crash_signals[outcome.detail] = self.crash_signals.get(outcome.detail, 0) + 1

    @property
    def n_uncaught(self) -> int:
        return sum(self.uncaught.values())


def _child(target: Target, path: Path, scratch: Path, out_fd: int, timeout: float) -> None:
    """Body of a forked child: run the target and report on ``out_fd``; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        faulthandler.disable()  # crashes are expected and reported by the parent
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(timeout) + 5)  # dies by itself even if the parent is gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        from calogen.data.errors import ShowerSetError

        try:
            target(path, scratch)
            report = "ok"
        except ShowerSetError:
            report = "ok"
        except BaseException as exc:  # noqa: BLE001 - the point is to catch everything
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            report = f"{type(exc).__name__}: {str(exc)[:300]} [{where}]"
        os.write(out_fd, report.encode("utf-8", "replace")[:4000])
    except BaseException:  # noqa: BLE001
        code = 3
    finally:
        os._exit(code)


def run_inputs(target: Target, inputs: Iterable[tuple[int, bytes]], scratch: Path, *,
               timeout: float = 10.0, workers: int = 1,
               on_outcome: Callable[[Outcome, bytes], None] | None = None) -> Iterator[Outcome]:
    """Run ``target`` on each ``(index, data)`` in a forked child; yield the outcomes.

    Args:
        target: the reader under test.
        inputs: input bytes, with an index used in file names and reports.
        scratch: folder for the input files (one per running child, removed after).
        timeout: seconds before a child counts as a hang and is killed (with its group).
        workers: children running at once.
        on_outcome: called with each outcome and its input (e.g. to save offending inputs).
    """
    scratch.mkdir(parents=True, exist_ok=True)
    sel = selectors.DefaultSelector()
    running: dict[int, tuple[int, int, int, float, Path, bytes]] = {}  # pidfd -> info
    source = iter(inputs)
    exhausted = False

    def start(index: int, data: bytes) -> None:
        path = scratch / f"input-{index}.bin"
        path.write_bytes(data)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(target, path, scratch, w, timeout)
        os.close(w)
        pidfd = os.pidfd_open(pid)
        running[pidfd] = (pid, r, index, time.monotonic(), path, data)
        sel.register(pidfd, selectors.EVENT_READ)

    def finish(pidfd: int, killed: bool) -> Outcome:
        pid, r, index, t0, path, data = running.pop(pidfd)
        sel.unregister(pidfd)
        if killed:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        seconds = time.monotonic() - t0
        report = os.read(r, 8192).decode("utf-8", "replace")
        os.close(r)
        os.close(pidfd)
        try:
            os.killpg(pid, signal.SIGKILL)  # leftover grandchildren (e.g. a probe)
        except (ProcessLookupError, PermissionError):
            pass
        path.unlink(missing_ok=True)
        if killed:
            outcome = Outcome(index, "hang", f"killed after {timeout:g} s", seconds)
        elif os.WIFSIGNALED(status):
            outcome = Outcome(index, "crash", signal.Signals(os.WTERMSIG(status)).name, seconds)
        elif os.WEXITSTATUS(status) != 0 or not report:
            outcome = Outcome(index, "crash", f"exit {os.WEXITSTATUS(status)}", seconds)
        elif report == "ok":
            outcome = Outcome(index, "ok", "", seconds)
        else:
            outcome = Outcome(index, "uncaught", report, seconds)
        if on_outcome is not None:
            on_outcome(outcome, data)
        return outcome

    while running or not exhausted:
        while not exhausted and len(running) < workers:
            item = next(source, None)
            if item is None:
                exhausted = True
            else:
                start(*item)
        if not running:
            break
        now = time.monotonic()
        next_deadline = min(t0 + timeout for _, _, _, t0, _, _ in running.values())
        events = sel.select(max(0.0, next_deadline - now))
        for key, _ in events:
            yield finish(int(key.fd), killed=False)
        now = time.monotonic()
        for pidfd, (_, _, _, t0, _, _) in list(running.items()):
            if now - t0 > timeout:
                yield finish(pidfd, killed=True)
    sel.close()


def mutated_inputs(seeds: list[bytes], n: int, seed: int) -> Iterator[tuple[int, bytes]]:
    """``n`` mutated inputs: input ``i`` mutates seed file ``i % len(seeds)`` with ``seed + i``."""
    from calogen.testing.mutate import mutate

    for i in range(n):
        yield i, mutate(seeds[i % len(seeds)], seed * 1_000_003 + i)


def outcome_json(outcome: Outcome) -> str:
    """One JSON line describing ``outcome``."""
    return json.dumps({"index": outcome.index, "kind": outcome.kind, "detail": outcome.detail,
                       "seconds": round(outcome.seconds, 3)})
