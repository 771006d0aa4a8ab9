"""Random search in rounds, narrowed by the results, and one look at the test set (DLFS 6.5.3).

A study with `[search]` samples its `[random]` axes in stages, each made from the stored
results of the one before (so a rerun rebuilds the same stages, with the same run keys):

1. round 1: `random.samples` points of the axes (log-uniform where `scale = "log"`), each run
   with every seed of the study; with `compare_grid`, also a grid of the same budget over the
   same ranges (k points per axis, spaced like the axis), for the comparison random vs grid;
   with `sampling = "grid"`, round 1 is that grid instead of the random points;
2. round r + 1: as many points again (sampling seed + r), in ranges narrowed to the values of
   round r's best `keep` share of points (at least two), ranked by the mean of `metric` over
   seeds, a diverged run counting as the worst;
3. final: the best point of all rounds, trained again with `final_seeds` fresh seeds (1000,
   1001, ...: never a round's seed, so the chosen run itself is not re-used and its lucky seed
   does not flatter the choice) and `evaluate_test = true`: the only runs that see the test
   set; with `control`, the same point once more with those settings (Keras's built-ins),
   marked round "control" and judged on validation (the test set is still seen once).

One search per cell: `[grid]` / `[zip]` beside `[random]` make cells (e.g. one per optimizer),
each searched on its own: its rounds are ranked within the cell, it gets its own chosen point
and final runs; every cell samples the same round-1 points (the same candidates for each).
With `reference = "book"`, each cell as written (its `[grid]` / `[zip]` values, a searched
setting at the cell's own value) also trains with the final seeds and the test set on, marked
round "book": the untuned reference, paired seed by seed with the final runs. A reference
point may not be a point of round 1 (were it chosen, one run would be both final and reference).

`repeats = N` does the whole search N times (rounds, final, control, reference) with
independent sampling: repeat r samples round k with seed `random.seed + 1000 r + k - 1` (repeat
0 is the single search's) and narrows by its own results; its final seeds are
`1000 (r + 1) + i`. The unit of a claim about the search is then one search, not one seed of
one search's pick. The grid comparison does not depend on the sampling seed: it runs once,
in repeat 0. A search with repeats marks every run with its repeat (`repeat` = 0, 1, ...); a
single search does not (its arms and keys stay as they were).

Every run is marked with its stage in its overrides (`round` = 1, 2, ..., "grid", "final",
"control", the reference's name), a label that is not part of its configuration. Runs judged
on validation never evaluate the test set: the study file sets `evaluate_test = false`, which
`first_stage` checks.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from study.engine.studies.axes import axis_value, random_samples, resolve_key
from study.engine.studies.errors import ConfigError
from study.engine.studies.identity import arm_name, label, selects
from study.engine.studies.study_schema import FIRST_FINAL_SEED, RandomAxis, RandomSearch

if TYPE_CHECKING:  # expansion calls this module: it needs nothing of expansion at run time
    from study.engine.studies.expansion import RunSpec, Study

ROUND = "search.round"
REPEAT = "search.repeat"
LABELS = (ROUND, REPEAT)  # marks of a run, not settings of it
DONE = ("finished", "diverged")
SAMPLING_STRIDE = 1000  # repeat r's sampling seeds start at random.seed + 1000 r


def first_stage(study: Study) -> list[RunSpec]:
    """Round 1 of every search (and the reference runs, the grid comparison); checks the
    study's shape first."""
    if study.base.get("training", {}).get("evaluate_test", True):
        raise ConfigError(study.source, ["training.evaluate_test: a search must set it to "
                                         "false; the chosen setting alone sees the test set"])
    _check_cells(study)
    runs, references = [], []
    for repeat in range(study.search.repeats):
        for cell in study.cells:
            point = _searched_out(study, cell)
            searched = _round(study, repeat, point, 1, _sampling(study.random, repeat, 1))
            runs += searched
            if study.search.reference:
                reference = study.make_runs({**cell, "training.evaluate_test": True},
                                            final_seeds(study, repeat),
                                            _marks(study, study.search.reference, repeat))
                _check_reference(study, cell, reference[0], searched)
                references += reference
    runs += references  # after every round 1: the searches go on while these train
    if study.search.compare_grid:  # independent of the sampling seed: once, in repeat 0
        for cell in study.cells:
            for point in _grid(study.random):
                runs += study.make_runs({**_searched_out(study, cell), **point}, study.seeds,
                                        _marks(study, "grid", 0))
    return runs


def extend(study: Study, stored: pd.DataFrame) -> list[RunSpec]:
    """Append each search's next stage to `study.runs` if the stage it is made from is complete
    in `stored` (one row per stored run: `key`, `status` and the metric); return the new runs
    (or [])."""
    if study.search is None:
        return []
    by_search: dict[tuple[int, str], dict[Any, list[RunSpec]]] = {}
    for spec in study.runs:
        if spec.overrides[ROUND] != "grid":
            stages = by_search.setdefault(_search_of(study, spec.overrides), {})
            stages.setdefault(spec.overrides[ROUND], []).append(spec)
    new = []
    for repeat in range(study.search.repeats):
        for cell in study.cells:
            point = _searched_out(study, cell)
            stages = by_search.get((repeat, _cell_id(study, point)), {})
            new += _next_stage(study, repeat, point, stages, stored)
    study.runs += new
    return new


def final_seeds(study: Study, repeat: int) -> list[int]:
    first = FIRST_FINAL_SEED * (repeat + 1)
    return list(range(first, first + study.search.final_seeds))


def claim_problems(study: Study, selector: dict[str, Any], where: str) -> list[str]:
    """A claim's arm in a search: a stage made after the rounds (`round`), at most one repeat
    (`repeat`), and exactly one cell by its `[grid]` / `[zip]` values."""
    stages = ["final", *(["control"] if study.search.control else []),
              *([study.search.reference] if study.search.reference else [])]
    axes = sorted({path.split(".")[-1] for cell in study.cells
                   for path in _searched_out(study, cell)})
    allowed = (f"in a search, claims select round = {' | '.join(map(repr, stages))}"
               + (f", optionally repeat = 0..{study.search.repeats - 1}"
                  if study.search.repeats > 1 else "")
               + (f", and one combination by {', '.join(axes)}" if axes else ""))
    rest = {k: v for k, v in selector.items() if k not in ("round", "repeat")}
    problems = []
    if selector.get("round") not in stages:
        problems.append(f"{where}: {selector!r}: {allowed}")
    elif "repeat" in selector and study.search.repeats == 1:
        problems.append(f"{where}: repeat = {selector['repeat']!r}: the search runs once "
                        f"(search.repeats = 1), its runs carry no repeat; {allowed}")
    elif "repeat" in selector and selector["repeat"] not in range(study.search.repeats):
        problems.append(f"{where}: repeat = {selector['repeat']!r}: {allowed}")
    elif set(rest) - set(axes):
        problems.append(f"{where}: {', '.join(sorted(set(rest) - set(axes)))}: {allowed}")
    else:
        matches = [arm_name(point) for point in (_searched_out(study, c) for c in study.cells)
                   if selects(rest, point)]
        if len(matches) != 1:
            problems.append(f"{where}: {selector!r} selects {len(matches)} combinations "
                            f"({'; '.join(matches) or 'none'}); {allowed}")
    return problems


def _marks(study: Study, stage: Any, repeat: int) -> dict[str, Any]:
    """A run's labels: its stage, and its repeat when there are several."""
    return {ROUND: stage, **({REPEAT: repeat} if study.search.repeats > 1 else {})}


def _searched(study: Study) -> set[str]:
    return {resolve_key(key) for key in study.random.axes}


def _searched_out(study: Study, cell: dict[str, Any]) -> dict[str, Any]:
    """A cell without the searched settings: what its search's runs all share."""
    searched = _searched(study)
    return {path: value for path, value in cell.items() if path not in searched}


def _cell_id(study: Study, overrides: dict[str, Any]) -> str:
    paths = sorted({path for cell in study.cells for path in _searched_out(study, cell)})
    return json.dumps({path: overrides.get(path) for path in paths}, sort_keys=True)


def _search_of(study: Study, overrides: dict[str, Any]) -> tuple[int, str]:
    """Which search (repeat, cell) a run belongs to, from its overrides."""
    return overrides.get(REPEAT, 0), _cell_id(study, overrides)


def _check_cells(study: Study) -> None:
    problems = []
    written = {path for cell in study.cells for path in cell}
    overlap = sorted(written & _searched(study))
    if overlap and not study.search.reference:
        problems.append(f"random.axes: {', '.join(overlap)} is also a [grid] / [zip] axis; in a "
                        f"search a cell's own value of a searched setting is used only by the "
                        f"reference runs (search.reference = \"...\"): give one or the other")
    ids = [_cell_id(study, _searched_out(study, cell)) for cell in study.cells]
    if len(set(ids)) != len(ids):
        problems.append("grid / zip: two combinations are the same once the searched "
                        "settings are left out; each search needs its own combination of the "
                        "settings it does not search")
    if problems:
        raise ConfigError(study.source, problems)


def _check_reference(study: Study, cell: dict[str, Any], reference: RunSpec,
                     searched: list[RunSpec]) -> None:
    """A cell's reference point must not be a candidate of its search: if it were chosen, its
    final runs would be its reference runs (one key, one label). Round 1 is checked here;
    a later round's random draw hits it with probability ~0 (6 significant digits of a
    continuous draw)."""
    def setting(spec: RunSpec) -> str:
        training = {k: v for k, v in spec.config["training"].items() if k != "evaluate_test"}
        return json.dumps({**spec.config, "training": training}, sort_keys=True)

    if any(setting(spec) == setting(reference) for spec in searched):
        written = f"the combination {label(cell)}" if cell else "the base configuration"
        raise ConfigError(study.source, [
            f"search.reference: {written} is also a point of round 1; were it chosen, its "
            f"final runs would be its reference runs: use a grid or range of the searched "
            f"settings without it"])


def _next_stage(study: Study, repeat: int, cell: dict[str, Any],
                stages: dict[Any, list[RunSpec]], stored: pd.DataFrame) -> list[RunSpec]:
    """One search's next stage: round last + 1 or the final, once its source is complete."""
    rounds = sorted(r for r in stages if isinstance(r, int))
    if "final" in stages or not rounds:
        return []
    last, search = rounds[-1], study.search
    if last < search.rounds:
        if not _complete(stages[last], stored):
            return []
        ranked = _ranked(stages[last], stored, search)
        narrowed = _narrowed(study.random, ranked, search.keep,
                             _sampling(study.random, repeat, last + 1).seed)
        return _round(study, repeat, cell, last + 1, narrowed)
    specs = [spec for r in rounds for spec in stages[r]]
    if not _complete(specs, stored):
        return []
    chosen = {**_ranked(specs, stored, search)[0], "training.evaluate_test": True}
    seeds = final_seeds(study, repeat)
    new = study.make_runs(chosen, seeds, _marks(study, "final", repeat))
    if search.control:
        control = {resolve_key(k): v for k, v in search.control.items()}
        # Judged on validation like the rounds: the test set is still seen once.
        new += study.make_runs({**chosen, **control, "training.evaluate_test": False},
                               seeds, _marks(study, "control", repeat))
    return new


def _sampling(search: RandomSearch, repeat: int, number: int) -> RandomSearch:
    """Round `number` of repeat `repeat` samples with seed + 1000 repeat + number - 1."""
    return search.model_copy(update={"seed": search.seed + SAMPLING_STRIDE * repeat + number - 1})


def _round(study: Study, repeat: int, cell: dict[str, Any], number: int,
           search: RandomSearch) -> list[RunSpec]:
    points = (_grid(search) if number == 1 and study.search.sampling == "grid"
              else random_samples(search))
    return [spec for point in points
            for spec in study.make_runs({**cell, **point}, study.seeds,
                                        _marks(study, number, repeat))]


def _grid(search: RandomSearch) -> list[dict[str, Any]]:
    side = round(search.samples ** (1 / len(search.axes)))
    values = []
    for axis in search.axes.values():
        points = (np.logspace(math.log10(axis.low), math.log10(axis.high), side)
                  if axis.scale == "log" else np.linspace(axis.low, axis.high, side))
        values.append([axis_value(axis, v) for v in points])
    paths = [resolve_key(k) for k in search.axes]
    return [dict(zip(paths, combination)) for combination in itertools.product(*values)]


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
        point = {k: v for k, v in spec.overrides.items() if k not in LABELS}
        point_id = repr(sorted(point.items()))
        scores.setdefault(point_id, []).append(value)
        points[point_id] = point
    order = sorted(scores, key=lambda point_id: np.mean(scores[point_id]),
                   reverse=search.higher_is_better)
    return [points[point_id] for point_id in order]


def _narrowed(search: RandomSearch, ranked: list[dict[str, Any]], keep: float,
              seed: int) -> RandomSearch:
    """The next round's axes: the span of the best `keep` share of the last round's points."""
    best = ranked[:max(2, math.ceil(keep * len(ranked)))]
    axes = {}
    for key, axis in search.axes.items():
        values = [point[resolve_key(key)] for point in best]
        low, high = min(values), max(values)
        if not low < high:  # one value: a little room around it, on the axis's scale
            low, high = ((low / 1.1, high * 1.1) if axis.scale == "log"
                         else (low - 1e-6 * (abs(low) or 1), high + 1e-6 * (abs(high) or 1)))
        axes[key] = RandomAxis(low=low, high=high, scale=axis.scale, integer=axis.integer)
    return RandomSearch(samples=search.samples, seed=seed, axes=axes)
