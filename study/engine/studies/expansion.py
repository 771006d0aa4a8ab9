"""Study files -> runs: read a study file, validate it whole, expand its axes into keyed runs.

A study file (TOML, one per study in `experiments/`) holds a base run configuration in three
sections, `[data]`, `[model]` and `[training]`, and the axes that vary it:

- `[grid]`: every combination of the listed values (`optimizer = ["sgd", "adam"]`);
- `[zip]`: lists of equal length varied together, not crossed (arm i takes value i of each);
- `[random]`: `samples` draws of values uniform or log-uniform in a range, seeded;
- `seeds`: how many seeds (or which) every combination runs with;
- `[quick]`: overrides that `--quick` applies to shrink the study to a smoke run.

Every value is validated before anything trains, and every problem of a file is reported at
once as `file: key.path: what is wrong; what is allowed`. With `light=True` (the report's
re-reading of stored study files) components are checked by name only: nothing is imported.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from study.engine.studies import axes, components, data_files, limits, search as searching
from study.engine.studies.errors import ConfigError, messages, non_finite_numbers
from study.engine.studies.identity import arm_name, label, run_key, selects
from study.engine.studies.quick import apply_quick
from study.engine.studies.resolved import validated_config, with_overrides
from study.engine.studies.run_schema import RunConfig
from study.engine.studies.setting_words import setting
from study.engine.studies.study_schema import (Claim, RandomSearch, ReportSpec, Search,
                                               StudyFile)


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: a resolved configuration and a seed, keyed by their hash.

    `config` is the resolved configuration as JSON data (stored, hashed); `run_config` the same,
    validated once when the spec is made (all seeds of an arm share it)."""

    study: str
    key: str
    seed: int
    arm: str  # the varied values, e.g. "optimizer=adam, learning_rate=0.001"
    overrides: dict[str, Any]
    config: dict[str, Any]
    run_config: RunConfig = field(compare=False, repr=False, default=None)
    # The data's fingerprint in the key (`data_files.fingerprint`), checked again before it trains.
    data_fingerprint: str | None = None


def make_specs(study: str, resolved: dict[str, Any], seeds: list[int], arm: str,
               overrides: dict[str, Any], where: DataPlace | None = None) -> list[RunSpec]:
    where = where or DataPlace()
    resolved = data_files.with_resolved_paths(resolved, where.folder)
    run_config = RunConfig.model_validate(resolved, context={"light": True})
    code = components.fingerprints(resolved)
    data = data_files.fingerprint(resolved, where.data_dir, light=where.light)
    keyed = data_files.keyed(resolved)
    return [RunSpec(study, run_key(study, keyed, seed, code, data), seed, arm, overrides,
                    resolved, run_config, data) for seed in seeds]


@dataclass(frozen=True)
class DataPlace:
    """Where a study's data is found: its own files relative to `folder` (the study file's),
    MNIST in `data_dir` (None: the default); `light`: never download (the report)."""

    folder: Path = Path(".")
    data_dir: str | Path | None = None
    light: bool = False


@dataclass
class Study:
    name: str
    question: str
    about: str
    source: str
    runs: list[RunSpec] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    # A search's later stages are made from stored results (studies.search), with these:
    search: Search | None = None
    random: RandomSearch | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)  # one search each ([grid]/[zip])
    base: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    background: str = ""
    report: ReportSpec = field(default_factory=ReportSpec)
    definition: dict[str, Any] = field(default_factory=dict)  # the file as read (for the store)
    quick: bool = False
    light: bool = False
    data_place: DataPlace = field(default_factory=DataPlace)

    def make_runs(self, overrides: dict[str, Any], seeds: list[int],
                  marks: dict[str, Any] | None = None) -> list[RunSpec]:
        """The runs of one combination (axis path -> value); `marks` label them without
        changing their configuration (a search's round)."""
        problems: list[str] = []
        resolved = validated_config(with_overrides(self.base, overrides), "", problems,
                                    light=self.light)
        if resolved is None:
            raise ConfigError(self.source, problems)
        shown = {**(marks or {}), **overrides}
        return make_specs(self.name, resolved, seeds, label(shown), shown, self.data_place)


def load_study(path: str | Path | Mapping[str, Any], *, quick: bool = False,
               light: bool = False, data_dir: str | Path | None = None) -> Study:
    """Read, validate and expand a study file; raise ConfigError listing every problem.

    A mapping is a study written as a Python dict (a notebook cell): the file's tables as
    dicts, validated as a file is, its problems named `<dict>: key.path: ...`."""
    if isinstance(path, Mapping):
        problems: list[str] = []
        raw = toml_data(path, "", problems)
        if problems:
            raise ConfigError(DICT_SOURCE, problems)
        return expand(raw, source=DICT_SOURCE, quick=quick, light=light, data_dir=data_dir)
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["no such file"]) from None
    except IsADirectoryError:
        raise ConfigError(path, ["is a folder, not a study file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, [f"cannot read the file: {error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [f"not valid TOML: {error}"]) from None
    return expand(raw, source=path, quick=quick, light=light, data_dir=data_dir)


DICT_SOURCE = "<dict>"  # what messages name instead of a file, for a study given as a dict
TOML_SCALARS = (str, bool, int, float)


def toml_data(value: Any, path: str, problems: list[str]) -> Any:
    """A copy of `value` as TOML reads data (tables with string keys, lists, str, bool, int,
    float; a tuple becomes a list); anything else is a problem at its key path."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path or '(top level)'}: key {key!r} is not allowed: keys must "
                                f"be strings")
                continue
            out[key] = toml_data(item, f"{path}.{key}" if path else key, problems)
        return out
    if isinstance(value, (list, tuple)):
        return [toml_data(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if isinstance(value, TOML_SCALARS):
        return value
    problems.append(f"{path}: {value!r} is not allowed: a study holds only what TOML can "
                    f"(str, int, float, bool, lists and dicts of them), not "
                    f"{type(value).__module__}.{type(value).__qualname__}")
    return None


def expand(raw: dict[str, Any], *, source: str | Path = "<study>", quick: bool = False,
           light: bool = False, data_dir: str | Path | None = None) -> Study:
    """`source`: the study file (its folder holds the study's own data files; "<...>", a
    study not read from a file: the current folder)."""
    problems = non_finite_numbers(raw)
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as error:
        problems += messages(error, StudyFile)
        if not isinstance(raw.get("data"), dict):
            raise ConfigError(source, problems) from None
        # The file's own keys are wrong; its run sections' problems come at the same time.
        base = {k: raw[k] for k in ("task", "data", "model", "training") if k in raw}
        axis_lists = {k: v for section in ("grid", "zip") if isinstance(raw.get(section), dict)
                      for k, v in raw[section].items()}
        problems += [m for m in _problems_outside_axes(base, axis_lists, light)
                     if m not in problems]
        raise ConfigError(source, problems) from None
    if problems:  # an infinite number: the checks below would judge infinity
        raise ConfigError(source, problems)
    base = {"task": spec.task, "data": spec.data, "model": spec.model}
    if spec.training is not None:
        base["training"] = spec.training
    grid, zipped = dict(spec.grid), dict(spec.zip)
    seeds, random_search, late = spec.seeds, spec.random, {}
    # [quick] is checked on every load, so a broken smoke configuration is found before it is used.
    shrunk = apply_quick(spec, dict(grid), dict(zipped), source)
    if quick:
        seeds, grid, zipped, random_search, late = shrunk
    limits.check_run_count(source, seeds, grid, zipped, random_search)

    resolved_axes = axes.check_axes(base, grid, zipped, random_search, problems, light)
    if problems:  # the base configuration's own problems too, outside the axes' paths
        raise ConfigError(source, problems + _problems_outside_axes(base, {**grid, **zipped},
                                                                    light))

    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    search = spec.search
    if quick and search is not None:
        search = search.model_copy(update={key: spec.quick[f"search.{key}"] for key in
                                           ("final_seeds", "repeats")
                                           if f"search.{key}" in spec.quick})
    study = Study(spec.name, spec.question, spec.about, str(source), claims=list(spec.claims),
                  search=search, random=random_search,
                  base=with_overrides(base, late), seeds=seed_list,
                  background=spec.background, report=spec.report, definition=raw, quick=quick,
                  light=light, data_place=DataPlace(_folder_of(source), data_dir, light))
    if spec.search is not None:
        study.cells = list(axes.combinations(resolved_axes, zipped, None))
        study.runs = searching.first_stage(study)
        if quick:  # as below: the full form's claims checked, the quick form's kept
            expand(raw, source=source, light=light, data_dir=data_dir)
            study.claims = [c for c in study.claims
                            if not check_claims(replace(study, claims=[c]))]
        elif problems := check_claims(study):
            raise ConfigError(source, problems)
        return study
    failures: dict[str, list[str]] = {}  # message -> the combinations it occurs in
    combinations = list(axes.combinations(resolved_axes, zipped, random_search))
    for overrides in combinations:
        name = label(overrides) or "base"
        combination_problems: list[str] = []
        resolved = validated_config(with_overrides(base, {**overrides, **late}), "",
                                    combination_problems, light=light)
        specs = [] if resolved is None else make_specs(spec.name, resolved, seed_list, name,
                                                       overrides, study.data_place)
        if specs and not light:
            combination_problems += (data_files.problems(specs[0].run_config)
                                     or limits.memory_problems(specs[0].run_config))
        for message in combination_problems:
            failures.setdefault(message, []).append(name)
        if not combination_problems:
            study.runs += specs
    for message, names in failures.items():
        # A problem of every combination is the base configuration's; name the others.
        problems.append(message if len(names) == len(combinations)
                        else f"combination {names[0]}: {message}")
    if quick:
        # Claims are checked against the full study; the quick form keeps those whose arms it
        # still runs (a smoke run need not run every arm).
        expand(raw, source=source, light=light, data_dir=data_dir)
        study.claims = [c for c in study.claims if not check_claims(replace(study, claims=[c]))]
    elif not failures:
        # Only once every combination expanded: with runs missing, every claim and name would
        # be reported as selecting nothing, burying the one problem that matters.
        problems += check_claims(study)
        problems += check_names(study)
        problems += check_pivot(study)
        problems += check_figures(study)
    if problems:
        raise ConfigError(source, problems)
    return study


def _folder_of(source: str | Path) -> Path:
    text = str(source)
    return Path(".") if text.startswith("<") else Path(text).parent


def _problems_outside_axes(base: dict[str, Any], axis_lists: dict[str, Any],
                          light: bool) -> list[str]:
    """The base configuration's problems with each axis at its first value, leaving out those
    at the axes' own paths (each axis value is judged on its own, at its own location)."""
    first_values = {}
    for key, values in axis_lists.items():
        path = axes.safe_resolve(key)
        if path and isinstance(values, list) and values:
            first_values[path] = values[0]
    found: list[str] = []
    validated_config(with_overrides(base, first_values), "", found, light=light)
    return [m for m in found if not any(m.startswith(p + ":") or m.startswith(p + ".")
                                        for p in first_values)]


def check_names(study: Study) -> list[str]:
    """Every `[report.names]` key must be the automatic name of one of the study's arms."""
    arms = list(dict.fromkeys(arm_name(spec.overrides) for spec in study.runs))
    return [f"report.names: {key!r} is not the name of an arm; the arms are: {'; '.join(arms)}"
            for key in study.report.names if key not in arms]


def check_pivot(study: Study) -> list[str]:
    """`[report] pivot` names settings the study varies, and each of its cells holds one arm
    (the rows' and columns' settings together tell every two arms apart)."""
    pivot = study.report.pivot
    if pivot is None:
        return []
    if study.search is not None:
        return ["report.pivot: a search's table has a row per round, not per arm: leave "
                "pivot out"]
    arms = list({spec.arm: spec.overrides for spec in study.runs}.values())
    varied = list(dict.fromkeys(setting(path) for arm in arms for path in arm))
    named = [setting(n) for side in (pivot.rows, pivot.columns)
             for n in ([side] if isinstance(side, str) else side)]
    unknown = [n for n in named if n not in varied]
    if unknown:
        return [f"report.pivot: {', '.join(map(repr, unknown))} is not a setting the study "
                f"varies; the settings are: {', '.join(varied)}"]
    cells: dict[str, list[str]] = {}
    for arm in arms:
        cell = json.dumps({p: v for p, v in arm.items() if setting(p) in named},
                          sort_keys=True)
        cells.setdefault(cell, []).append(arm_name(arm))
    mixed = next((names for names in cells.values() if len(names) > 1), None)
    if mixed:
        rest = [n for n in varied if n not in named]
        return [f"report.pivot: a cell would hold {len(mixed)} arms ({'; '.join(mixed)}): "
                f"add {' or '.join(rest)} to rows or columns"]
    return []


def check_figures(study: Study) -> list[str]:
    """A figure's `arm` (the arm a view starts on) must select at least one arm."""
    arms = list(dict.fromkeys(arm_name(spec.overrides) for spec in study.runs))
    overrides = [spec.overrides for spec in study.runs]
    return [f"report.figures[{i}].arm: {figure.arm!r} selects no arm; the arms are: "
            f"{'; '.join(arms)}"
            for i, figure in enumerate(study.report.figures)
            if figure.arm and not any(selects(figure.arm, o) for o in overrides)]


def check_claims(study: Study) -> list[str]:
    """Every claim's arms must each select exactly one combination of the study's axes."""
    problems, ids = [], set()
    arms = {spec.arm: spec.overrides for spec in study.runs}
    for i, claim in enumerate(study.claims):
        if claim.id in ids:
            problems.append(f"claims[{i}].id: {claim.id!r} is used twice")
        ids.add(claim.id)
        for side in ("arm", "baseline"):
            selector = getattr(claim, side)
            if selector is None:
                continue
            if study.search is not None:  # its later stages exist once the rounds have run
                problems += searching.claim_problems(study, selector, f"claims[{i}].{side}")
                continue
            matches = [name for name, overrides in arms.items()
                       if selects(selector, overrides)]
            if len(matches) != 1:
                found = "no arm" if not matches else f"{len(matches)} arms ({'; '.join(matches)})"
                problems.append(f"claims[{i}].{side}: {selector!r} selects {found}; it must "
                                f"select exactly one of: {'; '.join(arms)}")
    return problems
