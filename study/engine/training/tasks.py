"""Tasks other than training a classifier: activation histograms, optimizer paths (DLFS 6.1-6.2)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from study.engine.results.store import RunRecord
from study.engine.studies.identity import REVISED_SURFACES
from study.engine.studies.run_schema import RunConfig
from study.engine.training import models
from study.surfaces import SURFACES


# Activations whose output is bounded: a unit is "saturated" within 5% of the range's ends,
# where the derivative all but vanishes (seed 000: sigmoid's vanishing gradient).
_BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


HISTOGRAM_BINS = 30


def activation_histograms(config: RunConfig, seed: int, record: RunRecord) -> None:
    """DLFS 6.2.2: the initialised network forward on standard-normal inputs, layer by layer.

    Metrics per hidden layer i: `layer{i}_mean`, `layer{i}_std`, `layer{i}_saturated` (share
    of units within 5% of a bounded activation's ends; None when unbounded) and
    `layer{i}_dead` (share exactly 0, ReLU's dead units). Artifact `histograms`: 30 bins per
    layer, over the activation's range (DLFS plots sigmoid over (0, 1)) or the layer's own.
    """
    d = config.data
    x = np.random.default_rng([seed, 2]).standard_normal((d.n_points, d.dim)).astype("float32")
    inputs, _, activations = models.hidden_stack(config, (d.dim,), seed)
    outputs = keras.Model(inputs, activations).predict(x, batch_size=len(x), verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    bounds = _BOUNDS.get(config.model.activation.removeprefix("keras."))
    histograms, metrics = [], {"layers": len(outputs)}
    for i, a in enumerate(outputs, start=1):
        a = np.asarray(a, dtype=np.float64).ravel()
        low, high = bounds if bounds else (float(a.min()), float(a.max()) or 1.0)
        counts, edges = np.histogram(a, bins=HISTOGRAM_BINS, range=(low, high))
        histograms.append({"layer": i, "edges": edges.tolist(), "counts": counts.tolist()})
        margin = 0.05 * (high - low)
        metrics.update({
            f"layer{i}_mean": float(a.mean()), f"layer{i}_std": float(a.std()),
            f"layer{i}_saturated": (float(np.mean((a < low + margin) | (a > high - margin)))
                                    if bounds else None),
            f"layer{i}_dead": float(np.mean(a == 0.0)),
        })
    record.metrics, record.artifacts = metrics, {"histograms": histograms}
    record.status = "finished"


# A walk is stopped at the first update that leaves the box |x|, |y| <= 1e6 (10^5 times the
# widest plotting window) or is not finite: its path is kept up to there. Past the box a step of
# these functions soon overflows float32 (Beale's (x y^3)^2 at 1e6 is 1e48).
BOUND = 1e6
# Escaping the centre (`escape_step`): f at least this far below f at the centre. Only where
# the centre is no minimum (the saddle's stationary point (0, 0)) can a path get there.
ESCAPE_DROP = 1.0


def optimizer_path(config: RunConfig, seed: int, record: RunRecord) -> None:
    """DLFS 6.1.7: an optimizer walks f(x, y) from a start point; the path is the record.

    f is the data's function in `surfaces.SURFACES`. The two coordinates are the weights of a
    Keras model whose output is f itself, trained by `fit` with the run's optimizer (so
    clipping, schedules and every base argument apply). On the functions of
    `REVISED_SURFACES` (all but the two bowls, whose runs keep their revision-2 form) the
    walk stops early at the first
    update whose point is not finite or lies outside |x|, |y| <= BOUND (`stopped_at_step`):
    the run is `diverged` if the point is not finite or f there is not below f at the start
    (the steps grew unstable and ran uphill), `finished` if f is below it (the walk escaped
    downhill: only a function unbounded below, the saddle, allows that). Metrics: see
    `path_metrics`. Artifact `path`: [[x, y], ...], the start and each update's point, up to
    the last finite one. The seeds of one configuration usually walk together instead
    (`packed_paths`), to the same bits.
    """
    d, t = config.data, config.training
    start = path_start(config, seed)
    surface = SURFACES[d.dataset]
    point = _Point(start, surface.value)
    model = keras.Sequential([keras.Input((1,)), point])
    model.compile(optimizer=models.make_optimizer(t), loss=lambda _, f: keras.ops.mean(f))
    path = [start.tolist()]
    stops = path_stops(config)

    def record_point(batch, logs=None):
        xy = keras.ops.convert_to_numpy(point.xy)
        path.append(xy.tolist())
        if stops and not _inside(xy):
            model.stop_training = True

    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=record_point)
    dummy = np.zeros((t.steps, 1), "float32")  # one epoch of `steps` batches of one
    model.fit(dummy, dummy, batch_size=1, epochs=1, shuffle=False, verbose=0,
              callbacks=[recorder])
    record_path(config, path, record)


def path_start(config: RunConfig, seed: int) -> np.ndarray:
    """The walk's first point (float32): `data.start`, moved by the seed's jitter draw."""
    d = config.data
    start = np.asarray(d.start, dtype="float32")
    if d.start_jitter:
        jitter = np.random.default_rng([seed, 3]).normal(0, d.start_jitter, 2)
        start = start + jitter.astype("float32")
    return start


def path_stops(config: RunConfig) -> bool:
    """Does the walk stop at its first point outside the box (`_inside`)? The bowls' runs
    were keyed before the stop rule (revision 2): they walk and are measured exactly as then,
    so that a stored run and a new one under the same key agree."""
    return config.data.dataset in REVISED_SURFACES


def stop_index(path: np.ndarray) -> int | None:
    """The first update (index into `path`, start 0) whose point is outside the box or not
    finite: where a walk that `path_stops` ends. None if every point is inside."""
    outside = ~(np.isfinite(path).all(axis=1) & (np.abs(path).max(axis=1) <= BOUND))
    outside[0] = False  # the start is never judged: the walk stops only after an update
    hits = np.flatnonzero(outside)
    return int(hits[0]) if hits.size else None


def record_path(config: RunConfig, path, record: RunRecord) -> None:
    """Fill `record` from the walk's points (`path`: the start and each update's point, up to
    the stop if the walk stops): metrics, artifact `path`, status. Shared by the single walk
    above and the packed one (`packed_paths`), so both measure a path alike."""
    t = config.training
    surface = SURFACES[config.data.dataset]
    stops = path_stops(config)
    xy = np.asarray(path, dtype=np.float64)
    if not stops:
        metrics = path_metrics(xy, surface)
        record.metrics = {"steps": t.steps, **{k: v for k, v in metrics.items()
                                               if k not in ("final_gradient_norm", "escape_step")}}
        record.artifacts = {"path": xy.tolist()}
        record.status = "finished" if np.isfinite(xy).all() else "diverged"
        return
    stopped = len(xy) - 1 if len(xy) - 1 < t.steps or not _inside(xy[-1]) else None
    finite = xy[np.isfinite(xy).all(axis=1)]
    record.metrics = {"steps": t.steps, **path_metrics(finite, surface),
                      "stopped_at_step": stopped}
    record.artifacts = {"path": finite.tolist()}
    escaped_downhill = (stopped is not None and len(finite) == len(xy)
                        and surface.value(*xy[-1]) < surface.value(*xy[0]))
    record.status = "finished" if stopped is None or escaped_downhill else "diverged"


def _inside(point: np.ndarray) -> bool:
    return bool(np.isfinite(point).all() and np.abs(point).max() <= BOUND)


def path_metrics(xy: np.ndarray, surface) -> dict[str, Any]:
    """The metrics of a path `xy` ([[x, y], ...], float64, finite) on `surface`, with (x, y)
    measured from its centre (the minimum; the saddle's stationary point (0, 0)): distance to
    it and f at the end (`distance`, `final_value`), the gradient's norm there
    (`final_gradient_norm`: ~0 where the walk has come to rest in a minimum), path length, how
    often y changed sign (the zig-zag of SGD on the anisotropic bowl), `along_x`'s
    `x_overshoot` and `x_halved_at_step`, and `escape_step`: the first update with f at least
    ESCAPE_DROP below f at the centre (None if never; never where the centre is the minimum).
    """
    steps = np.diff(xy, axis=0)
    # From the centre: subtracting the bowls' (0, 0) changes no bit of their metrics.
    centred = xy - np.asarray(surface.centre)
    ys = np.sign(centred[:, 1])
    final = xy[-1]
    values = surface.value(xy[:, 0], xy[:, 1])
    below = np.flatnonzero(values <= surface.value(*surface.centre) - ESCAPE_DROP)
    return {
        "final_x": final[0], "final_y": final[1],
        "distance": float(np.hypot(*centred[-1])),
        "final_value": float(surface.value(final[0], final[1])),
        "final_gradient_norm": float(np.hypot(*surface.gradient(final[0], final[1]))),
        "path_length": float(np.hypot(steps[:, 0], steps[:, 1]).sum()),
        "y_sign_changes": int(np.sum(ys[1:] * ys[:-1] < 0)),
        **along_x(centred[:, 0]),
        "escape_step": int(below[0]) if below.size else None,
    }


def along_x(xs: np.ndarray) -> dict[str, Any]:
    """`x_overshoot` (>= 0): the farthest the path went past x = 0, measured in the direction it
    started towards the minimum; `x_halved_at_step`: the first update with |x| <= |x_0| / 2."""
    toward = -np.sign(xs[0]) or 1.0
    halved = np.flatnonzero(np.abs(xs) <= abs(xs[0]) / 2)
    return {"x_overshoot": float(max(0.0, np.max(xs * toward))),
            "x_halved_at_step": int(halved[0]) if halved.size else None}


class _Point(keras.layers.Layer):
    """Two weights (x, y); outputs f(x, y) whatever the input (`function(x, y, ops)`, one of
    `surfaces.SURFACES`' values, evaluated with keras.ops)."""

    def __init__(self, start, function, **kwargs):
        super().__init__(**kwargs)
        self.start, self.function = [float(v) for v in start], function

    def build(self, input_shape):
        self.xy = self.add_weight(shape=(2,), name="xy",
                                  initializer=keras.initializers.Constant(0.0))
        self.xy.assign(self.start)

    def call(self, inputs):
        f = self.function(self.xy[0], self.xy[1], keras.ops)
        return keras.ops.zeros_like(inputs[:, :1]) + f
