"""Heatmaps that answer the pointer: a cell's value, its runs and which seeds made it.

As the static "heatmap" figure: one cell per (y, x), the share of runs at or above the
threshold (with `threshold`) or the mean of the metric; the cell under the pointer names both
settings, the value, the number of runs and, with a threshold, the seeds that reached it.
"""

from __future__ import annotations

import pandas as pd

from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults
from study.report.figures import heatmap_values


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    shown = heatmap_values(data, spec)
    if shown is None:
        return None
    runs, what = shown
    keys = [c for c in (spec.col, spec.y, spec.x) if c]
    cells = []
    for key, part in runs.groupby(keys, sort=False):
        cell = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        cell.update(value=float(part["value"].mean()), runs=len(part))
        if spec.threshold is not None:
            passed = sorted(part.loc[part["value"] == 1.0, "seed"].astype(int))
            cell["seeds"] = ", ".join(map(str, passed)) or "none"
        cells.append(cell)
    table = pd.DataFrame(cells)
    low, high = float(table["value"].min()), float(table["value"].max())
    # `runs` holds the settings as text already (heatmap_values): their order as they come.
    x = {"field": spec.x, "type": "nominal", "title": spec.x,
         "sort": list(dict.fromkeys(runs[spec.x]))}
    y = {"field": spec.y, "type": "nominal", "title": spec.y,
         "sort": list(dict.fromkeys(runs[spec.y]))}
    tooltip = [{"field": spec.y}, {"field": spec.x}, *([{"field": spec.col}] if spec.col else []),
               {"field": "value", "title": what, "format": ".3g"}, {"field": "runs"},
               *([{"field": "seeds", "title": f"seeds reaching {spec.threshold:g}"}]
                 if spec.threshold is not None else [])]
    layers = [
        {"mark": {"type": "rect"}, "encoding": {
            "x": x, "y": y, "tooltip": tooltip,
            "color": {"field": "value", "type": "quantitative", "title": what,
                      "scale": {"scheme": "viridis", "domain": [low, high]}}}},
        {"mark": {"type": "text", "fontSize": 11}, "encoding": {
            "x": x, "y": y, "text": {"field": "value", "format": ".2f"}, "tooltip": tooltip,
            "color": {"condition": {"test": f"datum.value < {(low + high) / 2!r}",
                                    "value": "white"}, "value": "black"}}},
    ]
    inner = {"width": {"step": 52}, "height": {"step": 30}, "layer": layers}
    title = spec.title or f"{what.capitalize()} by {spec.y} and {spec.x}"
    vl = common.base(title, f"{title}; hover a cell for its runs and seeds.")
    vl["data"] = {"name": "cells"}
    if spec.col:
        vl["facet"] = {"column": {"field": spec.col, "type": "nominal", "title": spec.col,
                                  "sort": list(dict.fromkeys(runs[spec.col]))}}
        vl["spec"] = inner
    else:
        vl.update(inner)
    return Chart(vl, {"cells": column_table(table)})
