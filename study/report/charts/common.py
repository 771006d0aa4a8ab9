"""What the charts share: the study's order of values, colours as hex, the legend toggle."""

from __future__ import annotations

import pandas as pd

from study.report.data import readable
from study.report.figures import as_text  # the figures' text of settings, for the same legends

__all__ = ["as_text", "readable"]

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # a name only: nothing fetches it
FONT = {"font": "system-ui, sans-serif"}
TOGGLE = "shown"  # the legend-bound selection: click an entry to show only it, shift adds one
MANY_MARKS = 4000  # above this many data rows, draw on a canvas (an SVG of that many nodes drags)


def order(runs: pd.DataFrame, column: str | None) -> list[str] | None:
    """The column's values in the order the study lists its arms."""
    if not column:
        return None
    return list(dict.fromkeys(readable(v, column) for v in runs[column]))


def hex_colours(colours: dict) -> tuple[list[str], list[str]]:
    """A `Palette`'s {value: (r, g, b)} as a Vega scale's domain and range."""
    return list(colours), ["#%02x%02x%02x" % tuple(round(255 * c) for c in rgb)
                           for rgb in colours.values()]


def colour(field: str, colours: dict, title: str) -> dict:
    domain, range_ = hex_colours(colours)
    return {"field": field, "type": "nominal", "title": title,
            "scale": {"domain": domain, "range": range_}}


def toggled(field: str) -> list[dict]:
    """A selection bound to the legend: a click on an entry keeps that arm, shift-click adds."""
    return [{"name": TOGGLE, "select": {"type": "point", "fields": [field]}, "bind": "legend"}]


def faded(strong: float, weak: float = 0.06) -> dict:
    return {"condition": {"param": TOGGLE, "value": strong, "empty": True}, "value": weak}


def base(title: str, description: str) -> dict:
    return {"$schema": SCHEMA, "title": {"text": title, "anchor": "start", "fontSize": 13},
            "description": description, "config": {**FONT, "view": {"stroke": "#ddd"}}}
