"""Random search in rounds (study.search): stages made from stored results, no training here."""

import copy
import math

import pandas as pd
import pytest

from study.engine.studies import search
from study.engine.studies import ConfigError, expand

RAW = {
    "name": "search", "seeds": 2,
    "data": {"dataset": "xor"},
    "model": {"hidden": [4], "regularizer": "l2"},
    "training": {"steps": 10, "evaluate_test": False},
    "random": {"samples": 9, "seed": 3, "axes": {
        "learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"},
        "model.regularizer_args.l2": {"low": 1e-6, "high": 1e-2, "scale": "log"}}},
    "search": {"rounds": 2, "keep": 0.3, "final_seeds": 3, "compare_grid": True},
    "claims": [{"id": "c", "text": "t", "kind": "above", "metric": "learning_rate",
                "value": 1e-3, "arm": {"round": "final"}}],
}


def _stored(specs, score):
    """A stored-results frame in which each run scores score(its learning rate)."""
    return pd.DataFrame([{"key": s.key, "status": "finished",
                          "val_accuracy": score(s.config["training"]["learning_rate"])}
                         for s in specs])


def test_round_one_and_the_grid_of_the_same_budget():
    study = expand(copy.deepcopy(RAW))
    rounds = [s.overrides[search.ROUND] for s in study.runs]
    assert rounds.count(1) == rounds.count("grid") == 9 * 2
    grid = sorted({s.config["training"]["learning_rate"] for s in study.runs
                   if s.overrides[search.ROUND] == "grid"})
    assert grid == pytest.approx([1e-4, 10 ** -2.5, 1e-1])  # log-spaced, 3 per axis
    assert all(s.config["training"]["evaluate_test"] is False for s in study.runs)


def test_later_stages_wait_for_results_then_narrow_and_end_with_one_test_look():
    study = expand(copy.deepcopy(RAW))
    assert search.extend(study, _stored(study.runs[:-1], math.log)) == []  # incomplete
    first = [s for s in study.runs if s.overrides[search.ROUND] == 1]
    # Larger learning rates score higher: the best 30% (3 of 9 points) set round 2's range.
    stored = _stored(study.runs, math.log)
    second = search.extend(study, stored)
    assert {s.overrides[search.ROUND] for s in second} == {2} and len(second) == 9 * 2
    rates = sorted({s.config["training"]["learning_rate"] for s in first})
    low = rates[-3]
    assert all(low <= s.config["training"]["learning_rate"] <= rates[-1] for s in second)
    # Rebuilt from the same results, a stage has the same run keys (resumable).
    again = expand(copy.deepcopy(RAW))
    assert [s.key for s in search.extend(again, stored)] == [s.key for s in second]

    stored = pd.concat([stored, _stored(second, math.log)])
    final = search.extend(study, stored)
    best = max((s for s in first + second), key=lambda s: s.config["training"]["learning_rate"])
    assert [s.seed for s in final] == [0, 1, 2]
    assert {s.overrides[search.ROUND] for s in final} == {"final"}
    for spec in final:
        assert spec.config["training"]["evaluate_test"] is True  # the only look at test
        assert spec.config["training"]["learning_rate"] == best.config["training"]["learning_rate"]
    assert search.extend(study, pd.concat([stored, _stored(final, math.log)])) == []


def test_a_diverged_point_ranks_last():
    study = expand(copy.deepcopy(RAW))
    stored = _stored(study.runs, math.log)
    fastest = max(study.runs, key=lambda s: s.config["training"]["learning_rate"])
    stored.loc[stored["key"] == fastest.key, "status"] = "diverged"
    second = search.extend(study, stored)
    top = fastest.config["training"]["learning_rate"]
    assert all(s.config["training"]["learning_rate"] < top for s in second)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["training"].update(evaluate_test=True), "a search must set it to false"),
    (lambda r: r["claims"][0].update(arm={"round": 1}), "claims select the chosen setting"),
    (lambda r: r["random"].update(samples=10), "must be a whole power"),
    (lambda r: r.update(grid={"activation": ["relu"]}), "no [grid] or [zip]"),
])
def test_bad_searches_are_refused_with_a_message(change, message):
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(raw)
