"""Learning curves that answer the pointer: each seed's value, its arm and seed, in a tooltip.

Per arm (the figure's hue), the median over seeds as a line with its order-statistic interval
as a band (as in the static figure), and each seed's own values as faint dots at up to
`SEED_STEPS` logged steps: the dot under the pointer names arm, seed, step and value. The
legend toggles arms. A training metric is drawn with its validation twin (dashed), as in the
figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.engine.results import stats
from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults
from study.report.figures import curves_history

WRAP = 4  # panels per line of a chart faceted by one column
SEED_STEPS = 40  # per run, the seeds' dots at this many logged steps at most (evenly spaced)


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    shown = curves_history(data, spec)
    if shown is None:
        return None
    long, both = shown
    hue = spec.hue or "name"
    facets = [c for c in (spec.col, spec.row) if c]
    long = long.assign(arm=long["name"].astype(str)).dropna(subset=["value"])
    long = long[np.isfinite(long["value"].astype(float))]
    keys = [hue, *facets, "split", "step"]
    medians = pd.DataFrame([
        {**dict(zip(keys, key)), **_median_row(values.to_numpy(float)), "layer": "median"}
        for key, values in long.groupby(keys, sort=False)["value"]])
    kept = _evenly(sorted(long["step"].unique()), SEED_STEPS)
    seeds = long[long["step"].isin(kept)].copy()
    seeds["layer"] = "seed"
    table = pd.concat([medians, seeds[[*keys, "arm", "seed", "value", "layer"]]],
                      ignore_index=True)

    runs = data.runs
    colour = common.colour(hue, palette(hue), hue if hue != "name" else "arm")
    x = {"field": "step", "type": "quantitative", "title": "training step"}
    y_title = spec.metric if both else spec.metric.replace("_", " ")
    where = lambda layer: [{"filter": f"datum.layer === '{layer}'"}]  # noqa: E731
    dash = ({"strokeDash": {"field": "split", "type": "nominal", "title": "split",
                            "sort": ["training", "validation"]}} if both else {})
    layers = [
        {"transform": where("median"), "mark": {"type": "area", "opacity": 0.16},
         "encoding": {"x": x, "y": {"field": "low", "type": "quantitative", "title": y_title},
                      "y2": {"field": "high"}, "color": colour, "detail": {"field": "split"},
                      "opacity": common.faded(1, 0.02)}},
        {"transform": where("median"), "mark": {"type": "line", "strokeWidth": 2},
         "params": common.toggled(hue),
         "encoding": {"x": x, "y": {"field": "value", "type": "quantitative"}, "color": colour,
                      **dash, "opacity": common.faded(1, 0.08)}},
        {"transform": where("seed"), "mark": {"type": "circle", "size": 14},
         "encoding": {"x": x, "y": {"field": "value", "type": "quantitative"}, "color": colour,
                      "opacity": common.faded(0.35, 0.0),
                      "tooltip": [{"field": "arm"}, {"field": "seed"}, {"field": "step"},
                                  *([{"field": "split"}] if both else []),
                                  {"field": "value", "format": ".4g",
                                   "title": y_title}]}},
    ]
    inner = {"width": 210 if facets else 520, "height": 170 if facets else 260, "layer": layers}
    title = spec.title or f"{spec.metric} during training"
    vl = common.base(title, f"{title}: median per {hue} over seeds, each seed a dot; "
                            "hover a dot for its arm, seed and value; click the legend to "
                            "show one arm (shift-click for more).")
    vl["data"] = {"name": "curves"}
    if facets:
        field = lambda column: {"field": column, "type": "nominal", "title": column,  # noqa
                                "sort": common.order(runs, column)}
        if spec.row:
            vl["facet"] = {"row": field(spec.row), **({"column": field(spec.col)}
                                                      if spec.col else {})}
        else:  # one facet field: wrapped, WRAP panels a line, so the page needs no scrolling
            vl["facet"], vl["columns"] = field(spec.col), WRAP
        vl["spec"] = inner
        vl["resolve"] = {"scale": {"y": "shared"}}
    else:
        vl.update(inner)
    renderer = "canvas" if len(table) > common.MANY_MARKS else "svg"
    return Chart(vl, {"curves": column_table(table)}, renderer)


def _median_row(values: np.ndarray) -> dict:
    interval = stats.median_ci(values)
    return {"value": float(np.median(values)), "low": interval.low, "high": interval.high,
            "runs": len(values)}


def _evenly(steps: list, most: int) -> list:
    """At most `most` of the steps, evenly spaced, the first and last kept."""
    if len(steps) <= most:
        return list(steps)
    picks = np.unique(np.round(np.linspace(0, len(steps) - 1, most)).astype(int))
    return [steps[i] for i in picks]
