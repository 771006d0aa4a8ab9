"""The report's table builders on small hand-made frames whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from study.engine.results import stats
from study.report import tables


def _runs():
    # Arm "a": three finished seeds 0.8, 0.9, 1.0 and one diverged; arm "b": 0.5, 0.7 finished;
    # arm "c": every run diverged; arm "d": one failed run.
    return pd.DataFrame({
        "name": ["a", "a", "a", "a", "b", "b", "c", "c", "d"],
        "status": ["finished", "finished", "finished", "diverged", "finished", "finished",
                   "diverged", "diverged", "failed"],
        "val_accuracy": [0.8, 0.9, 1.0, np.nan, 0.5, 0.7, np.nan, np.nan, np.nan],
        "val_loss": [0.3, 0.2, 0.1, np.nan, 0.9, 0.6, np.nan, np.nan, np.nan],
    })


def test_mean_ci_is_the_student_t_interval():
    values = [0.8, 0.9, 1.0]
    mean, interval = stats.mean_ci(values)
    half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(0.9)
    assert (interval.low, interval.high) == pytest.approx((0.9 - half, 0.9 + half))
    assert half == pytest.approx(0.24841, abs=1e-5)  # t(0.975, 2) = 4.3027, s = 0.1
    one_mean, one = stats.mean_ci([0.5, np.nan])
    assert one_mean == 0.5 and math.isnan(one.low)


def test_summary_counts_every_run_and_averages_the_finished_ones():
    summary = tables.arm_summary(_runs(), ["val_accuracy", "val_loss"])
    assert list(summary["name"]) == ["a", "b", "c", "d"]  # diverged and failed arms kept
    a = summary.iloc[0]
    assert (a["runs"], a["finished"], a["diverged"], a["failed"]) == (4, 3, 1, 0)
    assert a["val_accuracy"] == pytest.approx(0.9)
    assert a["val_accuracy low"] == pytest.approx(0.9 - 0.24841, abs=1e-5)
    c = summary.iloc[2]
    assert (c["runs"], c["finished"], c["diverged"]) == (2, 0, 2)
    assert math.isnan(c["val_accuracy"])


def test_summary_by_two_settings_has_a_row_per_combination():
    # Two stages x two optimizers, the runs interleaved; one run without a stage still counts.
    runs = pd.DataFrame({
        "round": ["book", "final", "book", "final", "book", "final", "book", None],
        "optimizer": ["sgd", "sgd", "adam", "adam", "sgd", "sgd", "adam", "adam"],
        "status": ["finished"] * 8,
        "test_accuracy": [0.90, 0.96, 0.97, 0.975, 0.92, 0.97, 0.98, 0.5],
    })
    summary = tables.arm_summary(runs, ["test_accuracy"], by=["round", "optimizer"])
    rows = [(r, o, n) for r, o, n in zip(summary["round"], summary["optimizer"], summary["runs"])]
    assert rows[:4] == [("book", "sgd", 2), ("final", "sgd", 2), ("book", "adam", 2),
                        ("final", "adam", 1)]  # in order of first appearance
    assert len(rows) == 5 and pd.isna(rows[4][0]) and rows[4][1:] == ("adam", 1)
    assert summary["test_accuracy"].iloc[:4].tolist() == pytest.approx([0.91, 0.965, 0.975, 0.975])
    page = tables.summary_html(summary, ["test_accuracy"], by=["round", "optimizer"])
    assert page.count("<th scope='row'>") == 2 * 5  # both settings name the row
    assert tables.grouping_text(["round", "optimizer"]) == "round × optimizer"
    assert tables.grouping_text("name") == "arm"


def test_best_arm_per_column_follows_the_metric_direction():
    summary = tables.arm_summary(_runs(), ["val_accuracy", "val_loss"])
    assert list(tables.best_arms(summary, "val_accuracy")) == [True, False, False, False]
    assert list(tables.best_arms(summary, "val_loss")) == [True, False, False, False]
    tied = pd.DataFrame({"x_accuracy": [0.5, 0.5, 0.1]})
    assert list(tables.best_arms(tied, "x_accuracy")) == [True, True, False]
    assert not tables.best_arms(pd.DataFrame({"mystery": [1.0, 2.0]}), "mystery").any()


def test_display_marks_arms_without_a_finished_run():
    summary = tables.arm_summary(_runs(), ["val_accuracy"])
    shown = tables.summary_display(summary, ["val_accuracy"])
    assert shown.loc[0, "val_accuracy"] == "0.9 [0.6516, 1.148]"
    assert shown.loc[2, "val_accuracy"] == "diverged"
    assert shown.loc[3, "val_accuracy"] == "failed"
    assert shown.loc[1, "val_accuracy"].startswith("0.6 [")


def test_summary_html_highlights_the_best_and_escapes_names():
    runs = _runs()
    runs.loc[runs["name"] == "b", "name"] = "<script>alert(1)</script>"
    summary = tables.arm_summary(runs, ["val_accuracy"])
    page = tables.summary_html(summary, ["val_accuracy"], caption="a <b> caption")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt; caption" in page
    assert page.count("class='best'") == 1
    assert "<td class='best'><strong>0.9 [0.6516, 1.148]</strong></td>" in page
    assert "<td class='diverged'>diverged</td>" in page


def test_claims_table_reads_the_stored_rows():
    stored = pd.DataFrame([{
        "text": "Adam <beats> SGD", "kind": "better", "metric": "val_accuracy", "n": 7,
        "statistic": 28.0, "p_value": 0.0078125, "p_adjusted": 0.0234375, "effect": 1.0,
        "estimate": '{"arm_median": 0.97, "arm_ci_low": 0.96, "arm_ci_high": 0.98, '
                    '"arm_diverged": 0, "baseline_median": 0.9, "baseline_ci_low": 0.89, '
                    '"baseline_ci_high": 0.91, "baseline_diverged": 1, "failed": 0}',
        "verdict": "supported"}, {
        "text": "rate", "kind": "rate", "metric": "val_accuracy", "n": 20, "statistic": None,
        "p_value": None, "p_adjusted": None, "effect": None,
        "estimate": '{"rate": 0.0, "ci_low": 0.0, "ci_high": 0.161, "successes": 0}',
        "verdict": "supported"}])
    table = tables.claims_table(stored)
    assert list(table.columns) == tables.CLAIM_COLUMNS
    assert table.loc[0, "estimate"] == ("arm median 0.97 [0.96, 0.98]; baseline median 0.9 "
                                        "[0.89, 0.91], 1 diverged")
    assert table.loc[1, "estimate"] == "0/20 reach the threshold: rate 0.00 [0.00, 0.16]"
    page = tables.claims_html(table)
    assert "Adam &lt;beats&gt; SGD" in page and "<beats>" not in page
    assert "0.0234" in page and "—" in page  # the rate claim has no p-value
