"""The study page's main table as a pivot: one setting down the rows, another across the
columns, each cell one arm's main metric (the XOR study's success share as activation ×
architecture, batch norm's training accuracy as weight scale × with / without).

A study gets one from `[report] pivot = {rows, columns, metric, threshold}` (the engine checks
that each cell holds one arm), or without it when it varies exactly two settings (an
argument table counting with its component: `initializer` and `initializer_args` are one)
and its table has a row per arm: the first setting down, the second across, the first report
metric. A cell is the arm's median with its order-statistic interval, as in the summary
(`tables.arm_summary`: a diverged run at the metric's worst), or with `threshold` the share of
its finished and diverged runs whose metric reaches it (a diverged run misses) with the Wilson
interval. Row and column labels are short names of the settings' values
(`arm_names.short_names` of the arm restricted to them: "hidden 5-4", "BN", "std 0.01").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from study.engine.results import stats
from study.engine.studies.arm_names import short_names
from study.engine.studies.setting_words import setting
from study.report import tables, views
from study.report.data import StudyResults

ROW, COLUMN = "pivot row", "pivot column"  # the label columns added to the runs


@dataclass(frozen=True)
class PivotSpec:
    rows: list[str]  # settings (last names without "_args")
    columns: list[str]
    metric: str
    threshold: float | None = None

    @property
    def what(self) -> str:
        """What a cell holds, for the caption and the CSV's corner."""
        if self.threshold is not None:
            return f"share of runs with {self.metric} ≥ {self.threshold:g}"
        return f"median {self.metric}"


def spec_of(study: StudyResults) -> PivotSpec | None:
    """The study's pivot: as its file names it, or for a study of two varied settings the
    first × the second; None when neither (or the metric was not stored)."""
    report = study.study.report
    given = report.pivot
    if given is not None:
        rows = [given.rows] if isinstance(given.rows, str) else list(given.rows)
        columns = [given.columns] if isinstance(given.columns, str) else list(given.columns)
        spec = PivotSpec([setting(r) for r in rows], [setting(c) for c in columns],
                         given.metric or report.metrics[0], given.threshold)
    else:
        varied = list(dict.fromkeys(setting(axis) for axis in study.axes))
        if len(varied) != 2 or report.group_by != "name" or study.study.search is not None:
            return None
        spec = PivotSpec([varied[0]], [varied[1]], report.metrics[0])
    return spec if spec.metric in study.runs else None


def labelled(study: StudyResults, spec: PivotSpec) -> pd.DataFrame:
    """The runs with their row and column labels (`ROW`, `COLUMN`)."""
    runs = study.runs.copy()
    for column, settings in ((ROW, spec.rows), (COLUMN, spec.columns)):
        arms = [{path: value for path, value in study.overrides[key].items()
                 if setting(path) in settings} for key in runs["key"]]
        always = {path for arm in arms for path in arm}  # a coordinate always says its value
        runs[column] = short_names(arms, study.study.base, always=always)
    return runs


def cells(study: StudyResults, spec: PivotSpec) -> pd.DataFrame:
    """One row per cell (row label, column label, in the study's order): `value` (the median,
    or the share), `low`, `high`, and for a share `reached` of `counted` runs."""
    runs = labelled(study, spec)
    if spec.threshold is None:
        summary = tables.arm_summary(runs, [spec.metric], by=[ROW, COLUMN])
        return pd.DataFrame({ROW: summary[ROW], COLUMN: summary[COLUMN],
                             "value": summary[spec.metric],
                             "low": summary[f"{spec.metric} low"],
                             "high": summary[f"{spec.metric} high"],
                             "finished": summary["finished"], "diverged": summary["diverged"]})
    out = []
    for (row, column), group in runs.groupby([ROW, COLUMN], sort=False):
        counted = group[group["status"] != "failed"]
        values = pd.to_numeric(counted[spec.metric], errors="coerce")
        reached = int(((values >= spec.threshold) & (counted["status"] == "finished")).sum())
        n = len(counted)
        interval = stats.wilson(reached, n)
        out.append({ROW: row, COLUMN: column, "value": reached / n if n else math.nan,
                    "low": interval.low, "high": interval.high, "reached": reached,
                    "counted": n})
    return pd.DataFrame(out)


def wide(found: pd.DataFrame, spec: PivotSpec, field: str = "value") -> pd.DataFrame:
    """The cells as rows × columns (the CSV export): the row labels in the first column,
    named after the row settings; a combination the study does not run is empty."""
    table = found.pivot(index=ROW, columns=COLUMN, values=field)
    table = table.reindex(index=list(dict.fromkeys(found[ROW])),
                          columns=list(dict.fromkeys(found[COLUMN])))
    table.columns.name = None
    return table.rename_axis(" × ".join(spec.rows)).reset_index()


def cell_text(cell: pd.Series, spec: PivotSpec) -> str:
    if spec.threshold is not None:
        return (f"{cell['value']:.2f} [{cell['low']:.2f}, {cell['high']:.2f}] "
                f"({cell['reached']}/{cell['counted']})")
    if cell["finished"] == 0:
        return "diverged" if cell["diverged"] else "failed"
    return tables.display_value(cell["value"], cell["low"], cell["high"])


def table(study: StudyResults, spec: PivotSpec, found: pd.DataFrame) -> views.Table:
    """The page's pivot: row labels in header cells, the best cell strong (by the metric's
    direction; a share is best when highest for a metric where higher is better)."""
    direction = tables.higher_is_better(spec.metric)
    finite = found["value"].where(found["value"].map(
        lambda v: isinstance(v, float) and math.isfinite(v)))
    best = (finite.max() if direction else finite.min()) if direction is not None else None
    texts = {(c[ROW], c[COLUMN]): (cell_text(c, spec), c["value"] == best)
             for _, c in found.iterrows()}
    columns = list(dict.fromkeys(found[COLUMN]))
    rows = []
    for row in dict.fromkeys(found[ROW]):
        shown = [views.Cell(row, header=True)]
        for column in columns:
            text, strong = texts.get((row, column), ("", False))
            shown.append(views.Cell(text, css="best" if strong else "", strong=strong))
        rows.append(views.Row(shown))
    corner = f"{' × '.join(spec.rows)} \\ {' × '.join(spec.columns)}"
    return views.Table("results pivot", rows, head=[corner, *columns],
                       caption=f"{study.name}: {spec.what} (interval in brackets), "
                               f"by {' × '.join(spec.rows)} and {' × '.join(spec.columns)}")
