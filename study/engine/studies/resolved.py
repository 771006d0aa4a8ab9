"""A run configuration resolved: a study's base with an arm's values, validated, as JSON data."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from study.engine.studies import layer_list
from study.engine.studies.errors import messages
from study.engine.studies.identity import without_later_defaults
from study.engine.studies.run_schema import RunConfig


def with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    for path, value in overrides.items():
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = copy.deepcopy(value)
    return config


def validated_config(config, where, problems, focus=None, light=False):
    """The resolved (defaults filled in) config as plain JSON data, or None with problems.

    With `focus` (the path an axis sets), only problems at or below that path are reported,
    at `where` (the axis value's location): other settings may be incomplete until every axis
    has been applied, which the check of each whole combination covers.
    """
    try:
        run = RunConfig.model_validate(config, context={"light": light})
    except ValidationError as error:
        for message in messages(error, RunConfig):
            path, _, text = message.partition(": ")
            if focus is None:
                problems.append(f"{where}: {message}" if where else message)
            elif path == focus:
                problems.append(f"{where}: {text}")
            elif path.startswith(focus + ".") or path.startswith(focus + "["):
                problems.append(f"{where}: {path[len(focus):].lstrip('.')}: {text}")
        return None
    resolved = run.model_dump(mode="json")
    if run.model.layers is not None:
        shorthand = layer_list.as_shorthand(run.model)
        if shorthand is not None:  # one run, however its layers are written
            resolved["model"].update(shorthand, layers=None)
    return without_later_defaults(resolved)
