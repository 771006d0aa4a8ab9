"""Executors map run specs to run records; the driver alone writes the store.

The interface is one method, `map(specs, follow_up) -> iterator of RunRecord` in completion
order, so another executor (a cluster, a packed small-model path) plugs in without touching the
rest. `follow_up(record)`, called once the driver has taken (and stored) a record, returns runs
made from it - a search's next stage - which the executor does next, before the runs still
waiting: a search then never waits for the rest of the grid. Records are plain data (dicts,
lists, numbers): nothing Keras crosses a process boundary.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import multiprocessing
import multiprocessing.connection
import os
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from study.engine.results.store import RunRecord
from study.engine.studies.expansion import RunSpec

FollowUp = Callable[[RunRecord], list[RunSpec]]


class Executor(Protocol):
    jobs: int

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]: ...


def threads_per_job(jobs: int) -> int:
    """The machine's cores shared out among the jobs (at least one each)."""
    return max(1, (os.cpu_count() or 1) // jobs)


class SerialExecutor:
    """Runs in this process, one run after another."""

    jobs = 1

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = data_dir
        limit_threads(threads_per_job(1))

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        from study.engine.training.packed import train_pack

        waiting = _Units(specs)
        while waiting:
            for record in train_pack(waiting.next(), self.data_dir):
                yield record
                waiting.first(follow_up(record) if follow_up else [])


class ProcessExecutor:
    """`jobs` worker processes (spawned: a fresh TensorFlow each), threads divided among them."""

    def __init__(self, jobs: int, data_dir: str | Path | None = None):
        self.jobs, self.data_dir = jobs, data_dir

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        context = multiprocessing.get_context("spawn")
        waiting = _Units(specs)
        # Two units per worker in the pool's queue: none idles between units, and a follow-up
        # waits for at most that many before it starts.
        in_flight = 2 * self.jobs
        with futures.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker,
                                         initargs=(threads_per_job(self.jobs),)) as pool:
            pending: dict[futures.Future, list[RunSpec]] = {}
            try:
                while waiting or pending:
                    while waiting and len(pending) < in_flight:
                        unit = waiting.next()
                        pending[_submit(pool, unit, self.data_dir)] = unit
                    done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        for record in _records(future, pending.pop(future)):
                            yield record
                            waiting.first(follow_up(record) if follow_up else [])
            finally:
                for future in pending:
                    future.cancel()


class _Units:
    """The work units still to hand out (`study.packed.packs`), follow-ups first."""

    def __init__(self, specs: Iterable[RunSpec]):
        from study.engine.training.packed import packs

        self._packs = packs
        self._queue = collections.deque(packs(list(specs)))

    def __bool__(self) -> bool:
        return bool(self._queue)

    def next(self) -> list[RunSpec]:
        return self._queue.popleft()

    def first(self, specs: list[RunSpec]) -> None:
        self._queue.extendleft(reversed(self._packs(specs)) if specs else [])


def _submit(pool: futures.ProcessPoolExecutor, unit: list[RunSpec], data_dir) -> futures.Future:
    try:
        return pool.submit(_work, unit, data_dir)
    except futures.process.BrokenProcessPool as error:  # a worker died earlier
        future: futures.Future = futures.Future()
        future.set_exception(error)
        return future


def _records(future: futures.Future, unit: list[RunSpec]) -> list[RunRecord]:
    try:
        return future.result()
    except futures.process.BrokenProcessPool as error:
        # A worker died (killed, out of memory): its runs are stored as failed, and retried by
        # the next `study run`.
        return [_failed(spec, f"worker process died: {error}") for spec in unit]


def _init_worker(threads: int) -> None:
    limit_threads(threads)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """End this worker when the driver dies, even by `kill -9` (which runs no cleanup).

    A pool worker holds both ends of its task pipe, so it would never see end-of-file and
    would live on, holding a TensorFlow's worth of memory. It watches the parent instead.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def limit_threads(threads: int) -> None:
    # Read by TensorFlow when it starts; a later tf.config call is refused once ops have run.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _work(unit: list[RunSpec], data_dir) -> list[RunRecord]:
    from study.engine.training.packed import train_pack

    return train_pack(unit, data_dir)


def _failed(spec: RunSpec, reason: str) -> RunRecord:
    from study.engine.training.run import blank_record

    return blank_record(spec, error=reason)
