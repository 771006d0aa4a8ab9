"""The claims' statistics on small samples whose answers are known."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from study.engine.results import stats


def test_a12_extremes_and_ties():
    assert stats.a12([3, 4, 5], [0, 1, 2]) == 1.0
    assert stats.a12([0, 1, 2], [3, 4, 5]) == 0.0
    assert stats.a12([1, 1], [1, 1]) == 0.5
    assert stats.a12([1, 2], [1, 0]) == pytest.approx((1 * 0.5 + 1 + 1 + 1) / 4)


def test_wilson_interval_known_values():
    # 0 successes of 20: Wilson's upper bound is z^2 / (n + z^2) = 0.1611 (z = 1.96)
    interval = stats.wilson(0, 20)
    assert interval.low == 0.0
    assert interval.high == pytest.approx(0.1611, abs=1e-4)
    full = stats.wilson(20, 20)
    assert full.high == pytest.approx(1.0) and full.low == pytest.approx(1 - 0.1611, abs=1e-4)


def test_holm_matches_the_hand_computation():
    # sorted p: 0.01 x3 = 0.03, 0.02 x2 = 0.04, 0.04 x1 = 0.04 (monotone)
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_paired_wilcoxon_is_scipys_and_all_ties_mean_no_evidence():
    x, y = [0.9, 0.8, 0.95, 0.85, 0.9, 0.7], [0.5, 0.6, 0.5, 0.7, 0.4, 0.65]
    statistic, p = stats.paired_wilcoxon(x, y, alternative="greater")
    assert p == pytest.approx(scipy_stats.wilcoxon(np.subtract(x, y), alternative="greater").pvalue)
    assert p == pytest.approx(1 / 64)  # all six differences positive, exact test
    assert stats.paired_wilcoxon([1, 1, 1], [1, 1, 1]) == (0.0, 1.0)


def test_median_interval_ranks_and_coverage_from_the_binomial():
    # Coverage of [x_(k), x_(n+1-k)] is 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), by hand:
    # n = 7: [min, max] = 1 - 2/2^7; the next ranks, [x_(2), x_(6)], 1 - 2 (1 + 7)/2^7 = 0.875.
    seven = stats.median_ci([5, 1, 7, 3, 2, 6, 4])
    assert (seven.median, seven.low, seven.high) == (4, 1, 7)
    assert seven.coverage == 1 - 2 / 2 ** 7
    # n = 5: even [min, max] covers only 1 - 2/32 = 0.9375 < 0.95, and says so.
    five = stats.median_ci([1, 2, 3, 4, 5])
    assert (five.low, five.high, five.coverage) == (1, 5, 1 - 2 / 32)
    # n = 20: k = 6, 1 - 2 (C(20,0) + ... + C(20,5)) / 2^20 = 0.9586; k = 7 gives 0.885.
    twenty = stats.median_ci(np.arange(1.0, 21.0))
    below = sum(math.comb(20, j) for j in range(6))
    assert (twenty.low, twenty.high) == (6, 15)
    assert twenty.coverage == pytest.approx(1 - 2 * below / 2 ** 20, rel=1e-12)
    assert twenty.median == 10.5
    assert stats.median_coverage(6) == 1 - 2 / 64 and math.isnan(stats.median_coverage(0))


def test_median_interval_covers_as_often_as_it_says():
    # An independent check of the formula: 20,000 samples of 7 (and of 20) exponential draws,
    # whose median is ln 2. The share of intervals containing it estimates the coverage with
    # a standard error of at most sqrt(0.25 / 20000) = 0.0035: tolerance 0.012 (3.4 SE).
    rng = np.random.default_rng(1)
    for n in (7, 20):
        draws = np.sort(rng.exponential(size=(20000, n)), axis=1)
        claimed = stats.median_ci(draws[0])
        k = int(np.flatnonzero(draws[0] == claimed.low)[0])  # rank of the lower end, 0-based
        hit = (draws[:, k] <= math.log(2)) & (math.log(2) <= draws[:, n - 1 - k])
        assert hit.mean() == pytest.approx(claimed.coverage, abs=0.012)


def test_median_interval_stays_inside_the_values_and_takes_infinities():
    # An accuracy's interval never leaves [0, 1] (the Student-t one of 0.8, 0.9, 1.0 reaches
    # 1.148); a diverged run (-inf, the worst) is an order statistic like the others.
    interval = stats.median_ci([0.8, 0.9, 1.0])
    assert (interval.low, interval.high) == (0.8, 1.0)
    t_high = 0.9 + scipy_stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # what it replaces
    assert t_high == pytest.approx(1.148, abs=1e-3)
    diverged = stats.median_ci([-math.inf, 0.8, 0.9, 1.0])
    assert (diverged.median, diverged.low, diverged.high) == (pytest.approx(0.85), -math.inf, 1)
    assert diverged.coverage == 1 - 2 / 16
    assert stats.median_ci([-math.inf, -math.inf, 0.5]).median == -math.inf
    assert math.isnan(stats.median_ci([]).median) and math.isnan(stats.median([np.nan]))


def test_paired_differences_make_a_pair_diverged_on_both_sides_a_tie():
    inf = math.inf
    d = stats.paired_differences([-inf, -inf, 0.9, 0.7], [-inf, 0.5, -inf, 0.5])
    assert d.tolist() == [0.0, -inf, inf, pytest.approx(0.2)]
    # For the rank test one side's divergence outranks every finite difference.
    assert stats.for_ranks([-inf, inf, 0.3, -0.2]).tolist() == [-1.3, 1.3, 0.3, -0.2]


def test_paired_effect_counts_wins_ties_and_losses():
    # d sorted: -0.1, 0, 0.05, 0.1, 0.15, 0.2, 0.4: median 0.1, [min, max] for n = 7.
    effect = stats.paired_effect([0.1, 0.2, 0.0, -0.1, 0.4, 0.15, 0.05])
    assert effect.difference.median == pytest.approx(0.1)
    assert (effect.difference.low, effect.difference.high) == (-0.1, 0.4)
    assert (effect.wins, effect.ties, effect.losses) == (5, 1, 1)
    assert effect.win_share == pytest.approx(5.5 / 7)


def test_smallest_p_and_seeds_needed_known_values():
    assert stats.min_p(6) == 1 / 64
    assert stats.min_p_holm(7, 6) == 6 / 128 and stats.min_p_holm(2, 8) == 1.0
    # One claim = 2 tests: 2/2^8 = 0.0078 <= 0.01 < 2/2^7 = 0.0156.
    assert stats.seeds_needed(2) == 8
    # 10 tests: 10/1024 = 0.0098 <= 0.01 < 10/512; 1 test at 0.05: 1/32 <= 0.05 < 1/16.
    assert stats.seeds_needed(10) == 10 and stats.seeds_needed(1, alpha=0.05) == 5
    with pytest.raises(ValueError):
        stats.seeds_needed(0)


@pytest.mark.parametrize("claims", [1, 3])
def test_seeds_needed_is_what_the_test_and_holm_really_give(claims):
    # Every claim's effect consistent (all differences > 0): the real Wilcoxon p-values of a
    # family of both directions, Holm-adjusted, reach 0.01 with seeds_needed seeds, not with
    # one fewer.
    n_tests = 2 * claims
    needed = stats.seeds_needed(n_tests, alpha=0.01)

    def best_adjusted(n):
        d = np.arange(1.0, n + 1)
        family = [p for _ in range(claims)
                  for p in (stats.paired_wilcoxon(d, 0 * d, alternative="greater")[1],
                            stats.paired_wilcoxon(d, 0 * d, alternative="less")[1])]
        return min(stats.holm(family))

    assert best_adjusted(needed) <= 0.01 < best_adjusted(needed - 1)
    assert best_adjusted(needed) == pytest.approx(stats.min_p_holm(needed, n_tests))


def test_holm_caps_at_one_and_never_lets_a_larger_p_value_fall_below_a_smaller_ones():
    # The cap: 2 x 0.6 = 1.2 is not a probability.
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.3, 0.7]) == pytest.approx([0.6, 0.7])
    # The running maximum: the third smallest alone would be 1 x 0.045, below the second's
    # 2 x 0.04 = 0.08; Holm's step-down keeps the order, so it is 0.08 too.
    assert stats.holm([0.01, 0.04, 0.045]) == pytest.approx([0.03, 0.08, 0.08])
    assert stats.holm([0.045, 0.01, 0.04]) == pytest.approx([0.08, 0.03, 0.08])


def test_wilson_interval_follows_the_formula_at_any_confidence_and_is_total_ignorance_at_n_0():
    # (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the two-sided quantile.
    def by_hand(successes, n, confidence):
        z = scipy_stats.norm.ppf(0.5 + confidence / 2)
        p = successes / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    for successes, n, confidence in ((3, 10, 0.95), (3, 10, 0.8), (1, 1, 0.9), (7, 7, 0.99)):
        interval = stats.wilson(successes, n, confidence=confidence)
        assert (interval.low, interval.high) == pytest.approx(by_hand(successes, n, confidence))
    assert stats.wilson(3, 10) == stats.wilson(3, 10, confidence=0.95)
    # No run at all: the rate can be anything.
    assert stats.wilson(0, 0) == stats.Interval(0.0, 1.0)


def test_median_interval_ranks_follow_the_requested_confidence():
    values = [7.0, 1.0, 5.0, 3.0, 2.0, 6.0, 4.0]
    # n = 7: [x_(2), x_(6)] covers exactly 1 - 2 (1 + 7) / 128 = 0.875; asking for exactly that
    # is met by it (at least `confidence`), asking for a hair more is not.
    exact = stats.median_ci(values, confidence=0.875)
    assert (exact.low, exact.high, exact.coverage) == (2, 6, 0.875)
    above = stats.median_ci(values, confidence=0.8751)
    assert (above.low, above.high, above.coverage) == (1, 7, 1 - 2 / 128)
    # No confidence asked: the ranks close in up to the middle, never cross it.
    odd = stats.median_ci(values, confidence=0.0)
    assert (odd.low, odd.median, odd.high) == (4, 4, 4)
    assert odd.coverage == 0.0  # 1 - 2 P(B <= 3): a single point misses a continuous median
    even = stats.median_ci([4.0, 1.0, 3.0, 2.0], confidence=0.0)
    assert (even.low, even.median, even.high) == (2, 2.5, 3)
    assert even.coverage == pytest.approx(1 - 2 * (1 + 4) / 16)
    assert stats.median_coverage(7, confidence=0.875) == 0.875
    assert stats.median_coverage(20) == stats.median_ci(np.arange(20.0)).coverage  # 0.9586


def test_median_interval_of_one_and_two_values():
    # n = 1: [x, x] contains the population median with probability 1 - 2 P(B <= 0) = 0.
    one = stats.median_ci([0.3])
    assert (one.median, one.low, one.high, one.coverage) == (0.3, 0.3, 0.3, 0.0)
    assert stats.median_coverage(1) == 0.0
    two = stats.median_ci([0.9, 0.1])
    assert (two.median, two.low, two.high) == (pytest.approx(0.5), 0.1, 0.9)
    assert two.coverage == 0.5


def test_a_missing_value_given_as_none_is_nan():
    # JSON's null for a metric a run did not log: left out of medians and paired effects,
    # and a pair with one makes a NaN difference (left out in turn).
    assert stats.median([None, 3, 1]) == 2.0
    assert stats.median_ci([None, 3, 1, 2]) == stats.median_ci([3, 1, 2])
    assert stats.paired_effect([0.1, None, -0.2]).wins == 1
    d = stats.paired_differences([None, 0.5, 0.4], [0.2, None, 0.1])
    assert np.isnan(d[:2]).all() and d[2] == pytest.approx(0.3)


def test_median_interval_never_crosses_the_middle_whatever_confidence_is_asked():
    # Even a confidence any interval meets (-1) stops at the middle rank(s).
    odd = stats.median_ci([5.0, 1.0, 4.0, 2.0, 3.0], confidence=-1.0)
    assert (odd.low, odd.high, odd.coverage) == (3, 3, 0.0)
    even = stats.median_ci([4.0, 1.0, 3.0, 2.0], confidence=-1.0)
    assert (even.low, even.high) == (2, 3)


def test_median_interval_leaves_out_nan_values():
    interval = stats.median_ci([np.nan, 3.0, 1.0, np.nan, 2.0])
    assert (interval.median, interval.low, interval.high) == (2, 1, 3)
    assert interval.coverage == 1 - 2 / 8
    nothing = stats.median_ci([np.nan, np.nan])
    assert all(math.isnan(v) for v in (nothing.median, nothing.low, nothing.high,
                                       nothing.coverage))


def test_median_of_opposite_infinities_is_nan_without_a_warning(recwarn):
    # One pair diverged each way: the middle two are -inf and +inf, no midpoint (and no
    # "invalid value" RuntimeWarning for the user to wonder about).
    assert math.isnan(stats.median([1.0, -math.inf, math.inf, 2.0][1:3]))
    assert math.isnan(stats.median([-math.inf, math.inf]))
    assert stats.median([-math.inf, -math.inf, 0.5, 0.7]) == -math.inf
    assert stats.median([1e308, 1e308]) == 1e308  # equal middles: no overflow to inf
    assert stats.median([3.0, np.nan, 1.0]) == 2.0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_paired_differences_of_opposite_divergences_and_no_warning(recwarn):
    inf = math.inf
    assert stats.paired_differences([inf, -inf], [inf, inf]).tolist() == [0.0, -inf]
    assert stats.paired_differences([1, 2], [2, 0]).tolist() == [-1.0, 2.0]  # ints accepted
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_for_ranks_when_every_difference_is_infinite_or_none_is():
    assert stats.for_ranks([math.inf, -math.inf, math.inf]).tolist() == [1.0, -1.0, 1.0]
    assert stats.for_ranks([0.5, -2.0]).tolist() == [0.5, -2.0]
    assert stats.for_ranks([1, -3]).tolist() == [1.0, -3.0]


def test_paired_effect_leaves_out_nan_and_has_no_win_share_without_pairs():
    effect = stats.paired_effect([0.2, np.nan, -0.1, 0.0])
    assert (effect.wins, effect.ties, effect.losses) == (1, 1, 1)
    assert effect.difference.median == 0.0 and effect.win_share == 0.5
    assert stats.paired_effect([0.3, 0.1, 0.2], confidence=0.0).difference.low == 0.2
    # 20 pairs at the default 95%: [d_(6), d_(15)], as median_ci gives it
    twenty = stats.paired_effect(np.arange(-5.0, 15.0)).difference
    assert (twenty.low, twenty.high, twenty.coverage) == (0.0, 9.0, stats.median_coverage(20))
    empty = stats.paired_effect([])
    assert (empty.wins, empty.ties, empty.losses) == (0, 0, 0)
    assert math.isnan(empty.win_share) and math.isnan(empty.difference.median)


def test_paired_wilcoxon_both_sides_and_zsplit_against_scipy():
    x, y = [0.1, 0.2, 0.5, 0.3, 0.2], [0.3, 0.2, 0.1, 0.6, 0.4]
    d = np.subtract(x, y)
    for alternative in ("greater", "less", "two-sided"):
        expected = scipy_stats.wilcoxon(d, alternative=alternative, zero_method="zsplit")
        assert stats.paired_wilcoxon(x, y, alternative=alternative) == pytest.approx(
            (expected.statistic, expected.pvalue))
    assert stats.paired_wilcoxon(x, y) == stats.paired_wilcoxon(x, y, alternative="greater")
    # ints are values like any other; all equal is no evidence in either direction
    assert stats.paired_wilcoxon([2, 3, 4], [1, 1, 1])[1] == pytest.approx(1 / 8)
    assert stats.paired_wilcoxon([2, 2], [2, 2], alternative="less") == (0.0, 1.0)


def test_holm_of_no_p_values_and_of_one():
    assert stats.holm([]) == []
    assert stats.holm([0.03]) == [0.03]
    assert stats.holm([0.02, 0.02]) == [0.04, 0.04]


def test_seeds_needed_at_the_exact_boundary_and_its_input_checks():
    # n_tests / 2^n <= alpha, equality included: 1/2 <= 0.5 with one seed, 2/8 <= 0.25 with 3.
    assert stats.seeds_needed(1, alpha=0.5) == 1
    assert stats.seeds_needed(2, alpha=0.25) == 3
    assert stats.seeds_needed(2, alpha=0.2499) == 4
    for n_tests, alpha in ((0, 0.01), (-1, 0.01), (2, 0.0), (2, 1.0), (2, -0.5), (2, 1.5)):
        with pytest.raises(ValueError, match=rf"n_tests must be >= 1 and alpha in \(0, 1\); "
                                             rf"got {n_tests}, {alpha}"):
            stats.seeds_needed(n_tests, alpha=alpha)


def test_smallest_p_holm_below_and_at_the_cap():
    assert stats.min_p_holm(3, 4) == 0.5
    assert stats.min_p_holm(2, 4) == 1.0
    assert stats.min_p_holm(1, 4) == 1.0
    assert stats.min_p(0) == 1.0
