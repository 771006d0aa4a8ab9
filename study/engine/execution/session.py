"""One `study run`, for the command and the Python API alike (`study.run`): one path, so the
two cannot drift.

`run_studies` checks the options, opens the store, plans (every study file or dict validated
before anything trains), makes the executor (local processes or Ray), provisions MNIST once,
executes with a progress display, then stores each study as it ran and its claims' verdicts.
It prints nothing itself: the command prints the plan, the start line (`on_start`), the
verdicts and the summary from what it returns. Every problem the command reports with exit
code 2 is raised as `study.StudyError` with the command's message.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from study.errors import StudyError

EXECUTORS = ("local", "ray")


@dataclass
class Outcome:
    plan: Any  # runner.Plan
    summary: Any = None  # runner.Summary; None for a dry run
    verdicts: dict[str, list[dict]] = field(default_factory=dict)  # study -> claim rows
    where: str = ""  # "2 job(s)", "a local Ray of 4 CPUs", "Ray at HOST:PORT"


@contextlib.contextmanager
def study_errors() -> Iterator[None]:
    """The engine's bad-input errors as StudyError, with the command's messages."""
    from study.data import DataError
    from study.engine.results.store import StoreError
    from study.engine.studies.errors import ConfigError

    try:
        yield
    except ConfigError as error:
        raise StudyError(str(error), names_its_source=True) from None
    except (DataError, StoreError) as error:
        raise StudyError(str(error)) from None


def check_options(jobs: int | None, executor: str, address: str | None,
                  resources: str | Mapping | None) -> None:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise StudyError(f"--jobs must be at least 1; got {jobs}")
    if executor not in EXECUTORS:
        raise StudyError(f"--executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if executor != "ray" and (address or resources):
        raise StudyError("--address and --resources go with --executor ray")


def run_studies(sources: Iterable[str | Path | Mapping[str, Any]], *, db: str | Path,
                jobs: int | None = None, quick: bool = False, rerun: bool = False,
                dry_run: bool = False, executor: str = "local", address: str | None = None,
                resources: str | Mapping | None = None, data_dir: str | Path | None = None,
                bar: Callable[..., Any] | None = None, show_progress: bool = True,
                on_start: Callable[[Outcome], None] | None = None) -> Outcome:
    """Plan and train the runs of `sources` (study files or dicts) into `db`; see the module.

    Progress: a tqdm bar of class `bar`, or (None) a bar on a terminal and lines otherwise;
    `show_progress=False` shows none. A Ctrl-C during the grid ends it with every finished run
    stored: the outcome's summary says `interrupted`, and no verdict is stored."""
    check_options(jobs, executor, address, resources)
    with study_errors():
        return _run(list(sources), Path(db), jobs, quick, rerun, dry_run, executor, address,
                    resources, data_dir, bar, show_progress, on_start)


def _run(sources, db, jobs, quick, rerun, dry_run, executor_name, address, resources,
         data_dir, bar, show_progress, on_start) -> Outcome:
    from study.engine.execution import runner
    from study.engine.execution.executors import ProcessExecutor, SerialExecutor
    from study.engine.results.store import Store

    executor = _ray_executor(jobs, address, resources, data_dir) if executor_name == "ray" \
        else None
    with Store(db) as store:
        outcome = Outcome(runner.plan(sources, store, quick=quick, rerun=rerun,
                                      data_dir=data_dir))
        plan = outcome.plan
        if dry_run:
            return outcome
        if executor is not None and plan.pending:
            from study.engine.execution.ray_executor import RayConnectionError

            try:  # before any run is dispatched: a cluster that is not there is bad input
                executor.connect()
            except RayConnectionError as error:
                raise StudyError(str(error)) from None
        # MNIST is provisioned once, here, not in every worker: the plan found (or fetched) and
        # read the file for its fingerprint (`data_files.fingerprint`).
        if executor is None:
            executor = (SerialExecutor(data_dir) if (jobs or 1) == 1
                        else ProcessExecutor(jobs, data_dir))
        outcome.where = (f"Ray at {address}" if address else
                         f"a local Ray of {executor.jobs} CPUs" if executor_name == "ray"
                         else f"{jobs or 1} job(s)")
        if on_start is not None:
            on_start(outcome)
        progress = runner.Progress(plan.pending, executor.jobs, bar=bar, show=show_progress,
                                   skipped=plan.skipped,
                                   stored=store.wall_times(s.name for s in plan.studies))
        outcome.summary = runner.execute(plan, store, executor, progress)
        if not outcome.summary.interrupted:
            outcome.verdicts = evaluate_claims(plan.studies, store)
    return outcome


def _ray_executor(jobs, address, resources, data_dir):
    from study.engine.execution.ray_executor import RayExecutor, RayUnavailable, parse_resources

    if isinstance(resources, Mapping):
        resources = json.dumps(dict(resources))
    try:
        return RayExecutor(jobs, address, parse_resources(resources), data_dir)
    except (RayUnavailable, ValueError) as error:
        raise StudyError(str(error)) from None


def evaluate_claims(studies, store) -> dict[str, list[dict]]:
    """Store each study as it ran (for `study report`) and its claims' verdicts; returns the
    verdict rows of each study that states claims."""
    from study.engine.results.claims import evaluate_and_store

    verdicts = {}
    for study in studies:
        store.write_study(study.name, study.source, study.quick, study.definition,
                          [spec.key for spec in study.runs])
        if study.claims:
            verdicts[study.name] = evaluate_and_store(study, store)
    return verdicts
