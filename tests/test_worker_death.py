"""A worker process that dies (`kill -9`, the out-of-memory killer) costs only the unit it was
training: its runs are stored `failed` with the reason, a fresh worker takes its place, every
other run finishes, and the next `study run` retries just the failed ones (study.engine.execution.worker_pool).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.engine_fixtures import (DATA_DIR, Started, mnist_study, run_study, runs_table,
                                   summary, xor_study)

DEADLINE_S = 300  # generous: the machine is shared, and each worker starts a TensorFlow


# --- work functions for the workers: module level, so that they pickle ---------------------------

EXIT_RATE, KILL_RATE, SLOW_RATE, STUCK_RATE = 0.2, 0.3, 0.05, 0.07


def dying_work(unit, data_dir):
    """No training: a unit of learning rate 0.2 ends its worker with exit code 3, 0.3 with
    SIGKILL; any other comes back as finished records naming the worker's pid, 0.05 after
    3 s (so that it is in flight while the other worker dies), 0.07 after 10 minutes."""
    from study.engine.execution.executors import failed_record

    rate = unit[0].config["training"]["learning_rate"]
    if rate == EXIT_RATE:
        os._exit(3)
    if rate == KILL_RATE:
        os.kill(os.getpid(), signal.SIGKILL)
    if rate in (SLOW_RATE, STUCK_RATE):
        time.sleep(3 if rate == SLOW_RATE else 600)
    records = [failed_record(spec, "") for spec in unit]
    for record in records:
        record.status, record.error, record.metrics = "finished", None, {"pid": os.getpid()}
    return records


def sleep_then_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


# --- the executor and the pool, with those work functions ----------------------------------------

def test_a_dead_worker_fails_only_its_unit_and_a_fresh_one_takes_its_place(tmp_path):
    from study.engine.studies import load_study
    from study.engine.execution.executors import ProcessExecutor

    # Six arms of two packed seeds: six units, two of which kill their workers.
    rates = [SLOW_RATE, EXIT_RATE, 0.1, KILL_RATE, 0.4, 0.5]
    specs = load_study(xor_study(tmp_path / "xor.toml", seeds=2,
                                 grid={"learning_rate": rates})).runs
    assert len(specs) == 12
    records = list(ProcessExecutor(2, DATA_DIR, work=dying_work).map(specs))

    assert sorted(r.key for r in records) == sorted(s.key for s in specs)
    by_rate: dict[float, list] = {}
    for record in records:
        by_rate.setdefault(record.config["training"]["learning_rate"], []).append(record)
    dead_pids = set()
    for rate, how in ((EXIT_RATE, "exit code 3"), (KILL_RATE, "killed by signal 9, SIGKILL")):
        for record in by_rate[rate]:
            assert record.status == "failed"
            assert f"died ({how}) while training this pack of 2 runs" in record.error, \
                record.error
            dead_pids.add(int(re.search(r"worker process (\d+) died", record.error)[1]))
    assert len(dead_pids) == 2  # each unit in its own worker
    finished = [r for rate in rates if rate not in (EXIT_RATE, KILL_RATE)
                for r in by_rate[rate]]
    assert [r.status for r in finished] == ["finished"] * 8
    # Fresh workers took the dead ones' places: more than the pool's 2 processes in all.
    assert len({r.metrics["pid"] for r in finished} | dead_pids) >= 3


def test_stopping_early_ends_the_workers(tmp_path):
    # The driver stops iterating (an exception, Ctrl-C): the unit still in flight is abandoned
    # and every worker is ended and reaped.
    from study.engine.studies import load_study
    from study.engine.execution.executors import ProcessExecutor

    specs = load_study(xor_study(tmp_path / "xor.toml", seeds=1,
                                 grid={"learning_rate": [STUCK_RATE, 0.1, 0.4]})).runs
    before = set(_workers_of(os.getpid()))  # any left by other tests in this process
    records = ProcessExecutor(2, DATA_DIR, work=dying_work).map(specs)
    first = next(records)
    assert first.config["training"]["learning_rate"] == 0.1  # STUCK_RATE's is in flight
    workers = set(_workers_of(os.getpid())) - before
    assert len(workers) == 2 and first.metrics["pid"] in workers
    records.close()
    assert not [pid for pid in workers if _alive(pid)]


def test_a_worker_that_dies_between_units_is_replaced_and_fails_nothing():
    from study.engine.execution.worker_pool import WorkerPool

    with WorkerPool(2, sleep_then_pid) as pool:
        for _ in range(2):
            pool.submit(0)
        first = {outcome.result for outcome in _all_outcomes(pool)}
        assert len(first) == 2 and set(pool.pids()) == first
        idle = pool.pids()[1]  # the second worker; the next item goes to the first
        os.kill(idle, signal.SIGKILL)  # idle, waiting for its next item
        _wait_until_dead(idle)

        # The first worker's outcome comes back alone: the idle one's death is no outcome.
        pool.submit(1.0)
        outcomes = _all_outcomes(pool)
        assert [o.died for o in outcomes] == [None]
        for _ in range(2):
            pool.submit(0)
        outcomes = _all_outcomes(pool)
    assert [o.died for o in outcomes] == [None, None]
    second = {outcome.result for outcome in outcomes}
    assert len(second) == 2 and idle not in second  # a fresh worker in the dead one's place
    assert not [pid for pid in first | second if _alive(pid)], "close() joins every worker"


def _all_outcomes(pool) -> list:
    outcomes = []
    while pool.busy:
        outcomes += pool.wait()
    return outcomes


def _wait_until_dead(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after SIGKILL"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (not ended, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --- `study run --jobs 2`, a worker killed mid-run -----------------------------------------------

def test_kill_9_of_one_worker_fails_its_run_only_and_the_grid_goes_on(tmp_path):
    # 8 MNIST runs of a few seconds each, none packed (a max-norm constraint trains alone): one
    # unit per run.
    study = mnist_study(tmp_path / "mnist.toml", seeds=4, data={"n_train": 3000}, epochs=12,
                        model={"constraint": "max_norm", "constraint_args": {"max_value": 3.0}})
    db = tmp_path / "results.db"
    started = Started(study, "--db", db, "--data-dir", DATA_DIR, "--jobs", 2, cwd=tmp_path,
                      tag="killed")
    try:
        _wait_for_progress(started, runs=1)  # both workers have started and are training
        workers = _workers_of(started.pid)
        assert len(workers) == 2, workers
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        seen, deadline = set(workers), time.monotonic() + DEADLINE_S
        while started.process.poll() is None and time.monotonic() < deadline:
            seen.update(_workers_of(started.pid))  # the workers from now on
            time.sleep(0.1)
        code = started.wait(DEADLINE_S)
    finally:
        started.kill()
    assert code == 1, started.stderr  # some runs failed
    assert seen - set(workers), "no fresh worker took the dead one's place"
    assert "Traceback" not in started.stderr, started.stderr
    counts = summary(started.stdout)
    assert (counts["finished"], counts["failed"]) == (7, 1), started.stdout

    rows = runs_table(db)
    assert len(rows) == 8
    failed = [row for row in rows.values() if row["status"] == "failed"]
    assert len(failed) == 1
    assert (f"worker process {victim} died (killed by signal 9, SIGKILL) while training this "
            f"run; a fresh worker took its place" in failed[0]["error"]), failed[0]["error"]
    assert f"failed: worker process {victim} died" in started.stderr  # the progress line says so
    assert sum(row["status"] == "finished" for row in rows.values()) == 7

    again = run_study(study, "--db", db, "--data-dir", DATA_DIR, "--jobs", 2, cwd=tmp_path,
                      timeout=DEADLINE_S)
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout) == {"finished": 1, "diverged": 0, "failed": 0, "skipped": 7}
    after = runs_table(db)
    assert {row["status"] for row in after.values()} == {"finished"} and len(after) == 8
    for key, row in rows.items():  # the finished runs were not run again
        if row["status"] == "finished":
            assert after[key]["finished_at"] == row["finished_at"]


def test_ctrl_c_with_jobs_2_exits_130_and_leaves_no_worker(tmp_path):
    # 20 epochs (~3 s a run): the grid outlasts a busy machine's delay to Ctrl-C.
    study = mnist_study(tmp_path / "mnist.toml", seeds=4, data={"n_train": 3000}, epochs=20)
    started = Started(study, "--db", tmp_path / "r.db", "--data-dir", DATA_DIR, "--jobs", 2,
                      cwd=tmp_path, tag="interrupted")
    try:
        _wait_for_progress(started, runs=1)
        workers = _workers_of(started.pid)
        os.killpg(started.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        code = started.wait(DEADLINE_S)
    finally:
        started.kill()
    assert code == 130, started.stderr
    assert "Traceback" not in started.stderr, started.stderr
    assert "interrupted" in started.stdout
    assert workers and not [pid for pid in workers if _alive(pid)]


def _wait_for_progress(started: Started, runs: int) -> None:
    """Poll the progress lines (`[k/N] ...` on stderr) until `runs` runs are reported."""
    deadline = time.monotonic() + DEADLINE_S
    while len(re.findall(r"^\[\d+/\d+\]", started.stderr, re.M)) < runs:
        if started.process.poll() is not None:
            raise AssertionError(f"study run ended (exit {started.process.returncode}) "
                                 f"early:\n{started.stdout}\n{started.stderr}")
        assert time.monotonic() < deadline, f"no progress after {DEADLINE_S} s"
        time.sleep(0.1)


def _workers_of(pid: int) -> list[int]:
    """The worker processes among the children of `pid` (not multiprocessing's resource
    tracker)."""
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += map(int, (task / "children").read_text().split())
    except OSError:  # it has ended
        return []
    workers = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmdline and _alive(child):
            workers.append(child)
    return sorted(workers)
