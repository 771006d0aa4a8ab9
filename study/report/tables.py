"""The report's tables, built with pandas: one row per arm, every run counted.

- `arm_summary`: per arm (or per value of one setting, or of several together), how many runs
  finished / diverged / failed, and each metric's mean with a Student-t 95% interval over the
  seeds that finished (`study.stats.mean_ci`). A diverged run has no final metric (its weights
  are NaN): it is counted in its row, never dropped, and an arm whose every run diverged shows
  "diverged" instead of a number.
- `best_arms`: which rows hold the best mean of a metric (ties all count).
- `summary_html`: the summary as an HTML table, best cells marked, text escaped.
- `claims_table`: the stored verdicts, one row per claim.
"""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pandas as pd

from study.engine.results import stats

COUNT_COLUMNS = ["runs", "finished", "diverged", "failed"]

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
    when `by` lists several columns: counts, then for each metric `<metric>` (mean over
    finished runs), `<metric> low` and `<metric> high` (95% interval). A run without a value
    of `by` makes a row of its own (every run counted)."""
    rows = []
    columns = grouping(by)
    for names, group in runs.groupby(columns, sort=False, dropna=False):
        row: dict = {**dict(zip(columns, names)), "runs": len(group)}
        for status in COUNT_COLUMNS[1:]:
            row[status] = int((group["status"] == status).sum())
        finished = group[group["status"] == "finished"]
        for metric in metrics:
            values = (pd.to_numeric(finished[metric], errors="coerce")
                      if metric in finished.columns else pd.Series(dtype=float))
            mean, interval = stats.mean_ci(values.to_numpy(dtype=float))
            row[metric], row[f"{metric} low"], row[f"{metric} high"] = (
                mean, interval.low, interval.high)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, *COUNT_COLUMNS,
                                       *[c for m in metrics for c in (m, f"{m} low", f"{m} high")]])


def best_arms(summary: pd.DataFrame, metric: str) -> pd.Series:
    """A boolean mask of the rows whose mean of `metric` is the best (all of them on a tie);
    all False when the direction is unknown or no row has a value."""
    direction = higher_is_better(metric)
    values = pd.to_numeric(summary[metric], errors="coerce")
    if direction is None or values.notna().sum() == 0:
        return pd.Series(False, index=summary.index)
    best = values.max() if direction else values.min()
    return values == best


def display_value(mean: float, low: float, high: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return ""
    if not math.isfinite(low):
        return _number(mean, digits)
    return f"{_number(mean, digits)} [{_number(low, digits)}, {_number(high, digits)}]"


def summary_display(summary: pd.DataFrame, metrics: list[str],
                    by: str | list[str] = "name") -> pd.DataFrame:
    """The summary as strings: counts as they are, each metric as "mean [low, high]"; an arm
    with no finished run shows "diverged" (or "failed") rather than a blank."""
    shown = summary[[*grouping(by), *COUNT_COLUMNS]].copy()
    for metric in metrics:
        cells = []
        for _, row in summary.iterrows():
            if row["finished"] == 0:
                cells.append("diverged" if row["diverged"] else "failed")
            else:
                cells.append(display_value(row[metric], row[f"{metric} low"],
                                           row[f"{metric} high"]))
        shown[metric] = cells
    return shown


def summary_html(summary: pd.DataFrame, metrics: list[str], by: str | list[str] = "name",
                 caption: str = "") -> str:
    """An HTML table of `summary_display`, the best cell of each metric in <strong>, every
    text escaped (a name or value can never become markup)."""
    shown = summary_display(summary, metrics, by)
    best = {m: best_arms(summary, m) for m in metrics}
    head = "".join(f"<th scope='col'>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for i, row in shown.iterrows():
        cells = []
        for column in shown.columns:
            text = html.escape(str(row[column]))
            if column in grouping(by):
                cells.append(f"<th scope='row'>{text}</th>")
            elif column in best and best[column].loc[i]:
                cells.append(f"<td class='best'><strong>{text}</strong></td>")
            elif text in ("diverged", "failed") and column in metrics:
                cells.append(f"<td class='{text}'>{text}</td>")
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption_html = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<table class='results'>{caption_html}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


CLAIM_COLUMNS = ["claim", "kind", "metric", "n", "statistic", "p", "p (Holm)", "effect (A12)",
                 "estimate", "verdict"]


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The stored claims, one row each, as the page shows them (numbers kept numeric)."""
    rows = []
    for _, c in claims.iterrows():
        rows.append({"claim": c["text"], "kind": c["kind"], "metric": c["metric"], "n": c["n"],
                     "statistic": c["statistic"], "p": c["p_value"],
                     "p (Holm)": c["p_adjusted"], "effect (A12)": c["effect"],
                     "estimate": estimate_text(json.loads(c["estimate"]), c["n"]),
                     "verdict": c["verdict"]})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claims_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th scope='col'>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for _, row in table.iterrows():
        cells = []
        for column in table.columns:
            value = row[column]
            if column in ("statistic", "p", "p (Holm)", "effect (A12)"):
                text = "—" if value is None or not np.isfinite(float(value)) else f"{value:.3g}"
            else:
                text = str(value)
            css = f" class='verdict {html.escape(text)}'" if column == "verdict" else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='claims'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def estimate_text(estimate: dict, n: int) -> str:
    """The claim's estimate in words: the rate with its Wilson interval, or the medians with
    their bootstrap intervals (and how many runs of each side diverged)."""
    if "rate" in estimate:
        return (f"{estimate['successes']}/{n} reach the threshold: rate {estimate['rate']:.2f} "
                f"[{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]")
    parts = []
    for side in ("arm", "baseline"):
        if f"{side}_median" in estimate:
            text = (f"{side} median {_number(estimate[f'{side}_median'])} "
                    f"[{_number(estimate.get(f'{side}_ci_low'))}, "
                    f"{_number(estimate.get(f'{side}_ci_high'))}]")
            if estimate.get(f"{side}_diverged"):
                text += f", {estimate[f'{side}_diverged']} diverged"
            parts.append(text)
    return "; ".join(parts) or "no runs"


def _number(value, digits: int = 4) -> str:
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}g}"
