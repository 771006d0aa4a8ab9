"""The results store: one SQLite file, one transaction per run.

A run is written whole (its row, its history, its artifacts) in one transaction, or not at all,
so a crash, a kill or Ctrl-C never leaves half a run behind. WAL mode and a busy timeout let
two `study run` processes share one database; the driver process is the only writer of its own
results.

Tables:
- `runs`: one row per run key: study, arm, seed, status (finished / diverged / failed), the
  resolved config and the varied values as JSON, times, final metrics as JSON, the error of a
  failed run, and the versions that produced it.
- `history`: one row per logged epoch (or `log_every` steps) of a run.
- `artifacts`: named JSON values a run produced beyond its metrics (for the studies' figures).
- `claims`: each study's claims with their latest verdicts: the one-sided p-value of the
  claim's direction and of the opposite one, each raw and Holm-adjusted (`p_opposite` and
  `p_opposite_adjusted` were added later: a database made before them gets them, empty, when
  a `Store` opens it; read-only readers of such a file find them missing).
- `studies`: each study file as last run (quick or full form) and the keys of its runs, so a
  report needs the database alone.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1
STATUSES = ("finished", "diverged", "failed")
# A finished or diverged run is an outcome; a failed one (an exception) is retried next time.
DONE_STATUSES = ("finished", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    arm TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
    config TEXT NOT NULL,
    overrides TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    wall_time REAL NOT NULL,
    metrics TEXT NOT NULL,
    error TEXT,
    versions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_study ON runs (study, status);
CREATE TABLE IF NOT EXISTS history (
    run_key TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss REAL,
    accuracy REAL,
    val_loss REAL,
    val_accuracy REAL,
    learning_rate REAL,
    time REAL NOT NULL,
    PRIMARY KEY (run_key, epoch)
);
CREATE TABLE IF NOT EXISTS claims (
    study TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,
    metric TEXT NOT NULL,
    arm TEXT NOT NULL,
    baseline TEXT,
    n INTEGER NOT NULL,
    statistic REAL,
    p_value REAL,
    p_adjusted REAL,
    effect REAL,
    estimate TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('supported', 'contradicted', 'inconclusive')),
    evaluated_at TEXT NOT NULL,
    p_opposite REAL,
    p_opposite_adjusted REAL,
    PRIMARY KEY (study, claim_id)
);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    quick INTEGER NOT NULL,
    definition TEXT NOT NULL,
    run_keys TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_key TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_key, name)
);
"""

# Columns added to a table after schema version 1 was released, with their types: added to an
# older database when it is opened (NULL in its old rows), so no version bump shuts it out.
ADDED_COLUMNS = {"claims": {"p_opposite": "REAL", "p_opposite_adjusted": "REAL"}}

# Keys (or studies) per `IN (...)` query: well within SQLite's limit on bound parameters.
_BATCH = 500

HISTORY_COLUMNS = ("epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy",
                   "learning_rate", "time")


class StoreError(Exception):
    """The database cannot be opened or is not a study database."""


@dataclass
class RunRecord:
    """Everything a run produced: plain values, so that it crosses process boundaries."""

    key: str
    study: str
    arm: str
    seed: int
    status: str
    config: dict[str, Any]
    overrides: dict[str, Any]
    started_at: str
    finished_at: str
    wall_time: float
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)


class Store:
    def __init__(self, path: str | Path, *, timeout_s: float = 60.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            # `timeout` is SQLite's busy timeout: how long a writer waits for another's lock.
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self._refuse_foreign_database()
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                for statement in _SCHEMA.split(";"):  # the blank one after the last is a no-op
                    self._db.execute(statement)
                self._check_schema_version()
                self._add_missing_columns()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable study database ({error}). Point --db "
                             f"at another file, or move this one away.") from None
        except OSError as error:
            raise StoreError(f"{self.path}: cannot create the database ({error})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _refuse_foreign_database(self) -> None:
        """Another program's SQLite file is not ours to add tables to or switch to WAL."""
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            self._db.close()
            raise StoreError(f"{self.path}: an SQLite database of another program (tables: "
                             f"{', '.join(sorted(tables))}), not a study database. Point --db "
                             f"at another file.")

    def _check_schema_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written with schema version {row[0]}, this version "
                             f"of study reads {SCHEMA_VERSION}. Use another --db file.")

    def _add_missing_columns(self) -> None:
        for table, columns in ADDED_COLUMNS.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    # --- writing -------------------------------------------------------------------------

    def write(self, record: RunRecord) -> None:
        """Store one run whole, replacing any earlier attempt of the same key."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {record.status!r}")
        with self.transaction() as db:
            db.execute("DELETE FROM runs WHERE key = ?", (record.key,))  # cascades
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.key, record.study, record.arm, record.seed, record.status,
                 _json(record.config), _json(record.overrides), record.started_at,
                 record.finished_at, record.wall_time, _json(record.metrics), record.error,
                 _json(record.versions)))
            db.executemany(
                f"INSERT INTO history (run_key, {', '.join(HISTORY_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' for _ in HISTORY_COLUMNS)})",
                [(record.key, *(_finite_or_none(row.get(c)) for c in HISTORY_COLUMNS))
                 for row in record.history])
            db.executemany("INSERT INTO artifacts VALUES (?, ?, ?)",
                           [(record.key, name, _json(value))
                            for name, value in record.artifacts.items()])

    def write_claims(self, study: str, rows: list[dict[str, Any]]) -> None:
        """Replace a study's claim verdicts, all in one transaction."""
        columns = ("study", "claim_id", "text", "kind", "metric", "arm", "baseline", "n",
                   "statistic", "p_value", "p_adjusted", "p_opposite", "p_opposite_adjusted",
                   "effect", "estimate", "verdict", "evaluated_at")
        numbers = ("statistic", "p_value", "p_adjusted", "p_opposite", "p_opposite_adjusted",
                   "effect")
        with self.transaction() as db:
            db.execute("DELETE FROM claims WHERE study = ?", (study,))
            db.executemany(
                f"INSERT INTO claims ({', '.join(columns)}) VALUES "
                f"({', '.join('?' for _ in columns)})",
                [tuple(_finite_or_none(r.get(c)) if c in numbers else
                       (_json(r[c]) if c in ("arm", "baseline", "estimate") else r[c])
                       for c in columns) for r in rows])

    def write_study(self, name: str, source: str, quick: bool, definition: dict[str, Any],
                    run_keys: list[str]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?, ?, ?)",
                       (name, source, int(quick), _json(definition), _json(run_keys), now_iso()))

    # --- reading -------------------------------------------------------------------------

    def statuses(self, keys: Iterable[str]) -> dict[str, str]:
        """The stored status of each of `keys` that is stored."""
        out: dict[str, str] = {}
        for chunk in _batches(list(keys)):
            rows = self._db.execute(
                f"SELECT key, status FROM runs WHERE key IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall()
            out.update(rows)
        return out

    def wall_times(self, studies: Iterable[str]) -> dict[tuple[str, str], tuple[float, int]]:
        """(study, arm) -> (total wall_time in seconds, runs) of the stored finished or diverged
        runs of `studies`: what a run of each arm has cost (the progress display's ETA)."""
        out: dict[tuple[str, str], tuple[float, int]] = {}
        for chunk in _batches(sorted(set(studies))):
            rows = self._db.execute(
                f"SELECT study, arm, SUM(wall_time), COUNT(*) FROM runs "
                f"WHERE study IN ({', '.join('?' * len(chunk))}) "
                f"AND status IN ({', '.join('?' * len(DONE_STATUSES))}) GROUP BY study, arm",
                [*chunk, *DONE_STATUSES]).fetchall()
            out.update({(study, arm): (seconds, runs) for study, arm, seconds, runs in rows})
        return out

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        self._db.row_factory = sqlite3.Row
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        finally:
            self._db.row_factory = None


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    """`items` in slices small enough to bind in one statement (SQLite's limit on bound
    parameters is 999 in older builds)."""
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def _json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)  # _plain leaves no NaN or inf


def _plain(value: Any) -> Any:
    """Plain JSON data: NumPy scalars and arrays as Python values; NaN and inf as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return _finite_or_none(value)
    return value


def _finite_or_none(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
