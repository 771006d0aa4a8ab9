"""Train one run: data, model, fit with a seeded batch order, final metrics, a plain record.

Reproducibility: the run's seed fixes the initial weights (see `study.models`), the dropout
masks, the training subset (with `subset = "random"`) and the batch order, which is drawn from
`numpy.random.default_rng([seed, pass])` independently of the model, so every arm of one seed
sees the same batches. TensorFlow's op determinism is switched on, so the same config and seed
give bit-identical metrics on the CPU.

A run never raises: an exception becomes a `failed` record with its message, and a loss that
turns NaN or infinite stops the run as `diverged`.
"""

from __future__ import annotations

import math
import platform
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import numpy as np

import study
from study import data as datasets
from study import models
from study.config import RunConfig, RunSpec
from study.store import RunRecord, now_iso

_DETERMINISM_ON = False


def train_run(spec: RunSpec, data_dir: str | Path | None = None) -> RunRecord:
    started_at, start = now_iso(), time.perf_counter()
    record = RunRecord(key=spec.key, study=spec.study, arm=spec.arm, seed=spec.seed,
                       status="failed", config=spec.config, overrides=spec.overrides,
                       started_at=started_at, finished_at=started_at, wall_time=0.0,
                       versions=versions())
    try:
        _train(spec.run_config, spec.seed, data_dir, record)
    except Exception as error:  # one run's failure must not stop the grid
        record.status = "failed"
        record.error = _describe(error)
    finally:
        keras.utils.clear_session(free_memory=False)
    record.finished_at = now_iso()
    record.wall_time = time.perf_counter() - start
    return record


def _train(config: RunConfig, seed: int, data_dir, record: RunRecord) -> None:
    enable_determinism()
    keras.utils.set_random_seed(seed)
    if config.task == "activation_histograms":
        _activation_histograms(config, seed, record)
        return
    if config.task == "optimizer_path":
        _optimizer_path(config, seed, record)
        return
    dataset = load_dataset(config, seed, data_dir)
    t = config.training
    steps_per_pass = math.ceil(len(dataset.train.x) / t.batch_size)
    if t.steps is not None:
        # A history row every log_every steps, or else every pass of the data, rounded down to
        # a divisor of the steps so that the run stops exactly at `steps`.
        steps_per_epoch = t.log_every or _largest_divisor(t.steps, steps_per_pass)
        epochs = t.steps // steps_per_epoch
    else:
        steps_per_epoch, epochs = steps_per_pass, t.epochs
    compiled = models.build(config, dataset.input_shape, dataset.num_classes, seed,
                            steps_per_execution=_largest_divisor(steps_per_epoch, 100))
    x, y = dataset.train.x, compiled.targets(dataset.train.y)

    batches = training_batches(x, y, t.batch_size, epochs * steps_per_epoch, steps_per_epoch, seed)
    history = _HistoryRecorder(compiled.optimizer, steps_per_epoch)
    callbacks: list[keras.callbacks.Callback] = [history]
    if t.early_stopping is not None:
        es = t.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, mode="min" if "loss" in es.monitor else "max",
            restore_best_weights=es.restore_best_weights))
    validation = (dataset.validation.x, compiled.targets(dataset.validation.y))
    compiled.model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                       validation_data=validation, callbacks=callbacks,
                       validation_batch_size=1000, verbose=0)

    record.history = history.rows
    record.status = "diverged" if history.diverged else "finished"
    record.metrics = _final_metrics(compiled, dataset, t.evaluate_test, history)


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


# Activations whose output is bounded: a unit is "saturated" within 5% of the range's ends,
# where the derivative all but vanishes (seed 000: sigmoid's vanishing gradient).
_BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
HISTOGRAM_BINS = 30


def _activation_histograms(config: RunConfig, seed: int, record: RunRecord) -> None:
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


def _optimizer_path(config: RunConfig, seed: int, record: RunRecord) -> None:
    """DLFS 6.1.7: an optimizer walks f(x, y) from a start point; the path is the record.

    The two coordinates are the weights of a Keras model whose output is f itself, trained by
    `fit` with the run's optimizer (so clipping, schedules and every base argument apply).
    Metrics: distance to the minimum (0, 0) and f at the end, path length, and how often y
    changed sign (the zig-zag of SGD on the anisotropic bowl). Artifact `path`: [[x, y], ...].
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
    }
    record.artifacts = {"path": xy.tolist()}
    record.status = "finished" if np.isfinite(xy).all() else "diverged"


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


def load_dataset(config: RunConfig, seed: int, data_dir=None) -> datasets.Dataset:
    d = config.data
    if d.dataset == "xor":
        return datasets.xor()
    if d.dataset == "xor_cloud":
        # The cloud is part of the problem, not of the seed: every seed sees the same points.
        return datasets.xor_cloud(d.cloud_points, d.cloud_noise, seed=0)
    return datasets.mnist(d.n_train, subset_seed=seed if d.subset == "random" else None,
                          data_dir=data_dir)


def batch_plan(n: int, batch_size: int, steps: int, seed: int):
    """The sample indices of every training step, from a stream of seeded permutations.

    Pass p of the data is `default_rng([seed, p]).permutation(n)`, cut into ceil(n / batch)
    batches (the last one smaller when batch does not divide n; no batch straddles two
    passes). Returns `(indices, starts, ends)`: step s trains on `indices[starts[s]:ends[s]]`.
    The order depends on the seed alone, never on the model, so arms compared seed by seed
    see the same batches.
    """
    per_pass = math.ceil(n / batch_size)
    passes = math.ceil(steps / per_pass)
    indices = np.concatenate([np.random.default_rng([seed, p]).permutation(n)
                              for p in range(passes)])
    offsets = np.arange(passes, dtype=np.int64)[:, None] * n
    first = np.arange(per_pass, dtype=np.int64) * batch_size
    starts = (offsets + first).ravel()[:steps]
    ends = (offsets + np.minimum(first + batch_size, n)).ravel()[:steps]
    return indices, starts, ends


def training_batches(x, y, batch_size: int, steps: int, steps_per_epoch: int, seed: int):
    """The batches of `batch_plan` in the form `fit` takes fastest on this backend."""
    indices, starts, ends = batch_plan(len(x), batch_size, steps, seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # One tf.data pipeline for the whole run: no Python per step. Keras keeps the iterator
        # across epochs when steps_per_epoch is given, so epoch e continues where e-1 ended.
        xs, ys = tf.constant(x), tf.constant(y)
        idx, lo, hi = tf.constant(indices), tf.constant(starts), tf.constant(ends)

        def gather(step):
            chosen = idx[lo[step]:hi[step]]
            return tf.gather(xs, chosen), tf.gather(ys, chosen)

        return tf.data.Dataset.range(steps).map(gather).prefetch(4)
    return _PlannedBatches(x, y, indices, starts, ends, steps_per_epoch)


class _PlannedBatches(keras.utils.PyDataset):
    """`batch_plan` as a PyDataset (backends other than TensorFlow)."""

    def __init__(self, x, y, indices, starts, ends, steps_per_epoch: int):
        super().__init__()
        self.x, self.y, self.indices, self.starts, self.ends = x, y, indices, starts, ends
        self.steps_per_epoch, self.epoch = steps_per_epoch, 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __getitem__(self, index: int):
        step = self.epoch * self.steps_per_epoch + index
        chosen = self.indices[self.starts[step]:self.ends[step]]
        return self.x[chosen], self.y[chosen]

    def on_epoch_end(self) -> None:
        self.epoch += 1


class _HistoryRecorder(keras.callbacks.Callback):
    """One history row per epoch; stops the run when the loss stops being finite."""

    def __init__(self, optimizer, steps_per_epoch: int):
        super().__init__()
        self.optimizer, self.steps_per_epoch = optimizer, steps_per_epoch
        self.rows: list[dict[str, Any]] = []
        self.diverged = False
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        step = (epoch + 1) * self.steps_per_epoch
        self.rows.append({
            "epoch": epoch + 1, "step": step,
            "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
            "learning_rate": _current_learning_rate(self.optimizer),
            "time": time.perf_counter() - self._start,
        })
        loss = logs.get("loss")
        if loss is None or not math.isfinite(float(loss)):
            self.diverged = True
            self.model.stop_training = True


def _current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def _final_metrics(compiled, dataset, evaluate_test: bool, history: _HistoryRecorder):
    rows = history.rows
    metrics: dict[str, Any] = {
        "epochs": len(rows), "steps": rows[-1]["step"] if rows else 0,
        "params": compiled.model.count_params(),
    }
    val = [r["val_accuracy"] for r in rows if r["val_accuracy"] is not None]
    if val:
        best = int(np.argmax(val))
        metrics.update(best_val_accuracy=val[best], best_epoch=best + 1)
    # The first logged step at which every validation sample is right (XOR: steps to solve).
    solved = [r["step"] for r in rows if r["val_accuracy"] == 1.0]
    metrics["solved_at_step"] = solved[0] if solved else None
    if history.diverged:
        metrics["diverged_at_step"] = rows[-1]["step"] if rows else 0
        return metrics  # weights are NaN: no final evaluation
    splits = [("train", dataset.train), ("val", dataset.validation)]
    if evaluate_test:
        splits.append(("test", dataset.test))
    for name, split in splits:
        loss, accuracy = compiled.model.evaluate(split.x, compiled.targets(split.y),
                                                 batch_size=1000, verbose=0)
        metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = float(loss), float(accuracy)
    return metrics


def enable_determinism() -> None:
    global _DETERMINISM_ON
    if not _DETERMINISM_ON and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    _DETERMINISM_ON = True


def versions() -> dict[str, str]:
    backend = keras.backend.backend()
    backend_module = __import__({"tensorflow": "tensorflow", "jax": "jax"}.get(backend, backend))
    return {"study": study.__version__, "keras": keras.__version__, "backend": backend,
            "backend_version": getattr(backend_module, "__version__", "?"),
            "numpy": np.__version__, "python": platform.python_version()}


def _describe(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(error).__name__}: {error} (at {where})"
