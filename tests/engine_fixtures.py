"""Helpers for the engine tests (`tests/test_runs.py`): study files, the `study run` command in a
subprocess, and plain SQLite reads of the results store (independent of `study.store`)."""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
CLI_TIMEOUT_S = 300

# The base of the brief's small XOR study: ~1 s a run.
XOR_MODEL = {"hidden": [5, 4], "activation": "sigmoid", "initializer": "glorot_uniform"}
XOR_TRAINING = {"optimizer": "adam", "learning_rate": 0.05, "batch_size": 4, "steps": 40,
                "log_every": 20, "loss": "binary_cross_entropy"}
MNIST_MODEL = {"hidden": [32]}
MNIST_TRAINING = {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 100, "epochs": 1}

# Tiny MNIST studies as raw tables (`study.engine.studies.expand` takes them): one seed, a few
# steps. TINY_MNIST for the training features; OPEN_MODEL for the layer-list tests.
TINY_MNIST = {
    "name": "features", "seeds": [3], "data": {"dataset": "mnist", "n_train": 200},
    "model": {"hidden": [32, 16]},
    "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 50, "steps": 8,
                 "log_every": 4, "evaluate_test": False},
}
OPEN_MODEL = {
    "name": "open-model",
    "seeds": [3],
    "data": {"dataset": "mnist", "n_train": 300},
    "model": {"hidden": [16, 16], "activation": "relu"},
    "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 50, "epochs": 1},
}


def tiny_mnist_run(**sections):
    """The one run of TINY_MNIST with `sections` (e.g. model={...}) merged into its tables."""
    from study.engine.studies import expand

    raw = copy.deepcopy(TINY_MNIST)
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    (spec,) = expand(raw).runs
    return spec


# --- study files ------------------------------------------------------------------------------

def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def study_text(name: str, *, seeds: int | list[int], data: dict, model: dict, training: dict,
               grid: dict | None = None, zip: dict | None = None) -> str:
    lines = [f"name = {toml_value(name)}", f"seeds = {toml_value(seeds)}"]
    for section, values in (("data", data), ("model", model), ("training", training),
                            ("grid", grid), ("zip", zip)):
        if values:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def write_study(path: Path, name: str, **parts) -> Path:
    path = Path(path)
    path.write_text(study_text(name, **parts), encoding="utf-8")
    return path


def xor_study(path: Path, name: str = "xor-small", *, seeds: int | list[int] = 2,
              grid: dict | None = None, zip: dict | None = None, model: dict | None = None,
              **training) -> Path:
    """The brief's XOR study; `grid` defaults to optimizer = [sgd, adam] (unless `zip` given)."""
    if grid is None and zip is None:
        grid = {"optimizer": ["sgd", "adam"]}
    return write_study(path, name, seeds=seeds, data={"dataset": "xor"},
                       model={**XOR_MODEL, **(model or {})},
                       training={**XOR_TRAINING, **training}, grid=grid, zip=zip)


def mnist_study(path: Path, name: str = "mnist-tiny", *, seeds: int | list[int] = 1,
                grid: dict | None = None, data: dict | None = None, model: dict | None = None,
                **training) -> Path:
    """MNIST, the first 200 training images (unless `data` says otherwise), one epoch."""
    return write_study(path, name, seeds=seeds,
                       data={"dataset": "mnist", "n_train": 200, **(data or {})},
                       model={**MNIST_MODEL, **(model or {})},
                       training={**MNIST_TRAINING, **training},
                       grid=grid if grid is not None else {"optimizer": ["sgd", "adam"]})


HISTORY_NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def assert_trained_alike(record, alone, *, rel: float, abs: float) -> None:
    """A packed run's record against the same run trained alone (`train_run`): the same
    status, key, seed, metric names and integer metrics; float metrics and history numbers
    within `rel` / `abs`; the same history rows (epoch, step, columns)."""
    import pytest

    assert (record.status, record.key, record.seed) == (alone.status, alone.key, alone.seed)
    assert set(record.metrics) == set(alone.metrics)
    for name, value in alone.metrics.items():
        if isinstance(value, float):
            assert record.metrics[name] == pytest.approx(value, rel=rel, abs=abs), name
        else:
            assert record.metrics[name] == value, name
    assert len(record.history) == len(alone.history)
    for mine, theirs in zip(record.history, alone.history):
        assert set(mine) == set(theirs)
        assert (mine["epoch"], mine["step"]) == (theirs["epoch"], theirs["step"])
        for column in HISTORY_NUMBERS:
            assert mine[column] == pytest.approx(theirs[column], rel=rel, abs=abs), column


def expected_keys(*paths: Path) -> set[str]:
    from study.engine.studies import load_study

    return {spec.key for path in paths for spec in load_study(path).runs}


def fingerprint(record) -> dict[str, Any]:
    """What a run computed (not when or how fast): status, metrics, history without `time`."""
    return {"key": record.key, "status": record.status, "metrics": record.metrics,
            "history": [{k: v for k, v in row.items() if k != "time"} for row in record.history]}


# Trains every run of the study files given after the data folder; prints their fingerprints.
TRAIN_SCRIPT = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from study.engine.studies import load_study
from study.engine.training.run import train_run
from tests.engine_fixtures import fingerprint
records = [train_run(spec, sys.argv[1]) for path in sys.argv[2:] for spec in load_study(path).runs]
print("FINGERPRINTS " + json.dumps([fingerprint(r) for r in records]))
"""


def train_in_subprocess(*paths: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(DATA_DIR), *map(str, paths)],
                            cwd=cwd, env=study_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def fingerprints_of(process: subprocess.Popen) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 0, err
    line = next(l for l in out.splitlines() if l.startswith("FINGERPRINTS "))
    return json.loads(line[len("FINGERPRINTS "):])


# --- the command --------------------------------------------------------------------------------

def study_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               STUDY_NO_KERAS_DOWNLOAD="1", PYTHONUNBUFFERED="1")
    return env


def study_command(*args) -> list[str]:
    return [sys.executable, "-m", "study", "run", *map(str, args)]


def run_study(*args, cwd: Path, timeout: float = CLI_TIMEOUT_S,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`study run ARGS` to completion; stdout and stderr captured (stderr is not a terminal);
    `env` adds to (or overrides) the environment."""
    return subprocess.run(study_command(*args), cwd=cwd, env={**study_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Started:
    """`study run ARGS` running in the background, its output in files (no pipe to fill up)."""

    def __init__(self, *args, cwd: Path, tag: str = "run"):
        self.stdout_path, self.stderr_path = cwd / f"{tag}.stdout", cwd / f"{tag}.stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            # Its own process group, as a shell job: Ctrl-C goes to the group. SIGINT at its
            # default, as in a terminal's foreground job: a test suite started in the
            # background (`make test &`, nohup) passes SIGINT on ignored, and Python then
            # keeps ignoring it.
            self.process = subprocess.Popen(study_command(*args), cwd=cwd, env=study_env(),
                                            stdout=out, stderr=err, start_new_session=True,
                                            preexec_fn=_sigint_at_default)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = CLI_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


SUMMARY = re.compile(r"(\d+) finished, (\d+) diverged, (\d+) failed, (\d+) skipped")


def summary(stdout: str) -> dict[str, int]:
    """The counts of the command's summary line (`study: 3 finished, ..., 2 skipped ...`)."""
    matches = SUMMARY.findall(stdout)
    assert len(matches) == 1, f"expected one summary line in stdout:\n{stdout}"
    return dict(zip(("finished", "diverged", "failed", "skipped"), map(int, matches[0])))


# --- the store, read with plain SQLite ------------------------------------------------------------

def _connect(db: Path) -> sqlite3.Connection:
    # Read-only: never creates the file, never writes it.
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    return connection


def run_count(db: Path) -> int:
    """Stored runs; 0 while the database or its runs table does not exist yet. Anything else
    wrong with the file (not a database, corrupt) raises: "nothing was stored" must not pass
    on a broken file."""
    if not Path(db).exists():
        return 0
    connection = _connect(db)
    try:
        return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return 0
        raise
    finally:
        connection.close()


def runs_table(db: Path) -> dict[str, dict[str, Any]]:
    """key -> the stored row (metrics decoded)."""
    connection = _connect(db)
    try:
        rows = [dict(r) for r in connection.execute("SELECT * FROM runs")]
    finally:
        connection.close()
    out = {}
    for row in rows:
        row["metrics"] = json.loads(row["metrics"])
        out[row["key"]] = row
    assert len(out) == len(rows), "a run key is stored twice"
    return out


def history_table(db: Path, *, with_time: bool = False) -> dict[str, list[tuple]]:
    """key -> its history rows ordered by epoch (without the wall-clock `time` column)."""
    columns = "epoch, step, loss, accuracy, val_loss, val_accuracy, learning_rate"
    if with_time:
        columns += ", time"
    connection = _connect(db)
    try:
        rows = connection.execute(f"SELECT run_key, {columns} FROM history "
                                  f"ORDER BY run_key, epoch").fetchall()
    finally:
        connection.close()
    out: dict[str, list[tuple]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(tuple(row[1:]))
    return out


def duplicate_keys(db: Path) -> list:
    connection = _connect(db)
    try:
        return connection.execute("SELECT key, COUNT(*) FROM runs GROUP BY key "
                                  "HAVING COUNT(*) > 1").fetchall()
    finally:
        connection.close()


def integrity(db: Path) -> str:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return ";".join(r[0] for r in connection.execute("PRAGMA integrity_check"))
    finally:
        connection.close()


def wait_for_runs(db: Path, at_least: int, started: Started, timeout: float = 180) -> int:
    """Poll the store until `at_least` runs are stored; fail if the command ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = run_count(db)
        if count >= at_least:
            return count
        if started.process.poll() is not None:
            raise AssertionError(f"study run ended (exit {started.process.returncode}) with "
                                 f"{count} runs stored, before {at_least} were:\n"
                                 f"{started.stdout}\n{started.stderr}")
        time.sleep(0.02)
    started.kill()
    raise AssertionError(f"fewer than {at_least} runs stored after {timeout} s")
