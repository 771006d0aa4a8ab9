"""Statistics of the claims and the report: paired tests, multiplicity, effect sizes, intervals.

The protocol follows the optimizer-benchmark literature (DeepOBS, AlgoPerf, Schmidt et al.
2021, rliable): arms are compared seed by seed (seed k gives both arms the same data order,
subset and initial weights); final metrics are summarised as a median with its exact
distribution-free interval (order statistics, coverage from Binomial(n, 1/2), stated with it);
bimodal outcomes (solved / not solved) as a rate with a Wilson 95% interval. Every claim is
tested in both directions and all of a study's tests form one Holm family. Tests are scipy's;
the only distribution written out here is the binomial of the order-statistic interval.

A diverged run enters as the metric's worst value (-inf once oriented so that higher is
better): medians, order statistics and A12 compare it like any other value.
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


@dataclass(frozen=True)
class MedianInterval:
    """A sample median, an interval [low, high] for the population median, and the interval's
    exact coverage: the probability that it contains the population median (any continuous
    distribution)."""

    median: float
    low: float
    high: float
    coverage: float


def median_ci(values, *, confidence: float = 0.95) -> MedianInterval:
    """The sample median and the order-statistic interval [x_(k), x_(n+1-k)] of the median.

    Of n independent draws, the number B below the population median is Binomial(n, 1/2), so
    [x_(k), x_(n+1-k)] contains it with probability P(k <= B <= n - k) = 1 - 2 P(B <= k - 1),
    whatever the distribution (continuous). k is the largest rank whose coverage is at least
    `confidence`. If even [min, max] falls short (n <= 5 at 95%: coverage 1 - 2 / 2^n, e.g.
    0.9375 for n = 5) the interval is [min, max] and `coverage` says what it really is.
    n = 7 gives [min, max] at 1 - 2/128 = 0.984; n = 20 gives [x_(6), x_(15)] at 0.959.
    (The bootstrap it replaces gave [min, max]-like intervals at ~87.5% for 7 seeds.)
    NaN values are left out; +-inf (a diverged run at its worst) are order statistics like
    any other. The interval never leaves the range of the values, hence of the metric.
    """
    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return MedianInterval(math.nan, math.nan, math.nan, math.nan)
    k, coverage = _median_ranks(n, confidence)
    return MedianInterval(median(x), float(x[k - 1]), float(x[n - k]), coverage)


def median_coverage(n: int, *, confidence: float = 0.95) -> float:
    """The coverage of `median_ci`'s interval for n values (NaN for none)."""
    return _median_ranks(n, confidence)[1] if n > 0 else math.nan


def _median_ranks(n: int, confidence: float) -> tuple[int, float]:
    """The largest k whose [x_(k), x_(n+1-k)] covers the median with probability >=
    confidence (k = 1 if none does), and that probability."""
    k = 1
    while k + 1 <= (n + 1) // 2 and _order_coverage(n, k + 1) >= confidence:
        k += 1
    return k, _order_coverage(n, k)


def _order_coverage(n: int, k: int) -> float:
    """P(x_(k) <= median <= x_(n+1-k)) = 1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2)."""
    return float(1.0 - 2.0 * stats.binom.cdf(k - 1, n, 0.5))


def median(values) -> float:
    """The middle value, or the midpoint of the middle two, NaN left out; +-inf count as
    values (a midpoint with -inf is -inf). Two middles at opposite infinities (one pair
    diverged each way) have no midpoint: NaN. No values: NaN."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan
    middle = len(x) // 2
    if len(x) % 2:
        return float(x[middle])
    low, high = x[middle - 1], x[middle]
    if low == high:
        return float(low)
    with np.errstate(invalid="ignore"):
        return float((low + high) / 2)


def paired_differences(x, y) -> np.ndarray:
    """x - y pair by pair, where a pair at the same value, infinities included, is exactly 0:
    a seed that diverged in both arms (-inf - -inf) is a tie, not an undefined or large
    difference. One side diverged gives +-inf."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(x == y, 0.0, x - y)


def for_ranks(differences) -> np.ndarray:
    """Differences ready for a rank test: +-inf (one side diverged) become +-(the largest
    finite |difference| + 1), so they outrank every finite difference and tie with each
    other. A rank test sees only this order, so the value chosen does not matter."""
    d = np.asarray(differences, dtype=float)
    finite = d[np.isfinite(d)]
    big = (float(np.max(np.abs(finite))) if finite.size else 0.0) + 1.0
    return np.where(np.isposinf(d), big, np.where(np.isneginf(d), -big, d))


def wilson(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a success rate (sound at 0/n and n/n, unlike the Wald one)."""
    if n == 0:
        return Interval(0.0, 1.0)
    result = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence,
                                                        method="wilson")
    return Interval(float(result.low), float(result.high))


def a12(x, y) -> float:
    """Vargha-Delaney A12: the probability that a draw of x beats a draw of y (ties count 1/2).

    Unpaired: it compares every x with every y, ignoring which seed each came from (the
    paired effect is `paired_effect`). 0.5 is no effect; 0.56 / 0.64 / 0.71 are the
    conventional small / medium / large. -inf (diverged) loses to every finite value and ties
    with another -inf.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    greater = (x[:, None] > y[None, :]).sum()
    equal = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(x) * len(y)))


@dataclass(frozen=True)
class PairedEffect:
    """Per pair d = arm - baseline (oriented: > 0 means the arm is better): the median of d
    with its order-statistic interval, and wins / ties / losses. `win_share` counts a tie as
    half a win: (wins + ties / 2) / n, 0.5 = no effect."""

    difference: MedianInterval
    wins: int
    ties: int
    losses: int

    @property
    def win_share(self) -> float:
        n = self.wins + self.ties + self.losses
        return (self.wins + 0.5 * self.ties) / n if n else math.nan


def paired_effect(differences, *, confidence: float = 0.95) -> PairedEffect:
    """The paired effect size of `differences` (from `paired_differences`): median difference
    with the interval of `median_ci` (a sign-test interval: it assumes no symmetry, unlike the
    Hodges-Lehmann one), and the seeds won, tied and lost."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    return PairedEffect(median_ci(d, confidence=confidence), int((d > 0).sum()),
                        int((d == 0).sum()), int((d < 0).sum()))


def paired_wilcoxon(x, y, *, alternative: str = "greater") -> tuple[float, float]:
    """Wilcoxon signed-rank test of x - y, seed by seed: (statistic, p-value).

    All differences zero means no evidence either way: p = 1. Zero differences split their
    ranks between the signs (zsplit). Exact p-values for small n (with 5 pairs the smallest
    one-sided p is 1/32 = 0.031, see `min_p`).
    """
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if np.all(d == 0):
        return 0.0, 1.0
    result = stats.wilcoxon(d, alternative=alternative, zero_method="zsplit")
    return float(result.statistic), float(result.pvalue)


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error across one study's tests.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p)  # tied p-values get the same adjusted value in either order
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def min_p(n: int) -> float:
    """The smallest one-sided p-value of the exact Wilcoxon signed-rank test on n pairs: every
    difference of one sign (and no zero), a chance of 1 in 2^n under the null."""
    return 0.5 ** n


def min_p_holm(n: int, n_tests: int) -> float:
    """The smallest p_holm any test of a family of `n_tests` can reach with n pairs: Holm
    multiplies the smallest p by the family's size, min(1, n_tests / 2^n). A study's family
    has 2 tests per tested claim (both directions)."""
    return min(1.0, n_tests * min_p(n))


def seeds_needed(n_tests: int, alpha: float = 0.01) -> int:
    """The fewest pairs (seeds) with which a consistent effect (every difference of one sign)
    reaches p_holm <= alpha in a Holm family of `n_tests` tests: the least n with
    n_tests / 2^n <= alpha, i.e. ceil(log2(n_tests / alpha)). One claim (2 tests) at 0.01: 8.
    """
    if n_tests < 1 or not 0 < alpha < 1:
        raise ValueError(f"n_tests must be >= 1 and alpha in (0, 1); got {n_tests}, {alpha}")
    n = 1
    while min_p_holm(n, n_tests) > alpha:
        n += 1
    return n
