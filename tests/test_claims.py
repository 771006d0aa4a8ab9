"""Claims: verdicts on hand-made results whose answers are known, and claim validation."""

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from study.engine.results import stats
from study.engine.results.claims import evaluate
from study.engine.studies import ConfigError, expand
from study.engine.studies.study_schema import Claim

STUDY = {
    "name": "claims-test", "seeds": 6, "data": {"dataset": "xor"},
    "model": {"hidden": [5, 4], "activation": "sigmoid"},
    "training": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 4, "steps": 40,
                 "loss": "binary_cross_entropy"},
    "grid": {"optimizer": ["sgd", "adam", "momentum"]},
}


def _study(*claims, **changes):
    raw = copy.deepcopy(STUDY)
    raw.update(changes)
    raw["claims"] = list(claims)
    return expand(raw)


def _runs(study, values, status=None):
    """A results.runs-like frame: values[optimizer][seed] is the metric `score`."""
    rows = []
    for spec in study.runs:
        optimizer = spec.overrides["training.optimizer"]
        rows.append({"key": spec.key, "seed": spec.seed, "arm": spec.arm,
                     "status": (status or {}).get((optimizer, spec.seed), "finished"),
                     "score": values[optimizer][spec.seed]})
    return pd.DataFrame(rows)


BETTER = {"id": "adam-better", "text": "Adam beats SGD.", "kind": "better", "metric": "score",
          "arm": {"optimizer": "adam"}, "baseline": {"optimizer": "sgd"}}


def test_better_is_supported_when_every_seed_agrees():
    study = _study(BETTER)
    (row,) = evaluate(study, _runs(study, {"sgd": [0.5] * 6, "adam": [0.9, 0.8, 0.7, 0.95, 0.6, 0.85],
                                           "momentum": [0] * 6}))
    assert row["verdict"] == "supported"
    assert row["p_value"] == pytest.approx(1 / 64) and row["effect"] == 1.0 and row["n"] == 6


def test_better_is_contradicted_when_the_data_says_the_opposite():
    study = _study(BETTER)
    (row,) = evaluate(study, _runs(study, {"sgd": [0.9] * 6, "adam": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3],
                                           "momentum": [0] * 6}))
    assert row["verdict"] == "contradicted" and row["effect"] == 0.0


def test_mixed_evidence_is_inconclusive():
    study = _study(BETTER)
    (row,) = evaluate(study, _runs(study, {"sgd": [0.5] * 6, "adam": [0.6, 0.4, 0.6, 0.4, 0.6, 0.4],
                                           "momentum": [0] * 6}))
    assert row["verdict"] == "inconclusive"


def test_lower_is_better_flips_the_direction():
    study = _study({**BETTER, "higher_is_better": False})
    (row,) = evaluate(study, _runs(study, {"sgd": [0.5] * 6, "adam": [0.1] * 6,
                                           "momentum": [0] * 6}))
    assert row["verdict"] == "supported"


def test_a_diverged_run_counts_as_a_failure_of_its_arm():
    study = _study(BETTER)
    values = {"sgd": [0.5] * 6, "adam": [0.9] * 6, "momentum": [0] * 6}
    diverged = {("adam", s): "diverged" for s in range(6)}
    (row,) = evaluate(study, _runs(study, values, diverged))
    assert row["verdict"] == "contradicted"  # a diverged arm loses to the baseline every time
    assert row["estimate"]["arm_diverged"] == 6


def test_failed_runs_are_left_out_and_counted():
    study = _study(BETTER)
    values = {"sgd": [0.5] * 6, "adam": [0.9] * 6, "momentum": [0] * 6}
    (row,) = evaluate(study, _runs(study, values, {("adam", 0): "failed"}))
    assert row["n"] == 5 and row["estimate"]["failed"] == 1


def test_arms_are_paired_by_seed_not_by_position():
    # Adam's seed 0 failed: its seeds 1-5 (0.6) meet SGD's seeds 1-5 (0.5), not SGD's 0-4
    # (whose seed 0, 0.9, has no partner and is left out).
    study = _study(BETTER)
    values = {"sgd": [0.9, 0.5, 0.5, 0.5, 0.5, 0.5], "adam": [0.0] + [0.6] * 5,
              "momentum": [0] * 6}
    (row,) = evaluate(study, _runs(study, values, {("adam", 0): "failed"}))
    est = row["estimate"]
    assert row["n"] == 5 and (est["wins"], est["ties"], est["losses"]) == (5, 0, 0)
    assert est["difference_median"] == pytest.approx(0.1) and est["baseline_median"] == 0.5


def test_a_metric_value_that_is_not_a_number_is_missing():
    study = _study(BETTER)
    values = {"sgd": [0.5] * 6, "adam": ["n/a", 0.9, 0.9, 0.9, 0.9, 0.9], "momentum": [0] * 6}
    (row,) = evaluate(study, _runs(study, values))
    assert row["n"] == 5 and row["estimate"]["wins"] == 5


def test_a_missing_metric_is_dropped_or_counted_as_the_worst():
    # Steps to solve (lower is better): Adam solves faster on the 4 seeds where both solve; on
    # seeds 4 and 5 Adam never solves (no value). Dropped, Adam wins 4 of 4 pairs; counted as
    # the worst (never is slower than any step), Adam loses those two.
    values = {"sgd": [60, 80, 100, 120, 40, 40], "adam": [20, 40, 60, 80, None, None],
              "momentum": [0] * 6}
    dropped = _study({**BETTER, "higher_is_better": False})
    (row,) = evaluate(dropped, _runs(dropped, values))
    assert row["n"] == 4 and row["estimate"]["wins"] == 4
    worst = _study({**BETTER, "higher_is_better": False, "missing": "worst"})
    (row,) = evaluate(worst, _runs(worst, values))
    assert row["n"] == 6 and row["estimate"]["wins"] == 4 and row["estimate"]["losses"] == 2


def test_holm_adjusts_across_both_directions_of_every_claim():
    # Two claims, both directions each: a family of 4 p-values, 1/64, 1, 1/64, 1. Holm:
    # 4 x 1/64 for the smallest, max(4/64, 3 x 1/64) for the next, the ones stay 1.
    second = {**BETTER, "id": "momentum-better", "arm": {"optimizer": "momentum"}}
    study = _study(BETTER, second)
    rows = evaluate(study, _runs(study, {"sgd": [0.5] * 6, "adam": [0.9] * 6,
                                         "momentum": [0.9] * 6}))
    assert [r["p_adjusted"] for r in rows] == pytest.approx([4 / 64, 4 / 64])
    assert [r["p_opposite_adjusted"] for r in rows] == [1.0, 1.0]
    assert [r["verdict"] for r in rows] == ["inconclusive", "inconclusive"]  # 0.0625


def test_contradicted_is_decided_inside_the_holm_family():
    # Adam wins on all seeds, momentum loses on all: p = (1/2^n, 1) and (1, 1/2^n). Both
    # smallest p-values get the factor 4 of a family of 4 (2 claims x 2 directions): with 6
    # seeds 4/64 = 0.0625, neither verdict; with 7 seeds 4/128 = 0.031, both. (Before, the
    # opposite direction was tested outside the family: momentum was "contradicted" with 6.)
    second = {**BETTER, "id": "momentum-better", "arm": {"optimizer": "momentum"}}
    for seeds, verdicts in ((6, ["inconclusive", "inconclusive"]),
                            (7, ["supported", "contradicted"])):
        study = _study(BETTER, second, seeds=seeds)
        adam, momentum = evaluate(study, _runs(study, {"sgd": [0.5] * seeds,
                                                       "adam": [0.9] * seeds,
                                                       "momentum": [0.1] * seeds}))
        assert [adam["verdict"], momentum["verdict"]] == verdicts
        assert adam["p_adjusted"] == pytest.approx(4 / 2 ** seeds)
        assert momentum["p_opposite"] == pytest.approx(1 / 2 ** seeds)
        assert momentum["p_opposite_adjusted"] == pytest.approx(4 / 2 ** seeds)
        assert momentum["p_adjusted"] == 1.0 and adam["p_opposite_adjusted"] == 1.0


def test_a_seed_diverged_in_both_arms_is_a_tie():
    # Seed 0 diverged in both arms; on seeds 1-5 adam beats sgd by 0.4, 0.3, 0.2, 0.45, 0.1.
    # Differences 0, 0.4, 0.3, 0.2, 0.45, 0.1; |d| ranks 1 (the zero, split in halves by
    # zsplit), 5, 4, 3, 6, 2: W+ = 0.5 + 5 + 4 + 3 + 6 + 2 = 20.5. A12 over 36 pairs: 25 wins
    # finite vs finite, 5 finite vs diverged, 1 tie diverged vs diverged: (30 + 0.5) / 36.
    # (Scored each arm apart, the pair became -2.9 vs -2: a large loss, W+ = 15, A12 30/36.)
    study = _study(BETTER)
    values = {"sgd": [0.0, 0.5, 0.5, 0.5, 0.5, 0.5], "adam": [0.0, 0.9, 0.8, 0.7, 0.95, 0.6],
              "momentum": [0] * 6}
    (row,) = evaluate(study, _runs(study, values, {("adam", 0): "diverged",
                                                   ("sgd", 0): "diverged"}))
    assert row["n"] == 6 and row["statistic"] == 20.5
    assert row["effect"] == pytest.approx(30.5 / 36)
    est = row["estimate"]
    assert (est["wins"], est["ties"], est["losses"]) == (5, 1, 0)
    assert est["difference_median"] == pytest.approx(0.25)  # of 0, .1, .2, .3, .4, .45
    assert est["arm_diverged"] == est["baseline_diverged"] == 1


def test_better_claims_carry_the_paired_effect():
    # Baseline 0.5 on every seed; arm 0.6, 0.7, 0.5, 0.4, 0.9, 0.65, 0.55: differences
    # 0.1, 0.2, 0, -0.1, 0.4, 0.15, 0.05; median 0.1, [min, max] (n = 7, coverage 1 - 2/128),
    # 5 wins, 1 tie, 1 loss, win share 5.5 / 7.
    arm = [0.6, 0.7, 0.5, 0.4, 0.9, 0.65, 0.55]
    study = _study(BETTER, seeds=7)
    (row,) = evaluate(study, _runs(study, {"sgd": [0.5] * 7, "adam": arm, "momentum": [0] * 7}))
    est = row["estimate"]
    assert est["unit"] == "seed"
    assert (est["difference_median"], est["difference_ci_low"], est["difference_ci_high"]) == \
        pytest.approx((0.1, -0.1, 0.4))
    assert est["difference_coverage"] == est["arm_coverage"] == 1 - 2 / 128
    assert (est["wins"], est["ties"], est["losses"]) == (5, 1, 1)
    assert est["win_share"] == pytest.approx(5.5 / 7)
    assert (est["arm_median"], est["arm_ci_low"], est["arm_ci_high"]) == (0.6, 0.4, 0.9)
    # Lower is better: the same numbers, arm - baseline negated (> 0 still means arm better).
    lower = _study({**BETTER, "higher_is_better": False}, seeds=7)
    (row,) = evaluate(lower, _runs(lower, {"sgd": [0.5] * 7, "adam": arm, "momentum": [0] * 7}))
    est = row["estimate"]
    assert (est["difference_median"], est["difference_ci_low"], est["difference_ci_high"]) == \
        pytest.approx((-0.1, -0.4, 0.1))
    assert (est["wins"], est["ties"], est["losses"]) == (1, 1, 5)


def test_rate_claims_use_the_wilson_interval():
    never = {"id": "sgd-never", "text": "SGD never scores 1.", "kind": "rate", "metric": "score",
             "threshold": 1.0, "at_most": 0.5, "arm": {"optimizer": "sgd"}}
    always = {**never, "id": "adam-always", "at_most": None, "at_least": 0.5,
              "arm": {"optimizer": "adam"}}
    study = _study(never, always, seeds=20)
    rows = evaluate(study, _runs(study, {"sgd": [0.5] * 20, "adam": [1.0] * 20,
                                         "momentum": [0] * 20}))
    assert [r["verdict"] for r in rows] == ["supported", "supported"]
    assert rows[0]["estimate"]["ci_high"] == pytest.approx(0.1611, abs=1e-4)
    few = _study(never, seeds=2)
    (row,) = evaluate(few, _runs(few, {"sgd": [0.5] * 2, "adam": [1] * 2, "momentum": [0] * 2}))
    assert row["verdict"] == "inconclusive"  # 0 of 2: the interval reaches 0.66


def test_runs_of_an_edited_away_configuration_do_not_count():
    study = _study(BETTER)
    stale = _runs(study, {"sgd": [0.9] * 6, "adam": [0.1] * 6, "momentum": [0] * 6})
    stale["key"] = "old-" + stale["key"]
    (row,) = evaluate(study, stale)
    assert row["n"] == 0 and row["verdict"] == "inconclusive"


@pytest.mark.parametrize(("selector", "message"), [
    ({"optimizer": "nadam"}, "selects no arm"),
    ({}, "selects 3 arms"),
    ({"activation": "relu"}, "selects no arm"),
])
def test_a_claim_must_select_exactly_one_arm(selector, message):
    with pytest.raises(ConfigError, match=r"claims\[0\]\.arm: .*" + message):
        _study({**BETTER, "arm": selector})


def test_claim_fields_are_checked_by_kind():
    with pytest.raises(ConfigError, match="a 'better' claim needs baseline"):
        _study({k: v for k, v in BETTER.items() if k != "baseline"})
    with pytest.raises(ConfigError, match="exactly one of at_most or at_least"):
        _study({**BETTER, "kind": "rate", "threshold": 1.0})


def test_study_run_stores_the_verdicts(tmp_path):
    import sqlite3

    from study import cli

    path = tmp_path / "tiny.toml"
    path.write_text('''
name = "tiny"
seeds = 2
[data]
dataset = "xor"
[model]
hidden = [5, 4]
activation = "sigmoid"
[training]
optimizer = "adam"
learning_rate = 0.05
batch_size = 4
steps = 40
log_every = 20
loss = "binary_cross_entropy"
[grid]
hidden = [[], [5, 4]]
[[claims]]
id = "perceptron-cannot"
text = "A perceptron cannot learn XOR."
kind = "rate"
metric = "val_accuracy"
threshold = 1.0
at_most = 0.5
arm = { hidden = [] }
''')
    db = tmp_path / "r.db"
    assert cli.main(["run", str(path), "--db", str(db)]) == 0
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT claim_id, n, verdict, estimate FROM claims").fetchall()
    assert len(rows) == 1
    claim_id, n, verdict, estimate = rows[0]
    assert (claim_id, n) == ("perceptron-cannot", 2)
    assert verdict == "inconclusive"  # 0 of 2 solved: the Wilson interval still reaches 0.66
    assert '"successes": 0' in estimate


def _repeated_search(final, control):
    """A search study's final and control runs in repeats: final[r][s] / control[r][s] is the
    metric `score` of repeat r, seed s (None: diverged); every run labelled "search.repeat"."""
    specs, rows = [], []
    for stage, values in (("final", final), ("control", control)):
        for repeat, seeds in enumerate(values):
            for seed, value in enumerate(seeds):
                key = f"{stage}-{repeat}-{seed}"
                specs.append(SimpleNamespace(key=key, seed=seed, overrides={
                    "search.round": stage, "search.repeat": repeat}))
                rows.append({"key": key, "seed": seed, "score": value,
                             "status": "diverged" if value is None else "finished"})
    return specs, pd.DataFrame(rows)


SEARCH_BETTER = Claim(id="final-beats-control", text="t", kind="better", metric="score",
                      arm={"round": "final"}, baseline={"round": "control"})
SEARCH_ABOVE = Claim(id="final-above", text="t", kind="above", metric="score",
                     arm={"round": "final"}, value=0.5)


def test_the_unit_of_a_repeated_search_is_the_repeat():
    # 3 repeats x 7 seeds. Final runs of repeat r: median 0.90 + 0.01 r; control runs: median
    # 0.85 in every repeat (its seed 0 of repeat 1 diverged: the worst value, median unmoved).
    # Per repeat the differences are 0.05, 0.06, 0.07: n = 3, all positive, exact p = 1/8.
    final = [[0.80, 0.82, 0.84, 0.90 + 0.01 * r, 0.95, 0.96, 0.97] for r in range(3)]
    control = [[0.70, 0.72, 0.74, 0.85, 0.91, 0.92, 0.93] for _ in range(3)]
    control[1][0] = None
    specs, runs = _repeated_search(final, control)
    study = SimpleNamespace(runs=specs, claims=[SEARCH_BETTER, SEARCH_ABOVE])
    better, above = evaluate(study, runs)
    assert better["n"] == 3 and above["n"] == 3  # not 21 runs
    assert better["p_value"] == pytest.approx(1 / 8) and above["p_value"] == pytest.approx(1 / 8)
    est = better["estimate"]
    assert est["unit"] == "repeat" and (est["wins"], est["ties"], est["losses"]) == (3, 0, 0)
    assert est["difference_median"] == pytest.approx(0.06)
    assert (est["arm_median"], est["baseline_median"]) == pytest.approx((0.91, 0.85))
    assert est["baseline_diverged"] == 1


def test_the_unit_is_the_repeat_before_the_arm_has_runs():
    # The final stage has not run yet: nothing to pair, but the unit is already the repeat
    # (the control's runs are repeats).
    control = [[0.70, 0.72, 0.74] for _ in range(3)]
    specs, runs = _repeated_search([], control)
    (row,) = evaluate(SimpleNamespace(runs=specs, claims=[SEARCH_BETTER]), runs)
    assert row["n"] == 0 and row["estimate"] == {"unit": "repeat", "failed": 0}


def test_a_repeat_whose_seeds_mostly_diverged_is_at_the_worst():
    # Repeat 2 of the final stage: 4 of 7 seeds diverged, so its median is the worst (-inf):
    # a loss for that repeat. Differences -inf, 0.05, 0.06 (repeat order 2, 0, 1): median 0.05.
    final = [[0.80, 0.82, 0.84, 0.90 + 0.01 * r, 0.95, 0.96, 0.97] for r in range(3)]
    final[2][:4] = [None] * 4
    control = [[0.70, 0.72, 0.74, 0.85, 0.91, 0.92, 0.93] for _ in range(3)]
    specs, runs = _repeated_search(final, control)
    (row,) = evaluate(SimpleNamespace(runs=specs, claims=[SEARCH_BETTER]), runs)
    est = row["estimate"]
    assert row["n"] == 3 and (est["wins"], est["losses"]) == (2, 1)
    assert est["difference_median"] == pytest.approx(0.05)
    assert est["difference_ci_low"] == "-inf"  # stored JSON has no infinity
    assert est["arm_diverged"] == 4


def test_a_base_problem_is_not_buried_under_claims_that_select_nothing():
    # Every combination fails on the base's bad setting, so no arm exists: the claims'
    # "selects no arm" would only repeat that, once per claim.
    with pytest.raises(ConfigError) as caught:
        _study(BETTER, training={**STUDY["training"], "sampling": "bootstrap"})
    assert caught.value.problems == [
        "training.sampling: 'bootstrap' is not allowed: Input should be 'permutation' or "
        "'with_replacement'"]


@pytest.mark.parametrize("kind, values, verdict", [
    ("below", [0.1, 0.2, 0.15, 0.05, 0.3, 0.25], "supported"),      # all under 0.5
    ("below", [0.6, 0.9, 0.7, 0.8, 0.95, 0.65], "contradicted"),    # all over 0.5
    ("above", [0.6, 0.9, 0.7, 0.8, 0.95, 0.65], "supported"),
    ("above", [0.1, 0.2, 0.15, 0.05, 0.3, 0.25], "contradicted"),
    ("above", [0.1, 0.9, 0.2, 0.8, 0.3, 0.7], "inconclusive"),
])
def test_below_and_above_claims_test_the_side_they_name(kind, values, verdict):
    claim = {"id": "side", "text": "t", "kind": kind, "metric": "score", "value": 0.5,
             "arm": {"optimizer": "adam"}}
    study = _study(claim)
    other = {seed: 0.5 for seed in range(6)}
    (row,) = evaluate(study, _runs(study, {"adam": dict(enumerate(values)), "sgd": other,
                                           "momentum": other}))
    assert row["verdict"] == verdict
    if verdict != "inconclusive":
        # six distances of one sign: p = 1/64 on the claim's side, 1 on the other
        p_claimed, p_other = (1 / 64, 1.0) if verdict == "supported" else (1.0, 1 / 64)
        assert row["p_value"] == pytest.approx(p_claimed)
        assert row["p_opposite"] == pytest.approx(p_other)


# every row has these, tested or not (the store's columns but its study and time)
ROW_KEYS = {"claim_id", "text", "kind", "metric", "arm", "baseline", "n", "statistic", "p_value",
            "p_adjusted", "p_opposite", "p_opposite_adjusted", "effect", "estimate", "verdict"}
RATE = {"id": "adam-solves", "text": "Adam solves.", "kind": "rate", "metric": "score",
        "threshold": 1.0, "arm": {"optimizer": "adam"}}
REST = {seed: 0.0 for seed in range(6)}  # sgd / momentum when only adam matters


@pytest.mark.parametrize("adam, bound, verdict", [
    # Wilson's bounds reach exactly 0 and 1 at 0 of n and n of n: a bound equal to the
    # claimed rate counts for it ("at most" <=, "at least" >=), not against it.
    ([1.0] * 6, {"at_most": 1.0}, "supported"),        # high = 1 <= 1
    ([0.0] * 6, {"at_least": 0.0}, "supported"),       # low = 0 >= 0
    ([0.0] * 6, {"at_most": 0.0}, "inconclusive"),     # high > 0, low = 0 is not > 0
    ([1.0] * 6, {"at_least": 1.0}, "inconclusive"),    # low < 1, high = 1 is not < 1
    ([1.0] * 6, {"at_most": 0.5}, "contradicted"),     # low 0.61 > 0.5
    ([0.0] * 6, {"at_least": 0.5}, "contradicted"),    # high 0.39 < 0.5
    ([1.0, 0.0] * 3, {"at_most": 0.5}, "inconclusive"),
    ([1.0, 0.0] * 3, {"at_least": 0.5}, "inconclusive"),
])
def test_rate_verdicts_at_and_around_the_bound(adam, bound, verdict):
    study = _study({**RATE, **bound})
    (row,) = evaluate(study, _runs(study, {"adam": adam, "sgd": REST, "momentum": REST}))
    assert row["verdict"] == verdict


def test_a_rate_claim_stores_its_rate_interval_and_bound():
    # 2 of 6 reach the threshold (1.0 itself counts: "reaches"), 0.99 does not.
    study = _study({**RATE, "at_least": 0.25})
    (row,) = evaluate(study, _runs(study, {"adam": [1.0, 0.99, 1.2, 0.5, 0.0, 0.9],
                                           "sgd": REST, "momentum": REST}))
    est = row["estimate"]
    assert (row["n"], est["successes"], est["rate"]) == (6, 2, pytest.approx(2 / 6))
    assert (est["ci_low"], est["ci_high"]) == pytest.approx((0.0968, 0.7000), abs=1e-4)
    assert (est["at_most"], est["at_least"]) == (None, 0.25)
    assert (est["unit"], est["failed"]) == ("seed", 0)
    assert row["verdict"] == "inconclusive"
    assert row["p_value"] is row["p_adjusted"] is row["statistic"] is row["effect"] is None
    assert row["p_opposite"] is row["p_opposite_adjusted"] is None
    assert set(row) == ROW_KEYS


def test_a_rate_claim_of_one_run_and_of_none():
    study = _study({**RATE, "at_least": 0.1}, seeds=1)
    (row,) = evaluate(study, _runs(study, {"adam": [1.0], "sgd": [0], "momentum": [0]}))
    assert (row["n"], row["verdict"]) == (1, "supported")  # 1 of 1: Wilson low 0.21 >= 0.1
    (row,) = evaluate(study, _runs(study, {"adam": [1.0], "sgd": [0], "momentum": [0]},
                                   {("adam", 0): "failed"}))
    assert (row["n"], row["verdict"], row["estimate"]) == (
        0, "inconclusive", {"unit": "seed", "failed": 1})


def test_a_better_claim_needs_two_pairs_for_a_test():
    for seeds, p_value in ((1, None), (2, 1 / 4)):
        study = _study(BETTER, seeds=seeds)
        (row,) = evaluate(study, _runs(study, {"sgd": [0.5] * seeds, "adam": [0.9] * seeds,
                                               "momentum": [0] * seeds}))
        assert row["n"] == seeds and row["verdict"] == "inconclusive"
        assert row["p_value"] == p_value
        assert row["p_adjusted"] == (None if p_value is None else 2 * p_value)  # family of 2
        if p_value is None:
            assert row["estimate"] == {"unit": "seed", "failed": 0}
            assert row["statistic"] is row["effect"] is row["p_opposite"] is None


def test_an_adjusted_p_value_equal_to_alpha_is_not_below_it(monkeypatch):
    # Both directions in the family: 2 x 1/32 with 5 seeds. Supported only below ALPHA.
    study = _study(BETTER, seeds=5)
    up = _runs(study, {"sgd": [0.5] * 5, "adam": [0.9] * 5, "momentum": [0] * 5})
    down = _runs(study, {"sgd": [0.5] * 5, "adam": [0.1] * 5, "momentum": [0] * 5})
    monkeypatch.setattr(stats, "ALPHA", 2 / 32)
    assert [evaluate(study, up)[0]["verdict"], evaluate(study, down)[0]["verdict"]] == \
        ["inconclusive", "inconclusive"]
    monkeypatch.setattr(stats, "ALPHA", 2 / 32 + 1e-9)
    assert [evaluate(study, up)[0]["verdict"], evaluate(study, down)[0]["verdict"]] == \
        ["supported", "contradicted"]


def test_a_better_row_holds_everything_the_store_and_report_read():
    # 7 seeds, adam 0.6, 0.7, 0.5, 0.4, 0.9, 0.65, 0.55 against sgd 0.5, whose seed 3 diverged
    # (-inf): differences 0.1, 0.2, 0, +inf, 0.4, 0.15, 0.05. For the rank test +inf is the
    # largest: |d| ranks 0:1 (split in halves), 0.05:2, 0.1:3, 0.15:4, 0.2:5, 0.4:6, inf:7,
    # W+ = 0.5 + 2 + 3 + 4 + 5 + 6 + 7 = 27.5.
    arm = [0.6, 0.7, 0.5, 0.4, 0.9, 0.65, 0.55]
    study = _study(BETTER, seeds=7)
    runs = _runs(study, {"sgd": [0.5] * 7, "adam": arm, "momentum": [0] * 7},
                 {("sgd", 3): "diverged"})
    runs.loc[runs["status"] == "diverged", "score"] = None
    (row,) = evaluate(study, runs)
    assert set(row) == ROW_KEYS
    assert {k: row[k] for k in ("claim_id", "text", "kind", "metric", "arm", "baseline", "n")} \
        == {"claim_id": "adam-better", "text": "Adam beats SGD.", "kind": "better",
            "metric": "score", "arm": {"optimizer": "adam"}, "baseline": {"optimizer": "sgd"},
            "n": 7}
    assert row["statistic"] == 27.5
    d = [0.1, 0.2, 0.0, 1.4, 0.4, 0.15, 0.05]
    p, p_opposite = (scipy_stats.wilcoxon(d, alternative=side, zero_method="zsplit").pvalue
                     for side in ("greater", "less"))
    assert (row["p_value"], row["p_opposite"]) == pytest.approx((p, p_opposite))
    # a family of 2: the smaller p doubled, the larger one kept (and never below the other)
    assert row["p_adjusted"] == pytest.approx(2 * p)
    assert row["p_opposite_adjusted"] == pytest.approx(max(2 * p, p_opposite))
    # A12: each arm value beats the diverged baseline (7), 5 beat 0.5 (x 6), one ties (6 x 1/2)
    assert row["effect"] == pytest.approx((7 + 30 + 3) / 49)
    assert row["estimate"] == {
        "unit": "seed", "failed": 0,
        "difference_median": pytest.approx(0.15), "difference_ci_low": 0.0,
        "difference_ci_high": "inf", "difference_coverage": 1 - 2 / 128,
        "wins": 6, "ties": 1, "losses": 0, "win_share": 6.5 / 7,
        "arm_median": 0.6, "arm_ci_low": 0.4, "arm_ci_high": 0.9,
        "arm_coverage": 1 - 2 / 128, "arm_diverged": 0,
        "baseline_median": 0.5, "baseline_ci_low": "-inf", "baseline_ci_high": 0.5,
        "baseline_coverage": 1 - 2 / 128, "baseline_diverged": 1}


def test_a_difference_between_opposite_divergences_has_no_median():
    # Seed 0: adam diverged (difference -inf); seed 1: sgd diverged (+inf). The middle two of
    # two differences are -inf and +inf: no median, stored as null; the bounds are infinite.
    study = _study(BETTER, seeds=2)
    (row,) = evaluate(study, _runs(study, {"sgd": [0.5, 0.5], "adam": [0.9, 0.9],
                                           "momentum": [0, 0]},
                                   {("adam", 0): "diverged", ("sgd", 1): "diverged"}))
    est = row["estimate"]
    assert est["difference_median"] is None
    assert (est["difference_ci_low"], est["difference_ci_high"]) == ("-inf", "inf")
    assert (est["wins"], est["losses"]) == (1, 1)


def test_below_and_above_claims_store_the_arms_median_and_interval():
    claim = {"id": "low-loss", "text": "t", "kind": "below", "metric": "score", "value": 0.5,
             "arm": {"optimizer": "adam"}}
    study = _study(claim)
    (row,) = evaluate(study, _runs(study, {"adam": [0.1, 0.2, 0.15, 0.05, 0.3, 0.25],
                                           "sgd": REST, "momentum": REST}))
    est = row["estimate"]
    assert (est["arm_median"], est["arm_ci_low"], est["arm_ci_high"]) == \
        (pytest.approx(0.175), 0.05, 0.3)
    assert (est["arm_coverage"], est["arm_diverged"], est["unit"]) == (1 - 2 / 64, 0, "seed")
    # distances 0.4, 0.3, 0.35, 0.45, 0.2, 0.25: all on the claimed side, W+ = 21
    assert (row["n"], row["statistic"], row["effect"]) == (6, 21.0, None)
    assert row["p_adjusted"] == pytest.approx(2 / 64)


def test_below_and_above_measure_the_distance_to_the_value_not_to_zero():
    # Every value is above 0 but below 2: "above 2" is contradicted, "below 2" supported.
    values = [1.1, 1.5, 1.2, 1.9, 1.3, 1.4]
    for kind, verdict in (("above", "contradicted"), ("below", "supported")):
        claim = {"id": "side", "text": "t", "kind": kind, "metric": "score", "value": 2.0,
                 "arm": {"optimizer": "adam"}}
        study = _study(claim, seeds=7)
        (row,) = evaluate(study, _runs(study, {"adam": values + [1.0], "sgd": [0] * 7,
                                               "momentum": [0] * 7}))
        assert row["verdict"] == verdict


def test_a_metric_no_run_has_is_dropped_or_the_worst():
    missing = {**BETTER, "metric": "never_logged"}
    study = _study(missing)
    values = {"sgd": [0.5] * 6, "adam": [0.9] * 6, "momentum": [0] * 6}
    (row,) = evaluate(study, _runs(study, values))
    assert (row["n"], row["verdict"]) == (0, "inconclusive")
    worst = _study({**missing, "missing": "worst"})
    (row,) = evaluate(worst, _runs(worst, values))
    # every value at the worst on both sides: six ties, no evidence
    assert (row["n"], row["estimate"]["ties"], row["p_value"]) == (6, 6, 1.0)


def test_evaluate_and_store_writes_the_verdicts_with_the_study_and_time(tmp_path):
    import json

    from study.engine.results.claims import evaluate_and_store
    from study.engine.results.store import RunRecord, Store

    study = _study(BETTER, {**RATE, "at_least": 0.5}, seeds=7)
    frame = _runs(study, {"sgd": [0.5] * 7, "adam": [1.0] * 7, "momentum": [0] * 7})
    with Store(tmp_path / "r.db") as store:
        for spec, (_, run) in zip(study.runs, frame.iterrows()):
            store.write(RunRecord(spec.key, spec.study, spec.arm, spec.seed, "finished",
                                  spec.config, spec.overrides, "2026-01-01T00:00:00",
                                  "2026-01-01T00:00:01", 1.0, metrics={"score": run["score"]}))
        # Another study in the same database varies a setting named like this study's metric:
        # read together, "score" would be that setting and the metric "metric_score".
        store.write(RunRecord("other-run", "other", "score=3", 0, "finished", {},
                              {"training.score": 3}, "2026-01-01T00:00:00",
                              "2026-01-01T00:00:01", 1.0, metrics={"score": 0.0}))
        # A verdict of a claim since edited away, and one of another study.
        store.write_claims(study.name, [_stored_row(study.name, "edited-away")])
        store.write_claims("other", [_stored_row("other", "kept")])
        rows = evaluate_and_store(study, store)
        stored = [dict(r) for r in store.query(
            "SELECT study, claim_id, verdict, p_adjusted, estimate, evaluated_at FROM claims "
            "ORDER BY study, claim_id")]
    assert [r["verdict"] for r in rows] == ["supported", "supported"]
    assert all(r["study"] == "claims-test" and r["evaluated_at"] for r in rows)
    assert [(r["study"], r["claim_id"], r["verdict"]) for r in stored] == [
        ("claims-test", "adam-better", "supported"), ("claims-test", "adam-solves", "supported"),
        ("other", "kept", "inconclusive")]
    assert stored[0]["p_adjusted"] == pytest.approx(2 / 128)
    assert json.loads(stored[1]["estimate"])["successes"] == 7
    assert stored[0]["evaluated_at"] == stored[1]["evaluated_at"] == rows[0]["evaluated_at"]
    assert stored[0]["evaluated_at"].startswith("20")


def _stored_row(study, claim_id):
    return {"study": study, "claim_id": claim_id, "text": "t", "kind": "rate", "metric": "m",
            "arm": {}, "baseline": None, "n": 0, "estimate": {}, "verdict": "inconclusive",
            "evaluated_at": "2026-01-01T00:00:00"}
