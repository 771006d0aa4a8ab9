"""The driver of `study run`: plan which runs are pending, execute them, store each as it ends.

Data flows one way: study files -> run specs -> executor -> records -> store. The driver is the
only writer, one transaction per run, so whatever stops it (an exception, Ctrl-C, `kill -9`)
leaves every finished run stored and none half-written; the next `study run` skips them.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping

from study.engine.execution.executors import Executor
from study.engine.results.store import DONE_STATUSES, RunRecord, Store
from study import results
from study.engine.studies import RunSpec, Study, load_study, search
from study.engine.studies.errors import ConfigError


@dataclass
class Plan:
    studies: list[Study]
    pending: list[RunSpec]
    stored: dict[str, str]  # key -> stored status, for every run of the studies that is stored
    total: int

    @property
    def skipped(self) -> int:
        return self.total - len(self.pending)


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)
    skipped: int = 0
    interrupted: bool = False

    def line(self) -> str:
        parts = [f"{self.counts[s]} {s}" for s in ("finished", "diverged", "failed")]
        text = ", ".join(parts) + f", {self.skipped} skipped (already stored)"
        return ("interrupted: " if self.interrupted else "") + text


def plan(paths: Iterable[str | Path], store: Store, *, quick: bool = False,
         rerun: bool = False, data_dir: str | Path | None = None) -> Plan:
    """Load every study file (all problems at once, before anything runs) and find pending runs."""
    studies, problems = [], []
    for path in paths:
        try:
            studies.append(load_study(path, quick=quick, data_dir=data_dir))
        except ConfigError as error:
            problems.extend(str(error).splitlines())
    first_file: dict[str, str] = {}
    for study in studies:  # one name, one study: a second would be dropped silently
        if study.name in first_file:
            problems.append(f"{study.source}: name: {study.name!r} is also the name of the study "
                            f"in {first_file[study.name]}; give each study its own name")
        first_file.setdefault(study.name, study.source)
    if problems:
        raise ConfigError(None, problems)
    for study in studies:  # a search's later stages whose predecessors are stored
        while _next_stage(study, store):
            pass
    specs = list({spec.key: spec for s in studies for spec in s.runs}.values())
    stored = store.statuses(spec.key for spec in specs)
    pending = [s for s in specs if rerun or stored.get(s.key) not in DONE_STATUSES]
    return Plan(studies, pending, stored, len(specs))


def execute(plan_: Plan, store: Store, executor: Executor, progress: "Progress") -> Summary:
    summary = Summary(skipped=plan_.skipped)
    searches = {study.name: study for study in plan_.studies if study.search is not None}

    def next_stage(record: RunRecord) -> list[RunSpec]:
        # A search's next stage is made from the results just stored, as soon as they are.
        study = searches.get(record.study)
        new = _next_stage(study, store) if study is not None else []
        progress.add(new)
        return new

    try:
        for record in executor.map(plan_.pending, next_stage):
            with _interrupt_deferred():  # stored and counted, or neither
                store.write(record)
                summary.counts[record.status] += 1
            progress.finished(record)
    except KeyboardInterrupt:
        summary.interrupted = True
    progress.close()
    return summary


def _next_stage(study: Study, store: Store) -> list[RunSpec]:
    if study.search is None:
        return []
    return search.extend(study, results.runs(store.path, study=study.name))


@contextlib.contextmanager
def _interrupt_deferred():
    """Hold a Ctrl-C that arrives inside the block until the block has ended."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


Kind = tuple[str, str]  # (study, arm): runs of one kind cost about the same


class Progress:
    """Runs done / total, the last run, an ETA: a tqdm bar on a terminal (or `bar`, e.g.
    `tqdm.auto.tqdm` for a notebook's widget), plain lines otherwise (logs, CI, pipes), nothing
    with `show=False`.

    It knows which runs remain (the pending specs, and those a search adds with `add`) and,
    per kind (study, arm), what runs of that kind have cost: the finished or diverged runs of
    this invocation and `stored`, the stored ones ((study, arm) -> (total wall_time, runs), from
    `Store.wall_times`). The ETA is `eta_seconds` of these; see there for the rule (the bar
    shows this ETA, not tqdm's own rate-based one). The bar also counts the `skipped` (already
    stored) runs, and the diverged and failed ones; a failed run's error is printed above it.
    """

    def __init__(self, pending: Iterable[RunSpec], jobs: int, stream: IO[str] | None = None,
                 stored: Mapping[Kind, tuple[float, int]] | None = None, *,
                 bar: Callable[..., Any] | None = None, skipped: int = 0, show: bool = True):
        self.jobs, self.done, self.total, self.skipped = jobs, 0, 0, skipped
        self.stream = stream or sys.stderr
        self.counts: Counter = Counter()  # status -> runs of this invocation
        self._kinds: dict[str, Kind] = {}  # key of each run still to do -> its kind
        self._remaining: Counter = Counter()  # kind -> runs still to do
        self._times: dict[Kind, tuple[float, int]] = dict(stored or {})
        self._bar = None
        self.add(pending)
        if show and bar is None and hasattr(self.stream, "isatty") and self.stream.isatty():
            from tqdm import tqdm as bar
        self.show = show
        if show and bar is not None:
            self._bar = bar(total=self.total, file=self.stream, unit="run", dynamic_ncols=True,
                            bar_format="{n_fmt}/{total_fmt} runs |{bar}| {elapsed}{postfix}")
            self._bar.set_postfix_str(self._counts_text(), refresh=True)

    def add(self, specs: Iterable[RunSpec]) -> None:
        """Runs to do besides those given at the start (a search's next stage)."""
        for spec in specs:
            self.total += 1
            self._kinds[spec.key] = kind = (spec.study, spec.arm)
            self._remaining[kind] += 1
        if self._bar is not None and self._bar.total != self.total:
            self._bar.total = self.total
            self._bar.refresh()

    def eta(self) -> float | None:
        """Seconds until the remaining runs are done, or None while there is no basis."""
        return eta_seconds(self._remaining, self._times, self.jobs)

    def finished(self, record: RunRecord) -> None:
        self.done += 1
        self.counts[record.status] += 1
        kind = self._kinds.pop(record.key, None)
        if kind is not None:
            self._remaining[kind] -= 1
        if record.status in DONE_STATUSES:  # a failed run's time says little of the next one's
            seconds, runs = self._times.get((record.study, record.arm), (0.0, 0))
            self._times[(record.study, record.arm)] = (seconds + record.wall_time, runs + 1)
        if not self.show:
            return
        eta = self.eta()
        eta_text = f"ETA {'unknown' if eta is None else _clock(eta)}"
        metric = record.metrics.get("val_accuracy")
        detail = f"val_accuracy={metric:.4f}" if isinstance(metric, float) else record.status
        run = f"{record.study} | {record.arm} | seed {record.seed}"
        failure = f"    failed: {record.error}" if record.status == "failed" else ""
        if self._bar is not None:
            if failure:
                self._bar.write(f"{run}\n{failure}", file=self.stream)
            self._bar.set_postfix_str(f"{self._counts_text()} | {eta_text} | last: {run} | "
                                      f"{detail}", refresh=False)
            self._bar.update(1)
            return
        self.stream.write(f"[{self.done}/{self.total}] {run} | {detail} | "
                          f"{record.wall_time:.1f} s | {eta_text}\n"
                          + (failure + "\n" if failure else ""))
        self.stream.flush()

    def _counts_text(self) -> str:
        return (f"{self.skipped} skipped, {self.counts['diverged']} diverged, "
                f"{self.counts['failed']} failed")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def eta_seconds(remaining: Mapping[Kind, int], times: Mapping[Kind, tuple[float, int]],
                jobs: int) -> float | None:
    """The time the `remaining` runs (kind -> count) will take on `jobs` workers.

    Each remaining run costs the mean wall_time of its kind in `times` (kind -> (total seconds,
    runs)); an arm with no timed run yet (a search's new stage, an arm not reached yet) borrows
    the mean of its study's timed runs; a study with none at all makes the ETA unknown (None),
    for a guess from other studies' runs can be off a hundredfold (XOR against MNIST).

    The work is then shared among the workers: sum / jobs. A run's wall_time is its own time in
    its worker (a packed run's, its share of the pack's), measured while the other workers ran
    too, so contention is already in it; dividing by jobs gives the wall-clock time when every
    worker stays busy. It is no less than the longest remaining kind's mean: one run cannot be
    split between workers. Elapsed time is not used: it holds start-up (worker processes,
    TensorFlow's import) that the remaining runs do not pay again, and would mix the kinds done
    so far into the estimate of those still to do.
    """
    by_study: dict[str, tuple[float, int]] = {}
    for (study, _), (seconds, runs) in times.items():
        total, count = by_study.get(study, (0.0, 0))
        by_study[study] = (total + seconds, count + runs)
    work = longest = 0.0
    for kind, count in remaining.items():
        if count <= 0:
            continue
        seconds, runs = times.get(kind, (0.0, 0))
        if not runs:
            seconds, runs = by_study.get(kind[0], (0.0, 0))
        if not runs:
            return None
        mean = seconds / runs
        work += count * mean
        longest = max(longest, mean)
    return max(work / jobs, longest)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
