"""Arms' names for people: what an arm changes from the study's base run, in short words
("Adam lr=0.3", "L2 λ=0.05", "hidden 5-4, tanh"), one distinct name per arm.

The stored arm label (`identity.label`), run keys and claims' matching never use these
names: they are for the report's tables, figures and CSV files and the Python API's frames.

Which settings a name shows, for each arm:
- only settings that differ between the study's arms (a value every arm shares says nothing);
- of those, a setting of `[grid]` or `[random]`, or a search's round and repeat, always (a
  grid's cells are read by every coordinate); any other (a `[zip]` list) when it differs
  from the base run ([data] / [model] / [training] as written);
- a learning rate shown brings its optimizer along when the study varies both ("Adam
  lr=0.3", not "lr=0.3");
- an arm that is the base run in every varied setting shows the first of them ("SGD");
- a function's start (and its jitter) is left to the function's name where the function
  determines it in every arm (`COMPANIONS`).
Names that collide fall back, for the colliding arms only, to every varied setting, then to
more digits, then to the stored label; a study's `[report.names]` names are kept as given.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from study.engine.studies.identity import arm_name, label
from study.engine.studies.resolved import with_overrides
from study.engine.studies.run_schema import RunConfig
from study.engine.studies.setting_words import phrase, setting

SECTIONS = ("data", "model", "training")
NO_SETTINGS = "base"  # the name of an arm that varies nothing (a study without axes)


def short_names(arms: list[Mapping[str, Any]], base: Mapping[str, Any], *,
                given: Mapping[str, str] | None = None,
                always: Iterable[str] = ()) -> list[str]:
    """One name per arm (its overrides: axis path -> value, as the study expands them), in
    the arms' order; equal overrides get equal names, different ones different names.

    `base`: the study's base run configuration ([data], [model], [training], unresolved);
    `given`: `[report.names]` (automatic name -> display name), kept as they are;
    `always`: axis paths (or settings) shown in every name ([grid] and [random] axes)."""
    given = given or {}
    identity = [json.dumps(arm, sort_keys=True, default=str) for arm in arms]
    unique = list(dict.fromkeys(identity))
    first = {key: arms[identity.index(key)] for key in unique}
    resolved_base = _resolved(dict(base))
    values = {key: _setting_values(first[key], resolved_base) for key in unique}
    base_values = _setting_values({}, resolved_base, settings_of=values.values())
    varied = [name for name in dict.fromkeys(n for v in values.values() for n in v)
              if len({_canonical(v.get(name)) for v in values.values()}) > 1]
    shown_always = {setting(a) for a in always} | {n for n in varied if _is_mark(n, first)}
    redundant = _determined(varied, list(values.values()), shown_always)

    names: dict[str, str] = {}
    fixed = {key: given[arm_name(first[key])] for key in unique if arm_name(first[key]) in given}
    for level in range(4):
        for key in unique:
            if key in fixed:
                names[key] = fixed[key]
            elif level == 0 or key in clashing:
                names[key] = _name(level, first[key], values[key], base_values, varied,
                                   shown_always, redundant)
        counts: dict[str, int] = {}
        for name in names.values():
            counts[name] = counts.get(name, 0) + 1
        clashing = {key for key, name in names.items() if counts[name] > 1 and key not in fixed}
        if not clashing:
            break
    for i, key in enumerate(sorted(clashing, key=unique.index), start=1):
        names[key] = f"{names[key]} ({i})"  # two arms whose labels agree to the last digit
    return [names[key] for key in identity]


def _name(level: int, arm: Mapping[str, Any], values: dict, base_values: dict,
          varied: list[str], shown_always: set[str], redundant: set[str]) -> str:
    """Level 0: the settings that say how the arm differs; 1: every varied setting; 2: the
    same with 6 digits; 3: the stored label."""
    if level == 3:
        return label(dict(arm)) or NO_SETTINGS
    if not varied:
        return ", ".join(_phrase(n, v) for n, v in values.items()) or NO_SETTINGS
    shown = list(varied)
    if level == 0:
        shown = [n for n in varied if n not in redundant and (
            n in shown_always or _canonical(values.get(n)) != _canonical(base_values.get(n)))]
        if not any(n not in shown_always for n in shown):
            # The base run's values of a [zip]: its first setting ("bowl, SGD lr=0.95").
            shown += [n for n in varied if n not in shown_always][:1]
        if "learning_rate" in shown and "optimizer" in varied and "optimizer" not in shown:
            shown.append("optimizer")
        if "optimizer" in shown and "learning_rate" in varied and "learning_rate" not in shown:
            shown.append("learning_rate")
        shown = [n for n in varied if n in shown] or varied[:1]
    merged = "learning_rate" in shown and "optimizer" in shown  # "Adam lr=0.3": one phrase
    digits = 6 if level == 2 else 3
    parts = []
    for n in shown:
        if n not in values or (merged and n == "learning_rate"):
            continue
        text = _phrase(n, values[n], digits)
        if merged and n == "optimizer":
            text += " " + _phrase("learning_rate", values["learning_rate"], digits)
        parts.append(text)
    return ", ".join(parts) or NO_SETTINGS


# Settings that go with another, as a function's start goes with the function: where the
# other determines them in every arm (a [zip] of functions and their starts), its name says
# enough ("saddle, Adam lr=0.01", not "..., start=[-1.5,0.01], start jitter=0.002").
COMPANIONS = {"start": "dataset", "start_jitter": "dataset"}


def _determined(varied: list[str], arms: list[dict], keep: set[str]) -> set[str]:
    """The COMPANIONS whose value follows, in every arm, from their companion's (varied too);
    settings in `keep` are never left out."""
    out: set[str] = set()
    for name in varied:
        companion = COMPANIONS.get(name)
        if name in keep or companion not in varied:
            continue
        follows: dict[str, str] = {}
        if all(follows.setdefault(_canonical(arm.get(companion)), _canonical(arm.get(name)))
               == _canonical(arm.get(name)) for arm in arms):
            out.add(name)
    return out


def _phrase(name: str, entry: tuple, digits: int = 3) -> str:
    value, args, _ = entry
    return phrase(name, value, args, digits)


def _is_mark(name: str, arms: Mapping[str, Mapping[str, Any]]) -> bool:
    """A search's round or repeat: a label of the runs, not a setting of the base run."""
    return any(path.startswith("search.") and setting(path) == name
               for arm in arms.values() for path in arm)


def _resolved(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every default filled in, so that a value written out and the
    same value left to its default compare equal; as written if it does not validate."""
    try:
        return RunConfig.model_validate(config, context={"light": True}).model_dump(mode="json")
    except (ValidationError, TypeError, ValueError):
        return copy.deepcopy(config)


def _setting_values(arm: Mapping[str, Any], base: dict[str, Any],
                    settings_of: Iterable[dict] | None = None) -> dict[str, tuple]:
    """setting -> (value, argument table) of the arm's resolved configuration, for each
    setting the arm's axes touch (or, with `settings_of`, the settings those arms touch)."""
    config = _resolved(with_overrides(base, {p: v for p, v in arm.items()
                                             if p.split(".")[0] in (*SECTIONS, "task")}))
    wanted: dict[str, str | None] = {}
    for path in arm:
        parts = path.split(".")
        wanted.setdefault(setting(path), parts[0] if parts[0] in SECTIONS else None)
    for other in settings_of or ():
        for name, (_, _, section) in other.items():
            wanted.setdefault(name, section)
    out = {}
    for name, section in wanted.items():
        if section is None:  # the task, or a search's round / repeat
            value = arm.get(f"search.{name}", arm.get(name, config.get(name)))
            out[name] = (value, None, None)
            continue
        node = config.get(section) or {}
        value = node.get(name)
        if name == "schedule" and isinstance(value, dict) and value.get("kind") == "constant":
            value = {"kind": "constant"}  # a constant rate ignores the decay's settings
        out[name] = (value, node.get(f"{name}_args"), section)
    return {name: (value, args or None, section) for name, (value, args, section) in
            out.items()}


def _canonical(entry: tuple | None) -> str:
    if entry is None:
        return "null"
    value, args, _ = entry
    return json.dumps([None if value == "none" else value, args or {}], sort_keys=True,
                      default=str)
