"""`study export tensorboard DIR`: stored runs as TensorBoard event files, for its Scalars and
HParams dashboards.

Layout, per study (names made filesystem-safe by `safe_name`):

    DIR/<study>/events.out.tfevents.*                  the HParams experiment config: every
                                                       hparam with its domain, every metric
    DIR/<study>/<arm>/seed=<seed>-<run key>/events.*   one run

A run's file holds its hparams (the varied settings under their full paths, e.g.
`training.learning_rate`, plus `arm`, `seed` and `status`), one scalar per numeric history
column (`loss`, `val_accuracy`, `learning_rate`, `epoch`, `time`, ...) at the row's training
step (None skipped), and each numeric final metric as `final/<name>` at the last logged step:
the HParams metrics. Failed and diverged runs are written like the others (what they have, and
their status). Lists and argument tables become compact JSON strings; an hparam whose values mix
types (`batch_norm = [false, "keras"]`) becomes strings throughout.

Everything comes from the database (times from `started_at` and the history's `time`), so one
database gives the same files byte for byte. Written with TensorBoard's protos and its record
writer, without TensorFlow. An existing non-empty `DIR/<study>` is refused, never overwritten or
appended to; each study is written in a hidden folder beside it and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.summary.writer.record_writer import RecordWriter

from study.export import ExportError
from study.export.runs import StoredRun, read_runs

FINAL_PREFIX = "final/"
# Numbers with more distinct values than this (a random search's draws) get an interval
# [min, max] as their domain instead of a list of values: the dashboard's filter stays usable.
MAX_DISCRETE_NUMBERS = 20
MAX_NAME = 80
RUN_HPARAMS = ("arm", "seed", "status")  # beside the varied settings (whose names hold a dot)
EVENTS_NAME = "events.out.tfevents.{time:010d}.study-export"


@dataclass
class Exported:
    study: str
    folder: Path
    runs: int
    statuses: dict[str, int]
    scalars: int


def export(db: str | Path, out: str | Path, studies: list[str] | None = None) -> list[Exported]:
    """Write the runs of `studies` (default every study) of `db` under `out`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: is a file, not a folder; give a folder to export into")
    stored = read_runs(db, studies)
    folders = dict(zip(stored, unique_names(list(stored))))
    for study, name in folders.items():
        target = out / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ExportError(f"{target}: already holds an export of study {study!r}; remove "
                              f"it (or give another DIR) to export again")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"{out}: cannot create the folder ({error.strerror})") from None
    return [_write_study(study, runs, out / folders[study]) for study, runs in stored.items()]


def _write_study(study: str, runs: list[StoredRun], target: Path) -> Exported:
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        hparams = study_hparams(runs)
        metrics = sorted({name for run in runs for name in final_metrics(run)})
        first = min((start_time(run) for run in runs), default=0.0)
        config = ordered(hp.hparams_config_pb(
            domains(hparams), [hp.Metric(FINAL_PREFIX + m) for m in metrics],
            time_created_secs=first))
        write_events(partial, first, [event_pb2.Event(wall_time=first, step=0, summary=config)])
        scalars = 0
        for run, folder in zip(runs, run_folders(runs)):
            events = run_events(run, hparams[run.key])
            scalars += sum(len(e.summary.value) for e in events[1:])
            write_events(partial / folder, start_time(run), events)
        os.replace(partial, target)  # onto a missing or empty folder
    except BaseException as error:  # a full disk, Ctrl-C: no half-written study is left
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):
            raise ExportError(f"{target}: cannot write the export ({error})") from None
        raise
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return Exported(study, target, len(runs), statuses, scalars)


# --- names ----------------------------------------------------------------------------------

def safe_name(text: str) -> str:
    """`text` as one path component: letters, digits and . _ = + - kept, every other run of
    characters one `_`, no leading dot, at most MAX_NAME characters."""
    return _cleaned(text)[:MAX_NAME] or "_"


def _cleaned(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).lstrip("._").rstrip("_")


def unique_names(texts: list[str]) -> list[str]:
    """`safe_name` of each text; where two texts would share a name (also ignoring case, as
    on macOS and Windows) or a name was cut, `-<8 hex of the text's SHA-256>` is appended."""
    names = [safe_name(t) for t in texts]
    counts: dict[str, int] = {}
    for name in names:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return [f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            if counts[name.lower()] > 1 or len(_cleaned(text)) > MAX_NAME else name
            for text, name in zip(texts, names)]


def run_folders(runs: list[StoredRun]) -> list[str]:
    """Each run's folder within its study's: `<arm>/seed=<seed>-<key>`."""
    arms = sorted({run.arm for run in runs})
    arm_folder = dict(zip(arms, unique_names(arms)))
    return [f"{arm_folder[run.arm]}/{safe_name(f'seed={run.seed}-{run.key}')}" for run in runs]


# --- hparams ----------------------------------------------------------------------------------

def study_hparams(runs: list[StoredRun]) -> dict[str, dict[str, Any]]:
    """run key -> hparam name -> value (bool, float or str), typed alike across the study."""
    raw = {run.key: {**run.overrides, "arm": run.arm, "seed": run.seed, "status": run.status}
           for run in runs}
    kinds: dict[str, set[str]] = {}
    for values in raw.values():
        for name, value in values.items():
            kinds.setdefault(name, set()).add(_kind(value))
    return {key: {name: _typed(value, kinds[name]) for name, value in values.items()}
            for key, values in raw.items()}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "str" if isinstance(value, str) else "json"


def _typed(value: Any, kinds: set[str]) -> Any:
    if kinds == {"bool"}:
        return bool(value)
    if kinds == {"number"}:
        return float(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def domains(hparams: dict[str, dict[str, Any]]) -> list[hp.HParam]:
    """Every hparam of the study, sorted by name, with the values its runs took."""
    values: dict[str, set[Any]] = {}
    for run in hparams.values():
        for name, value in run.items():
            values.setdefault(name, set()).add(value)
    out = []
    for name in sorted(values):
        distinct = sorted(values[name])
        numbers = all(isinstance(v, float) for v in distinct)
        domain = (hp.RealInterval(distinct[0], distinct[-1])
                  if numbers and len(distinct) > MAX_DISCRETE_NUMBERS else hp.Discrete(distinct))
        out.append(hp.HParam(name, domain))
    return out


# --- events ---------------------------------------------------------------------------------

def final_metrics(run: StoredRun) -> dict[str, float]:
    """The run's numeric, finite final metrics (None, a metric a run did not reach, is left out)."""
    return {name: float(value) for name, value in sorted(run.metrics.items())
            if isinstance(value, (int, float)) and math.isfinite(value)}


def history_scalars(row: dict[str, Any]) -> dict[str, float]:
    """Every numeric, finite column of a history row but its step (the x axis)."""
    return {name: float(value) for name, value in row.items()
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def start_time(run: StoredRun) -> float:
    try:
        return datetime.fromisoformat(run.started_at).timestamp()
    except (TypeError, ValueError):
        return 0.0


def run_events(run: StoredRun, hparams: dict[str, Any]) -> list[event_pb2.Event]:
    """The run's events: its hparams (step 0), its history rows, its final metrics."""
    start = start_time(run)
    events = [event_pb2.Event(wall_time=start, step=0, summary=ordered(hp.hparams_pb(
        hparams, trial_id=run.key, start_time_secs=start)))]
    step, wall = 0, start
    for row in run.history:
        step = int(row["step"])
        elapsed = row.get("time")
        wall = start + elapsed if isinstance(elapsed, (int, float)) else start
        values = history_scalars(row)
        if values:
            events.append(_scalars(wall, step, values))
    final = {FINAL_PREFIX + name: value for name, value in final_metrics(run).items()}
    if final:
        events.append(_scalars(wall, step, final))
    return events


def ordered(summary: summary_pb2.Summary) -> summary_pb2.Summary:
    """An HParams summary whose plugin data (bytes within the summary) lists its map of hparams
    in sorted order: protobuf serialises maps in an arbitrary order, which varies from run to
    run of Python, so the same database would not give the same bytes."""
    for value in summary.value:
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        value.metadata.plugin_data.content = data.SerializeToString(deterministic=True)
    return summary


def _scalars(wall: float, step: int, values: dict[str, float]) -> event_pb2.Event:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                         for tag, value in values.items()])
    return event_pb2.Event(wall_time=wall, step=step, summary=summary)


def write_events(folder: Path, wall_time: float, events: list[event_pb2.Event]) -> None:
    """One event file in `folder`: the version record, then `events`."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / EVENTS_NAME.format(time=int(wall_time)), "wb") as file:
        writer = RecordWriter(file)
        writer.write(event_pb2.Event(wall_time=wall_time,
                                     file_version="brain.Event:2").SerializeToString())
        for event in events:
            writer.write(event.SerializeToString(deterministic=True))
