"""Evaluate a study's claims on its stored runs and store the verdicts.

Only the runs of the study's current configuration count (their keys come from expanding the
file), so results of an edited-away configuration never leak into a verdict. A diverged run
counts as a failure of its arm (the worst value of the metric), never as missing data; a failed
run (an exception, not an outcome) is left out and counted in the estimate's `failed`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from study import results
from study.engine.results import stats
from study.engine.results.store import Store, now_iso
from study.engine.studies.expansion import Study, selects
from study.engine.studies.study_schema import Claim


def evaluate(study: Study, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per claim: statistic, p-value (Holm-adjusted across the study), effect, verdict."""
    keys = {spec.key for spec in study.runs}
    arm_of = {spec.key: spec.overrides for spec in study.runs}
    runs = runs[runs["key"].isin(keys)]
    rows = [_evaluate_one(claim, runs, arm_of) for claim in study.claims]
    tested = [i for i, r in enumerate(rows) if r["p_value"] is not None]
    for i, adjusted in zip(tested, stats.holm([rows[i]["p_value"] for i in tested])):
        rows[i]["p_adjusted"] = adjusted
    for row in rows:
        row["verdict"] = _verdict(row)
        row.pop("_opposite_p", None)
    return rows


def evaluate_and_store(study: Study, store: Store) -> list[dict[str, Any]]:
    runs = results.runs(store.path, study=study.name)
    rows = evaluate(study, runs)
    stamp = now_iso()
    for row in rows:
        row.update(study=study.name, evaluated_at=stamp)
    store.write_claims(study.name, rows)
    return rows


def _arm_runs(runs: pd.DataFrame, selector, arm_of) -> pd.DataFrame:
    """The runs of the arm that `selector` picks."""
    return runs[np.array([selects(selector, arm_of[k]) for k in runs["key"]], dtype=bool)]


def _side(chosen: pd.DataFrame, claim: Claim) -> pd.Series:
    """The metric per seed for one arm's runs; diverged runs at the metric's worst."""
    chosen = chosen[chosen["status"] != "failed"]
    if claim.metric not in chosen.columns:
        values = pd.Series(np.nan, index=chosen.index)
    else:
        values = pd.to_numeric(chosen[claim.metric], errors="coerce")
    worst = -math.inf if claim.higher_is_better else math.inf
    values = values.where(chosen["status"] != "diverged", worst)
    return pd.Series(values.to_numpy(dtype=float), index=chosen["seed"].to_numpy())


def _evaluate_one(claim: Claim, runs, arm_of) -> dict[str, Any]:
    row = {"claim_id": claim.id, "text": claim.text, "kind": claim.kind, "metric": claim.metric,
           "arm": claim.arm, "baseline": claim.baseline, "n": 0, "statistic": None,
           "p_value": None, "p_adjusted": None, "effect": None, "estimate": {},
           "_opposite_p": None}
    arm_runs = _arm_runs(runs, claim.arm, arm_of)
    row["estimate"]["failed"] = int((arm_runs["status"] == "failed").sum())
    arm = _side(arm_runs, claim)
    if claim.kind == "better":
        base = _side(_arm_runs(runs, claim.baseline, arm_of), claim)
        paired = pd.concat([arm, base], axis=1, keys=["arm", "base"], join="inner").dropna()
        row["n"] = len(paired)
        if row["n"] < 2:
            return row
        x, y = _finite(paired["arm"].to_numpy()), _finite(paired["base"].to_numpy())
        if not claim.higher_is_better:
            x, y = -x, -y
        row["statistic"], row["p_value"] = stats.paired_wilcoxon(x, y, alternative="greater")
        row["_opposite_p"] = stats.paired_wilcoxon(x, y, alternative="less")[1]
        row["effect"] = stats.a12(x, y)
        row["estimate"].update(_summary("arm", paired["arm"]), **_summary("baseline", paired["base"]))
        return row
    arm = arm.dropna()
    row["n"] = len(arm)
    if row["n"] == 0:
        return row
    if claim.kind == "rate":
        successes = int((arm >= claim.threshold).sum())
        interval = stats.wilson(successes, len(arm))
        row["estimate"].update(rate=successes / len(arm), successes=successes,
                               ci_low=interval.low, ci_high=interval.high,
                               at_most=claim.at_most, at_least=claim.at_least)
        return row
    # below / above a value: one-sample Wilcoxon of (metric - value)
    x = _finite(arm.to_numpy()) - claim.value
    if claim.kind == "below":
        x = -x
    row["statistic"], row["p_value"] = stats.paired_wilcoxon(x, np.zeros_like(x),
                                                             alternative="greater")
    row["_opposite_p"] = stats.paired_wilcoxon(x, np.zeros_like(x), alternative="less")[1]
    row["estimate"].update(_summary("arm", arm))
    return row


def _verdict(row: dict[str, Any]) -> str:
    if row["n"] == 0:
        return "inconclusive"
    if row["kind"] == "rate":
        est = row["estimate"]
        return _rate_verdict(est["ci_low"], est["ci_high"], est["at_most"], est["at_least"])
    if row["p_adjusted"] is None:
        return "inconclusive"
    if row["p_adjusted"] < stats.ALPHA:
        return "supported"
    # The opposite direction, with the same Holm factor as this claim got.
    factor = row["p_adjusted"] / row["p_value"] if row["p_value"] else 1.0
    if row["_opposite_p"] is not None and min(1.0, row["_opposite_p"] * factor) < stats.ALPHA:
        return "contradicted"
    return "inconclusive"


def _rate_verdict(low, high, at_most, at_least) -> str:
    if at_most is not None:
        return "supported" if high <= at_most else "contradicted" if low > at_most else \
            "inconclusive"
    return "supported" if low >= at_least else "contradicted" if high < at_least else \
        "inconclusive"


def _finite(values: np.ndarray) -> np.ndarray:
    """Diverged runs (+-inf) become values beyond every finite one, keeping their rank."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    span = (np.max(np.abs(finite)) if finite.size else 1.0) * 2 + 1
    return np.where(np.isposinf(values), span, np.where(np.isneginf(values), -span, values))


def _summary(name: str, values: pd.Series) -> dict[str, Any]:
    values = values.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {f"{name}_median": None, f"{name}_diverged": int(values.size)}
    median, q1, q3 = stats.median_iqr(finite)
    interval = stats.bootstrap_ci(finite)
    return {f"{name}_median": median, f"{name}_q1": q1, f"{name}_q3": q3,
            f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high,
            f"{name}_diverged": int(values.size - finite.size)}
