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
    first = [s for s in study.runs if s.overrides[search.ROUND] == 1]
    assert search.extend(study, _stored(first[1:], math.log)) == []  # round 1 incomplete
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
    assert [s.seed for s in final] == [1000, 1001, 1002]  # fresh: not the chosen run again
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
    (lambda r: r["claims"][0].update(arm={"round": 1}), "claims select round = 'final'"),
    (lambda r: r["random"].update(samples=10), "must be a whole power"),
    (lambda r: r.pop("random"), "give [random]"),
    (lambda r: r.update(seeds=[0, 1000]), "seeds must lie below 1000"),
    (lambda r: r["search"].update(reference="final"), "is a stage of the search itself"),
    (lambda r: r["search"].update(repeats=0), "search.repeats: 0 is not allowed"),
    (lambda r: r.update(zip={"learning_rate": [0.1, 0.2]}),
     "is also a [grid] / [zip] axis"),
    (lambda r: r.update(grid={"activation": ["relu", "relu"]}), "two combinations are the same"),
    (lambda r: r["claims"][0].update(arm={"round": "final", "repeat": 1}),
     "its runs carry no repeat"),
    (lambda r: (r["search"].update(repeats=2),
                r["claims"][0].update(arm={"round": "final", "repeat": 2})),
     "optionally repeat = 0..1"),
    (lambda r: r["claims"][0].update(arm={"round": "final", "learning_rate": 0.01}),
     "learning_rate: in a search"),
    (lambda r: r["claims"][0].update(arm={"round": "book"}), "claims select round = 'final'"),
    (lambda r: r.update(report={"group_by": []}), "a list of distinct names"),
])
def test_bad_searches_are_refused_with_a_message(change, message):
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(raw)


def _rate(spec):
    return spec.config["training"]["learning_rate"]


def _stage(specs, stage, **labels):
    """The runs of one stage, optionally of one repeat or cell (a setting's last name)."""
    return [s for s in specs if s.overrides[search.ROUND] == stage
            and all({p.split(".")[-1]: v for p, v in s.overrides.items()}.get(k) == v
                    for k, v in labels.items())]


def test_repeats_are_independent_searches_each_narrowed_by_its_own_results():
    raw = copy.deepcopy(RAW)
    raw["search"]["repeats"] = 3
    study = expand(raw)
    single = expand(copy.deepcopy(RAW))
    rounds = [_stage(study.runs, 1, repeat=r) for r in range(3)]
    assert all(len(r) == 9 * 2 for r in rounds)
    # Repeat 0 is the single search (same keys); the others sample other points.
    assert [s.key for s in rounds[0]] == [s.key for s in _stage(single.runs, 1)]
    points = [{_rate(s) for s in r} for r in rounds]
    assert not (points[0] & points[1] or points[0] & points[2] or points[1] & points[2])
    # The grid does not depend on the sampling seed: once, in repeat 0.
    grid = _stage(study.runs, "grid")
    assert len(grid) == 9 * 2 and {s.overrides[search.REPEAT] for s in grid} == {0}
    assert all(search.REPEAT in s.overrides for s in study.runs)

    # Repeat 1 scores small learning rates best, the others large ones: each repeat's round 2
    # lies in the span of its own round 1's best 30% (3 of 9 points).
    def score(spec):
        sign = -1 if spec.overrides[search.REPEAT] == 1 else 1
        return sign * math.log(_rate(spec))

    stored = pd.DataFrame([{"key": s.key, "status": "finished", "val_accuracy": score(s)}
                           for s in study.runs])
    second = search.extend(study, stored)
    for r in range(3):
        ranked = sorted({_rate(s) for s in rounds[r]}, reverse=(r != 1))
        best = ranked[:3]
        new = _stage(second, 2, repeat=r)
        assert len(new) == 9 * 2
        assert all(min(best) <= _rate(s) <= max(best) for s in new), r
    stored = pd.concat([stored, pd.DataFrame([{"key": s.key, "status": "finished",
                                               "val_accuracy": score(s)} for s in second])])
    final = search.extend(study, stored)
    for r in range(3):
        runs = _stage(final, "final", repeat=r)
        searched = [s for s in study.runs if s.overrides[search.REPEAT] == r
                    and isinstance(s.overrides[search.ROUND], int)]
        best = (min if r == 1 else max)(searched, key=_rate)
        assert {_rate(s) for s in runs} == {_rate(best)}
        assert [s.seed for s in runs] == [1000 * (r + 1) + i for i in range(3)]


def test_final_seeds_are_fresh_and_the_chosen_run_is_not_reused():
    raw = copy.deepcopy(RAW)
    raw["search"].update(repeats=2, control={"optimizer": "keras.sgd"})
    study = expand(raw)
    while new := search.extend(study, _stored(study.runs, math.log)):
        pass
    judged = [s for s in study.runs if s.overrides[search.ROUND] in ("final", "control")]
    searched = [s for s in study.runs if s.overrides[search.ROUND] not in ("final", "control")]
    assert len(judged) == 2 * 2 * 3
    assert not {s.seed for s in judged} & {s.seed for s in searched}
    assert not {s.key for s in judged} & {s.key for s in searched}
    finals = [{s.seed for s in _stage(judged, "final", repeat=r)} for r in range(2)]
    assert finals[0] == {1000, 1001, 1002} and finals[1] == {2000, 2001, 2002}


CELLS = {**copy.deepcopy(RAW), "grid": {"optimizer": ["sgd", "adam"]},
         "random": {"samples": 6, "seed": 3, "axes": {
             "learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"}}}}
CELLS["search"] = {"rounds": 2, "keep": 0.3, "final_seeds": 3, "reference": "book"}
CELLS["claims"] = [{"id": "c", "text": "t", "kind": "above", "metric": "learning_rate",
                    "value": 1e-3, "arm": {"round": "final", "optimizer": "sgd"}}]


def test_one_search_per_cell_ranks_within_its_cell():
    raw = copy.deepcopy(CELLS)
    raw["zip"] = {"optimizer": ["sgd", "adam"], "learning_rate": [0.01, 0.001]}
    del raw["grid"]
    study = expand(raw)
    # The same candidates for every cell; the reference runs: each cell as written, with the
    # final seeds and the test set on.
    sgd, adam = _stage(study.runs, 1, optimizer="sgd"), _stage(study.runs, 1, optimizer="adam")
    assert len(sgd) == len(adam) == 6 * 2
    assert [_rate(s) for s in sgd] == [_rate(s) for s in adam]
    book = _stage(study.runs, "book")
    assert {(s.overrides["training.optimizer"], _rate(s), s.seed) for s in book} == {
        (optimizer, rate, seed) for optimizer, rate in (("sgd", 0.01), ("adam", 0.001))
        for seed in (1000, 1001, 1002)}
    assert all(s.config["training"]["evaluate_test"] for s in book)

    # SGD scores large rates best, Adam small ones, every Adam run below every SGD run; the best
    # 2 of 6 points of a cell set its round 2. Ranked across cells, Adam's search would follow
    # SGD's best points.
    def score(spec):
        rate = math.log(_rate(spec))
        return 10 + rate if spec.overrides["training.optimizer"] == "sgd" else -10 - rate

    def stored_of(specs):
        return pd.DataFrame([{"key": s.key, "status": "finished", "val_accuracy": score(s)}
                             for s in specs])
    stored = stored_of(study.runs)
    second = search.extend(study, stored)
    rates = sorted({_rate(s) for s in sgd})
    assert all(_rate(s) >= rates[-2] for s in _stage(second, 2, optimizer="sgd"))
    assert all(_rate(s) <= rates[1] for s in _stage(second, 2, optimizer="adam"))
    final = search.extend(study, pd.concat([stored, stored_of(second)]))
    for optimizer, pick in (("sgd", max), ("adam", min)):
        searched = [s for s in study.runs if s.overrides[search.ROUND] in (1, 2)
                    and s.overrides["training.optimizer"] == optimizer]
        chosen = {_rate(s) for s in _stage(final, "final", optimizer=optimizer)}
        assert chosen == {_rate(pick(searched, key=_rate))}, optimizer


def test_claims_in_a_search_select_a_cell_and_a_stage():
    raw = copy.deepcopy(CELLS)
    raw["claims"] = [{"id": "tuned", "text": "t", "kind": "better", "metric": "test_accuracy",
                      "arm": {"round": "final", "optimizer": "adam"},
                      "baseline": {"round": "book", "optimizer": "adam"}}]
    assert expand(raw).claims[0].id == "tuned"
    raw["claims"][0]["baseline"] = {"round": "book"}
    with pytest.raises(ConfigError, match=r"selects 2 combinations \(sgd; adam\)"):
        expand(raw)
    # The quick form keeps the claims whose cells it still runs.
    raw["claims"][0]["baseline"] = {"round": "book", "optimizer": "sgd"}
    raw["quick"] = {"grid.optimizer": ["sgd"], "search.repeats": 1}
    assert expand(raw, quick=True).claims == []
    raw["quick"]["grid.optimizer"] = ["sgd", "adam"]
    assert len(expand(raw, quick=True).claims) == 1


def test_a_grid_round_one_and_a_reference_that_is_not_a_candidate():
    raw = copy.deepcopy(CELLS)
    raw["search"].update(sampling="grid", rounds=1)
    raw["random"]["samples"] = 4  # 1e-4, 1e-3, 1e-2, 1e-1
    raw["zip"] = {"optimizer": ["sgd", "adam"], "learning_rate": [0.02, 0.002]}
    del raw["grid"]
    study = expand(raw)
    for optimizer in ("sgd", "adam"):
        rates = [_rate(s) for s in _stage(study.runs, 1, optimizer=optimizer)]
        assert rates == pytest.approx([1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2, 1e-1, 1e-1])
    raw["zip"]["learning_rate"] = [0.02, 0.001]  # Adam's own rate is a candidate
    with pytest.raises(ConfigError, match=r"optimizer=adam, learning_rate=0.001 is also a point"):
        expand(raw)
    raw["zip"]["learning_rate"] = [0.02, 0.002]
    raw["search"]["repeats"] = 2  # one grid round: every repeat the same search
    with pytest.raises(ConfigError, match="every repeat would be the same search"):
        expand(raw)
