"""Seeded shards on Dask: cut work into shards, run them anywhere, merge them atomically.

Engines
-------
An *engine* is a picklable callable ``engine(spec: ShardSpec) -> ShardOutput``:

- ``spec.index`` is the shard number and ``spec.rng()`` the shard's random generator
  (``SeedSequence(seed, spawn_key=(index,))``), its only source of randomness; for work cut
  into rows (given particles, a conditions file) ``spec.start:spec.stop`` are the input rows
  it covers.
- It returns the shard's events as a :class:`~calogen.data.showerset.ShowerBatch` in the
  layout of the output file (:class:`OutputLayout`; point clouds with ``counts``), in input
  order, and how many inputs it consumed (``n_simulated``: more than the events returned when
  the engine applies a selection).
- The output must depend on ``spec`` alone, never on the process or the number of workers:
  then the same seed gives the same file whatever runs it. An engine runs in worker processes;
  heavy state (a model, a Geant4 run manager) is built on first use and kept per process.

The runner
----------
:func:`run_shards` runs the shards in-process (one worker) or on ``dask.distributed`` (a
local cluster of single-threaded worker processes, or an existing scheduler); whoever runs a
shard writes it as a small ShowerSet in a hidden folder beside the output
(``.<name>.shards/shard-000042.h5``, renamed into place when complete, so a present file is a
complete shard) and reports only its counts. The runner then merges the shards in shard
order into the output, written atomically, and removes the folder. The folder holds
``manifest.json``, the run's parameters: a run with ``resume=True`` re-runs only the missing
shards of a stopped run and refuses to continue one made with other parameters, naming the
difference. Without ``resume`` a failed or stopped
run removes its shards; with it, they are kept for the next ``resume``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from calogen.atomic import write_text_atomic
from calogen.data.showerset import ShowerBatch, ShowerSet, ShowerSetWriter

MANIFEST_NAME = "manifest.json"
LOCK_NAME = "lock"
MANIFEST_FORMAT = 1
"""Version of the manifest layout; a folder with another version is not resumed."""

TASKS_IN_FLIGHT_PER_WORKER = 2
"""Tasks submitted ahead per worker: keeps workers busy while bounding memory and the work
thrown away when an open-ended run reaches its target."""

CONNECT_TIMEOUT = "10s"
"""How long to wait for an existing scheduler (``--scheduler``)."""


# --------------------------------------------------------------------------------------------
# The engine contract
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardSpec:
    """One shard of a run: its number, the run seed and (for row work) its input rows."""

    index: int
    seed: int
    start: int | None = None
    stop: int | None = None

    def rng(self) -> np.random.Generator:
        """The shard's random generator: ``SeedSequence(seed, spawn_key=(index,))``."""
        seq = np.random.SeedSequence(self.seed, spawn_key=(self.index,))
        return np.random.Generator(np.random.PCG64(seq))


@dataclass(frozen=True)
class ShardOutput:
    """What an engine returns for one shard."""

    batch: ShowerBatch
    n_simulated: int


class ShardEngine(Protocol):
    """``(spec) -> ShardOutput``; see the module docstring for the contract."""

    def __call__(self, spec: ShardSpec) -> ShardOutput: ...


@dataclass(frozen=True)
class OutputLayout:
    """The :class:`ShowerSetWriter` arguments of the output (and of every shard file)."""

    detector: str
    geometry: Mapping[str, Any]
    condition_columns: tuple[str, ...]
    condition_units: tuple[str, ...]
    producer: Mapping[str, Any]
    shower_shape: tuple[int, ...] | None = None
    shower_dtype: str | None = None
    shower_units: str | None = None

    def writer(self, path: Path, *, overwrite: bool = False,
               producer: Mapping[str, Any] | None = None) -> ShowerSetWriter:
        """A writer of this layout at ``path`` (``producer`` replacing the run's)."""
        return ShowerSetWriter(
            path, shower_shape=self.shower_shape, detector=self.detector,
            geometry=self.geometry, condition_columns=self.condition_columns,
            condition_units=self.condition_units,
            producer=self.producer if producer is None else producer,
            shower_dtype=self.shower_dtype, shower_units=self.shower_units,
            overwrite=overwrite)


@dataclass(frozen=True)
class ShardPlan:
    """How a run is cut.

    Attributes:
        n_shards: number of shards; ``None``: open-ended, shards ``0, 1, 2, ...`` run until
            ``target`` events are kept (a selection makes the count per shard unknown).
        target: events to write; the shard that reaches it is truncated, later shards are
            not used. ``None``: every event of every shard (``n_shards`` required).
        rows_per_shard: with ``n_rows``, shard ``k`` gets ``spec.start = k * rows_per_shard``
            and ``spec.stop = min(start + rows_per_shard, n_rows)``.
        n_rows: number of input rows (row work).
    """

    n_shards: int | None = None
    target: int | None = None
    rows_per_shard: int | None = None
    n_rows: int | None = None

    def __post_init__(self) -> None:
        if self.n_shards is None and self.target is None:
            raise ValueError("an open-ended shard plan needs a target number of events")
        if self.n_shards is not None and self.n_shards < 0:
            raise ValueError(f"n_shards must be >= 0, got {self.n_shards}")
        if self.target is not None and self.target < 1:
            raise ValueError(f"target must be positive, got {self.target}")

    @classmethod
    def rows(cls, n_rows: int, rows_per_shard: int, target: int | None = None) -> ShardPlan:
        """``n_rows`` input rows cut into shards of ``rows_per_shard``."""
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be positive, got {rows_per_shard}")
        return cls(n_shards=-(-n_rows // rows_per_shard), target=target,
                   rows_per_shard=rows_per_shard, n_rows=n_rows)

    def spec(self, index: int, seed: int) -> ShardSpec:
        """The spec of shard ``index``."""
        if self.rows_per_shard is None or self.n_rows is None:
            return ShardSpec(index, seed)
        start = index * self.rows_per_shard
        return ShardSpec(index, seed, start, min(start + self.rows_per_shard, self.n_rows))


@dataclass(frozen=True)
class ShardRunReport:
    """What :func:`run_shards` did."""

    path: Path
    n_written: int
    n_simulated: int
    n_shards: int
    """Shards merged into the output."""
    n_run: int
    """Shards computed by this call (the rest came from a resumed run)."""
    seconds: float


# --------------------------------------------------------------------------------------------
# The shard folder
# --------------------------------------------------------------------------------------------


def shard_folder(out: str | os.PathLike[str]) -> Path:
    """The hidden folder beside ``out`` that holds its shards: ``.<name>.shards``."""
    path = Path(out)
    return path.with_name(f".{path.name}.shards")


def shard_file(folder: Path, index: int) -> Path:
    """The file of shard ``index`` in ``folder``."""
    return folder / f"shard-{index:06d}.h5"


def _normalised(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as JSON would give them back (tuples become lists)."""
    result: dict[str, Any] = json.loads(json.dumps(dict(params), sort_keys=True))
    return result


def _differences(kept: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(kept) | set(asked)):
        if kept.get(key) != asked.get(key):
            out.append(f"{key}: {_short(asked.get(key))} (this run) vs "
                       f"{_short(kept.get(key))} (the kept shards)")
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextmanager
def _locked(folder: Path, out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (released when this process ends, however)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no protection against two runs on one output
        yield
        return
    handle: IO[str] = open(folder / LOCK_NAME, "a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out}: another run is writing it (its shards are in "
                             f"{folder})") from None
        yield
    finally:
        handle.close()


def _prepare_folder(folder: Path, out: Path, params: dict[str, Any], *, resume: bool,
                    overwrite: bool) -> None:
    """Create the shard folder, or check the one a stopped run left (see the module doc)."""
    manifest = {"format": MANIFEST_FORMAT, "output": out.name, "params": params}
    if folder.exists():
        path = folder / MANIFEST_NAME
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = None
        if not resume:
            if not overwrite:
                raise ValueError(
                    f"{out}: a stopped run left its shards in {folder}; pass --resume to "
                    f"continue it or --overwrite to start again")
            shutil.rmtree(folder)
        elif not isinstance(kept, dict) or kept.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: not a calogen shard manifest (format "
                             f"{MANIFEST_FORMAT}); cannot resume, remove {folder}")
        else:
            diff = _differences(kept.get("params", {}), params)
            if diff:
                raise ValueError(f"{out}: --resume refused, the kept shards in {folder} were "
                                 f"made with other parameters: " + "; ".join(diff))
            return
    folder.mkdir()
    write_text_atomic(folder / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))


def _completed(folder: Path) -> dict[int, tuple[int, int]]:
    """``{index: (events, n_simulated)}`` of the complete shard files in ``folder``."""
    done = {}
    for path in folder.glob("shard-*.h5"):
        try:
            index = int(path.stem.split("-", 1)[1])
            with ShowerSet.open(path) as ss:
                info = ss.meta.producer.get("shard", {})
                done[index] = (len(ss), int(info["n_simulated"]))
        except (ValueError, KeyError, TypeError, OSError):
            path.unlink(missing_ok=True)  # not a shard this module wrote: run it again
    return done


# --------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------


def dask_setup(worker: Any) -> None:
    """Dask preload hook of the local cluster's workers: die with the parent process (also
    on ``SIGKILL`` of the parent; :func:`calogen.processes.die_with_parent`)."""
    from calogen.processes import die_with_parent

    die_with_parent()


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """A ``dask.distributed`` client: of the scheduler at ``scheduler``, else of a local
    cluster of ``workers`` single-threaded processes, else (one worker) ``None``: run
    in-process."""
    if scheduler is None and workers <= 1:
        yield None
        return
    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        else:
            import dask

            # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's
            # adaptive mmap threshold: numpy's large temporaries are then mapped and faulted
            # in anew each time (twice the CPU for the simulator). Keep the thread limits only.
            environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
            environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            stack.enter_context(dask.config.set(
                {"distributed.nanny.pre-spawn-environ": environ}))
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
                preload=["calogen.pipelines.shards"]))
            client = stack.enter_context(Client(cluster))
        yield client


def n_workers_of(client: Any, default: int) -> int:
    """Number of worker threads a client can use (``default`` when it cannot tell)."""
    if client is None:
        return 1
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - only a scheduling hint
        return max(1, default)


@dataclass(frozen=True)
class _Job:
    """What every task needs: the engine, the output layout and the shard folder."""

    engine: ShardEngine
    layout: OutputLayout
    folder: Path


def _run_specs(job: _Job, specs: Sequence[ShardSpec]) -> list[tuple[int, int, int]]:
    """Run and write shards where the task runs (workers compress in parallel and only
    counts travel back): ``[(index, events, n_simulated)]``."""
    done = []
    for spec in specs:
        result = job.engine(spec)
        _write_shard(job.layout, job.folder, spec, result)
        done.append((spec.index, len(result.batch), int(result.n_simulated)))
    return done


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """Shards finished, and the run of complete shards from shard 0 (the merge order)."""

    plan: ShardPlan
    done: dict[int, tuple[int, int]]
    max_empty: int | None
    empty_message: str
    prefix: int = 0
    """Shards ``0 .. prefix-1`` are done and used."""
    kept: int = 0
    simulated: int = 0
    empty_run: int = 0
    finished: bool = False
    used: list[tuple[int, int]] = field(default_factory=list)
    """(shard, events taken) in merge order."""

    def advance(self) -> None:
        target = self.plan.target
        while not self.finished and self.prefix in self.done:
            events, simulated = self.done[self.prefix]
            take = events if target is None else min(events, target - self.kept)
            self.used.append((self.prefix, take))
            self.kept += take
            self.simulated += simulated
            self.empty_run = 0 if events else self.empty_run + 1
            self.prefix += 1
            if target is not None and self.kept >= target:
                self.finished = True
            elif self.plan.n_shards is not None and self.prefix >= self.plan.n_shards:
                self.finished = True
            elif self.max_empty is not None and self.empty_run >= self.max_empty:
                raise ValueError(self.empty_message)
        if self.plan.n_shards is not None and self.prefix >= self.plan.n_shards:
            self.finished = True

    def tasks(self, per_task: int) -> Iterator[list[int]]:
        """Groups of consecutive missing shards, in order (lazily: stops when finished)."""
        k, group = 0, list[int]()
        limit = self.plan.n_shards
        while not self.finished and (limit is None or k < limit):
            if k in self.done:
                if group:
                    yield group
                    group = []
            else:
                group.append(k)
                if len(group) >= per_task:
                    yield group
                    group = []
            k += 1
        if group and not self.finished:
            yield group


def run_shards(engine: ShardEngine, out: str | os.PathLike[str], *, layout: OutputLayout,
               plan: ShardPlan, params: Mapping[str, Any], seed: int, workers: int = 1,
               scheduler: str | None = None, resume: bool = False, overwrite: bool = False,
               shards_per_task: int = 1, max_empty_shards: int | None = None,
               empty_message: str = "the shards keep no event", progress: bool = True,
               label: str = "shards",
               on_client: Callable[[Any], None] | None = None) -> ShardRunReport:
    """Run ``engine`` on the shards of ``plan`` and merge them into the ShowerSet ``out``.

    Args:
        engine: ``(ShardSpec) -> ShardOutput`` (module docstring), picklable.
        out: the output ShowerSet, written atomically once every shard it needs is done.
        layout: the output's writer arguments.
        plan: how the work is cut.
        params: everything that defines the output (JSON-serialisable; the seed included):
            the manifest a resumed run must match. Not the worker count or the task size.
        seed: run seed, passed to every :class:`ShardSpec`.
        workers: ``1`` runs in-process; more start a local Dask cluster.
        scheduler: address of an existing Dask scheduler (``workers`` is then ignored);
            its workers must import calogen and see, under the same paths, the shard folder
            beside ``out`` and the files the engine reads (a shared file system).
        resume: continue the shards of a stopped run (the same ``params``); keep the shards
            if this run stops.
        overwrite: replace an existing ``out`` (and a stopped run's shards, without
            ``resume``).
        shards_per_task: consecutive shards per Dask task (fewer round trips; no effect on
            the output).
        max_empty_shards: fail when this many consecutive shards keep no event.
        empty_message: the error message of that failure.
        progress: show a progress bar over shards.
        label: the progress bar's label.
        on_client: called with the Dask client (``None`` in-process) before the first task.

    Raises:
        ValueError: an existing ``out`` without ``overwrite``, a stopped run's shards
            without ``resume``/``overwrite``, a resume with other parameters, and whatever
            the engine raises.
    """
    t0 = time.perf_counter()
    out = Path(out)
    folder = shard_folder(out)
    params = _normalised({**params, "seed": seed})
    if shards_per_task < 1:
        raise ValueError(f"shards_per_task must be >= 1, got {shards_per_task}")
    keep_shards = False
    with ExitStack() as stack:
        final = stack.enter_context(layout.writer(out, overwrite=overwrite))
        folder_existed = folder.exists()
        if folder_existed:
            # Lock before looking inside: a live run on the same output must be refused.
            stack.enter_context(_locked(folder, out))
        _prepare_folder(folder, out, params, resume=resume, overwrite=overwrite)
        if not folder_existed or not resume:
            stack.enter_context(_locked(folder, out))
        try:
            state = _Progress(plan, _completed(folder), max_empty_shards, empty_message)
            n_before = len(state.done)
            state.advance()
            bar = stack.enter_context(tqdm(total=plan.n_shards, unit="shard", desc=label,
                                           disable=not progress, initial=state.prefix))

            def finished(done: Sequence[tuple[int, int, int]]) -> None:
                for index, events, simulated in done:
                    state.done[index] = (events, simulated)
                before = state.prefix
                state.advance()
                bar.update(state.prefix - before)
                if plan.target is not None:
                    bar.set_postfix_str(f"{state.kept}/{plan.target} events", refresh=False)

            job = _Job(engine, layout, folder.resolve())
            # The cluster is closed before the folder may be removed: no late shard writes.
            with dask_client(workers, scheduler) as client:
                if on_client is not None:
                    on_client(client)
                if client is None:
                    for group in state.tasks(1):
                        finished(_run_specs(job, [plan.spec(k, seed) for k in group]))
                else:
                    _run_on_dask(client, job, plan, seed, state, finished, shards_per_task,
                                 n_workers_of(client, workers))
            n_run = len(state.done) - n_before
            if not state.finished:  # cannot happen unless an engine misreports
                raise RuntimeError("the shard runner stopped before the plan was done")
            bar.close()
            _merge(final, folder, state.used)
        except BaseException:
            keep_shards = resume
            raise
        finally:
            if not keep_shards:
                shutil.rmtree(folder, ignore_errors=True)
    return ShardRunReport(out, state.kept, state.simulated, len(state.used), n_run,
                          time.perf_counter() - t0)


def _run_on_dask(client: Any, job: _Job, plan: ShardPlan, seed: int, state: _Progress,
                 finished: Callable[[Sequence[tuple[int, int, int]]], None],
                 shards_per_task: int, n_workers: int) -> None:
    """Submit groups of missing shards (a bounded number ahead) and hand in results as they
    arrive; pending tasks are cancelled when the plan is done or on an error."""
    from distributed import as_completed

    job_ref = client.scatter(job, broadcast=True, hash=False)
    todo = state.tasks(shards_per_task)
    pending: set[Any] = set()
    queue = as_completed()

    def submit() -> None:
        while len(pending) < TASKS_IN_FLIGHT_PER_WORKER * n_workers and not state.finished:
            group = next(todo, None)
            if group is None:
                return
            future = client.submit(_run_specs, job_ref, [plan.spec(k, seed) for k in group],
                                   pure=False)
            pending.add(future)
            queue.add(future)

    try:
        submit()
        for future in queue:
            pending.discard(future)
            finished(future.result())
            if state.finished:
                break
            submit()
    finally:
        if pending:
            client.cancel(list(pending))


def _write_shard(layout: OutputLayout, folder: Path, spec: ShardSpec,
                 result: ShardOutput) -> None:
    """Write one shard's events (atomically: the file appears complete or not at all)."""
    producer = {**layout.producer, "shard": {"index": spec.index, "seed": spec.seed,
                                             "n_simulated": int(result.n_simulated)}}
    batch = result.batch
    with layout.writer(shard_file(folder, spec.index), producer=producer) as writer:
        writer.append(batch.showers, batch.conditions, batch.pdg, batch.condition_id,
                      counts=batch.counts)


def _merge(writer: ShowerSetWriter, folder: Path, used: list[tuple[int, int]]) -> None:
    """Append the used shards in order (the last one possibly truncated) and close."""
    for index, take in used:
        if take == 0:
            continue
        with ShowerSet.open(shard_file(folder, index)) as ss:
            batch = ss.read(0, take)
        writer.append(batch.showers, batch.conditions, batch.pdg, batch.condition_id,
                      counts=batch.counts)
    writer.close()
