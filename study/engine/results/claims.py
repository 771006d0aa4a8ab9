"""Evaluate a study's claims on its stored runs and store the verdicts.

Only the runs of the study's current configuration count (their keys come from expanding the
file), so results of an edited-away configuration never leak into a verdict. A diverged run
counts as a failure of its arm (the worst value of the metric), never as missing data; a failed
run (an exception, not an outcome) is left out and counted in the estimate's `failed`.

The unit of a claim is the seed (arms paired seed by seed), or, when the runs carry a search
repeat ("search.repeat" in their overrides), the whole search: each repeat's value is the
median over its seeds (diverged runs at the worst) and the arms are paired repeat by repeat.

Every `better` / `below` / `above` claim is tested in both directions (one-sided Wilcoxon
signed-rank each) and all these tests, 2 per claim, form one Holm family: a claim is supported
when its own direction's adjusted p is below `stats.ALPHA`, contradicted when the opposite
direction's is. Rates are decided by their Wilson interval, outside the family.

Stored per claim: `p_value` / `p_adjusted` (the claim's direction, raw / Holm) and
`p_opposite` / `p_opposite_adjusted` (the opposite direction). In the estimate, an infinite
median or bound (more than the interval's share of units diverged) is the string "inf" or
"-inf": JSON has no infinity.
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
from study.engine.studies.search import REPEAT  # the label of a repeated search's runs
from study.engine.studies.study_schema import Claim


def evaluate(study: Study, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per claim: statistic, p-values (Holm-adjusted across the study), effect,
    estimate, verdict."""
    keys = {spec.key for spec in study.runs}
    labels = {spec.key: spec.overrides for spec in study.runs}
    runs = runs[runs["key"].isin(keys)]
    rows = [_evaluate_one(claim, runs, labels) for claim in study.claims]
    _holm_over_both_directions(rows)
    for row in rows:
        row["verdict"] = _verdict(row)
    return rows


def evaluate_and_store(study: Study, store: Store) -> list[dict[str, Any]]:
    runs = results.runs(store.path, study=study.name)
    rows = evaluate(study, runs)
    stamp = now_iso()
    for row in rows:
        row.update(study=study.name, evaluated_at=stamp)
    store.write_claims(study.name, rows)
    return rows


def _holm_over_both_directions(rows: list[dict[str, Any]]) -> None:
    """One Holm family of every tested claim's two one-sided p-values."""
    tested = [row for row in rows if row["p_value"] is not None]
    family = [p for row in tested for p in (row["p_value"], row["p_opposite"])]
    adjusted = stats.holm(family)
    for row, as_claimed, opposite in zip(tested, adjusted[0::2], adjusted[1::2]):
        row["p_adjusted"], row["p_opposite_adjusted"] = as_claimed, opposite


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
    if row["p_opposite_adjusted"] < stats.ALPHA:
        return "contradicted"
    return "inconclusive"


def _rate_verdict(low, high, at_most, at_least) -> str:
    if at_most is not None:
        return "supported" if high <= at_most else "contradicted" if low > at_most else \
            "inconclusive"
    return "supported" if low >= at_least else "contradicted" if high < at_least else \
        "inconclusive"


def _arm_runs(runs: pd.DataFrame, selector, labels) -> pd.DataFrame:
    """The runs of the arm that `selector` picks."""
    return runs[np.array([selects(selector, labels[k]) for k in runs["key"]], dtype=bool)]


def _unit(runs: pd.DataFrame, labels) -> str:
    """"repeat" when the runs belong to a repeated search, else "seed"."""
    return "repeat" if any(REPEAT in labels[k] for k in runs["key"]) else "seed"


def _per_unit(chosen: pd.DataFrame, claim: Claim, unit: str, labels) -> pd.Series:
    """The metric per unit (seed, or repeat: the median of its seeds) of one arm's runs, in
    the metric's units; a diverged run at the metric's worst (+-inf), failed runs left out."""
    chosen = chosen[chosen["status"] != "failed"]
    # reindex: a metric no run logged is a column of NaN
    values = pd.to_numeric(chosen.reindex(columns=[claim.metric])[claim.metric], errors="coerce")
    worst = -math.inf if claim.higher_is_better else math.inf
    values = values.where(chosen["status"] != "diverged", worst)
    if claim.missing == "worst":
        values = values.fillna(worst)
    values = values.to_numpy(dtype=float)
    if unit == "seed":
        return pd.Series(values, index=chosen["seed"].to_numpy())
    repeats = [labels[k][REPEAT] for k in chosen["key"]]
    return pd.Series(values, index=repeats).groupby(level=0).agg(stats.median)


def _evaluate_one(claim: Claim, runs, labels) -> dict[str, Any]:
    row = {"claim_id": claim.id, "text": claim.text, "kind": claim.kind, "metric": claim.metric,
           "arm": claim.arm, "baseline": claim.baseline, "n": 0, "statistic": None,
           "p_value": None, "p_adjusted": None, "p_opposite": None,
           "p_opposite_adjusted": None, "effect": None, "estimate": {}}
    arm_runs = _arm_runs(runs, claim.arm, labels)
    base_runs = _arm_runs(runs, claim.baseline, labels) if claim.kind == "better" else None
    unit = _unit(pd.concat([arm_runs, base_runs]), labels)  # concat leaves out a None
    row["estimate"].update(unit=unit, failed=int((arm_runs["status"] == "failed").sum()))
    arm = _per_unit(arm_runs, claim, unit, labels)
    if claim.kind == "better":
        base = _per_unit(base_runs, claim, unit, labels)
        # dropna: the units both arms have (a value on one side only is NaN on the other)
        paired = pd.concat([arm, base], axis=1, keys=["arm", "base"]).dropna()
        row["n"] = len(paired)
        if row["n"] < 2:
            return row
        _better(row, claim, paired["arm"].to_numpy(), paired["base"].to_numpy())
        row["estimate"].update(_summary("arm", paired["arm"], arm_runs),
                               **_summary("baseline", paired["base"], base_runs))
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
    # below / above a value: one-sample Wilcoxon of the metric's distance to the value, > 0
    # where the claim holds (a diverged run is on the wrong side, infinitely far).
    distance = arm.to_numpy() - claim.value
    if claim.kind == "below":
        distance = -distance
    _test_both_directions(row, stats.for_ranks(distance))
    row["estimate"].update(_summary("arm", arm, arm_runs))
    return row


def _better(row: dict[str, Any], claim: Claim, arm: np.ndarray, base: np.ndarray) -> None:
    """The paired test, A12 (unpaired) and the paired effect of arm over baseline; values
    oriented so that higher is better (the worst, a diverged run, is -inf on both sides)."""
    sign = 1.0 if claim.higher_is_better else -1.0
    x, y = sign * arm, sign * base
    differences = stats.paired_differences(x, y)  # both diverged: exactly 0, a tie
    _test_both_directions(row, stats.for_ranks(differences))
    row["effect"] = stats.a12(x, y)
    effect = stats.paired_effect(differences)
    row["estimate"].update(
        difference_median=_number(effect.difference.median),
        difference_ci_low=_number(effect.difference.low),
        difference_ci_high=_number(effect.difference.high),
        difference_coverage=effect.difference.coverage, wins=effect.wins, ties=effect.ties,
        losses=effect.losses, win_share=effect.win_share)


def _test_both_directions(row: dict[str, Any], differences: np.ndarray) -> None:
    row["statistic"], row["p_value"] = stats.paired_wilcoxon(differences, 0.0,
                                                             alternative="greater")
    row["p_opposite"] = stats.paired_wilcoxon(differences, 0.0, alternative="less")[1]


def _summary(name: str, values: pd.Series, runs: pd.DataFrame) -> dict[str, Any]:
    """The arm's median over its units (diverged at the worst) with its order-statistic
    interval and coverage, and how many of its runs diverged."""
    interval = stats.median_ci(values)
    return {f"{name}_median": _number(interval.median), f"{name}_ci_low": _number(interval.low),
            f"{name}_ci_high": _number(interval.high), f"{name}_coverage": interval.coverage,
            f"{name}_diverged": int((runs["status"] == "diverged").sum())}


def _number(value: float) -> float | str | None:
    """A value for the stored JSON: +-inf as "inf" / "-inf" (JSON has none), NaN as None."""
    value = float(value)
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else str(value)  # str(+-inf): "inf" / "-inf"
