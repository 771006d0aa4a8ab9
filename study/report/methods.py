"""What a study page says about its statistics: how claims are tested, what the intervals
cover, and how small a p-value the study's seed count allows (plain text; the templates escape
it)."""

from __future__ import annotations

import json

import pandas as pd

from study.engine.results import stats

CLAIMS = (
    "Each claim is tested in both directions with a one-sided Wilcoxon signed-rank test, paired "
    "seed by seed (against the baseline arm, or for below / above against the value), and all "
    "these tests, 2 per claim, form one Holm family: a claim is supported when p (Holm) of its "
    f"direction is below {stats.ALPHA:g}, contradicted when that of the opposite direction is "
    "(the deciding p in bold). Effect sizes: the median paired difference with its "
    "order-statistic interval (+inf / -inf where only the baseline / only the arm diverged) "
    "and the share of seeds the arm wins (a tie counting 1/2), and "
    "Vargha-Delaney A12, which ignores the pairing (0.5 = no effect). Rates with a Wilson 95% "
    "interval. A diverged run counts as its arm's worst value (a seed that diverged in both "
    "arms is a tie); failed runs are left out. In a repeated search the unit is the whole "
    "search: each repeat's value is the median over its seeds.")

INTERVALS = (
    "Medians with the distribution-free interval [x(k), x(n+1-k)] of the median: the narrowest "
    "such ranks whose coverage, from Binomial(n, 1/2), is at least 95%. With 5 values or fewer "
    "even [min, max] covers less (93.8% with 5, 87.5% with 4); the coverage shown is the exact "
    "one, whatever it is.")


def power_text(claims: pd.DataFrame) -> str:
    """How small p (Holm) can get with this study's units and family size: every unit agreeing
    gives a one-sided p of 1/2^n, which Holm multiplies by the number of tests."""
    tested = claims[claims["p_value"].notna()] if len(claims) else claims
    if len(tested) == 0:
        return ""
    tests = 2 * len(tested)
    units = sorted({(int(row["n"]), json.loads(row["estimate"]).get("unit", "seed"))
                    for _, row in tested.iterrows()})
    reach = "; ".join(f"with {n} {unit}s at best {tests}/2^{n} = "
                      f"{stats.min_p_holm(n, tests):.2g}" for n, unit in units)
    unit_words = " or ".join(sorted({f"{unit}s" for _, unit in units}, reverse=True))
    return (f"This study's Holm family has {tests} tests (2 for each of {len(tested)} tested "
            f"claims), so p (Holm) can be no smaller than the family size over 2^n, reached "
            f"when all n pairs agree: {reach}. Reaching {stats.ALPHA:g} takes at least "
            f"{stats.seeds_needed(tests, stats.ALPHA)} {unit_words}, 0.01 at least "
            f"{stats.seeds_needed(tests, 0.01)}.")
