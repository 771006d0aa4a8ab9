"""The report's tables, built with pandas: one row per arm, every run counted.

- `arm_summary`: per arm (or per value of one setting, or of several together), how many runs finished / diverged / failed, and each metric's median
  with its order-statistic interval and the interval's exact coverage (`stats.median_ci`:
  [x_(k), x_(n+1-k)], coverage from Binomial(n, 1/2), at least 95% from 6 runs; for 5 or fewer
  [min, max], which covers less). A diverged run counts as the metric's worst value, as in the
  claims (so the median of an arm that diverged more often than not is "diverged"); failed runs
  are left out. A metric whose direction is unknown (`higher_is_better`) has no worst value:
  there a diverged run is left out too. The interval never leaves the values' range, so an
  accuracy's never leaves [0, 1] (a Student-t mean interval did: [0.65, 1.15] for 0.8, 0.9, 1).
- `best_arms`: which rows hold the best median of a metric (ties all count).
- `summary_table`: the summary as the page's table, best cells marked.
- `claims_table`: the stored verdicts, one row per claim; `claims_view`, as the page's table.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from study.engine.results import stats
from study.report import views

COUNT_COLUMNS = ["runs", "finished", "diverged", "failed"]
COVERAGE = "coverage"  # of a row's intervals, for its finished and diverged runs

# Which way is better, by the metric's name; a metric not listed is shown without a "best".
_HIGHER = ("accuracy", "best_val_accuracy", "member_val_accuracy_mean")
_LOWER = ("loss", "distance", "final_value", "path_length", "accuracy_gap", "solved_at_step",
          "steps", "wall_time")


def higher_is_better(metric: str) -> bool | None:
    """True / False when the metric's direction is known from its name, else None."""
    if metric.endswith(_HIGHER):
        return True
    if metric.endswith(_LOWER):
        return False
    return None


def grouping(by: str | list[str]) -> list[str]:
    """The columns that name a row of the summary: `by`, one setting or several."""
    return [by] if isinstance(by, str) else list(by)


def grouping_text(by: str | list[str]) -> str:
    """What a row of the summary is, for a caption: "arm", "round", "round × optimizer"."""
    return "arm" if by == "name" else " × ".join(grouping(by))


def arm_summary(runs: pd.DataFrame, metrics: list[str],
                by: str | list[str] = "name") -> pd.DataFrame:
    """One row per value of `by` (in order of first appearance), or per combination of values
    when `by` lists several columns (a run without a value of `by` makes a row of its own):
    counts, the coverage of the row's intervals, then for each metric `<metric>` (median),
    `<metric> low` and `<metric> high` (its order-statistic interval) and `<metric> coverage`."""
    rows = []
    columns = grouping(by)
    for names, group in runs.groupby(columns, sort=False, dropna=False):
        row: dict = {**dict(zip(columns, names)), "runs": len(group)}
        for status in COUNT_COLUMNS[1:]:
            row[status] = int((group["status"] == status).sum())
        row[COVERAGE] = stats.median_coverage(row["finished"] + row["diverged"])
        counted = group[group["status"] != "failed"]
        for metric in metrics:
            interval = stats.median_ci(_values(counted, metric))
            row[metric], row[f"{metric} low"], row[f"{metric} high"] = (
                interval.median, interval.low, interval.high)
            row[f"{metric} coverage"] = interval.coverage
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, *COUNT_COLUMNS, COVERAGE, *[
        c for m in metrics for c in (m, f"{m} low", f"{m} high", f"{m} coverage")]])


def _values(runs: pd.DataFrame, metric: str) -> np.ndarray:
    """The metric of each finished or diverged run; a diverged run at the metric's worst
    (+-inf), or left out (NaN) when the metric's direction is unknown."""
    values = (pd.to_numeric(runs[metric], errors="coerce") if metric in runs.columns
              else pd.Series(np.nan, index=runs.index))
    direction = higher_is_better(metric)
    worst = math.nan if direction is None else -math.inf if direction else math.inf
    return values.where(runs["status"] != "diverged", worst).to_numpy(dtype=float)


def best_arms(summary: pd.DataFrame, metric: str) -> pd.Series:
    """A boolean mask of the rows whose median of `metric` is the best finite one (all of
    them on a tie); all False when the direction is unknown or no row has a finite value."""
    direction = higher_is_better(metric)
    values = pd.to_numeric(summary[metric], errors="coerce")
    values = values.where(np.isfinite(values))
    if direction is None or values.notna().sum() == 0:
        return pd.Series(False, index=summary.index)
    best = values.max() if direction else values.min()
    return values == best


def display_value(median: float, low: float, high: float, digits: int = 4) -> str:
    """"median [low, high]"; an infinite value (a diverged run at the worst) reads "diverged"."""
    if math.isnan(median):
        return ""
    if math.isnan(low):
        return _shown(median, digits)
    return f"{_shown(median, digits)} [{_shown(low, digits)}, {_shown(high, digits)}]"


def coverage_text(coverage: float) -> str:
    return "—" if coverage is None or not math.isfinite(coverage) else f"{100 * coverage:.1f}%"


def summary_display(summary: pd.DataFrame, metrics: list[str],
                    by: str | list[str] = "name") -> pd.DataFrame:
    """The summary as strings: counts as they are, the coverage as a percentage, each metric
    as "median [low, high]" (with its own coverage beside it when it differs from the row's:
    values missing, or a metric of unknown direction without its diverged runs); an arm with
    no finished run shows "diverged" (or "failed") rather than a blank."""
    shown = summary[[*grouping(by), *COUNT_COLUMNS]].copy()
    shown[COVERAGE] = [coverage_text(c) for c in summary[COVERAGE]]
    for metric in metrics:
        cells = []
        for _, row in summary.iterrows():
            if row["finished"] == 0:
                cells.append("diverged" if row["diverged"] else "failed")
                continue
            text = display_value(row[metric], row[f"{metric} low"], row[f"{metric} high"])
            own = row[f"{metric} coverage"]
            if text and math.isfinite(own) and not math.isclose(own, row[COVERAGE]):
                text += f" (covers {coverage_text(own)})"
            cells.append(text)
        shown[metric] = cells
    return shown


def summary_table(summary: pd.DataFrame, metrics: list[str], by: str | list[str] = "name",
                  caption: str = "") -> views.Table:
    """The table of `summary_display`: the row's name in header cells, the best cell of each
    metric strong, an arm without a finished run marked "diverged" / "failed"."""
    shown = summary_display(summary, metrics, by)
    best = {m: best_arms(summary, m) for m in metrics}
    rows = []
    for i, row in shown.iterrows():
        cells = []
        for column in shown.columns:
            text = str(row[column])
            if column in grouping(by):
                cells.append(views.Cell(text, header=True))
            elif column in best and best[column].loc[i]:
                cells.append(views.Cell(text, css="best", strong=True))
            elif text.startswith(("diverged", "failed")) and column in metrics:
                cells.append(views.Cell(text, css=text))
            else:
                cells.append(views.Cell(text))
        rows.append(views.Row(cells))
    return views.Table("results", rows, head=[str(c) for c in shown.columns], caption=caption)


CLAIM_COLUMNS = ["claim", "kind", "metric", "n", "statistic", "p", "p (Holm)",
                 "p (Holm), opposite", "A12 (unpaired)", "estimate", "verdict"]
_NUMBER_COLUMNS = ("statistic", "p", "p (Holm)", "p (Holm), opposite", "A12 (unpaired)")


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The stored claims, one row each, as the page shows them (numbers kept numeric): the
    claim's direction raw and Holm-adjusted, the opposite direction Holm-adjusted (missing,
    NaN, in a database evaluated before both directions were stored)."""
    rows = []
    for _, c in claims.iterrows():
        rows.append({"claim": c["text"], "kind": c["kind"], "metric": c["metric"], "n": c["n"],
                     "statistic": c["statistic"], "p": c["p_value"],
                     "p (Holm)": c["p_adjusted"],
                     "p (Holm), opposite": c.get("p_opposite_adjusted", math.nan),
                     "A12 (unpaired)": c["effect"],
                     "estimate": estimate_text(json.loads(c["estimate"]), c["n"]),
                     "verdict": c["verdict"]})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claims_view(table: pd.DataFrame) -> views.Table:
    """The claims table as the page shows it: numbers to 3 digits, the verdict cell classed by
    its verdict, the p-value that decided a verdict strong (the claim's direction for
    "supported", the opposite one for "contradicted")."""
    rows = []
    for _, row in table.iterrows():
        deciding = {"supported": "p (Holm)", "contradicted": "p (Holm), opposite"}.get(
            row["verdict"])
        cells = []
        for column in table.columns:
            value = row[column]
            if column in _NUMBER_COLUMNS:
                text = "—" if value is None or not np.isfinite(float(value)) else f"{value:.3g}"
            else:
                text = str(value)
            cells.append(views.Cell(text, css=f"verdict {text}" if column == "verdict" else "",
                                    strong=column == deciding))
        rows.append(views.Row(cells))
    return views.Table("claims", rows, head=list(table.columns))


def estimate_text(estimate: dict, n: int) -> str:
    """The claim's estimate in words: the rate with its Wilson interval, or the medians with
    their order-statistic intervals (and how many runs of each side diverged), the paired
    difference and the share of units the arm won, and the intervals' coverage."""
    if "rate" in estimate:
        return (f"{estimate['successes']}/{n} reach the threshold: rate {estimate['rate']:.2f} "
                f"[{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]")
    unit = estimate.get("unit", "seed")
    parts = []
    for side in ("arm", "baseline"):
        if f"{side}_median" in estimate:
            text = (f"{side} median {_shown(estimate[f'{side}_median'])} "
                    f"[{_shown(estimate.get(f'{side}_ci_low'))}, "
                    f"{_shown(estimate.get(f'{side}_ci_high'))}]")
            if estimate.get(f"{side}_diverged"):
                text += f", {estimate[f'{side}_diverged']} diverged"
            parts.append(text)
    if "difference_median" in estimate:
        parts.append(f"paired difference (> 0: arm better) median "
                     f"{_signed(estimate['difference_median'])} "
                     f"[{_signed(estimate['difference_ci_low'])}, "
                     f"{_signed(estimate['difference_ci_high'])}]")
        parts.append(f"arm better on {estimate['wins']} of {n} {unit}s, {estimate['ties']} "
                     f"tied, {estimate['losses']} worse (win share "
                     f"{estimate['win_share']:.2f}, a tie counting 1/2)")
    if estimate.get("arm_coverage") is not None:
        parts.append(f"intervals cover {coverage_text(estimate['arm_coverage'])}")
    if parts and unit == "repeat":
        parts.append(f"unit: one repeat of the whole search (the median of its seeds), "
                     f"n = {n} repeats")
    return "; ".join(parts) or "no runs"


def _shown(value, digits: int = 4, infinite: str = "diverged") -> str:
    """A number to 4 significant digits; infinite (a diverged run at the metric's worst,
    stored as "inf" / "-inf") as `infinite`; missing as "—"."""
    if value is None:
        return "—"
    value = float(value)
    if math.isnan(value):
        return "—"
    return f"{value:.{digits}g}" if math.isfinite(value) else infinite


def _signed(value) -> str:
    """A difference: +-infinity (one side diverged on that unit) as +inf / -inf."""
    if value is not None and math.isinf(float(value)):
        return "+inf" if float(value) > 0 else "-inf"
    return _shown(value)
