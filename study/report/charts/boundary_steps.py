"""Watch an XOR net learn: a step slider (with play) moves the decision boundary and a marker
on the loss curve together, for the arm and seed picked.

Three views side by side, driven by three controls (arm, seed, step):
- the boundary: P(class 1) over the plane after the chosen step, from the run's stored frames
  (`boundary_frames`: uint8, delta-coded, zlib). The page carries each run's artifact value as
  stored and `loader.js` decodes the chosen run's frames in the browser (`frames` in the
  payload), so a page holds every seed's every frame at the database's size;
- the run's training loss over its logged steps, the chosen step marked;
- the read-outs at that step, as stored: the run's loss and accuracy, and how many of the
  arm's seeds classify every point correctly then (its success rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study import boundary_frames
from study.engine.studies.study_schema import Figure
from study.report.charts import common
from study.report.charts.tables import Chart, column_table
from study.report.data import StudyResults
from study.report.figures import XOR_CORNERS
from study.report.selection import chosen_arm

SIDE = 260  # px, the boundary's square and the curve's height
SOLVED = 1.0  # accuracy on the points that counts as solved (the xor study's threshold)


def chart(data: StudyResults, spec: Figure, palette) -> Chart | None:
    frame = data.artifacts(boundary_frames.ARTIFACT)
    if frame.empty:
        return None
    names = [n for n in data.names if n in set(frame["name"])]
    start = chosen_arm(data, names, spec.arm)
    accuracy = "val_accuracy" if "val_accuracy" in data.history else "accuracy"
    history = data.history[data.history["run_key"].isin(frame["run_key"])]
    history = history.assign(arm=history["name"].astype(str))[
        ["arm", "seed", "step", "loss", accuracy]].rename(columns={accuracy: "accuracy"})
    solved = (history.assign(solved=history["accuracy"] >= SOLVED)
              .groupby(["arm", "step"], sort=False)
              .agg(solved=("solved", "sum"), seeds=("solved", "size")).reset_index())
    runs = {f"{row['name']}|{int(row['seed'])}": row["value"] for _, row in frame.iterrows()}
    first = next(iter(frame["value"]))
    steps = sorted(int(s) for s in history["step"].unique())
    seeds = sorted(int(s) for s in frame["seed"].unique())
    every = int(np.min(np.diff(steps))) if len(steps) > 1 else 1

    params = [
        {"name": "arm", "value": start,
         "bind": {"input": "select", "options": names, "name": "arm "}},
        {"name": "seed", "value": seeds[0],
         "bind": {"input": "select", "options": seeds, "name": "seed "}},
        {"name": "step", "value": steps[0],
         "bind": {"input": "range", "min": steps[0], "max": steps[-1], "step": every,
                  "name": "training step "}},
    ]
    half = (first["x"][1] - first["x"][0]) / 2
    scale = {"domain": [first["x"][0] - half, first["x"][-1] + half]}
    plane = {
        "title": "P(class 1) after the step", "width": SIDE, "height": SIDE,
        "layer": [
            {"data": {"name": "grid"},
             "mark": {"type": "rect"},
             "encoding": {
                 "x": {"field": "x0", "type": "quantitative", "scale": scale, "title": "x1"},
                 "x2": {"field": "x1"},
                 "y": {"field": "y0", "type": "quantitative", "scale": scale, "title": "x2"},
                 "y2": {"field": "y1"},
                 "color": {"field": "p", "type": "quantitative", "title": "P(class 1)",
                           "scale": {"scheme": "redblue", "reverse": True, "domain": [0, 1]}},
                 "tooltip": [{"field": "x", "title": "x1"}, {"field": "y", "title": "x2"},
                             {"field": "p", "title": "P(class 1)", "format": ".3f"}]}},
            {"data": {"values": [{"x": a, "y": b, "label": c} for a, b, c in XOR_CORNERS]},
             "mark": {"type": "point", "filled": True, "size": 90, "stroke": "black"},
             "encoding": {"x": {"field": "x", "type": "quantitative", "scale": scale},
                          "y": {"field": "y", "type": "quantitative", "scale": scale},
                          "fill": {"field": "label", "type": "nominal", "legend": None,
                                   "scale": {"domain": [0, 1], "range": ["black", "white"]}}}},
        ]}
    this_run = "datum.arm === arm && datum.seed === seed"
    curve = {
        "title": "training loss of this run", "width": SIDE + 60, "height": SIDE,
        "data": {"name": "history"}, "transform": [{"filter": this_run}],
        "layer": [
            {"mark": {"type": "line", "color": "#555"},
             "encoding": {"x": {"field": "step", "type": "quantitative",
                                "title": "training step"},
                          "y": {"field": "loss", "type": "quantitative",
                                "title": "training loss"}}},
            {"transform": [{"filter": "datum.step === step"}],
             "mark": {"type": "rule", "color": "#d62728", "strokeWidth": 2},
             "encoding": {"x": {"field": "step", "type": "quantitative"}}},
            {"transform": [{"filter": "datum.step === step"}],
             "mark": {"type": "point", "color": "#d62728", "filled": True, "size": 70},
             "encoding": {"x": {"field": "step", "type": "quantitative"},
                          "y": {"field": "loss", "type": "quantitative"}}},
        ]}
    readout = {
        "vconcat": [
            _text("history", f"{this_run} && datum.step === step",
                  "'step ' + datum.step + ': loss ' + format(datum.loss, '.4~g')"
                  " + ', accuracy ' + format(datum.accuracy, '.4~g')"),
            _text("solved", "datum.arm === arm && datum.step === step",
                  "'solved by ' + datum.solved + ' of ' + datum.seeds + ' seeds ('"
                  " + format(datum.solved / datum.seeds, '.0%') + ')'"),
        ]}
    title = spec.title or "Watch it learn: the decision boundary step by step"
    vl = common.base(title, f"{title}. Pick an arm and a seed, move the step slider or press "
                            "play: the boundary and the marker on the loss curve move "
                            "together; the read-outs are the stored numbers at that step.")
    vl.update({"params": params, "hconcat": [plane, curve, readout]})
    return Chart(vl, {"history": column_table(history), "solved": column_table(solved)},
                 frames={"dataset": "grid", "runs": runs, "key": ["arm", "seed"],
                         "step": "step", "levels": boundary_frames.LEVELS,
                         "play": {"min": steps[0], "max": steps[-1], "every": every}})


def _text(dataset: str, where: str, text: str) -> dict:
    return {"data": {"name": dataset}, "height": 20, "width": 250,
            "transform": [{"filter": where}, {"calculate": text, "as": "readout"}],
            "mark": {"type": "text", "align": "left", "x": 0, "fontSize": 12},
            "view": {"stroke": None},
            "encoding": {"text": {"field": "readout"}}}


def frame_rows(artifact: dict, step: int) -> pd.DataFrame:
    """What the page's boundary shows at `step` (the last frame at or before it): x, y, p.
    The Python twin of loader.js's frame decoding, for the tests."""
    steps, xs, ys, probability = boundary_frames.decode(artifact)
    k = max(i for i, s in enumerate(steps) if s <= step) if step >= steps[0] else 0
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return pd.DataFrame({"x": xx.ravel(), "y": yy.ravel(), "p": probability[k].ravel()})
