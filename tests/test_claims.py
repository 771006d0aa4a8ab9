"""Claims: verdicts on hand-made results whose answers are known, and claim validation."""

import copy

import pandas as pd
import pytest

from study.engine.results.claims import evaluate
from study.engine.studies import ConfigError, expand

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


def test_holm_adjusts_across_the_claims_of_a_study():
    second = {**BETTER, "id": "momentum-better", "arm": {"optimizer": "momentum"}}
    study = _study(BETTER, second)
    rows = evaluate(study, _runs(study, {"sgd": [0.5] * 6, "adam": [0.9] * 6,
                                         "momentum": [0.9] * 6}))
    assert [r["p_adjusted"] for r in rows] == pytest.approx([2 / 64, 2 / 64])


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
