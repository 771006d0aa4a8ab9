"""Tasks other than training a classifier: activation histograms, optimizer paths (DLFS 6.1-6.2)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from study.engine.results.store import RunRecord
from study.engine.studies.run_schema import RunConfig
from study.engine.training import models


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


def optimizer_path(config: RunConfig, seed: int, record: RunRecord) -> None:
    """DLFS 6.1.7: an optimizer walks f(x, y) from a start point; the path is the record.

    The two coordinates are the weights of a Keras model whose output is f itself, trained by
    `fit` with the run's optimizer (so clipping, schedules and every base argument apply).
    Metrics: distance to the minimum (0, 0) and f at the end, path length, how often y changed
    sign (the zig-zag of SGD on the anisotropic bowl), how far the path ran past the minimum
    along x (`x_overshoot`, in the direction it set out: momentum's ball rolling past the bottom)
    and the first update at which |x| is at most half its start (`x_halved_at_step`, None if
    never). Artifact `path`: [[x, y], ...].
    """
    d, t = config.data, config.training
    start = np.asarray(d.start, dtype="float32")
    if d.start_jitter:
        start = start + np.random.default_rng([seed, 3]).normal(0, d.start_jitter, 2).astype("float32")
    x_scale = 1 / 20 if d.dataset == "anisotropic_bowl" else 1.0
    point = _Point(start, x_scale)
    model = keras.Sequential([keras.Input((1,)), point])
    model.compile(optimizer=models.make_optimizer(t), loss=lambda _, f: keras.ops.mean(f))
    path = [start.tolist()]
    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs=None: path.append(
        keras.ops.convert_to_numpy(point.xy).tolist()))
    dummy = np.zeros((t.steps, 1), "float32")  # one epoch of `steps` batches of one
    model.fit(dummy, dummy, batch_size=1, epochs=1, shuffle=False, verbose=0,
              callbacks=[recorder])
    xy = np.asarray(path, dtype=np.float64)
    steps = np.diff(xy, axis=0)
    ys = np.sign(xy[:, 1])
    final = xy[-1]
    record.metrics = {
        "steps": t.steps, "final_x": final[0], "final_y": final[1],
        "distance": float(np.hypot(*final)),
        "final_value": float(x_scale * final[0] ** 2 + final[1] ** 2),
        "path_length": float(np.hypot(steps[:, 0], steps[:, 1]).sum()),
        "y_sign_changes": int(np.sum(ys[1:] * ys[:-1] < 0)),
        **along_x(xy[:, 0]),
    }
    record.artifacts = {"path": xy.tolist()}
    record.status = "finished" if np.isfinite(xy).all() else "diverged"


def along_x(xs: np.ndarray) -> dict[str, Any]:
    """`x_overshoot` (>= 0): the farthest the path went past x = 0, measured in the direction it
    started towards the minimum; `x_halved_at_step`: the first update with |x| <= |x_0| / 2."""
    toward = -np.sign(xs[0]) or 1.0
    halved = np.flatnonzero(np.abs(xs) <= abs(xs[0]) / 2)
    return {"x_overshoot": float(max(0.0, np.max(xs * toward))),
            "x_halved_at_step": int(halved[0]) if halved.size else None}


class _Point(keras.layers.Layer):
    """Two weights (x, y); outputs f(x, y) = x_scale * x^2 + y^2 whatever the input."""

    def __init__(self, start, x_scale, **kwargs):
        super().__init__(**kwargs)
        self.start, self.x_scale = [float(v) for v in start], float(x_scale)

    def build(self, input_shape):
        self.xy = self.add_weight(shape=(2,), name="xy",
                                  initializer=keras.initializers.Constant(0.0))
        self.xy.assign(self.start)

    def call(self, inputs):
        f = self.x_scale * self.xy[0] ** 2 + self.xy[1] ** 2
        return keras.ops.zeros_like(inputs[:, :1]) + f
