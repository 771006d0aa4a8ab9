"""A study's stored results, ready for tables and figures: the store's rows, nothing computed.

Only the runs of the study as it last ran count (the keys `study run` stored with it), as for
its claims; runs of an edited-away configuration stay in the database but not in the report.
Each run gets a display `name`: the study's `[report.names]` for its arm, else the short name
`arm_names.short_names` derives from what the arm varies ("Adam lr=0.3", "hidden 5-4, tanh").
The stored `arm` label stays as it is (claims and run keys read it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study import results
from study.engine.studies.arm_names import short_names
from study.engine.studies.axes import safe_resolve
from study.engine.studies.expansion import Study, expand
from study.engine.studies.setting_words import value_text


@dataclass
class StudyResults:
    study: Study
    runs: pd.DataFrame  # one row per run, with `name`
    history: pd.DataFrame  # one row per logged epoch, with `name` and the axes
    claims: pd.DataFrame
    axes: list[str]  # the varied settings by last name, in the file's order
    overrides: dict[str, dict]  # run key -> its varied settings (full paths)
    names: list[str]  # display names of the arms, in the file's order
    db: Path
    updated_at: str

    @property
    def name(self) -> str:
        return self.study.name

    def artifacts(self, artifact: str) -> pd.DataFrame:
        """One row per current run that stored `artifact`, with the run's axes and `name`."""
        frame = results.artifacts(self.db, artifact, study=self.name)
        columns = ["key", "name", *self.axes]
        return frame.merge(self.runs[columns], left_on="run_key", right_on="key", how="inner")


def load(db: str | Path, only: str | None = None) -> list[StudyResults]:
    """Every study the database holds, in name order (or only the one named `only`)."""
    out = []
    for _, row in results.studies(db).iterrows():
        if only is not None and row["name"] != only:
            continue
        study = expand(row["definition"], source=row["source"], quick=row["quick"], light=True)
        order = {key: i for i, key in enumerate(row["run_keys"])}
        # The file's order of axes (the store keeps overrides with sorted keys); a search's
        # later stages exist only in the store.
        overrides = {**results.overrides(db, study.name),
                     **{spec.key: spec.overrides for spec in study.runs}}
        axes = list(dict.fromkeys(path.split(".")[-1] for key in row["run_keys"]
                                  for path in overrides.get(key, {})))
        runs = results.runs(db, study=study.name)
        runs = runs[runs["key"].isin(order)]
        runs = runs.sort_values("key", key=lambda k: k.map(order)).reset_index(drop=True)
        # Settings columns from the current file, not from when each run was stored: adding an
        # axis whose base value an old run already had (same key) leaves its stored overrides
        # without it.
        for axis in axes:
            runs[axis] = [_cell(overrides[k], axis) for k in runs["key"]]
        runs["name"] = arm_names(study, [overrides[k] for k in runs["key"]])
        history = results.history(db, study=study.name)
        history = history.merge(runs[["key", "name", *axes]], left_on="run_key",
                                right_on="key", how="inner")
        out.append(StudyResults(study, runs, history, results.claims(db, study.name), axes,
                                {k: overrides[k] for k in runs["key"]},
                                list(dict.fromkeys(runs["name"])), Path(db), row["updated_at"]))
    return out


def arm_names(study: Study, arms: list[dict]) -> list[str]:
    """The display name of each arm (its overrides), as `arm_names.short_names` words them
    for this study: [grid] and [random] axes in every name, `[report.names]` kept."""
    written = [*study.definition.get("grid", {}), *(study.random.axes if study.random else {})]
    always = [path for path in map(safe_resolve, written) if path]
    return short_names(arms, study.base, given=study.report.names, always=always)


def names(db: str | Path, study: str) -> dict[str, str]:
    """run key -> the display name of its arm, for the runs of `study` as it last ran."""
    return {key: name for loaded in load(db, only=study)
            for key, name in zip(loaded.runs["key"], loaded.runs["name"])}


def _cell(overrides: dict, axis: str):
    """The value of `axis` (a last name) in a run's overrides, as results.runs shows it."""
    for path, value in overrides.items():
        if path.split(".")[-1] == axis:
            return results.scalar(value)
    return None


def readable(value, column: str | None = None) -> str:
    """A value of the runs' `column` as a person reads it (`setting_words.value_text`:
    initializer_args {"stddev": 0.01} -> "std 0.01", hidden [5, 4] -> "hidden 5-4",
    optimizer "adam" -> "Adam"); without a column, {"stddev": 0.01} -> "stddev=0.01" and
    others as they are."""
    if column is not None:
        return value_text(column, value.item() if hasattr(value, "item") else value)
    if isinstance(value, str) and value.startswith("{"):
        return " ".join(f"{k}={v}" for k, v in json.loads(value).items())
    return str(value)
