"""The report's figures of metrics, made with seaborn, and what every figure shares (`Drawn`,
`Palette`, `svg`); the figures over the plane are in `plane_figures`, and `figure_kinds.FIGURES`
has one function per kind.

Each takes a study's results and its `[[report.figures]]` entry and returns a `Drawn` (the
matplotlib figure and an alt text that says what the figure shows, in numbers), or None when
the study stored nothing to draw. Colours: one palette per study and column
(`Palette`), so an arm has the same colour in every figure of its page. Lines and points are
medians over seeds; bands and error bars the order-statistic intervals of the median
(`stats.median_ci`: coverage at least 95% from 6 seeds, [min, max] below), as in the tables:
they stay inside the values' range (an accuracy's band never passes 1, as the Student-t mean
interval did). The figures draw the runs that have a value: a diverged run is marked (in the
"final" tick labels) rather than drawn at an infinite worst.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend: `figure()` shows there
    matplotlib.use("Agg")  # no display: figures are written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from study.engine.results import stats  # noqa: E402
from study.engine.studies.study_schema import Figure  # noqa: E402
from study.report.data import StudyResults, readable  # noqa: E402

# Deterministic SVG: ids from a fixed salt, no date in the metadata.
matplotlib.rcParams.update({"svg.hashsalt": "study-report", "svg.fonttype": "none",
                            "figure.dpi": 100, "axes.titlesize": 11, "axes.labelsize": 10})
sns.set_theme(style="whitegrid", context="paper")

XOR_CORNERS = ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0))
METRIC_LABELS = {"val_accuracy": "validation accuracy", "val_loss": "validation loss",
                 "accuracy": "training accuracy", "loss": "training loss",
                 "train_accuracy": "training accuracy", "train_loss": "training loss",
                 "test_accuracy": "test accuracy", "learning_rate": "learning rate",
                 "distance": "distance to the minimum", "grad_norm_first_over_last":
                 "gradient norm, first layer / last"}


@dataclass
class Drawn:
    figure: plt.Figure
    title: str
    alt: str


def svg(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def label(column: str) -> str:
    return METRIC_LABELS.get(column, column.replace("_", " "))


def ci_band(values) -> tuple[float, float]:
    """The band around a median: its order-statistic interval (seaborn's `errorbar`)."""
    interval = stats.median_ci(np.asarray(values, dtype=float))
    return interval.low, interval.high


class Palette:
    """One colour per value of a column, in the order the study lists its arms."""

    def __init__(self, data: StudyResults):
        self.data, self.cache = data, {}

    def __call__(self, column: str) -> dict:
        if column not in self.cache:
            values = list(dict.fromkeys(readable(v, column) for v in self.data.runs[column]))
            colours = sns.color_palette("tab10" if len(values) <= 10 else "husl", len(values))
            self.cache[column] = dict(zip(values, colours))
        return self.cache[column]


def as_text(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """The columns as readable text (categories, never a numeric axis), in the study's order."""
    frame = frame.copy()
    for column in columns:
        if column and column in frame:
            frame[column] = frame[column].map(lambda v, c=column: readable(v, c))
    return frame


def curves_history(data: StudyResults, spec: Figure) -> tuple[pd.DataFrame, bool] | None:
    """The history a curves figure draws, long: a row per run, logged step and `split` with its
    `value` (failed runs left out; hue, col and row as text). A training metric ("loss",
    "accuracy") comes with its validation twin when the history has it: splits "training" and
    "validation", and True; else the metric's label alone. None if the metric was not logged."""
    frame = data.history[data.history["status"] != "failed"]
    if frame.empty or spec.metric not in frame or frame[spec.metric].isna().all():
        return None
    twin = f"val_{spec.metric}"
    both = bool(spec.validation and spec.metric in ("loss", "accuracy") and twin in frame
                and frame[twin].notna().any())
    splits = {spec.metric: "training", twin: "validation"} if both else {
        spec.metric: label(spec.metric)}
    frame = as_text(frame, [spec.hue or "name", spec.col, spec.row])
    frame = frame.melt(id_vars=[c for c in frame if c not in splits], value_vars=list(splits),
                       var_name="split", value_name="value")
    frame["split"] = frame["split"].map(splits)
    return frame, both


def curves(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    """The metric against the step, median line and its interval as a band. A training metric
    ("loss", "accuracy") is drawn with its validation twin, dashed, when the history has it."""
    shown = curves_history(data, spec)
    if shown is None:
        return None
    frame, both = shown
    hue = spec.hue or "name"
    order = as_text(data.runs, [hue, spec.col, spec.row])  # the study's order, not the log's
    grid = sns.relplot(data=frame, x="step", y="value", hue=hue, col=spec.col, row=spec.row,
                       style="split" if both else None, kind="line", estimator="median",
                       errorbar=ci_band, palette=palette(hue), height=3.2, aspect=1.3,
                       hue_order=list(dict.fromkeys(order[hue])),
                       col_order=list(dict.fromkeys(order[spec.col])) if spec.col else None,
                       row_order=list(dict.fromkeys(order[spec.row])) if spec.row else None,
                       facet_kws={"sharey": True})
    what = (f"{label(spec.metric)} (solid) and validation {spec.metric} (dashed)" if both
            else label(spec.metric))
    grid.set_axis_labels("training step", spec.metric if both else label(spec.metric))
    seeds = frame.groupby("run_key").ngroups
    last = frame[(frame["step"] == frame.groupby("run_key")["step"].transform("max"))
                 & (frame["split"] == frame["split"].iloc[-1])]
    medians = last.groupby(hue)["value"].median().sort_values()
    title = spec.title or f"{what[0].upper()}{what[1:]} during training"
    grid.figure.suptitle(title, y=1.02)
    alt = (f"Line chart of {what} against training step, one colour per {hue} (median of "
           f"{seeds} runs, band: the median's interval). At the last logged step the highest "
           f"{frame['split'].iloc[-1]} median is {medians.index[-1]} "
           f"({medians.iloc[-1]:.3g}), the lowest {medians.index[0]} ({medians.iloc[0]:.3g}).")
    return Drawn(grid.figure, title, alt)


def final(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    runs = data.runs
    if spec.metric not in runs:
        return None
    x = spec.x or "name"
    runs = as_text(runs, [x, spec.hue, spec.col])
    diverged = runs[runs["status"] == "diverged"].groupby(x).size()
    shown = runs[runs["status"] == "finished"].copy()
    order = list(dict.fromkeys(runs[x]))
    ticks = [f"{v} ({diverged[v]} diverged)" if v in diverged else v for v in order]
    hue = spec.hue or x
    dodge = spec.hue is not None and shown[hue].nunique() > 1
    width = max(5.0, 0.9 * len(order) + 1.5)
    slanted = len(order) > 4 and max(len(t) for t in ticks) > 8
    figure, axis = plt.subplots(figsize=(width, 3.8))
    with _fixed_global_seed():  # seaborn jitters the strips with np.random's global state
        sns.stripplot(data=shown, x=x, y=spec.metric, hue=hue, order=order, palette=palette(hue),
                      dodge=dodge, alpha=0.55, size=4, jitter=0.2, ax=axis,
                      legend=spec.hue is not None)
    sns.pointplot(data=shown, x=x, y=spec.metric, hue=hue, order=order, palette=palette(hue),
                  dodge=0.4 if dodge else False, estimator="median", errorbar=ci_band,
                  linestyle="none", markers="D", markersize=5, ax=axis, legend=False)
    axis.set_xticks(range(len(order)), ticks, rotation=30 if slanted else 0,
                    ha="right" if slanted else "center")
    axis.set_xlabel(x if x != "name" else "")
    axis.set_ylabel(label(spec.metric))
    title = spec.title or f"Final {label(spec.metric)}: every seed, median and its interval"
    axis.set_title(title)
    if spec.hue is None and axis.get_legend() is not None:
        axis.get_legend().remove()
    medians = shown.groupby(x)[spec.metric].median().sort_values()
    alt = (f"Dot plot of the final {label(spec.metric)} of every finished run, one column per "
           f"{x}, with the median and its interval. Highest median: {medians.index[-1]} "
           f"({medians.iloc[-1]:.3g}); lowest: {medians.index[0]} ({medians.iloc[0]:.3g})."
           + (f" Diverged runs: {int(diverged.sum())}." if len(diverged) else ""))
    return Drawn(figure, title, alt)


@contextlib.contextmanager
def _fixed_global_seed(seed: int = 0):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def heatmap_values(data: StudyResults, spec: Figure) -> tuple[pd.DataFrame, str] | None:
    """The runs a heatmap shows (failed ones left out, settings as text) with column `value`:
    1.0 / 0.0 for reaching `threshold`, else the metric; and what a cell's mean of it is."""
    runs = data.runs[data.runs["status"] != "failed"]
    if spec.metric not in runs or spec.x is None or spec.y is None:
        return None
    runs = as_text(runs, [spec.x, spec.y, spec.col])
    values = pd.to_numeric(runs[spec.metric], errors="coerce")
    if spec.threshold is not None:
        return (runs.assign(value=(values >= spec.threshold).astype(float)),
                f"share of runs with {label(spec.metric)} >= {spec.threshold:g}")
    return runs.assign(value=values), f"mean {label(spec.metric)}"


def heatmap(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    shown = heatmap_values(data, spec)
    if shown is None:
        return None
    runs, what = shown
    panels = list(dict.fromkeys(runs[spec.col])) if spec.col else [None]
    columns = runs[spec.x].nunique()  # wide enough that every cell's number fits
    figure, axes = plt.subplots(1, len(panels), figsize=(
        max(4.2, 0.62 * columns + 2) * len(panels) + 1, 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        part = runs if panel is None else runs[runs[spec.col] == panel]
        table = part.pivot_table(index=spec.y, columns=spec.x, values="value", aggfunc="mean",
                                 sort=False)
        sns.heatmap(table, annot=True, fmt=".2f", cmap="viridis", cbar=axis is axes[0][-1],
                    vmin=runs["value"].min(), vmax=runs["value"].max(), ax=axis,
                    cbar_kws={"label": what})
        axis.set_title(f"{spec.col} = {panel}" if panel is not None else "")
        axis.set_xlabel(spec.x)
        axis.set_ylabel(spec.y)
    title = spec.title or what.capitalize() + f" by {spec.y} and {spec.x}"
    figure.suptitle(title)
    cells = runs.groupby([spec.y, spec.x])["value"].mean()
    alt = (f"Heatmap of the {what} over {spec.y} (rows) and {spec.x} (columns)"
           + (f", one panel per {spec.col}" if spec.col else "")
           + f". Cells range from {cells.min():.3g} to {cells.max():.3g}.")
    return Drawn(figure, title, alt)


def histograms(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    frame = data.artifacts("histograms")
    if frame.empty:
        return None
    names = [n for n in data.names if n in set(frame["name"])]
    layers = len(frame["value"].iloc[0])
    figure, axes = plt.subplots(len(names), layers, figsize=(2.0 * layers, 1.5 * len(names)),
                                sharex="row", squeeze=False)
    colours = palette("name")
    for i, name in enumerate(names):
        runs = frame[frame["name"] == name]["value"].tolist()
        for j in range(layers):
            counts = np.sum([run[j]["counts"] for run in runs], axis=0)
            edges = np.asarray(runs[0][j]["edges"])
            axis = axes[i][j]
            axis.stairs(counts / counts.sum(), edges, fill=True, color=colours[name])
            axis.set_yticks([])
            if i == 0:
                axis.set_title(f"layer {j + 1}")
            if j == 0:
                axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    title = spec.title or "Hidden-layer activations: share of units per value, layer by layer"
    figure.suptitle(title)
    figure.supxlabel("activation value")
    alt = (f"Grid of histograms: one row per setting ({len(names)}), one column per hidden "
           f"layer ({layers}); each shows the distribution of the layer's activations over all "
           f"inputs and seeds.")
    return Drawn(figure, title, alt)


def gradients(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    frame = data.artifacts("gradient_norms")
    if frame.empty:
        return None
    hue = spec.hue or "name"
    rows = [{"name": r["name"], hue: readable(r[hue], hue) if hue in r else r["name"],
             "layer": g["layer"], "norm": g["norm"]}
            for _, r in frame.iterrows() for g in r["value"]]
    long = pd.DataFrame(rows)
    figure, axis = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=long, x="layer", y="norm", hue=hue, estimator="median", errorbar=ci_band,
                 palette=palette(hue) if hue in data.runs else None, marker="o", ax=axis,
                 hue_order=[n for n in dict.fromkeys(as_text(data.runs, [hue])[hue])
                            if n in set(long[hue])])
    axis.set_yscale("log")
    axis.set_xlabel("layer (1 = first, next to the input)")
    axis.set_ylabel("gradient norm at step 1")
    title = spec.title or "Gradient norm per layer before the first update"
    axis.set_title(title)
    axis.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    first = long[long["layer"] == 1].groupby(hue)["norm"].median().sort_values()
    alt = (f"Line chart, log scale: the gradient's norm in each layer at the first step, one "
           f"line per {hue}, median over seeds with its interval. At layer 1 the smallest "
           f"median "
           f"norm is {first.index[0]} ({first.iloc[0]:.2g}), the largest {first.index[-1]} "
           f"({first.iloc[-1]:.2g}).")
    return Drawn(figure, title, alt)


def search(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    x, y = spec.x or "learning_rate", spec.y or "weight_decay"
    runs = data.runs
    if x not in runs or y not in runs or spec.metric not in runs:
        return None
    runs = runs[runs["status"] != "failed"].copy()
    runs[x], runs[y] = pd.to_numeric(runs[x]), pd.to_numeric(runs[y])
    style = spec.hue or ("round" if "round" in runs else None)
    if style:
        runs[style] = runs[style].astype(str)
    figure, axis = plt.subplots(figsize=(6.5, 4.6))
    sns.scatterplot(data=runs, x=x, y=y, hue=spec.metric, style=style, palette="viridis",
                    s=45, ax=axis)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(f"{x.replace('_', ' ')} (log scale)")
    axis.set_ylabel(f"{y.replace('_', ' ')} (log scale)")
    axis.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    title = spec.title or f"Search: {label(spec.metric)} by {x} and {y}"
    axis.set_title(title)
    best = runs.loc[pd.to_numeric(runs[spec.metric], errors="coerce").idxmax()]
    alt = (f"Scatter plot on log axes of the {len(runs)} runs of the search, {x} against {y}, "
           f"coloured by {label(spec.metric)}. The best run has {x} {best[x]:.3g} and {y} "
           f"{best[y]:.3g} ({label(spec.metric)} {float(best[spec.metric]):.3g}).")
    return Drawn(figure, title, alt)
