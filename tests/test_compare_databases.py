"""scripts/compare_databases.py: run key by run key, and with --shared only what both hold."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_databases.py"


def _database(path: Path, runs: dict[str, dict]) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE runs (key, study, status, metrics, error)")
        connection.execute("CREATE TABLE history (run_key, epoch, step, loss, accuracy, val_loss,"
                           " val_accuracy, learning_rate)")
        connection.execute("CREATE TABLE artifacts (run_key, name, value)")
        for key, metrics in runs.items():
            connection.execute("INSERT INTO runs VALUES (?, 's', 'finished', ?, NULL)",
                               (key, json.dumps(metrics)))
            connection.execute("INSERT INTO history VALUES (?, 1, 10, 0.5, 0.9, 0.6, 0.8, 0.01)",
                               (key,))
    return path


def _compare(before: Path, after: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(before), str(after), *flags],
                          capture_output=True, text=True, timeout=60)


def test_shared_compares_the_runs_and_metrics_both_hold(tmp_path):
    before = _database(tmp_path / "before.db", {"a": {"acc": 0.9}, "b": {"acc": 0.5}})
    after = _database(tmp_path / "after.db", {"a": {"acc": 0.9, "gap": 0.1}, "c": {"acc": 0.7}})
    assert _compare(before, after).returncode == 1  # b and c are each in one database only
    shared = _compare(before, after, "--shared")
    assert shared.returncode == 0, shared.stdout
    assert "not compared): gap" in shared.stdout and "1 runs / 1 runs" in shared.stdout
    changed = _database(tmp_path / "changed.db", {"a": {"acc": 0.91, "gap": 0.1}})
    result = _compare(before, changed, "--shared")
    assert result.returncode == 1 and "a (s): metrics differs" in result.stdout
