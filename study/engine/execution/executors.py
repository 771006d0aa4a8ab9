"""Executors map run specs to run records; the driver alone writes the store.

The interface is one method, `map(specs, follow_up) -> iterator of RunRecord` in completion
order, so another executor (a cluster, a packed small-model path) plugs in without touching the
rest. `follow_up(record)`, called once the driver has taken (and stored) a record, returns runs
made from it - a search's next stage - which the executor does next, before the runs still
waiting: a search then never waits for the rest of the grid. Records are plain data (dicts,
lists, numbers): nothing Keras crosses a process boundary.

`ProcessExecutor` runs units in spawned worker processes (`worker_pool`); a worker that
dies costs only the unit it was training, whose runs are stored as `failed` with the reason and
tried again by the next `study run`.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from study.engine.execution.worker_pool import Outcome, WorkerPool
from study.engine.results.store import RunRecord
from study.engine.studies.expansion import RunSpec

FollowUp = Callable[[RunRecord], list[RunSpec]]
Work = Callable[[list[RunSpec], Any], list[RunRecord]]


class Executor(Protocol):
    jobs: int

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]: ...


def threads_per_job(jobs: int) -> int:
    """The machine's cores shared out among the jobs (at least one each)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def limit_threads(threads: int) -> None:
    # Read by TensorFlow when it starts; a later tf.config call is refused once ops have run.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def work(unit: list[RunSpec], data_dir) -> list[RunRecord]:
    """Train one work unit (a pack of seeds or a single run): its records, in order."""
    from study.engine.training.packed import train_pack

    return train_pack(unit, data_dir)


def failed_record(spec: RunSpec, reason: str) -> RunRecord:
    from study.engine.training.run import blank_record

    return blank_record(spec, error=reason)


class Units:
    """The work units still to hand out (`packed.packs`), follow-ups first. Among the others,
    `next(shape)` hands out the first unit of that model shape (`packed.unit_shape`) if one
    waits, so that a worker keeps training on the model it has traced; else the first unit.
    A follow-up (a search's next stage) never waits for a unit of the worker's shape."""

    def __init__(self, specs: Iterable[RunSpec]):
        from study.engine.training.packed import packs, unit_shape

        self._packs, self._shape = packs, unit_shape
        self._follow_ups: collections.deque = collections.deque()
        self._queue: collections.deque = collections.deque(
            (unit_shape(unit), unit) for unit in packs(list(specs)))

    def __bool__(self) -> bool:
        return bool(self._follow_ups or self._queue)

    def next(self, shape: str | None = None) -> list[RunSpec]:
        return self.take(shape)[1]

    def take(self, shape: str | None = None) -> tuple[str, list[RunSpec]]:
        """`(shape, unit)` of the unit `next` hands out."""
        if self._follow_ups:
            return self._follow_ups.popleft()
        if shape is not None:
            for index, (unit_shape, unit) in enumerate(self._queue):
                if unit_shape == shape:
                    del self._queue[index]
                    return unit_shape, unit
        return self._queue.popleft()

    def first(self, specs: list[RunSpec]) -> None:
        self._follow_ups.extendleft(
            reversed([(self._shape(unit), unit) for unit in self._packs(specs)]) if specs else [])


class SerialExecutor:
    """Runs in this process, one run after another."""

    jobs = 1

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = data_dir
        limit_threads(threads_per_job(1))

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        waiting = Units(specs)
        while waiting:
            for record in work(waiting.next(), self.data_dir):
                yield record
                waiting.first(follow_up(record) if follow_up else [])


class ProcessExecutor:
    """`jobs` worker processes (spawned: a fresh TensorFlow each), threads divided among them.

    A worker that dies (`kill -9`, the out-of-memory killer) costs only the unit it was
    training: its runs come back as failed records saying so, a fresh worker takes its place
    and the other runs go on. `work(unit, data_dir)` trains a unit in a worker; tests pass
    another (a module-level function: it is pickled to the workers).
    """

    def __init__(self, jobs: int, data_dir: str | Path | None = None, work: Work = work):
        self.jobs, self.data_dir, self.work = jobs, data_dir, work

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        waiting = Units(specs)
        with WorkerPool(self.jobs, self.work, args=(self.data_dir,), initializer=limit_threads,
                        initargs=(threads_per_job(self.jobs),)) as pool:

            shapes: dict[int, str] = {}  # a worker's place -> the shape of its last unit

            def hand_out():
                # A freed worker gets the next unit of the model it trained last, if one waits:
                # its kept model or trainer serves it without a new trace (`reuse`). The units
                # are the same, only their order between workers changes.
                while waiting and pool.has_room:
                    place = pool.free_place()
                    shapes[place], unit = waiting.take(shapes.get(place))
                    pool.submit(unit, place)

            # One unit per worker. A freed worker gets its next unit before the driver stores
            # the records it sent back, so none idles while the store is written; a follow-up
            # then waits for at most `jobs` units already handed out.
            hand_out()
            while pool.busy:
                outcomes = pool.wait()
                hand_out()
                for outcome in outcomes:
                    for record in _records(outcome):
                        yield record
                        waiting.first(follow_up(record) if follow_up else [])
                hand_out()


def _records(outcome: Outcome) -> list[RunRecord]:
    if outcome.died is None:
        return outcome.result
    # The worker died (killed, out of memory) while training this unit: its runs are stored as
    # failed, and retried by the next `study run`; the pool has put a fresh worker in its place.
    unit = outcome.item
    what = "this run" if len(unit) == 1 else f"this pack of {len(unit)} runs"
    reason = (f"worker process {outcome.pid} died ({outcome.died}) while training {what}; "
              f"a fresh worker took its place for the other runs")
    return [failed_record(spec, reason) for spec in unit]
