"""The experiment engine's promises, end to end: `study run` resumes after a kill or Ctrl-C,
skips what is stored, stores divergence and failures, is deterministic (also across processes
and with --jobs), shares a database between processes, refuses bad input cleanly, reports
progress as plain lines, and `study.results` reads the store back as tidy DataFrames.

Each test trains a handful of ~1 s XOR runs (or MNIST runs on 200 images) in a temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import time

import pandas as pd
import pytest

from tests.engine_fixtures import (DATA_DIR, Started, duplicate_keys, expected_keys,
                                   fingerprint, fingerprints_of, history_table, integrity,
                                   mnist_study, run_count, run_study, runs_table, summary,
                                   train_in_subprocess, wait_for_runs, xor_study)


def _no_traceback(result_or_stderr) -> None:
    stderr = getattr(result_or_stderr, "stderr", result_or_stderr)
    assert "Traceback" not in stderr, stderr


# 1 -------------------------------------------------------------------------------------------

def test_resume_after_kill_9_repeats_no_stored_run(tmp_path):
    # 2 optimizers x 4 seeds = 8 runs; 4000 steps so the kill lands mid-grid on a busy machine
    study = xor_study(tmp_path / "xor.toml", seeds=4, steps=4000, log_every=2000)
    db = tmp_path / "results.db"
    keys = expected_keys(study)
    assert len(keys) == 8

    started = Started(study, "--db", db, cwd=tmp_path, tag="killed")
    try:
        wait_for_runs(db, 2, started)
        os.kill(started.pid, signal.SIGKILL)
        assert started.wait() == -signal.SIGKILL
    finally:
        started.kill()
    before = runs_table(db)
    assert 2 <= len(before) < 8, "the kill must land mid-grid"
    assert integrity(db) == "ok"

    result = run_study(study, "--db", db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = summary(result.stdout)
    assert counts["skipped"] == len(before)
    assert counts["finished"] == 8 - len(before)

    after = runs_table(db)
    assert set(after) == keys and len(after) == 8
    assert duplicate_keys(db) == []
    for key, row in before.items():  # stored before the kill: not run again
        for column in ("started_at", "finished_at", "wall_time", "metrics"):
            assert after[key][column] == row[column], (key, column)
    history = history_table(db)
    assert {key: len(rows) for key, rows in history.items()} == {key: 2 for key in keys}
    assert integrity(db) == "ok"


# 2 -------------------------------------------------------------------------------------------

def test_ctrl_c_mid_grid_exits_130_keeps_finished_runs(tmp_path):
    # Batches of 2: not packed (a pack of runs is stored at once), so Ctrl-C lands mid-grid;
    # 4000 steps a run (~1 s) so the rest of the grid outlasts a busy machine's delay to Ctrl-C.
    study = xor_study(tmp_path / "xor.toml", seeds=3, batch_size=2, steps=4000,
                      log_every=1000)  # 6 runs
    db = tmp_path / "results.db"

    started = Started(study, "--db", db, cwd=tmp_path, tag="interrupted")
    try:
        wait_for_runs(db, 1, started)
        os.killpg(started.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        code = started.wait()
    finally:
        started.kill()
    assert code == 130, started.stderr
    _no_traceback(started.stderr)
    line = next(l for l in started.stdout.splitlines() if "finished," in l)
    assert "interrupted" in line
    stored = runs_table(db)
    assert 1 <= len(stored) < 6, "Ctrl-C must land mid-grid"
    assert summary(started.stdout)["finished"] == len(stored)
    assert all(row["status"] == "finished" for row in stored.values())
    assert integrity(db) == "ok"

    result = run_study(study, "--db", db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = summary(result.stdout)
    assert counts["skipped"] == len(stored) and counts["finished"] == 6 - len(stored)
    assert set(runs_table(db)) == expected_keys(study)


# 3 -------------------------------------------------------------------------------------------

def test_rerun_skips_stored_runs_and_a_change_reruns_only_what_it_affects(tmp_path):
    path = tmp_path / "xor.toml"
    # Two arms varied together: (sgd, 0.05) and (adam, 0.05); 2 seeds each.
    study = xor_study(path, zip={"optimizer": ["sgd", "adam"], "learning_rate": [0.05, 0.05]})
    db = tmp_path / "results.db"

    first = run_study(study, "--db", db, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert summary(first.stdout) == {"finished": 4, "diverged": 0, "failed": 0, "skipped": 0}
    runs_1 = runs_table(db)

    again = run_study(study, "--db", db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout) == {"finished": 0, "diverged": 0, "failed": 0, "skipped": 4}
    assert "4 skipped" in again.stdout
    assert runs_table(db) == runs_1

    # The adam arm's learning rate changes: its 2 runs are new, the sgd arm's 2 are not.
    xor_study(path, zip={"optimizer": ["sgd", "adam"], "learning_rate": [0.05, 0.1]})
    changed = run_study(study, "--db", db, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert summary(changed.stdout) == {"finished": 2, "diverged": 0, "failed": 0, "skipped": 2}
    runs_2 = runs_table(db)
    new_keys = expected_keys(study)
    assert len(set(new_keys) - set(runs_1)) == 2
    for key in set(new_keys) & set(runs_1):  # the sgd arm: untouched
        assert json.loads(runs_1[key]["overrides"])["training.optimizer"] == "sgd"
        assert runs_2[key] == runs_1[key]

    forced = run_study(study, "--rerun", "--db", db, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert summary(forced.stdout) == {"finished": 4, "diverged": 0, "failed": 0, "skipped": 0}
    runs_3 = runs_table(db)
    for key in new_keys:  # trained again: a new attempt replaced the stored one
        assert runs_3[key]["wall_time"] != runs_2[key]["wall_time"]
    assert duplicate_keys(db) == []


# 4 -------------------------------------------------------------------------------------------

def test_divergence_is_stored_as_diverged_and_the_grid_goes_on(tmp_path):
    # Leaky ReLU with SGD at lr 1e3 blows up within a few steps; lr 0.05 trains normally.
    study = xor_study(tmp_path / "xor.toml", seeds=1, grid={"learning_rate": [1000.0, 0.05]},
                      model={"activation": "leaky_relu"}, optimizer="sgd", log_every=2)
    db = tmp_path / "results.db"
    result = run_study(study, "--db", db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = summary(result.stdout)
    assert counts["diverged"] >= 1 and counts["finished"] >= 1 and counts["failed"] == 0

    runs = runs_table(db)
    history = history_table(db)
    by_lr = {json.loads(r["overrides"])["training.learning_rate"]: r for r in runs.values()}
    diverged, finished = by_lr[1000.0], by_lr[0.05]
    assert diverged["status"] == "diverged" and finished["status"] == "finished"
    assert diverged["error"] is None

    rows = history[diverged["key"]]
    at = diverged["metrics"]["diverged_at_step"]
    assert 0 < at < 40
    # Every logged row up to the divergence, and none after it; the last loss is not finite.
    assert [r[0] for r in rows] == list(range(1, at // 2 + 1))
    assert [r[1] for r in rows] == list(range(2, at + 1, 2))
    assert rows[-1][2] is None
    assert all(r[2] is not None for r in rows[:-1])
    assert len(history[finished["key"]]) == 20
    assert "val_accuracy" in finished["metrics"]


# 5 -------------------------------------------------------------------------------------------

def test_a_failing_run_is_stored_as_failed_and_retried_next_time(tmp_path):
    # A constant initializer of three values validates (the initializer takes `value`) but
    # cannot fill a 2x5 kernel: the first arm raises at training; the second arm trains.
    study = xor_study(tmp_path / "xor.toml", seeds=1,
                      zip={"initializer": ["constant", "glorot_uniform"],
                           "initializer_args": [{"value": [1.0, 2.0, 3.0]}, {}]})
    db = tmp_path / "results.db"
    result = run_study(study, "--db", db, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert summary(result.stdout) == {"finished": 1, "diverged": 0, "failed": 1, "skipped": 0}
    _no_traceback(result)

    runs = runs_table(db)
    failed = [r for r in runs.values() if r["status"] == "failed"]
    finished = [r for r in runs.values() if r["status"] == "finished"]
    assert len(failed) == 1 and len(finished) == 1
    assert json.loads(failed[0]["overrides"])["model.initializer"] == "constant"
    assert "Incompatible shapes" in failed[0]["error"]
    assert "failed: " in result.stderr and "Incompatible shapes" in result.stderr

    retry = run_study(study, "--db", db, cwd=tmp_path)
    assert retry.returncode == 1, retry.stderr
    # The failed run is tried again (and fails again); the finished one is skipped.
    assert summary(retry.stdout) == {"finished": 0, "diverged": 0, "failed": 1, "skipped": 1}
    after = runs_table(db)
    assert len(after) == 2
    key = failed[0]["key"]
    assert after[key]["status"] == "failed" and after[key]["wall_time"] != failed[0]["wall_time"]
    assert after[finished[0]["key"]] == finished[0]


# 6 -------------------------------------------------------------------------------------------

def test_same_config_and_seed_give_bit_identical_results(tmp_path):
    from study.engine.studies import load_study
    from study.engine.training.run import train_run

    xor = xor_study(tmp_path / "xor.toml", seeds=[3], grid={"optimizer": ["adam"]}, log_every=10)
    mnist = mnist_study(tmp_path / "mnist.toml", seeds=[2], grid={"optimizer": ["adam"]},
                        data={"subset": "random"}, model={"dropout": 0.2}, batch_size=50,
                        epochs=2, learning_rate=0.01)
    # Two fresh processes, at the same time as the in-process runs.
    processes = [train_in_subprocess(xor, mnist, cwd=tmp_path) for _ in range(2)]
    try:
        specs = [spec for path in (xor, mnist) for spec in load_study(path).runs]
        first = [fingerprint(train_run(spec, DATA_DIR)) for spec in specs]
        second = [fingerprint(train_run(spec, DATA_DIR)) for spec in specs]
        in_other_processes = [fingerprints_of(p) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert [f["status"] for f in first] == ["finished", "finished"]
    assert all(len(f["history"]) == 4 if i == 0 else len(f["history"]) == 2
               for i, f in enumerate(first))
    assert first == second  # exact: floats compared bit for bit
    assert in_other_processes[0] == in_other_processes[1]
    assert json.loads(json.dumps(first)) == in_other_processes[0]


# 7 -------------------------------------------------------------------------------------------

def test_jobs_2_stores_the_same_results_as_jobs_1(tmp_path):
    xor = xor_study(tmp_path / "xor.toml", seeds=[0, 5], grid={"optimizer": ["adam"]})
    mnist = mnist_study(tmp_path / "mnist.toml", seeds=1)  # sgd and adam
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    serial = Started(xor, mnist, "--db", tmp_path / "one.db", "--data-dir", DATA_DIR,
                     "--jobs", 1, cwd=tmp_path / "one")
    parallel = Started(xor, mnist, "--db", tmp_path / "two.db", "--data-dir", DATA_DIR,
                       "--jobs", 2, cwd=tmp_path / "two")
    try:
        assert serial.wait() == 0, serial.stderr
        assert parallel.wait() == 0, parallel.stderr
    finally:
        serial.kill()
        parallel.kill()
    assert summary(serial.stdout)["finished"] == summary(parallel.stdout)["finished"] == 4

    one, two = runs_table(tmp_path / "one.db"), runs_table(tmp_path / "two.db")
    assert set(one) == set(two) == expected_keys(xor, mnist)
    for key in one:
        assert (one[key]["status"], one[key]["metrics"]) == (two[key]["status"],
                                                             two[key]["metrics"]), one[key]["arm"]
    assert history_table(tmp_path / "one.db") == history_table(tmp_path / "two.db")


# 8 -------------------------------------------------------------------------------------------

def test_two_processes_share_one_database(tmp_path):
    a = xor_study(tmp_path / "a.toml", "study-a", seeds=2)  # 4 runs
    b = xor_study(tmp_path / "b.toml", "study-b", seeds=1, grid={"optimizer": ["rmsprop", "sgd"]})
    db = tmp_path / "shared.db"
    # The same file in both processes, and a second file in one of them.
    first = Started(a, "--db", db, cwd=tmp_path, tag="first")
    second = Started(a, b, "--db", db, cwd=tmp_path, tag="second")
    try:
        codes = [first.wait(), second.wait()]
    finally:
        first.kill()
        second.kill()
    for started, code in zip((first, second), codes):
        assert code == 0, started.stderr
        assert "database is locked" not in started.stderr + started.stdout
        _no_traceback(started.stderr)
    assert integrity(db) == "ok"
    runs = runs_table(db)
    assert set(runs) == expected_keys(a, b) and len(runs) == 6
    assert duplicate_keys(db) == []
    assert all(r["status"] == "finished" for r in runs.values())
    assert {k: len(rows) for k, rows in history_table(db).items()} == {k: 2 for k in runs}


# 9 -------------------------------------------------------------------------------------------

def test_dry_run_lists_pending_runs_and_trains_nothing(tmp_path):
    study = xor_study(tmp_path / "xor.toml", seeds=1)  # 2 runs
    db = tmp_path / "results.db"
    keys = expected_keys(study)

    def listed(stdout: str) -> dict[str, str]:
        """key -> status of each run line of the listing."""
        out = {}
        for line in stdout.splitlines():
            match = re.match(r"\s+([0-9a-f]{16})\s+seed \d+\s+(\w+)\s", line)
            if match:
                out[match[1]] = match[2]
        return out

    dry = run_study(study, "--dry-run", "--db", db, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert listed(dry.stdout) == {key: "pending" for key in keys}
    assert "2 to run" in dry.stdout
    assert run_count(db) == 0

    real = run_study(study, "--db", db, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    dry_after = run_study(study, "--dry-run", "--db", db, cwd=tmp_path)
    assert dry_after.returncode == 0, dry_after.stderr
    assert listed(dry_after.stdout) == {key: "finished" for key in keys}
    assert "0 to run, 2 skipped" in dry_after.stdout


# 10 ------------------------------------------------------------------------------------------

def test_a_misspelt_optimizer_is_refused_before_anything_runs(tmp_path):
    from study.engine.results.store import RunRecord, Store

    bad = xor_study(tmp_path / "bad.toml", "bad", seeds=1, grid={"optimizer": ["sgd", "adma"]})
    good = xor_study(tmp_path / "good.toml", "good", seeds=1)
    message = "grid.optimizer[1]: 'adma' is not an optimizer; did you mean 'adam'?"

    # A database that already holds runs (written directly: nothing to train).
    full = tmp_path / "full.db"
    with Store(full) as store:
        for seed in range(3):
            store.write(RunRecord(key=f"k{seed}", study="old", arm="base", seed=seed,
                                  status="finished", config={}, overrides={},
                                  started_at="2024-01-01T00:00:00Z",
                                  finished_at="2024-01-01T00:00:01Z", wall_time=1.0,
                                  metrics={"val_accuracy": 0.5},
                                  history=[{"epoch": 1, "step": 1, "loss": 0.5, "time": 0.1}]))
    before = runs_table(full)

    fresh = tmp_path / "fresh.db"
    refused = Started(bad, "--db", fresh, cwd=tmp_path, tag="fresh")
    # With a good file too: all files are checked before any run starts.
    refused_full = Started(good, bad, "--db", full, cwd=tmp_path, tag="full")
    try:
        codes = [refused.wait(), refused_full.wait()]
    finally:
        refused.kill()
        refused_full.kill()
    for started, code in zip((refused, refused_full), codes):
        assert code == 2, started.stderr
        assert message in started.stderr
        _no_traceback(started.stderr)
        assert "finished," not in started.stdout
    assert run_count(fresh) == 0
    assert runs_table(full) == before
    assert integrity(full) == "ok"


# 11 ------------------------------------------------------------------------------------------

def test_a_db_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    study = xor_study(tmp_path / "xor.toml", seeds=1)
    notes = tmp_path / "notes.txt"
    content = ("These are my notes, not a database.\n" * 20).encode()
    notes.write_bytes(content)

    result = run_study(study, "--db", notes, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    _no_traceback(result)
    assert str(notes) in result.stderr and "not a usable study database" in result.stderr
    assert notes.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "xor.toml"]


# 12 ------------------------------------------------------------------------------------------

def test_progress_is_one_plain_line_per_run_when_stderr_is_not_a_terminal(tmp_path):
    study = xor_study(tmp_path / "xor.toml", "xor-progress", seeds=1,
                      grid={"optimizer": ["sgd", "adam", "rmsprop"]})
    result = run_study(study, "--db", tmp_path / "results.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr

    pattern = re.compile(r"\[(\d+)/(\d+)\] xor-progress \| optimizer=(\w+) \| seed (\d+) \| .+")
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [(int(m[1]), int(m[2])) for m in matches] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(m[3] for m in matches) == ["adam", "rmsprop", "sgd"]
    assert {m[4] for m in matches} == {"0"}


# 13 ------------------------------------------------------------------------------------------

def test_results_are_tidy_dataframes_with_every_status(tmp_path, monkeypatch):
    import study.engine.training.run as training_run
    from study import results
    from study.engine.execution import runner
    from study.engine.studies import load_study
    from study.engine.execution.executors import SerialExecutor
    from study.engine.results.store import Store

    # Batches of 2 (not full batch): trained one run at a time by study.train, patched here.
    path = xor_study(tmp_path / "xor.toml", "tidy", seeds=[0, 1], log_every=10, batch_size=2,
                     model={"activation": "leaky_relu"},
                     zip={"optimizer": ["sgd", "adam", "sgd"],
                          "learning_rate": [0.05, 0.05, 1000.0]})
    spec_failing = next(s for s in load_study(path).runs
                        if s.overrides["training.optimizer"] == "adam" and s.seed == 1)
    train = training_run.train_config

    def train_or_fail(config, seed, data_dir, record):
        if record.key == spec_failing.key:
            raise RuntimeError("boom: this run was made to fail")
        return train(config, seed, data_dir, record)

    monkeypatch.setattr(training_run, "train_config", train_or_fail)
    db = tmp_path / "results.db"
    with Store(db) as store:
        plan = runner.plan([path], store)
        with open(os.devnull, "w") as devnull:
            done = runner.execute(plan, store, SerialExecutor(),
                                  runner.Progress(plan.pending, 1, devnull))
        for study in plan.studies:  # as `study run` records it, for `study report`
            store.write_study(study.name, study.source, study.quick, study.definition,
                              [spec.key for spec in study.runs])
    assert done.counts == {"finished": 3, "diverged": 2, "failed": 1}

    runs = results.runs(db, study="tidy")
    assert len(runs) == 6 and runs["key"].is_unique
    for column in ("study", "arm", "seed", "status", "optimizer", "learning_rate",
                   "val_accuracy", "test_accuracy", "epochs", "error"):
        assert column in runs.columns, column
    assert sorted(runs["optimizer"]) == ["adam", "adam", "sgd", "sgd", "sgd", "sgd"]
    assert sorted(runs["status"]) == ["diverged", "diverged", "failed", "finished",
                                      "finished", "finished"]
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["key"] == spec_failing.key and "boom" in failed["error"]
    assert set(runs.loc[runs["status"] == "diverged", "learning_rate"]) == {1000.0}
    finished = runs[runs["status"] == "finished"]
    assert finished["val_accuracy"].notna().all() and (finished["epochs"] == 4).all()

    curves = results.history(db, study="tidy")
    for column in ("run_key", "arm", "seed", "status", "epoch", "step", "loss", "val_accuracy"):
        assert column in curves.columns, column
    per_run = curves.groupby("run_key")["epoch"].apply(list).to_dict()
    expected = {row.key: list(range(1, int(row.epochs) + 1)) for row in runs.itertuples()
                if row.status != "failed"}
    assert per_run == expected  # one row per logged epoch, diverged runs up to divergence
    assert set(curves["status"]) == {"finished", "diverged"}
    assert results.runs(db, study="no-such-study").empty

    # The report's runs.csv holds every run too, diverged and failed ones included (README).
    from study.report import build

    build(db, tmp_path / "reports")
    table = pd.read_csv(tmp_path / "reports" / "tidy" / "runs.csv")
    assert sorted(table["status"]) == sorted(runs["status"])
    assert "boom" in table.loc[table["status"] == "failed", "error"].iloc[0]


# Bugs found while testing the promises above (these tests fail until study/ is fixed) -------

def test_results_an_axis_named_like_a_metric_keeps_one_column_each(tmp_path):
    """Promise 13 with the axis `epochs` (or `steps`), which is also the name of a metric: the
    frame must stay tidy (unique column labels, `runs["epochs"]` one column), not hold two
    columns called `epochs`."""
    from study import results
    from study.engine.execution import runner
    from study.engine.execution.executors import SerialExecutor
    from study.engine.results.store import Store
    from tests.engine_fixtures import XOR_MODEL, write_study

    path = write_study(tmp_path / "xor.toml", "by-epochs", seeds=[0], data={"dataset": "xor"},
                       model=dict(XOR_MODEL),
                       training={"optimizer": "adam", "learning_rate": 0.05, "batch_size": 4,
                                 "loss": "binary_cross_entropy", "epochs": 2},
                       grid={"epochs": [2, 3]})
    db = tmp_path / "results.db"
    with Store(db) as store, open(os.devnull, "w") as devnull:
        plan = runner.plan([path], store)
        runner.execute(plan, store, SerialExecutor(), runner.Progress(plan.pending, 1, devnull))

    runs = results.runs(db)
    assert len(runs) == 2
    assert runs.columns.is_unique, f"duplicate columns: {list(runs.columns)}"
    assert sorted(runs["epochs"]) == [2, 3]
    assert "val_accuracy" in runs.columns


def test_kill_9_of_a_parallel_run_leaves_no_worker_processes_behind(tmp_path):
    """Promise 1 with --jobs 2: after `kill -9` of the driver, its worker processes must not
    live on (each holds a TensorFlow, ~750 MB) waiting forever for work that never comes."""
    study = xor_study(tmp_path / "xor.toml", seeds=3, steps=4000, log_every=1000)  # 6 runs
    db = tmp_path / "results.db"
    started = Started(study, "--db", db, "--jobs", 2, cwd=tmp_path, tag="parallel")
    group = started.pid  # its own session: the driver and every process it starts
    try:
        wait_for_runs(db, 1, started)
        assert len(process_group(group)) >= 3, "expected the driver and 2 workers"
        os.kill(started.pid, signal.SIGKILL)
        started.wait()
        deadline = time.monotonic() + 8
        while process_group(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = process_group(group)
        assert not left, f"processes left running after kill -9 of the driver: {left}"
    finally:
        try:
            os.killpg(group, signal.SIGKILL)  # the orphans this test made, by their group id
        except ProcessLookupError:
            pass
    # And the runs stored before the kill resume as usual.
    assert integrity(db) == "ok"


def process_group(pgid: int) -> list[str]:
    """Live processes (not zombies) of a process group: their pid and command line."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{entry} {cmdline.decode(errors='replace')[:100]}")
    return out


# 13 ------------------------------------------------------------------------------------------

SEARCH = """name = "search-first"
seeds = 1
[data]
dataset = "xor"
[model]
hidden = [4]
[training]
optimizer = "sgd"
batch_size = 4
steps = 10
log_every = 10
loss = "binary_cross_entropy"
evaluate_test = false
[random]
samples = 2
axes = { learning_rate = { low = 0.01, high = 1.0, scale = "log" } }
[search]
rounds = 1
final_seeds = 1
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_searchs_next_stage_runs_before_the_rest_of_the_grid(tmp_path, jobs):
    # Stage "final" is made from round 1's stored results; it must not wait behind the other
    # study's 12 units (the executor takes follow-ups first, with at most 2 units per job
    # already handed out).
    from study.engine.execution import runner
    from study.engine.execution.executors import ProcessExecutor, SerialExecutor
    from study.engine.results.store import Store

    search_file = tmp_path / "search.toml"
    search_file.write_text(SEARCH, encoding="utf-8")
    grid = xor_study(tmp_path / "grid.toml", name="grid", seeds=1, steps=10, log_every=10,
                     grid={"learning_rate": [0.01 * k for k in range(1, 13)]})
    with Store(tmp_path / "r.db") as store:
        plan = runner.plan([search_file, grid], store)
        assert len(plan.pending) == 2 + 12
        executor = SerialExecutor() if jobs == 1 else ProcessExecutor(jobs)
        progress = runner.Progress(plan.pending, jobs, io.StringIO())
        summary_ = runner.execute(plan, store, executor, progress)
    assert summary_.counts["finished"] == 15
    # The stage added mid-way is counted (Progress.add) and was in the ETA until done.
    last = progress.stream.getvalue().splitlines()[-1]
    assert last.startswith("[15/15] ") and last.endswith("| ETA 0:00:00"), last
    with sqlite3.connect(tmp_path / "r.db") as db:
        order = [(study, json.loads(overrides).get("search.round")) for study, overrides in
                 db.execute("SELECT study, overrides FROM runs ORDER BY rowid")]
    final = order.index(("search-first", "final"))
    # At most 2 x jobs - 1 grid units were handed out before round 1's last record arrived.
    assert order[final + 1:].count(("grid", None)) >= 12 - 2 * jobs, order
