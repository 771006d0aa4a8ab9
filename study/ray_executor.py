"""`study run ... --executor ray`: each pending work unit a Ray task, on a cluster or a local Ray.

The driver stays what it is with local jobs (study.runner): it decides which runs are pending
from the store before anything is dispatched, and writes each record that comes back in its own
transaction, so a lost worker, a killed driver or a restarted cluster loses no finished run and
repeats none. A task gets a list of run specs (plain dataclasses of dicts) and returns plain
records; nothing Keras crosses the wire. On the worker, `study.packed.train_pack` seeds each
run, switches TensorFlow's op determinism on and releases the run's memory (the Keras session
with it); the task's environment limits TensorFlow to the CPUs the task asked for.

Failures: a task whose worker process died (killed, out of memory, its node lost) is submitted
once more; if it dies again its runs are stored as `failed` with the reason, and the next
`study run` tries them again. An exception inside a task is not retried (a run's own errors are
already stored as `failed` records by the worker; anything else is a bug to see).

Ray's own retries are off (`max_retries=0`) so that this policy, and its record, are ours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from study.config import RunSpec
from study.executors import FollowUp, Units, failed_record, work
from study.store import RunRecord

INSTALL_HINT = ('--executor ray needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.40")')
ATTEMPTS = 2  # a unit whose worker died is retried once


class RayUnavailable(RuntimeError):
    pass


def parse_resources(text: str | None) -> dict[str, float]:
    """`--resources '{"GPU": 1}'` -> {"GPU": 1.0}: what each task asks of the cluster."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--resources must be a JSON object such as '{{\"GPU\": 1}}'; "
                         f"got {text!r} ({error.msg})") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and v >= 0 for k, v in value.items()):
        raise ValueError(f"--resources must map resource names to non-negative numbers, "
                         f"such as '{{\"GPU\": 1}}'; got {text!r}")
    return {k: float(v) for k, v in value.items()}


class RayExecutor:
    """Sends work units to Ray: the cluster at `address`, or a local instance of `jobs` CPUs."""

    def __init__(self, jobs: int | None = None, address: str | None = None,
                 resources: dict[str, float] | None = None,
                 data_dir: str | Path | None = None,
                 work: Callable[[list[RunSpec], Any], list[RunRecord]] = work):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RayUnavailable(INSTALL_HINT) from None
        self.address, self.work = address, work
        self.resources = dict(resources or {})
        self.cpus_per_task = self.resources.pop("CPU", 1.0)
        self.gpus_per_task = self.resources.pop("GPU", 0.0)
        self.jobs = jobs or os.cpu_count() or 1
        # Workers may run elsewhere: give them the data folder as an absolute path.
        self.data_dir = str(Path(data_dir or "data").resolve())
        self._started_here = False

    def _connect(self):
        import ray

        threads = str(max(1, int(self.cpus_per_task)))
        runtime_env = {"env_vars": {"TF_NUM_INTRAOP_THREADS": threads,
                                    "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads,
                                    "TF_CPP_MIN_LOG_LEVEL": "2",
                                    "STUDY_NO_KERAS_DOWNLOAD": "1"}}
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False)
            else:
                ray.init(num_cpus=self.jobs, runtime_env=runtime_env, include_dashboard=False,
                         log_to_driver=False)
            self._started_here = True
        return ray

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        ray = self._connect()
        task = ray.remote(self.work).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
            resources=self.resources or None, max_retries=0)
        waiting = Units(specs)
        capacity = max(1, int(ray.cluster_resources().get("CPU", self.jobs) // self.cpus_per_task))
        in_flight = 2 * capacity  # as with local jobs: follow-ups wait behind at most this many
        pending: dict[Any, tuple[list[RunSpec], int]] = {}
        try:
            while waiting or pending:
                while waiting and len(pending) < in_flight:
                    unit = waiting.next()
                    pending[task.remote(unit, self.data_dir)] = (unit, 1)
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                unit, attempt = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    records = [failed_record(spec, f"error in the Ray task: {error.cause!r}")
                               for spec in unit]
                except ray.exceptions.RayError as error:  # the worker or its node died
                    if attempt < ATTEMPTS:
                        pending[task.remote(unit, self.data_dir)] = (unit, attempt + 1)
                        continue
                    reason = f"Ray worker died {attempt} times (retried once): {_first_line(error)}"
                    records = [failed_record(spec, reason) for spec in unit]
                for record in records:
                    yield record
                    waiting.first(follow_up(record) if follow_up else [])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if self._started_here:
                ray.shutdown()
                self._started_here = False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
