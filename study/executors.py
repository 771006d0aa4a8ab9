"""Executors map run specs to run records; the driver alone writes the store.

The interface is one method, `map(specs) -> iterator of RunRecord` in completion order, so
another executor (a cluster, a packed small-model path) plugs in without touching the rest.
Records are plain data (dicts, lists, numbers): nothing Keras crosses a process boundary.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import multiprocessing.connection
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from study.config import RunSpec
from study.store import RunRecord


class Executor(Protocol):
    jobs: int

    def map(self, specs: Iterable[RunSpec]) -> Iterator[RunRecord]: ...


def threads_per_job(jobs: int) -> int:
    """The machine's cores shared out among the jobs (at least one each)."""
    return max(1, (os.cpu_count() or 1) // jobs)


class SerialExecutor:
    """Runs in this process, one run after another."""

    jobs = 1

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = data_dir
        _limit_threads(threads_per_job(1))

    def map(self, specs: Iterable[RunSpec]) -> Iterator[RunRecord]:
        from study.packed import packs, train_pack

        for unit in packs(list(specs)):
            yield from train_pack(unit, self.data_dir)


class ProcessExecutor:
    """`jobs` worker processes (spawned: a fresh TensorFlow each), threads divided among them."""

    def __init__(self, jobs: int, data_dir: str | Path | None = None):
        self.jobs, self.data_dir = jobs, data_dir

    def map(self, specs: Iterable[RunSpec]) -> Iterator[RunRecord]:
        from study.packed import packs

        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker,
                                         initargs=(threads_per_job(self.jobs),)) as pool:
            pending = {pool.submit(_work, unit, self.data_dir): unit
                       for unit in packs(list(specs))}
            try:
                for future in futures.as_completed(pending):
                    try:
                        yield from future.result()
                    except futures.process.BrokenProcessPool as error:
                        # A worker died (killed, out of memory): its runs are stored as failed,
                        # and retried by the next `study run`.
                        for spec in pending[future]:
                            yield _failed(spec, f"worker process died: {error}")
            finally:
                for future in pending:
                    future.cancel()


def _init_worker(threads: int) -> None:
    _limit_threads(threads)
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


def _limit_threads(threads: int) -> None:
    # Read by TensorFlow when it starts; a later tf.config call is refused once ops have run.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _work(unit: list[RunSpec], data_dir) -> list[RunRecord]:
    from study.packed import train_pack

    return train_pack(unit, data_dir)


def _failed(spec: RunSpec, reason: str) -> RunRecord:
    from study.train import blank_record

    return blank_record(spec, error=reason)
