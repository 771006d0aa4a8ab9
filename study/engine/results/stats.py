"""Statistics of the claims: paired tests, multiplicity correction, effect sizes, intervals.

The protocol follows the optimizer-benchmark literature (DeepOBS, AlgoPerf, Schmidt et al.
2021, rliable): arms are compared seed by seed (seed k gives both arms the same data order,
subset and initial weights); final metrics are summarised as median [IQR] with a bootstrap 95%
interval; bimodal outcomes (solved / not solved) as a rate with a Wilson 95% interval. Tests
are scipy's; nothing here re-derives a distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def median_iqr(values) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile) of the finite values."""
    values = np.asarray(values, dtype=float)
    return tuple(float(v) for v in np.percentile(values, [50, 25, 75]))


def bootstrap_ci(values, statistic=np.median, *, confidence: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of `statistic`; a point interval for constant data."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        v = float(statistic(values)) if len(values) else math.nan
        return Interval(v, v)
    result = stats.bootstrap((values,), statistic, confidence_level=confidence,
                             n_resamples=resamples, method="percentile",
                             random_state=np.random.default_rng(seed))
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))


def mean_ci(values, *, confidence: float = 0.95) -> tuple[float, Interval]:
    """Mean and Student-t interval of the finite values: mean +- t(n-1) s / sqrt(n).

    The report's tables and curve bands use it (over seeds, n of 5 to 20): exact under
    normality, and unlike a bootstrap it needs no resampling seed. n = 1 gives no interval (NaN).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, Interval(math.nan, math.nan)
    mean = float(values.mean())
    if len(values) == 1:
        return mean, Interval(math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, Interval(mean - half, mean + half)


def wilson(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a success rate (sound at 0/n and n/n, unlike the Wald one)."""
    if n == 0:
        return Interval(0.0, 1.0)
    result = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence,
                                                        method="wilson")
    return Interval(float(result.low), float(result.high))


def a12(x, y) -> float:
    """Vargha-Delaney A12: the probability that a draw of x beats a draw of y (ties count 1/2).

    0.5 is no effect; 0.56 / 0.64 / 0.71 are the conventional small / medium / large.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    greater = (x[:, None] > y[None, :]).sum()
    equal = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(x) * len(y)))


def paired_wilcoxon(x, y, *, alternative: str = "greater") -> tuple[float, float]:
    """Wilcoxon signed-rank test of x - y, seed by seed: (statistic, p-value).

    All differences zero means no evidence either way: p = 1. Exact p-values for small n
    (with 5 pairs the smallest one-sided p is 1/32 = 0.031, two-sided 0.0625).
    """
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if np.all(d == 0):
        return 0.0, 1.0
    result = stats.wilcoxon(d, alternative=alternative, zero_method="zsplit")
    return float(result.statistic), float(result.pvalue)


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error across one study's claims."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
