"""Final metrics that answer the pointer: every seed's dot names its arm, seed and value.

As the static "final" figure: one column per value of `x` (arms by default), each finished
run a dot (jittered sideways by a fixed amount per seed, so the picture is the same every
time), the median as a diamond with its order-statistic interval as a rule. Diverged runs are
counted in the column's label, not drawn. The legend (the hue) toggles arms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.engine.results import stats
from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults

SLOT = 0.8  # the share of a column's width its hues share
JITTER = 0.25  # of a hue's slot, each way


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    runs = data.runs
    if spec.metric not in runs:
        return None
    x = spec.x or "name"
    hue = spec.hue or x
    runs = common.as_text(runs.assign(arm=runs["name"].astype(str)), [x, hue])
    diverged = runs[runs["status"] == "diverged"].groupby(x).size()
    shown = runs[(runs["status"] == "finished") & runs[spec.metric].notna()].copy()
    if shown.empty:
        return None
    columns = list(dict.fromkeys(runs[x]))
    labels = {v: f"{v} ({diverged[v]} diverged)" if v in diverged else v for v in columns}
    hues = list(dict.fromkeys(runs[hue]))
    dodge = spec.hue is not None and len(hues) > 1
    width = SLOT / len(hues) if dodge else SLOT
    centre = {h: (i + 0.5) * width - SLOT / 2 if dodge else 0.0 for i, h in enumerate(hues)}
    shown["column"] = shown[x].map(labels)
    spread = np.linspace(-JITTER, JITTER, max(2, shown["seed"].nunique()))
    seed_rank = {s: i for i, s in enumerate(sorted(shown["seed"].unique()))}
    shown["offset"] = [centre[h] + width * spread[seed_rank[s] % len(spread)]
                       for h, s in zip(shown[hue], shown["seed"])]
    seeds = shown[["column", hue, "arm", "seed", spec.metric, "offset"]].rename(
        columns={spec.metric: "value"}).assign(layer="seed")
    medians = []
    for (column, h), values in shown.groupby(["column", hue], sort=False)[spec.metric]:
        interval = stats.median_ci(values.to_numpy(float))
        medians.append({"column": column, hue: h, "value": float(np.median(values)),
                        "low": interval.low, "high": interval.high, "runs": len(values),
                        "offset": centre[h], "layer": "median"})
    table = pd.concat([pd.DataFrame(medians), seeds], ignore_index=True)

    step = max(70, 26 * len(hues) if dodge else 70)
    slanted = len(columns) > 2 and max(len(t) for t in labels.values()) > 9
    x_enc = {"field": "column", "type": "nominal", "sort": [labels[v] for v in columns],
             "title": x if x != "name" else "", "scale": {"paddingInner": 0, "paddingOuter": 0},
             "axis": {"labelAngle": -30 if slanted else 0, "labelLimit": 220}}
    # An offset is from the band's start: with no padding the band is `step` wide.
    offset = {"field": "offset", "type": "quantitative", "scale": {
        "domain": [-0.5, 0.5], "range": [0, step]}}
    colour = common.colour(hue, palette(hue), hue if hue != "name" else "arm")
    metric = spec.metric.replace("_", " ")
    where = lambda layer: [{"filter": f"datum.layer === '{layer}'"}]  # noqa: E731
    y = {"field": "value", "type": "quantitative", "title": metric, "scale": {"zero": False}}
    layers = [
        {"transform": where("seed"), "mark": {"type": "circle", "size": 28},
         "params": common.toggled(hue),
         "encoding": {"x": x_enc, "xOffset": offset, "y": y, "color": colour,
                      "opacity": common.faded(0.55, 0.05),
                      "tooltip": [{"field": "arm"}, {"field": "seed"},
                                  {"field": "value", "title": metric, "format": ".4g"}]}},
        {"transform": where("median"), "mark": {"type": "rule", "strokeWidth": 2},
         "encoding": {"x": x_enc, "xOffset": offset, "y": {"field": "low", "type":
                                                            "quantitative"},
                      "y2": {"field": "high"}, "color": colour,
                      "opacity": common.faded(1, 0.08)}},
        {"transform": where("median"), "mark": {"type": "point", "shape": "diamond",
                                                 "filled": True, "size": 70},
         "encoding": {"x": x_enc, "xOffset": offset, "y": y, "color": colour,
                      "opacity": common.faded(1, 0.08),
                      "tooltip": [{"field": "column", "title": x if x != "name" else "arm"},
                                  *([{"field": hue}] if dodge else []),
                                  {"field": "value", "title": f"median {metric}",
                                   "format": ".4g"},
                                  {"field": "low", "title": "interval from", "format": ".4g"},
                                  {"field": "high", "title": "to", "format": ".4g"},
                                  {"field": "runs", "title": "finished runs"}]}},
    ]
    title = spec.title or f"Final {metric}: every seed, median and its interval"
    vl = common.base(title, f"{title}; hover a dot for its arm and seed, click the legend to "
                            "show one (shift-click for more).")
    vl.update({"data": {"name": "final"}, "width": {"step": step}, "height": 280,
               "layer": layers})
    renderer = "canvas" if len(table) > common.MANY_MARKS else "svg"
    return Chart(vl, {"final": column_table(table)}, renderer)
