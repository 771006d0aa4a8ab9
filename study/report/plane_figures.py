"""The report's figures over the plane: decision boundaries (at the end, and step by step) and
optimizer paths over a function's contours. Conventions as in `figures`."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from study import boundary_frames
from study.engine.studies.study_schema import Figure
from study.report.data import StudyResults, readable
from study.report.figures import XOR_CORNERS, Drawn, Palette
from study.report.selection import chosen_arm
from study.surfaces import SURFACES, contour_grid


def boundaries(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    frame = data.artifacts("decision_boundary")
    if frame.empty:
        return None
    names = [n for n in data.names if n in set(frame["name"])]
    columns = min(6, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.2 * rows),
                                squeeze=False)
    image = None
    for axis, name in zip(axes.flat, names):
        grids = [np.asarray(v["probability"]) for v in frame[frame["name"] == name]["value"]]
        image = axis.imshow(np.mean(grids, axis=0), origin="lower", extent=(-0.5, 1.5, -0.5, 1.5),
                            cmap="RdBu_r", vmin=0, vmax=1)
        for x0, x1, y in XOR_CORNERS:
            axis.scatter([x0], [x1], c="white" if y else "black", edgecolors="black", s=25)
        axis.set_title(name, fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.colorbar(image, ax=axes, shrink=0.6, label="P(class 1), mean over seeds")
    title = spec.title or "Decision boundaries on the noisy XOR cloud"
    figure.suptitle(title)
    alt = (f"{len(names)} maps of the probability of class 1 over the square [-0.5, 1.5]^2, "
           f"averaged over seeds, one per setting, with the four XOR corners marked (white: "
           f"class 1, black: class 0).")
    return Drawn(figure, title, alt)


SNAPSHOTS = 5  # the static boundary_steps figure: this many logged steps, evenly spaced


def boundary_steps(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    """The printable stand-in of the page's step slider: one arm (the figure's `arm`), its
    first seed, its boundary at SNAPSHOTS logged steps and its loss curve with those steps
    marked."""
    frame = data.artifacts(boundary_frames.ARTIFACT)
    if frame.empty:
        return None
    names = [n for n in data.names if n in set(frame["name"])]
    name = chosen_arm(data, names, spec.arm)
    run = frame[frame["name"] == name].sort_values("seed").iloc[0]
    steps, xs, ys, probability = boundary_frames.decode(run["value"])
    picks = sorted(set(np.round(np.linspace(0, len(steps) - 1, SNAPSHOTS)).astype(int)))
    figure, axes = plt.subplots(1, len(picks) + 1, figsize=(2.2 * (len(picks) + 1) + 1, 2.4),
                                gridspec_kw={"width_ratios": [1] * len(picks) + [1.8]})
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    for axis, k in zip(axes, picks):
        axis.imshow(probability[k], origin="lower", extent=extent, cmap="RdBu_r", vmin=0, vmax=1)
        for x0, x1, y in XOR_CORNERS:
            axis.scatter([x0], [x1], c="white" if y else "black", edgecolors="black", s=18)
        axis.set_title(f"step {steps[k]}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    history = data.history[data.history["run_key"] == run["run_key"]].sort_values("step")
    axes[-1].plot(history["step"], history["loss"], color="0.3", linewidth=1)
    for k in picks:
        axes[-1].axvline(steps[k], color="#d62728", linewidth=0.6, linestyle=":")
    axes[-1].set_xlabel("training step", fontsize=8)
    axes[-1].set_ylabel("training loss", fontsize=8)
    title = spec.title or "The decision boundary as training goes on"
    figure.suptitle(f"{title}: {name}, seed {int(run['seed'])}", fontsize=10)
    alt = (f"P(class 1) over the square [-0.5, 1.5]^2 for {name}, seed {int(run['seed'])}, at "
           f"steps {', '.join(str(steps[k]) for k in picks)}, beside its training loss, which "
           f"goes from {history['loss'].iloc[0]:.3g} to {history['loss'].iloc[-1]:.3g}.")
    return Drawn(figure, title, alt)


def paths(data: StudyResults, spec: Figure, palette: Palette) -> Drawn | None:
    frame = data.artifacts("path")
    if frame.empty:
        return None
    hue = spec.hue or "optimizer"
    panel = spec.col or "dataset"
    frame = frame[frame["seed"] == frame["seed"].min()]  # one start: paths are deterministic
    rate = middle_rate(frame, panel, hue)
    if rate is not None:  # a rate per hue and panel: the middle one (the page's slider: all)
        frame = frame[frame["learning_rate"] == rate]
    panels = list(dict.fromkeys(frame[panel]))
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    colours = palette(hue)
    for axis, value in zip(axes[0], panels):
        # Panels by another axis than the dataset draw no contours (no one function).
        surface = SURFACES.get(value)
        if surface:
            xs, ys, f, levels = contour_grid(surface)
            axis.contour(xs, ys, f, levels=levels, colors="0.75", linewidths=0.6)
            axis.plot(*surface.centre, "k+", markersize=10)
            axis.set_xlim(*surface.x_range)  # a path that leaves the window is cut at its edge
            axis.set_ylim(*surface.y_range)
        for _, run in frame[frame[panel] == value].iterrows():
            points = np.asarray(run["value"])
            axis.plot(points[:, 0], points[:, 1], "-o", markersize=2, linewidth=1,
                      color=colours[readable(run[hue], hue)], label=readable(run[hue], hue))
        axis.set_title(f"f(x, y) = {surface.formula}" if surface else str(value))
        axis.set_xlabel("x")
        axis.set_ylabel("y")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    title = spec.title or ("Optimizer paths from the same start (first seed)" + (
        f", learning rate {rate:g}" if rate is not None else ""))
    figure.suptitle(title)
    alt = (f"Contour plots of {', '.join(str(p) for p in panels)} with the path of each "
           f"{hue} over its updates from the first seed's start"
           + (f" at learning rate {rate:g}" if rate is not None else "")
           + "; the function's minimum (a saddle's stationary point) is marked with a cross.")
    return Drawn(figure, title, alt)


def middle_rate(frame: pd.DataFrame, panel: str, hue: str) -> float | None:
    """The middle of the learning rates a study crosses with its optimizers (each hue of each
    panel walked at several), or None when each walks at one."""
    if "learning_rate" not in frame or frame.groupby([panel, hue])["learning_rate"].nunique(
            ).min() < 2:
        return None
    rates = sorted(frame["learning_rate"].astype(float).unique())
    return rates[len(rates) // 2]
