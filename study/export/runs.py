"""The stored runs of a results database as plain values for an export: per run its study, arm,
seed, status, varied settings (`overrides`, full paths), final metrics and history rows.

Read-only (the file is opened with `mode=ro`: an export never creates, migrates or locks a
database for writing); every problem with the file or a study name is an `ExportError`.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.export import ExportError


@dataclass
class StoredRun:
    key: str
    study: str
    arm: str
    seed: int
    status: str
    started_at: str
    overrides: dict[str, Any]
    metrics: dict[str, Any]
    # one dict per logged row, in epoch order: every column of the history table but run_key
    history: list[dict[str, Any]] = field(default_factory=list)


def read_runs(db: str | Path, studies: list[str] | None = None) -> dict[str, list[StoredRun]]:
    """study name -> its runs (sorted by arm, seed, key), for `studies` or every study."""
    path = Path(db)
    if path.is_dir():
        raise ExportError(f"{path}: is a folder, not a results database (give the .db file)")
    if not path.is_file():
        raise ExportError(f"{path}: no such results database (run `study run` first)")
    try:
        connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ExportError(f"{path}: cannot open the database ({error})") from None
    try:
        return _read(connection, path, studies)
    except sqlite3.DatabaseError as error:
        raise ExportError(f"{path}: not a readable study results database ({error})") from None
    finally:
        connection.close()


def _read(connection: sqlite3.Connection, path: Path,
          wanted: list[str] | None) -> dict[str, list[StoredRun]]:
    tables = {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"runs", "history"} <= tables:
        raise ExportError(f"{path}: not a study results database (it has no runs and history "
                          f"tables)")
    stored = [row[0] for row in connection.execute(
        "SELECT DISTINCT study FROM runs ORDER BY study")]
    if not stored:
        raise ExportError(f"{path}: no runs stored yet (run `study run` first)")
    names = stored if not wanted else list(dict.fromkeys(wanted))
    for name in names:
        if name not in stored:
            raise ExportError(unknown_study_message(path, name, stored))
    out: dict[str, list[StoredRun]] = {}
    for name in names:
        runs = [StoredRun(key, study, arm, seed, status, started_at, json.loads(overrides),
                          json.loads(metrics))
                for key, study, arm, seed, status, started_at, overrides, metrics
                in connection.execute(
                    "SELECT key, study, arm, seed, status, started_at, overrides, metrics "
                    "FROM runs WHERE study = ? ORDER BY arm, seed, key", (name,))]
        by_key = {run.key: run for run in runs}
        cursor = connection.execute(
            "SELECT h.* FROM history h JOIN runs r ON r.key = h.run_key WHERE r.study = ? "
            "ORDER BY h.run_key, h.epoch", (name,))
        columns = [d[0] for d in cursor.description]
        for row in cursor:
            values = dict(zip(columns, row))
            by_key[values.pop("run_key")].history.append(values)
        out[name] = runs
    return out


def unknown_study_message(path: Path, name: str, stored: list[str]) -> str:
    close = difflib.get_close_matches(name, stored, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{path}: {name!r} is not a study of this database{hint} (its studies: " \
           f"{', '.join(stored)})"
