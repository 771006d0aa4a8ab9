"""Random search in rounds, narrowed by the results, and one look at the test set (DLFS 6.5.3).

A study with `[search]` samples its `[random]` axes in stages, each made from the stored
results of the one before (so a rerun rebuilds the same stages, with the same run keys):

1. round 1: `random.samples` points of the axes (log-uniform where `scale = "log"`), each run
   with every seed of the study; with `compare_grid`, also a grid of the same budget over the
   same ranges (k points per axis, spaced like the axis), for the comparison random vs grid;
2. round r + 1: as many points again (sampling seed + r), in ranges narrowed to the values of
   round r's best `keep` share of points (at least two), ranked by the mean of `metric` over
   seeds, a diverged run counting as the worst;
3. final: the best point of all rounds, trained again with `final_seeds` seeds and
   `evaluate_test = true`: the only runs that see the test set; with `control`, the same point
   once more with those settings (Keras's built-ins), marked round "control" and judged on
   validation (the test set is still seen once).

Every run is marked with its stage in its overrides (`round` = 1, 2, ..., "grid", "final"), a
label that is not part of its configuration. Runs judged on validation never evaluate the test
set: the study file sets `evaluate_test = false`, which `first_stage` checks.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from study.engine.studies.axes import axis_value, random_samples, resolve_key
from study.engine.studies.errors import ConfigError
from study.engine.studies.study_schema import RandomAxis, RandomSearch

if TYPE_CHECKING:  # expansion calls this module: it needs nothing of expansion at run time
    from study.engine.studies.expansion import RunSpec, Study

ROUND = "search.round"
DONE = ("finished", "diverged")


def first_stage(study: Study) -> list[RunSpec]:
    if study.base.get("training", {}).get("evaluate_test", True):
        raise ConfigError(study.source, ["training.evaluate_test: a search must set it to "
                                         "false; the chosen setting alone sees the test set"])
    runs = _round(study, 1, study.random)
    if study.search.compare_grid:
        for point in _grid(study.random):
            runs += study.make_runs(point, study.seeds, {ROUND: "grid"})
    return runs


def extend(study: Study, stored: pd.DataFrame) -> list[RunSpec]:
    """Append the next stage to `study.runs` if the last one is complete in `stored` (one
    row per stored run: `key`, `status` and the metric); return the new runs (or [])."""
    if study.search is None:
        return []
    stage = _stages(study)
    last = max((r for r in stage if isinstance(r, int)), default=0)
    if "final" in stage or not _complete(study.runs, stored):
        return []
    if last < study.search.rounds:
        ranked = _ranked(stage[last], stored, study.search)
        new = _round(study, last + 1, _narrowed(study.random, ranked, study.search.keep, last))
    else:
        ranked = _ranked([s for r, specs in stage.items() if isinstance(r, int) for s in specs],
                         stored, study.search)
        chosen, seeds = {**ranked[0], "training.evaluate_test": True}, list(
            range(study.search.final_seeds))
        new = study.make_runs(chosen, seeds, {ROUND: "final"})
        if study.search.control:
            control = {resolve_key(k): v for k, v in study.search.control.items()}
            # Judged on validation like the rounds: the test set is still seen once.
            new += study.make_runs({**chosen, **control, "training.evaluate_test": False},
                                   seeds, {ROUND: "control"})
    study.runs += new
    return new


def _round(study: Study, number: int, search: RandomSearch) -> list[RunSpec]:
    return [spec for point in random_samples(search)
            for spec in study.make_runs(point, study.seeds, {ROUND: number})]


def _grid(search: RandomSearch) -> list[dict[str, Any]]:
    side = round(search.samples ** (1 / len(search.axes)))
    values = []
    for axis in search.axes.values():
        points = (np.logspace(math.log10(axis.low), math.log10(axis.high), side)
                  if axis.scale == "log" else np.linspace(axis.low, axis.high, side))
        values.append([axis_value(axis, v) for v in points])
    paths = [resolve_key(k) for k in search.axes]
    return [dict(zip(paths, combination)) for combination in itertools.product(*values)]


def _stages(study: Study) -> dict[Any, list[RunSpec]]:
    stages: dict[Any, list[RunSpec]] = {}
    for spec in study.runs:
        stages.setdefault(spec.overrides[ROUND], []).append(spec)
    return stages


def _complete(specs: list[RunSpec], stored: pd.DataFrame) -> bool:
    status = dict(zip(stored["key"], stored["status"])) if len(stored) else {}
    return all(status.get(spec.key) in DONE for spec in specs)


def _ranked(specs: list[RunSpec], stored: pd.DataFrame, search) -> list[dict[str, Any]]:
    """The points (axis path -> value) of `specs`, best mean metric first."""
    rows = stored.set_index("key")
    worst = -math.inf if search.higher_is_better else math.inf
    scores: dict[str, list[float]] = {}
    points: dict[str, dict[str, Any]] = {}
    for spec in specs:
        row = rows.loc[spec.key]
        value = row.get(search.metric) if row["status"] == "finished" else worst
        value = worst if value is None or pd.isna(value) else float(value)
        point = {k: v for k, v in spec.overrides.items() if k != ROUND}
        label = repr(sorted(point.items()))
        scores.setdefault(label, []).append(value)
        points[label] = point
    order = sorted(scores, key=lambda label: np.mean(scores[label]),
                   reverse=search.higher_is_better)
    return [points[label] for label in order]


def _narrowed(search: RandomSearch, ranked: list[dict[str, Any]], keep: float,
              last: int) -> RandomSearch:
    """Round last+1's axes: the span of the best `keep` share of round `last`'s points."""
    best = ranked[:max(2, math.ceil(keep * len(ranked)))]
    axes = {}
    for key, axis in search.axes.items():
        values = [point[resolve_key(key)] for point in best]
        low, high = min(values), max(values)
        if not low < high:  # one value: a little room around it, on the axis's scale
            low, high = ((low / 1.1, high * 1.1) if axis.scale == "log"
                         else (low - 1e-6 * (abs(low) or 1), high + 1e-6 * (abs(high) or 1)))
        axes[key] = RandomAxis(low=low, high=high, scale=axis.scale, integer=axis.integer)
    return RandomSearch(samples=search.samples, seed=search.seed + last, axes=axes)
