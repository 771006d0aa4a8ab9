"""Which arm a view starts on: a figure's `arm` ({setting: value}, by last names), matched as a
claim's arm is (`identity.selects`)."""

from __future__ import annotations

from typing import Any

from study.engine.studies.identity import selects
from study.report.data import StudyResults


def chosen_arm(data: StudyResults, names: list[str], selector: dict[str, Any]) -> str:
    """The display name of the first of `names` (in the study's order) whose runs' settings
    match every entry of `selector`; the first name when none does or `selector` is empty
    (loading the study file refuses a selector that matches no arm)."""
    runs = data.runs[data.runs["name"].isin(names)]
    matching = {name for name, key in zip(runs["name"], runs["key"])
                if selects(selector, data.overrides.get(key, {}))}
    return next((n for n in names if n in matching), names[0])
