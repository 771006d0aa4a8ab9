"""The axes of a study: which setting each varies, and the combinations they make.

Axis keys are paths into the run configuration (`training.optimizer`, `model.hidden`) or, when
unambiguous, a field's bare name (`optimizer`). `[grid]` crosses its lists, `[zip]` varies its
lists together, `[random]` draws `samples` points (uniform or log-uniform, seeded).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
from typing import Any

import numpy as np

from study.engine.studies.resolved import validated_config, with_overrides
from study.engine.studies.run_schema import Data, Model, Training
from study.engine.studies.study_schema import RandomAxis, RandomSearch

SECTIONS = ("data", "model", "training")


@functools.cache
def field_paths() -> dict[str, list[str]]:
    """Every settable path `section.field`, and for each bare field name the paths it may mean."""
    by_name: dict[str, list[str]] = {}
    for section, model in (("data", Data), ("model", Model), ("training", Training)):
        for name in model.model_fields:
            by_name.setdefault(name, []).append(f"{section}.{name}")
    return by_name


def resolve_key(key: str) -> str:
    """`optimizer` -> `training.optimizer`; a dotted path is checked to start at a real field."""
    by_name = field_paths()
    all_paths = sorted(p for paths in by_name.values() for p in paths)
    if "." in key:
        section, name = key.split(".", 2)[:2]
        if section in SECTIONS and f"{section}.{name}" in all_paths:
            return key
    elif key in by_name and len(by_name[key]) == 1:
        return by_name[key][0]
    elif key in by_name:
        raise ValueError(f"{key!r} is ambiguous: write one of {', '.join(by_name[key])}")
    close = difflib.get_close_matches(key, all_paths + sorted(by_name), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{key!r} is not a setting of a run{hint}")


def safe_resolve(key: str) -> str | None:
    try:
        return resolve_key(key)
    except ValueError:
        return None


def check_axes(base, grid, zipped, random_search, problems, light=False):
    """Resolve every axis key and validate every axis value on its own, with its location."""
    resolved: dict[str, list[Any]] = {}
    for section, axes in (("grid", grid), ("zip", zipped)):
        for key, values in axes.items():
            try:
                path = resolve_key(key)
            except ValueError as error:
                problems.append(f"{section}.{key}: {error}")
                continue
            for i, value in enumerate(values):
                validated_config(with_overrides(base, {path: value}), f"{section}.{key}[{i}]",
                                 problems, focus=path, light=light)
            if section == "grid":
                resolved[path] = values
    lengths = {key: len(values) for key, values in zipped.items()}
    if len(set(lengths.values())) > 1:
        problems.append("zip: the lists must have one length; got "
                        + ", ".join(f"{k} = {n}" for k, n in lengths.items()))
    if random_search is not None:
        for key, axis in random_search.axes.items():
            try:
                path = resolve_key(key)
            except ValueError as error:
                problems.append(f"random.axes.{key}: {error}")
                continue
            for end, value in (("low", axis.low), ("high", axis.high)):
                value = int(round(value)) if axis.integer else value
                validated_config(with_overrides(base, {path: value}),
                                 f"random.axes.{key}.{end}", problems, focus=path, light=light)
    return resolved


def combinations(grid: dict[str, list[Any]], zipped: dict[str, list[Any]],
                  random_search: RandomSearch | None):
    zip_paths = {resolve_key(k): v for k, v in zipped.items()}
    zip_rows = ([dict(zip(zip_paths, row)) for row in zip(*zip_paths.values())]
                if zip_paths else [{}])
    samples = random_samples(random_search) if random_search else [{}]
    for values in itertools.product(*grid.values()):
        for row in zip_rows:
            for sample in samples:
                yield {**dict(zip(grid, values)), **row, **sample}


def random_samples(search: RandomSearch) -> list[dict[str, Any]]:
    """`samples` points, each axis uniform (or log-uniform) in its range; fixed by `seed`."""
    rng = np.random.default_rng(search.seed)
    samples = []
    for _ in range(search.samples):
        point = {}
        for key, axis in search.axes.items():
            if axis.scale == "log":
                value = 10 ** rng.uniform(math.log10(axis.low), math.log10(axis.high))
            else:
                value = rng.uniform(axis.low, axis.high)
            point[resolve_key(key)] = axis_value(axis, value)
        samples.append(point)
    return samples


def axis_value(axis: RandomAxis, value: float) -> int | float:
    # 6 significant digits: readable labels, and keys that do not hinge on the last bit.
    return int(round(value)) if axis.integer else float(f"{value:.6g}")
