"""The report's table builders on small hand-made frames whose answers are known."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from study.report import methods, pages, tables


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


def test_summary_takes_medians_with_diverged_runs_at_the_worst():
    # Arm "a": 0.8, 0.9, 1.0 and one diverged = -inf for an accuracy (+inf for a loss):
    # median (0.8 + 0.9) / 2 = 0.85, interval [min, max] = [-inf, 1.0] covering 1 - 2/16.
    summary = tables.arm_summary(_runs(), ["val_accuracy", "val_loss"])
    assert list(summary["name"]) == ["a", "b", "c", "d"]  # diverged and failed arms kept
    a = summary.iloc[0]
    assert (a["runs"], a["finished"], a["diverged"], a["failed"]) == (4, 3, 1, 0)
    assert a["val_accuracy"] == pytest.approx(0.85)
    assert (a["val_accuracy low"], a["val_accuracy high"]) == (-math.inf, 1.0)
    assert a["coverage"] == a["val_accuracy coverage"] == 1 - 2 / 16
    assert a["val_loss"] == pytest.approx(0.25)
    assert (a["val_loss low"], a["val_loss high"]) == (0.1, math.inf)
    b = summary.iloc[1]  # two finished: [0.5, 0.7] covers 1 - 2/4
    assert (b["val_accuracy"], b["val_accuracy low"], b["val_accuracy high"]) == (
        pytest.approx(0.6), 0.5, 0.7)
    assert b["coverage"] == 0.5
    c = summary.iloc[2]
    assert (c["runs"], c["finished"], c["diverged"]) == (2, 0, 2)
    assert c["val_accuracy"] == -math.inf
    assert math.isnan(summary.iloc[3]["val_accuracy"])  # failed runs left out: no value


def test_accuracy_intervals_never_leave_zero_to_one():
    # The Student-t interval of 0.8, 0.9, 1.0 was [0.6516, 1.148]; the median's stays inside.
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"name": np.repeat(["x", "y", "z"], 7), "status": "finished",
                         "val_accuracy": np.clip(rng.normal(0.97, 0.05, 21), 0, 1)})
    summary = tables.arm_summary(pd.concat([runs, _runs()]), ["val_accuracy"])
    finite = summary[np.isfinite(summary["val_accuracy low"])]
    assert len(finite) == 4
    assert ((finite["val_accuracy low"] >= 0) & (finite["val_accuracy high"] <= 1)).all()


def test_a_metric_of_unknown_direction_leaves_diverged_runs_out_and_says_its_coverage():
    runs = _runs().assign(mystery=[1.0, 2.0, 3.0, np.nan, 1, 2, np.nan, np.nan, np.nan])
    summary = tables.arm_summary(runs, ["val_accuracy", "mystery"])
    a = summary.iloc[0]
    assert (a["mystery"], a["mystery low"], a["mystery high"]) == (2.0, 1.0, 3.0)
    assert a["mystery coverage"] == 1 - 2 / 8  # n = 3, not the row's 4
    shown = tables.summary_display(summary, ["val_accuracy", "mystery"])
    assert shown.loc[0, "mystery"] == "2 [1, 3] (covers 75.0%)"
    assert shown.loc[0, "coverage"] == "87.5%"


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
    page = pages.part("table", tables.summary_table(summary, ["test_accuracy"],
                                                   by=["round", "optimizer"]))
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
    assert shown.loc[0, "val_accuracy"] == "0.85 [diverged, 1]"
    assert shown.loc[2, "val_accuracy"] == "diverged"
    assert shown.loc[3, "val_accuracy"] == "failed"
    assert shown.loc[1, "val_accuracy"] == "0.6 [0.5, 0.7]"
    assert list(shown["coverage"]) == ["87.5%", "50.0%", "50.0%", "—"]


def test_summary_table_highlights_the_best_and_escapes_names():
    runs = _runs()
    runs.loc[runs["name"] == "b", "name"] = "<script>alert(1)</script>"
    summary = tables.arm_summary(runs, ["val_accuracy"])
    page = pages.part("table", tables.summary_table(summary, ["val_accuracy"],
                                                   caption="a <b> caption"))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt; caption" in page
    assert page.count("class='best'") == 1
    assert "<td class='best'><strong>0.85 [diverged, 1]</strong></td>" in page
    assert "<td class='diverged'>diverged</td>" in page


NEW_ESTIMATE = {
    "unit": "seed", "failed": 0, "arm_median": 0.97, "arm_ci_low": 0.96, "arm_ci_high": 0.98,
    "arm_coverage": 0.984375, "arm_diverged": 0, "baseline_median": 0.9,
    "baseline_ci_low": "-inf", "baseline_ci_high": 0.91, "baseline_coverage": 0.984375,
    "baseline_diverged": 1, "difference_median": 0.07, "difference_ci_low": 0.05,
    "difference_ci_high": "inf", "difference_coverage": 0.984375, "wins": 6, "ties": 1,
    "losses": 0, "win_share": 6.5 / 7}


def _stored_claims():
    return pd.DataFrame([{
        "text": "Adam <beats> SGD", "kind": "better", "metric": "val_accuracy", "n": 7,
        "statistic": 28.0, "p_value": 0.0078125, "p_adjusted": 0.0234375, "p_opposite": 1.0,
        "p_opposite_adjusted": 1.0, "effect": 1.0, "estimate": json.dumps(NEW_ESTIMATE),
        "verdict": "supported"}, {
        "text": "SGD beats Adam", "kind": "better", "metric": "val_accuracy", "n": 7,
        "statistic": 0.0, "p_value": 1.0, "p_adjusted": 1.0, "p_opposite": 0.0078125,
        "p_opposite_adjusted": 0.046875, "effect": 0.0,
        "estimate": json.dumps({**NEW_ESTIMATE, "unit": "repeat"}), "verdict": "contradicted"}, {
        "text": "rate", "kind": "rate", "metric": "val_accuracy", "n": 20, "statistic": None,
        "p_value": None, "p_adjusted": None, "p_opposite": None, "p_opposite_adjusted": None,
        "effect": None, "estimate": '{"rate": 0.0, "ci_low": 0.0, "ci_high": 0.161, '
                                    '"successes": 0}', "verdict": "supported"}])


def test_claims_table_reads_the_stored_rows_and_bolds_the_deciding_p():
    table = tables.claims_table(_stored_claims())
    assert list(table.columns) == tables.CLAIM_COLUMNS
    assert table.loc[0, "estimate"] == (
        "arm median 0.97 [0.96, 0.98]; baseline median 0.9 [diverged, 0.91], 1 diverged; "
        "paired difference (> 0: arm better) median 0.07 [0.05, +inf]; arm better on 6 of 7 "
        "seeds, 1 tied, 0 worse (win share 0.93, a tie counting 1/2); intervals cover 98.4%")
    assert table.loc[1, "estimate"].endswith(
        "unit: one repeat of the whole search (the median of its seeds), n = 7 repeats")
    assert table.loc[2, "estimate"] == "0/20 reach the threshold: rate 0.00 [0.00, 0.16]"
    assert table.loc[1, "p (Holm), opposite"] == 0.046875
    page = pages.part("table", tables.claims_view(table))
    assert "Adam &lt;beats&gt; SGD" in page and "<beats>" not in page
    assert "<td><strong>0.0234</strong></td><td>1</td>" in page  # supported: as claimed
    assert "<td>1</td><td><strong>0.0469</strong></td>" in page  # contradicted: opposite
    assert "—" in page  # the rate claim has no p-value


def test_claims_of_a_database_from_before_both_directions_still_show():
    # Read-only (study report) from an old database: no p_opposite columns, a bootstrap
    # estimate without coverage.
    old = _stored_claims().drop(columns=["p_opposite", "p_opposite_adjusted"]).iloc[[0]]
    old["estimate"] = ('{"arm_median": 0.97, "arm_ci_low": 0.96, "arm_ci_high": 0.98, '
                       '"arm_diverged": 0, "baseline_median": 0.9, "baseline_ci_low": 0.89, '
                       '"baseline_ci_high": 0.91, "baseline_diverged": 1, "failed": 0}')
    table = tables.claims_table(old)
    assert math.isnan(table.loc[0, "p (Holm), opposite"])
    assert table.loc[0, "estimate"] == ("arm median 0.97 [0.96, 0.98]; baseline median 0.9 "
                                        "[0.89, 0.91], 1 diverged")
    assert "<td><strong>0.0234</strong></td><td>—</td>" in pages.part(
        "table", tables.claims_view(table))


def test_the_page_says_how_small_p_holm_can_get():
    # 2 tested claims (the rate is not in the family): 4 tests; with 7 seeds 4/2^7 = 0.031.
    # 0.05 needs 2^n >= 80: 7 units; 0.01 needs 2^n >= 400: 9 units. One claim alone is
    # 2 tests: 2^n >= 40 and 200, 6 and 8.
    text = methods.power_text(_stored_claims())
    assert "has 4 tests (2 for each of 2 tested claims)" in text
    assert "with 7 repeats at best 4/2^7 = 0.031; with 7 seeds at best 4/2^7 = 0.031" in text
    assert "Reaching 0.05 takes at least 7 seeds or repeats, 0.01 at least 9." in text
    assert "at least 6 seeds, 0.01 at least 8." in methods.power_text(_stored_claims().iloc[[0]])
    assert methods.power_text(_stored_claims().iloc[[2]]) == ""


def test_figure_bands_are_the_median_interval_and_stay_in_range():
    from study.report import figures

    # Student-t around the mean of 0.9, 1, 1 reaches 1.18; the order-statistic band is the
    # values' [min, max] here (n = 3).
    assert figures.ci_band([0.9, 1.0, 1.0]) == (0.9, 1.0)
    assert figures.ci_band([0.5, np.nan, 0.7]) == (0.5, 0.7)
