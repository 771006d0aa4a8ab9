"""Optimizer paths you can steer: a learning-rate slider and a seed picker redraw every path.

One panel per function (`dataset`): its contour lines (geometric levels where its values span
orders of magnitude, `surfaces.contour_grid`), its minimum (a cross), and each optimizer's
path at the chosen learning rate from the chosen seed's start, cut at the window's edge. Beside
each panel, the read-outs of those runs as stored: distance to the minimum (the saddle: to its
stationary point), path length, and whether the walk diverged. The slider moves over the
learning rates the study crosses with its optimizers (shown only when it does, as in
optimizer_landscapes; a study of one rate per arm, as optimizer_paths, gets the seed picker
alone, with one colour per arm).
"""

from __future__ import annotations

import contourpy
import numpy as np
import pandas as pd

from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults
from study.surfaces import SURFACES, contour_grid

PANEL = 300  # px, each function's square


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    frame = data.artifacts("path")
    panel = spec.col or "dataset"
    if frame.empty or panel not in frame or not set(frame[panel]) <= set(SURFACES):
        return None
    runs = data.runs.set_index("key")
    hue = spec.hue or "optimizer"
    sliding = ("learning_rate" in frame
               and frame.groupby([panel, hue])["learning_rate"].nunique().min() > 1)
    if not sliding:
        hue = "name"
    rates = sorted(frame["learning_rate"].astype(float).unique()) if sliding else [None]
    rank = {rate: i for i, rate in enumerate(rates)}
    seeds = sorted(int(s) for s in frame["seed"].unique())
    functions = list(dict.fromkeys(frame[panel]))

    points, readouts = [], []
    for _, run in frame.iterrows():
        path = np.asarray(run["value"], dtype=float).reshape(-1, 2)
        rate = float(run["learning_rate"]) if sliding else None
        label, function, seed = common.readable(run[hue], hue), run[panel], int(run["seed"])
        points += [(function, label, rank[rate], seed, step, x, y)
                   for step, (x, y) in enumerate(path)]
        stored = runs.loc[run["key"]]
        readouts.append({"function": function, "hue": label, "rank": rank[rate],
                         "seed": seed, "rate": rate,
                         "distance": stored.get("distance"),
                         "path_length": stored.get("path_length"),
                         "status": stored["status"], "arm": str(run["name"])})
    paths = pd.DataFrame(points, columns=["function", "hue", "rank", "seed", "step", "x", "y"])
    readouts = pd.DataFrame(readouts)
    contours = pd.DataFrame(_contour_rows(functions),
                            columns=["function", "line", "order", "x", "y"])

    colour = common.colour("hue", palette(hue), hue if hue != "name" else "arm")
    params = [{"name": "seed", "value": seeds[0],
               "bind": {"input": "select", "options": seeds, "name": "seed (start) "}}]
    if sliding:
        middle = len(rates) // 2
        params.insert(0, {"name": "rate", "value": middle, "bind": {
            "input": "range", "min": 0, "max": len(rates) - 1, "step": 1,
            "name": f"learning rate: {len(rates)} log-spaced, {rates[0]:g} to {rates[-1]:g}; "
                    f"this one is number "}})
    chosen = "datum.seed === seed" + (" && datum.rank === rate" if sliding else "")
    rows = [{"hconcat": [_panel(name, chosen, colour), _readout(name, chosen, colour,
                                                               sliding)]}
            for name in functions]
    title = spec.title or ("Optimizer paths: pick a learning rate and a start" if sliding
                           else "Optimizer paths: pick a start")
    vl = common.base(title, f"{title}. One panel per function, each optimizer's path over "
                            "the contours, and the stored distance and path length beside it.")
    vl.update({"params": params, "vconcat": rows,
               "resolve": {"scale": {"color": "shared"}}})
    return Chart(vl, {"paths": column_table(paths), "readouts": column_table(readouts),
                      "contours": column_table(contours)})


def _contour_rows(functions: list[str]) -> list[tuple]:
    rows = []
    for name in functions:
        xs, ys, f, levels = contour_grid(SURFACES[name], points=120)
        generator = contourpy.contour_generator(xs, ys, f)
        for level in levels:
            for line in generator.lines(float(level)):
                line_id = f"{name}:{len(rows)}"
                rows.extend((name, line_id, i, float(x), float(y))
                            for i, (x, y) in enumerate(line[:: max(1, len(line) // 80)]))
    return rows


def _panel(name: str, chosen: str, colour: dict) -> dict:
    surface = SURFACES[name]
    x = {"field": "x", "type": "quantitative", "scale": {"domain": list(surface.x_range)},
         "title": "x"}
    y = {"field": "y", "type": "quantitative", "scale": {"domain": list(surface.y_range)},
         "title": "y"}
    here = f"datum.function === {name!r}"
    return {
        "title": f"f(x, y) = {surface.formula}", "width": PANEL, "height": PANEL,
        "layer": [
            {"data": {"name": "contours"}, "transform": [{"filter": here}],
             "mark": {"type": "line", "stroke": "#c8c8c8", "strokeWidth": 0.8, "clip": True},
             "encoding": {"x": x, "y": y, "detail": {"field": "line"},
                          "order": {"field": "order"}}},
            {"data": {"name": "paths"}, "transform": [{"filter": f"{here} && {chosen}"}],
             "mark": {"type": "line", "strokeWidth": 1.5, "clip": True,
                      "point": {"size": 12, "filled": True}},
             "encoding": {"x": x, "y": y, "color": colour, "order": {"field": "step"},
                          "tooltip": [{"field": "hue", "title": "optimizer"},
                                      {"field": "step"}, {"field": "x", "format": ".4g"},
                                      {"field": "y", "format": ".4g"}]}},
            {"data": {"values": [{"x": surface.centre[0], "y": surface.centre[1]}]},
             "mark": {"type": "point", "shape": "cross", "size": 120, "color": "black",
                      "filled": True},
             "encoding": {"x": x, "y": y}},
        ]}


def _readout(name: str, chosen: str, colour: dict, sliding: bool) -> dict:
    """The stored numbers of the paths shown, one line per optimizer."""
    here = f"datum.function === {name!r}"
    line = ("datum.hue + ': distance ' + format(datum.distance, '.3~g') + ', path length '"
            " + format(datum.path_length, '.3~g') + (datum.status === 'finished' ? '' : ' ('"
            " + datum.status + ')')")
    header = ("'learning rate ' + format(datum.rate, '.3~g') + ', seed ' + datum.seed"
              if sliding else "'seed ' + datum.seed")
    return {
        "data": {"name": "readouts"}, "width": 330, "height": PANEL, "view": {"stroke": None},
        "transform": [{"filter": f"{here} && {chosen}"},
                      {"calculate": line, "as": "readout"},
                      {"calculate": header, "as": "header"}],
        "layer": [
            {"mark": {"type": "text", "align": "left", "x": 0, "fontSize": 11},
             "encoding": {"y": {"field": "hue", "type": "nominal", "axis": None,
                                "sort": colour["scale"]["domain"]},
                          "text": {"field": "readout"}, "color": colour}},
            {"transform": [{"window": [{"op": "row_number", "as": "row"}]},
                           {"filter": "datum.row === 1"}],
             "mark": {"type": "text", "align": "left", "x": 0, "y": -8, "fontSize": 11,
                      "fontWeight": "bold"},
             "encoding": {"text": {"field": "header"}}},
        ]}
