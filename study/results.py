"""Stored results as tidy pandas DataFrames: one row per run, or per run and epoch.

    import study.results as results
    runs = results.runs("results/study.db", study="xor")       # metrics and varied values
    curves = results.history("results/study.db", study="xor")  # one row per logged epoch

Varied values (the axes of the study) become columns named after the setting
(`optimizer`, `learning_rate`, ...); final metrics become columns too (`val_accuracy`, ...).
Failed and diverged runs are kept, with their status, never dropped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from study.engine.results.store import HISTORY_COLUMNS

RUN_COLUMNS = ["key", "study", "arm", "seed", "status", "started_at", "finished_at",
               "wall_time", "error"]


def _connect(db: str | Path) -> sqlite3.Connection:
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results database (run `study run` first)")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def runs(db: str | Path, study: str | None = None) -> pd.DataFrame:
    where, params = ("WHERE study = ?", (study,)) if study else ("", ())
    with _connect(db) as connection:
        frame = pd.read_sql_query(
            f"SELECT {', '.join(RUN_COLUMNS)}, overrides, metrics, versions FROM runs {where} "
            f"ORDER BY study, arm, seed", connection, params=params)
    if frame.empty:
        return frame.drop(columns=["overrides", "metrics", "versions"])
    overrides = pd.DataFrame([{path.split(".")[-1]: scalar(v) for path, v in json.loads(o).items()}
                              for o in frame.pop("overrides")], index=frame.index)
    metrics = pd.DataFrame([json.loads(m) for m in frame.pop("metrics")], index=frame.index)
    # An axis may share a name with a metric (a grid over `epochs`, and the epochs a run
    # actually ran): the axis keeps the name, the metric becomes `metric_<name>`.
    metrics = metrics.rename(columns={c: f"metric_{c}" for c in metrics.columns
                                      if c in overrides.columns or c in frame.columns})
    versions = pd.DataFrame([json.loads(v) for v in frame.pop("versions")], index=frame.index)
    versions.columns = [f"version_{c}" for c in versions.columns]
    return pd.concat([frame, overrides, metrics, versions], axis=1)


def history(db: str | Path, study: str | None = None) -> pd.DataFrame:
    where, params = ("WHERE r.study = ?", (study,)) if study else ("", ())
    with _connect(db) as connection:
        frame = pd.read_sql_query(
            f"SELECT r.key AS run_key, r.study, r.arm, r.seed, r.status, "
            f"{', '.join('h.' + c for c in HISTORY_COLUMNS)} FROM history h "
            f"JOIN runs r ON r.key = h.run_key {where} ORDER BY r.study, r.arm, r.seed, h.epoch",
            connection, params=params)
    return frame


def artifacts(db: str | Path, name: str, study: str | None = None) -> pd.DataFrame:
    """One row per run that stored the artifact `name`; its JSON value decoded in `value`."""
    where = "WHERE a.name = ?" + (" AND r.study = ?" if study else "")
    params = (name, study) if study else (name,)
    with _connect(db) as connection:
        frame = pd.read_sql_query(
            f"SELECT r.key AS run_key, r.study, r.arm, r.seed, r.status, a.value FROM artifacts a "
            f"JOIN runs r ON r.key = a.run_key {where} ORDER BY r.study, r.arm, r.seed",
            connection, params=params)
    frame["value"] = [json.loads(v) for v in frame["value"]]
    return frame


def scalar(value):
    """Lists (e.g. hidden layer sizes) as readable strings, so the column stays hashable."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else value


def overrides(db: str | Path, study: str) -> dict[str, dict]:
    """run key -> the varied settings it was stored with (full paths, sorted keys)."""
    with _connect(db) as connection:
        return {key: json.loads(value) for key, value in connection.execute(
            "SELECT key, overrides FROM runs WHERE study = ?", (study,))}


def studies(db: str | Path) -> pd.DataFrame:
    """One row per study as `study run` last ran it: name, source, quick, the file's content
    (`definition`, decoded) and the keys of its runs (`run_keys`, decoded)."""
    with _connect(db) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        if "studies" not in tables:
            return pd.DataFrame(columns=["name", "source", "quick", "definition", "run_keys",
                                         "updated_at"])
        frame = pd.read_sql_query("SELECT * FROM studies ORDER BY name", connection)
    frame["quick"] = frame["quick"].astype(bool)
    frame["definition"] = [json.loads(v) for v in frame["definition"]]
    frame["run_keys"] = [json.loads(v) for v in frame["run_keys"]]
    return frame


def claims(db: str | Path, study: str | None = None) -> pd.DataFrame:
    """The stored verdicts, one row per claim (estimate, arm and baseline as JSON text)."""
    where, params = ("WHERE study = ?", (study,)) if study else ("", ())
    with _connect(db) as connection:
        return pd.read_sql_query(f"SELECT * FROM claims {where} ORDER BY study, rowid",
                                 connection, params=params)
