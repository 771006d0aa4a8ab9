"""Train one run: data, model, fit with a seeded batch order, final metrics, a plain record.

Reproducibility: the run's seed fixes the initial weights (see `study.models`), the dropout
masks, the training subset (with `subset = "random"`), the batch order, which is drawn from
`numpy.random.default_rng([seed, pass])` independently of the model, so every arm of one seed
sees the same batches, and the shifts of data augmentation (`default_rng([seed, 5])`, as
independent of the model). TensorFlow's op determinism is switched on, so the same config and
seed give bit-identical metrics on the CPU.

Options of a run beyond one plain fit: `training.ensemble` trains several members and scores
their averaged prediction (`_ensemble`); `training.record_gradients` records the gradient's
norm per layer before the first step (`gradient_norms`).

A run never raises: an exception becomes a `failed` record with its message, and a loss that
turns NaN or infinite stops the run as `diverged`.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import numpy as np

import study
from study import data as datasets
from study import memory, models, reuse
from study.config import RunConfig, RunSpec, Training
from study.layers import Affine, ResidualBlock
from study.store import RunRecord, now_iso

_DETERMINISM_ON = False


def train_run(spec: RunSpec, data_dir: str | Path | None = None) -> RunRecord:
    start = time.perf_counter()
    record = blank_record(spec)
    try:
        with memory.released_after_run():
            _train(spec.run_config, spec.seed, data_dir, record)
    except Exception as error:  # one run's failure must not stop the grid
        reuse.forget_models()
        record.status = "failed"
        record.error = _describe(error)
    record.finished_at = now_iso()
    record.wall_time = time.perf_counter() - start
    return record


def blank_record(spec: RunSpec, error: str | None = None) -> RunRecord:
    """The record of `spec` before it has run: status failed, started and finished now."""
    now = now_iso()
    return RunRecord(key=spec.key, study=spec.study, arm=spec.arm, seed=spec.seed,
                     status="failed", config=spec.config, overrides=spec.overrides,
                     started_at=now, finished_at=now, wall_time=0.0, error=error,
                     versions=versions())


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
    compiled = reused_member(config, dataset, seed)
    if t.record_gradients:
        norms = gradient_norms(compiled, *first_batch(config, dataset, seed, compiled))
        record.artifacts["gradient_norms"] = norms
    history = fit_member(compiled, config, dataset, seed)

    record.history = history.rows
    record.status = "diverged" if history.diverged else "finished"
    record.metrics = _final_metrics(compiled, dataset, t.evaluate_test, history)
    if t.record_gradients:
        record.metrics.update({f"grad_norm_{g['layer']}": g["norm"] for g in norms})
        # Below 1: the gradient shrinks on its way back to the first layer (vanishes).
        record.metrics["grad_norm_first_over_last"] = (norms[0]["norm"] / norms[-1]["norm"]
                                                       if norms[-1]["norm"] else None)
    if config.data.dataset == "xor_cloud" and not history.diverged:
        record.artifacts["decision_boundary"] = decision_boundaries(
            lambda points: compiled.model.predict(points, verbose=0)[None],
            probabilities=t.loss == "mse")[0]  # the MSE model ends in its softmax
    if t.ensemble > 1 and not history.diverged:  # last: the members may reuse compiled's model
        _ensemble(config, dataset, seed, compiled, record)
    add_accuracy_gap(record.metrics)


def add_accuracy_gap(metrics: dict[str, Any]) -> None:
    """`accuracy_gap` = train_accuracy - val_accuracy: how much the model overfits."""
    if metrics.get("train_accuracy") is not None and metrics.get("val_accuracy") is not None:
        metrics["accuracy_gap"] = metrics["train_accuracy"] - metrics["val_accuracy"]


DECISION_GRID = 41  # points per axis over [-0.5, 1.5]^2: the four corners and their noise


def decision_boundaries(logits_of, probabilities: bool = False) -> list[dict[str, Any]]:
    """P(class 1) of each network on a grid over the plane, for decision-boundary pictures.

    `logits_of(points)` returns logits of shape (networks, points, units) (or probabilities
    already, with `probabilities`). Each result holds
    the axes `x`, `y` and `probability[i][j]` at (x[j], y[i]), rounded to 3 decimals.
    """
    axis = np.linspace(-0.5, 1.5, DECISION_GRID, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    logits = np.asarray(keras.ops.convert_to_numpy(
        logits_of(np.stack([xx.ravel(), yy.ravel()], axis=1))), dtype=np.float64)
    if probabilities:
        p = logits[..., 1]
    elif logits.shape[-1] == 1:
        p = 1 / (1 + np.exp(-logits[..., 0]))
    else:
        z = np.exp(logits - logits.max(-1, keepdims=True))
        p = (z / z.sum(-1, keepdims=True))[..., 1]
    p = np.round(p.reshape(-1, DECISION_GRID, DECISION_GRID), 3)
    return [{"x": axis.tolist(), "y": axis.tolist(), "probability": grid.tolist()} for grid in p]


def _epochs(t: Training, n: int) -> tuple[int, int]:
    """`(steps_per_epoch, epochs)` of a run on n training samples; an epoch is a history row."""
    steps_per_pass = math.ceil(n / t.batch_size)
    if t.steps is not None:
        # A history row every log_every steps, or else every pass of the data, rounded down to
        # a divisor of the steps so that the run stops exactly at `steps`.
        steps_per_epoch = t.log_every or _largest_divisor(t.steps, steps_per_pass)
        return steps_per_epoch, t.steps // steps_per_epoch
    return steps_per_pass, t.epochs


def build_member(config: RunConfig, dataset: datasets.Dataset, seed: int) -> models.Compiled:
    """The compiled network of a run (or of an ensemble member) with `seed`, untrained."""
    steps_per_epoch, _ = _epochs(config.training, len(dataset.train.x))
    return models.build(config, dataset.input_shape, dataset.num_classes, seed,
                        steps_per_execution=_largest_divisor(steps_per_epoch, 100))


def reused_member(config: RunConfig, dataset: datasets.Dataset, seed: int) -> models.Compiled:
    """`build_member`'s network, on the compiled model this worker last trained with `config`
    if there is one (`study.reuse`): the same initial state, traced functions called again."""
    key = repr((config.model_dump_json(), dataset.input_shape, dataset.num_classes,
                len(dataset.train.x)))
    return reuse.compiled_model(key, lambda: build_member(config, dataset, seed))


def fit_member(compiled: models.Compiled, config: RunConfig, dataset: datasets.Dataset,
               seed: int) -> _HistoryRecorder:
    """Train `compiled` on the batches of `seed`; its history (and whether it diverged)."""
    t = config.training
    steps_per_epoch, epochs = _epochs(t, len(dataset.train.x))
    x, y = dataset.train.x, compiled.targets(dataset.train.y)
    batches = training_batches(x, y, t.batch_size, epochs * steps_per_epoch, seed,
                               augment_shift=t.augment_shift)
    history = _HistoryRecorder(compiled.optimizer, steps_per_epoch)
    callbacks: list[keras.callbacks.Callback] = [history]
    if t.early_stopping is not None:
        es = t.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, mode="min" if "loss" in es.monitor else "max",
            restore_best_weights=es.restore_best_weights))
    # The history's val_* (and early stopping) may watch the first history_validation_size
    # validation samples, to spare evaluations; the final val_* metrics use them all.
    size = t.history_validation_size or len(dataset.validation)
    compiled.model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                       validation_data=_evaluation_data(compiled, dataset.validation, size),
                       validation_batch_size=EVALUATION_BATCH, callbacks=callbacks, verbose=0)
    return history


EVALUATION_BATCH = 1000


def _evaluation_data(compiled: models.Compiled, split: datasets.Split, size: int):
    """`(x, y)` of the first `size` samples of `split` for `evaluate` (with batch_size 1000): on
    TensorFlow x is a dataset of those batches kept by the worker (`study.reuse`) and y None
    (Keras ignores batch_size for a dataset), elsewhere the arrays themselves."""
    y = compiled.targets(split.y)
    if keras.backend.backend() == "tensorflow":
        return reuse.evaluation_batches(split.x, y, size, EVALUATION_BATCH), None
    return split.x[:size], y[:size]


def first_batch(config: RunConfig, dataset: datasets.Dataset, seed: int,
                compiled: models.Compiled):
    """`(x, y)` of the run's first training step: batch 0 of its plan, augmented as trained."""
    t = config.training
    steps_per_epoch, epochs = _epochs(t, len(dataset.train.x))
    plan = _Plan.make(len(dataset.train.x), t.batch_size, steps_per_epoch * epochs, seed,
                      t.augment_shift)
    x, y = plan.batch(dataset.train.x, dataset.train.y, 0)
    return x, compiled.targets(y)


def gradient_norms(compiled: models.Compiled, x, y) -> list[dict[str, Any]]:
    """`[{"layer": i, "name", "norm"}]`: ||dL/dW||_2 of each Affine layer's kernel W, in
    network order (the output layer last); a ResidualBlock is one entry, the norm over both its
    kernels, sqrt(||dL/dW1||^2 + ||dL/dW2||^2).

    L is the training loss on (x, y): the compiled loss of `model(x, training=True)` (dropout
    on, batch statistics) plus the weight penalties, as `fit` computes it. It is evaluated in a
    `keras.StatelessScope`, so no weight, batch-norm statistic or dropout seed moves: training
    afterwards is the same as without this call. Gradients by tf.GradientTape on TensorFlow,
    jax.grad on JAX; other backends are refused.
    """
    model = compiled.model
    layers = [(layer, [layer.kernel] if isinstance(layer, Affine)
               else [layer.inner_1.kernel, layer.inner_2.kernel])
              for layer in model.layers if isinstance(layer, (Affine, ResidualBlock))]
    trainable = model.trainable_variables
    position = {id(v): i for i, v in enumerate(trainable)}

    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(trainable, values))):
            return model.compute_loss(x, y, model(x, training=True), training=True)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        values = [tf.identity(v.value) for v in trainable]
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = loss_of(values)
        gradients = tape.gradient(loss, values)
    elif backend == "jax":
        import jax

        gradients = jax.grad(loss_of)([v.value for v in trainable])
    else:
        raise NotImplementedError(f"record_gradients needs the tensorflow or jax backend, not "
                                  f"{backend!r}")
    norms = []
    for i, (layer, kernels) in enumerate(layers, start=1):
        squares = sum(np.sum(np.square(keras.ops.convert_to_numpy(
            gradients[position[id(k)]]).astype(np.float64))) for k in kernels)
        norms.append({"layer": i, "name": layer.name, "norm": float(np.sqrt(squares))})
    return norms


# Member j of an ensemble trains with seed + MEMBER_SEED_STRIDE * j: a prime stride, far from
# the seeds 0, 1, 2, ... of a study, so no member repeats another run's seed.
MEMBER_SEED_STRIDE = 100_003


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member j: seed + 100_003 j (member 0 is the run itself)."""
    return seed + MEMBER_SEED_STRIDE * member


def _ensemble(config: RunConfig, dataset: datasets.Dataset, seed: int,
              first: models.Compiled, record: RunRecord) -> None:
    """Train members 1..k-1 and replace the split metrics by the ensemble's.

    Member j is the run with `member_seed(seed, j)` (its weights, batch order, dropout masks and
    shifts; the data, also a random subset, are the run's); member 0 is the run itself, whose
    history, `epochs`, `steps`, `params` and `best_*` the record keeps. The ensemble predicts
    p = (1/k) sum_j p_j, the mean of the members' class probabilities (softmax, or the sigmoid
    for binary_cross_entropy; the digit's value for target "value"). Metrics `{split}_accuracy`
    and `{split}_loss` are p's: the loss is -mean log p[y] for cross-entropy losses and the mean
    squared error for "mse" (no weight penalty in either). `member_val_accuracy_mean` is the
    mean of the members' own validation accuracies. A diverged member makes the run diverged,
    without ensemble metrics.
    """
    t = config.training
    splits = {name: datasets.Split(split.x[:size], split.y[:size])
              for name, (split, size) in evaluation_splits(dataset, t.evaluate_test).items()}
    outputs = {name: [_predict(first, config, split.x)] for name, split in splits.items()}
    for j in range(1, t.ensemble):
        keras.utils.set_random_seed(member_seed(seed, j))
        member = reused_member(config, dataset, member_seed(seed, j))
        if fit_member(member, config, dataset, member_seed(seed, j)).diverged:
            record.status = "diverged"
            for name in splits:  # member 0's alone would pass for the ensemble's
                record.metrics.pop(f"{name}_loss"), record.metrics.pop(f"{name}_accuracy")
            record.metrics["diverged_member"] = j
            return
        for name, split in splits.items():
            outputs[name].append(_predict(member, config, split.x))
    for name, split in splits.items():
        loss, accuracy = _score(np.mean(outputs[name], axis=0), split.y, config)
        record.metrics[f"{name}_loss"], record.metrics[f"{name}_accuracy"] = loss, accuracy
    record.metrics["member_val_accuracy_mean"] = float(np.mean(
        [_score(p, dataset.validation.y, config)[1] for p in outputs["val"]]))


def _predict(compiled: models.Compiled, config: RunConfig, x) -> np.ndarray:
    """Class probabilities (n, classes) in float64, or the predicted values (n,) ("value")."""
    out = compiled.model.predict(x, batch_size=1000, verbose=0).astype(np.float64)
    loss = config.training.loss
    if compiled.regression:
        return out[:, 0]
    if loss == "binary_cross_entropy":
        p = 1 / (1 + np.exp(-out[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if loss == "cross_entropy":
        z = np.exp(out - out.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return out  # mse on a digit: the network ends in a softmax


def _score(prediction: np.ndarray, labels: np.ndarray, config: RunConfig) -> tuple[float, float]:
    """`(loss, accuracy)` of probabilities (or values) against integer labels, as in `_predict`:
    values: mean (v - y)^2 and the share with round(v) == y; probabilities: -mean log p[y]
    (cross-entropy losses) or mean over samples and classes of (p - onehot(y))^2 ("mse"), and
    the share whose largest probability is the label's."""
    if prediction.ndim == 1:
        return (float(np.mean((prediction - labels) ** 2)),
                float(np.mean(np.round(prediction) == labels)))
    if config.training.loss == "mse":
        loss = np.mean((prediction - np.eye(prediction.shape[1])[labels]) ** 2)
    else:
        loss = -np.mean(np.log(prediction[np.arange(len(labels)), labels]))
    return float(loss), float(np.mean(np.argmax(prediction, axis=1) == labels))


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
    """The run's data, shared with the worker's other runs of the same data (`study.reuse`)."""
    d = config.data
    key = repr((d.model_dump_json(), seed if d.subset == "random" else None, str(data_dir)))
    return reuse.dataset(key, lambda: _load_dataset(d, seed, data_dir))


def _load_dataset(d, seed: int, data_dir) -> datasets.Dataset:
    if d.dataset == "xor":
        return datasets.xor()
    if d.dataset == "xor_cloud":
        # The cloud is part of the problem, not of the seed: every seed sees the same points.
        return datasets.xor_cloud(d.cloud_points, d.cloud_noise, seed=0)
    mnist = datasets.mnist(d.n_train, subset_seed=seed if d.subset == "random" else None,
                           data_dir=data_dir)
    return datasets.with_target(mnist, d.target)


def batch_plan(n: int, batch_size: int, steps: int, seed: int):
    """The sample indices of every training step, from a stream of seeded permutations.

    Pass p of the data is `default_rng([seed, p]).permutation(n)`, cut into ceil(n / batch)
    batches (the last one smaller when batch does not divide n; no batch straddles two
    passes). Returns `(indices, starts, ends)`: step s trains on `indices[starts[s]:ends[s]]`.
    The order depends on the seed alone, never on the model, so arms compared seed by seed
    see the same batches. Full-batch training (batch >= n) has no order to draw: every step
    takes the data as it is, which lets runs of different seeds share one input (study.packed).
    """
    per_pass = math.ceil(n / batch_size)
    passes = math.ceil(steps / per_pass)
    if per_pass == 1:
        return (np.arange(n), np.zeros(steps, dtype=np.int64),
                np.full(steps, n, dtype=np.int64))
    indices = np.concatenate([np.random.default_rng([seed, p]).permutation(n)
                              for p in range(passes)])
    offsets = np.arange(passes, dtype=np.int64)[:, None] * n
    first = np.arange(per_pass, dtype=np.int64) * batch_size
    starts = (offsets + first).ravel()[:steps]
    ends = (offsets + np.minimum(first + batch_size, n)).ravel()[:steps]
    return indices, starts, ends


def shift_plan(k: int, steps: int, width: int, seed: int) -> np.ndarray:
    """`(steps, width, 2)` int8: the (dy, dx) of position i of step s's batch, each uniform on
    the integers in [-k, k], drawn from `default_rng([seed, 5])` (the seed alone: every arm of
    a seed sees the same augmented batches)."""
    return np.random.default_rng([seed, 5]).integers(-k, k + 1, size=(steps, width, 2),
                                                     dtype=np.int8)


def shift_images(images, shifts, side: int = 28):
    """Flattened side x side images, each moved by its (dy, dx) with zero fill:
    out[r, c] = image[r - dy, c - dx] where both indices lie in [0, side), else 0.

    One gather per batch, written once for NumPy arrays (PyDataset batches) and backend
    tensors (keras.ops, in the tf.data pipeline); it moves pixels, so both give the same bits.
    """
    xp = np if isinstance(images, np.ndarray) else keras.ops
    r = xp.arange(side, dtype="int32")[None, :]
    rows, cols = r - shifts[:, :1], r - shifts[:, 1:]  # (batch, side): the source row / column
    inside = xp.logical_and(
        xp.logical_and(rows >= 0, rows < side)[:, :, None],
        xp.logical_and(cols >= 0, cols < side)[:, None, :])
    source = (xp.clip(rows, 0, side - 1)[:, :, None] * side
              + xp.clip(cols, 0, side - 1)[:, None, :])
    moved = xp.take_along_axis(images, xp.reshape(source, (-1, side * side)), axis=1)
    return xp.where(xp.reshape(inside, (-1, side * side)), moved, xp.zeros_like(moved))


class _Plan:
    """`batch_plan`, and with augmentation each step's `shift_plan`: step s's batch, numerically."""

    def __init__(self, indices, starts, ends, shifts):
        self.indices, self.starts, self.ends, self.shifts = indices, starts, ends, shifts

    @classmethod
    def make(cls, n: int, batch_size: int, steps: int, seed: int, augment_shift: int = 0):
        shifts = (shift_plan(augment_shift, steps, min(batch_size, n), seed) if augment_shift
                  else None)
        return cls(*batch_plan(n, batch_size, steps, seed), shifts)

    def batch(self, x, y, step: int):
        chosen = self.indices[self.starts[step]:self.ends[step]]
        if self.shifts is None:
            return x[chosen], y[chosen]
        return shift_images(x[chosen], self.shifts[step, :len(chosen)]), y[chosen]


def training_batches(x, y, batch_size: int, steps: int, seed: int, augment_shift: int = 0):
    """The batches of `batch_plan`, shifted by `shift_plan` when augment_shift > 0, in the form
    `fit` takes fastest on this backend."""
    plan = _Plan.make(len(x), batch_size, steps, seed, augment_shift)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # One tf.data pipeline for the whole run: no Python per step. Keras keeps the iterator
        # across epochs when steps_per_epoch is given, so epoch e continues where e-1 ended.
        xs, ys = reuse.tensor(x), reuse.tensor(y)
        idx, lo, hi = tf.constant(plan.indices), tf.constant(plan.starts), tf.constant(plan.ends)
        shifts = None if plan.shifts is None else tf.constant(plan.shifts, tf.int32)

        def gather(step):
            chosen = idx[lo[step]:hi[step]]
            images = tf.gather(xs, chosen)
            if shifts is not None:
                images = shift_images(images, shifts[step, :tf.size(chosen, tf.int64)])
            return images, tf.gather(ys, chosen)

        return tf.data.Dataset.range(steps).map(gather).prefetch(4)
    return _PlannedBatches(x, y, plan, steps)


class _PlannedBatches(keras.utils.PyDataset):
    """`_Plan` as a PyDataset (backends other than TensorFlow): item i is step i of the run.

    One item per step of the whole run, not per epoch: `fit` (given steps_per_epoch) keeps
    the iterator across epochs, as with tf.data. Counting epochs in on_epoch_begin/end would
    not do: `fit` calls on_epoch_end once before training and, on JAX, draws a batch to build.
    """

    def __init__(self, x, y, plan: _Plan, steps: int):
        super().__init__()
        self.x, self.y, self.plan, self.steps = x, y, plan, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.plan.batch(self.x, self.y, step)


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


def history_metrics(rows: list[dict[str, Any]], diverged: bool, params: int) -> dict[str, Any]:
    """The metrics a run's history rows give (both training paths: here and study.packed)."""
    metrics: dict[str, Any] = {"epochs": len(rows), "steps": rows[-1]["step"] if rows else 0,
                               "params": params}
    val = [r["val_accuracy"] for r in rows if r["val_accuracy"] is not None]
    if val:
        best = int(np.argmax(val))
        metrics.update(best_val_accuracy=val[best], best_epoch=best + 1)
    # The first logged step at which every validation sample is right (XOR: steps to solve).
    solved = [r["step"] for r in rows if r["val_accuracy"] == 1.0]
    metrics["solved_at_step"] = solved[0] if solved else None
    if diverged:
        metrics["diverged_at_step"] = rows[-1]["step"] if rows else 0
    return metrics


def _final_metrics(compiled, dataset, evaluate_test: bool, history: _HistoryRecorder):
    metrics = history_metrics(history.rows, history.diverged, compiled.model.count_params())
    if history.diverged:
        return metrics  # weights are NaN: no final evaluation
    for name, (split, size) in evaluation_splits(dataset, evaluate_test).items():
        x, y = _evaluation_data(compiled, split, size)
        loss, accuracy = compiled.model.evaluate(x, y, batch_size=EVALUATION_BATCH, verbose=0)
        metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = float(loss), float(accuracy)
    return metrics


# The train_* metrics are measured on at most the first 10,000 training samples: on the
# 50,000 of full MNIST that is a tight estimate at a fifth of the cost (at 20 layers, seconds).
TRAIN_EVALUATION_SIZE = 10_000


def evaluation_splits(dataset: datasets.Dataset,
                      evaluate_test: bool) -> dict[str, tuple[datasets.Split, int]]:
    """name -> (split, how many of its first samples the final metrics score)."""
    splits = {"train": (dataset.train, min(len(dataset.train), TRAIN_EVALUATION_SIZE)),
              "val": (dataset.validation, len(dataset.validation))}
    if evaluate_test:
        splits["test"] = (dataset.test, len(dataset.test))
    return splits


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
            "numpy": np.__version__, "python": platform.python_version(), "cpu": _cpu()}


@functools.lru_cache(maxsize=1)
def _cpu() -> str:
    """The processor's model name and core count (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model} x {os.cpu_count()}"


def _describe(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(error).__name__}: {error} (at {where})"
