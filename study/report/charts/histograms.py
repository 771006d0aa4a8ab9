"""Activations layer by layer: a picker over the arms (initialiser x activation) redraws the
hidden layers' histograms together, each with its numbers beside it.

For the arm picked: per hidden layer, the share of units at each activation value over all
inputs and seeds (the stored histograms' counts summed over seeds, as the static figure), and
under it the layer's median over seeds of the stored std, saturated share (sigmoid or tanh
units within 0.01 of their bounds) and dead share (ReLU-like units at 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults

WIDTH = 170  # px, each layer's histogram


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    frame = data.artifacts("histograms")
    if frame.empty:
        return None
    names = [n for n in data.names if n in set(frame["name"])]
    layers = len(frame["value"].iloc[0])
    bins, numbers = [], []
    for name in names:
        runs = frame[frame["name"] == name]["value"].tolist()
        for j in range(layers):
            counts = np.sum([run[j]["counts"] for run in runs], axis=0)
            edges = np.asarray(runs[0][j]["edges"], dtype=float)
            for low, high, count in zip(edges[:-1], edges[1:], counts):
                bins.append((name, j + 1, low, high, count / counts.sum()))
        finished = data.runs[(data.runs["name"] == name) & (data.runs["status"] == "finished")]
        for j in range(1, layers + 1):
            numbers.append({"arm": name, "layer": j, "runs": len(finished), **{
                kind: _median(finished, f"layer{j}_{kind}")
                for kind in ("std", "saturated", "dead")}})
    bins = pd.DataFrame(bins, columns=["arm", "layer", "low", "high", "share"])
    colour = common.hex_colours(palette("name"))
    params = [{"name": "arm", "value": names[0],
               "bind": {"input": "select", "options": names, "name": "initialiser, activation "}}]
    views = [_layer(j, colour) for j in range(1, layers + 1)]
    title = spec.title or "Hidden-layer activations, layer by layer: pick an initialiser"
    vl = common.base(title, f"{title}. The histograms of every hidden layer of the arm "
                            "picked, with each layer's median std, saturated and dead shares.")
    vl.update({"params": params, "hconcat": views, "spacing": 6})
    return Chart(vl, {"bins": column_table(bins),
                      "numbers": column_table(pd.DataFrame(numbers))})


def _median(runs: pd.DataFrame, column: str) -> float | None:
    values = pd.to_numeric(runs[column], errors="coerce").dropna() if column in runs else []
    return float(np.median(values)) if len(values) else None


def _layer(j: int, colour: tuple[list[str], list[str]]) -> dict:
    here = f"datum.arm === arm && datum.layer === {j}"
    shown = lambda field, form: (f"(isValid(datum.{field}) ? format(datum.{field}, '{form}')"  # noqa
                                 " : 'n/a')")
    numbers = (f"'std ' + {shown('std', '.3~g')} + ', saturated ' + {shown('saturated', '.1%')}"
               f" + ', dead ' + {shown('dead', '.1%')}")
    return {"vconcat": [
        {"title": f"layer {j}", "width": WIDTH, "height": 140, "data": {"name": "bins"},
         "transform": [{"filter": here}],
         "mark": {"type": "rect"},
         "encoding": {
             "x": {"field": "low", "type": "quantitative", "title": "activation",
                   "scale": {"zero": False, "nice": False}},
             "x2": {"field": "high"},
             "y": {"field": "share", "type": "quantitative",
                   "title": "share of units" if j == 1 else None,
                   "axis": {"format": ".0%"} if j == 1 else None},
             "y2": {"datum": 0},
             "color": {"field": "arm", "type": "nominal", "legend": None,
                       "scale": {"domain": colour[0], "range": colour[1]}},
             "tooltip": [{"field": "low", "title": "from", "format": ".3g"},
                         {"field": "high", "title": "to", "format": ".3g"},
                         {"field": "share", "format": ".1%"}]}},
        {"data": {"name": "numbers"}, "width": WIDTH, "height": 16, "view": {"stroke": None},
         "transform": [{"filter": here}, {"calculate": numbers, "as": "readout"}],
         "mark": {"type": "text", "align": "left", "x": 0, "fontSize": 10},
         "encoding": {"text": {"field": "readout"}}},
    ]}
