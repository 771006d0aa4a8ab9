"""The claims' statistics on small samples whose answers are known."""

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


def test_bootstrap_ci_contains_the_median_and_collapses_for_constant_data():
    rng = np.random.default_rng(0)
    values = rng.normal(10, 1, size=50)
    interval = stats.bootstrap_ci(values)
    assert interval.low < np.median(values) < interval.high
    assert interval.high - interval.low < 1.0
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == stats.Interval(2.0, 2.0)


def test_median_iqr():
    assert stats.median_iqr([1, 2, 3, 4, 5]) == (3.0, 2.0, 4.0)
