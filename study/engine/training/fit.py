"""Fit one network on its seed's batches, log a history row per epoch, measure the end.

A loss that turns NaN or infinite stops the run as `diverged` (`HistoryRecorder`).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import keras
import numpy as np

from study import data as datasets
from study.engine.studies import components
from study.engine.studies.run_schema import EarlyStopping, RunConfig, Training
from study.engine.training import graph_key, models, reuse
from study.engine.training.batches import Plan, training_batches
from study.engine.training.probes import BoundaryFrames, add_accuracy_gap


def epochs_of(t: Training, n: int) -> tuple[int, int]:
    """`(steps_per_epoch, epochs)` of a run on n training samples; an epoch is a history row."""
    steps_per_pass = math.ceil(n / t.batch_size)
    if t.steps is not None:
        # A history row every log_every steps, or else every pass of the data, rounded down to
        # a divisor of the steps so that the run stops exactly at `steps`.
        steps_per_epoch = t.log_every or largest_divisor(t.steps, steps_per_pass)
        return steps_per_epoch, t.steps // steps_per_epoch
    return steps_per_pass, t.epochs


def largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def build_member(config: RunConfig, dataset: datasets.Dataset, seed: int) -> models.Compiled:
    """The compiled network of a run (or of an ensemble member) with `seed`, untrained."""
    steps_per_epoch, _ = epochs_of(config.training, len(dataset.train.x))
    return models.build(config, dataset.input_shape, dataset.num_classes, seed,
                        steps_per_execution=largest_divisor(steps_per_epoch, 100))


def keeps_models(config: RunConfig) -> bool:
    """Do the runs of `config` train on kept models (`reuse`)? Not with your own components:
    they may keep state outside their variables, which the restore would not reset, so each of
    their runs gets a fresh model."""
    return not components.fingerprints(config.model_dump(mode="json"))


def seed_member(config: RunConfig, seed: int) -> None:
    """Seed what a run (or an ensemble member) may draw from without a seed of its own.

    A run with fresh models gets `keras.utils.set_random_seed(seed)`: Python's, NumPy's,
    Keras's and TensorFlow's global seeds. A run on a kept model gets Python's and NumPy's
    only: setting TensorFlow's global seed also empties TensorFlow's kernel cache, so the kept
    model's traced functions would be instantiated and optimised again (~0.2 s a run on
    mnist_hparam_search's network), and nothing such a run computes draws from it - its
    initializers, dropout masks and batches all take seeds derived from the run's (`models`,
    `batches`). Every number stays the same: the full studies' databases, compared run by
    run, are identical.
    """
    if keeps_models(config):
        random.seed(seed)
        np.random.seed(seed)
    else:
        keras.utils.set_random_seed(seed)


def reused_member(config: RunConfig, dataset: datasets.Dataset, seed: int) -> models.Compiled:
    """`build_member`'s network, on the compiled model this worker last trained with the same
    graph (`graph_key`) if there is one (`reuse`): the same initial state, traced functions
    called again."""
    if not keeps_models(config):
        return build_member(config, dataset, seed)
    key = repr((graph_key.graph_key(config), dataset.input_shape, dataset.num_classes,
                len(dataset.train.x)))
    return reuse.compiled_model(key, lambda: build_member(config, dataset, seed))


def fit_member(compiled: models.Compiled, config: RunConfig, dataset: datasets.Dataset,
               seed: int, frames: BoundaryFrames | None = None) -> HistoryRecorder:
    """Train `compiled` on the batches of `seed`; its history (and whether it diverged).
    `frames` (record_boundaries) takes the decision boundary at every history row's step."""
    t = config.training
    steps_per_epoch, epochs = epochs_of(t, len(dataset.train.x))
    x, y = dataset.train.x, compiled.targets(dataset.train.y)
    batches = training_batches(x, y, t.batch_size, epochs * steps_per_epoch, seed,
                               augment_shift=t.augment_shift, sampling=t.sampling)
    history = HistoryRecorder(compiled.optimizer, steps_per_epoch)
    callbacks: list[keras.callbacks.Callback] = [history]
    if frames is not None:
        callbacks.append(BoundaryRecorder(history, frames))
    if t.early_stopping is not None:
        callbacks += early_stopping_callbacks(compiled, t.early_stopping, dataset, history)
    # The history's val_* (and early stopping without a split of its own) may watch the first
    # history_validation_size validation samples, to spare evaluations; the final val_*
    # metrics use them all.
    size = t.history_validation_size or len(dataset.validation)
    compiled.model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                       validation_data=evaluation_data(compiled, dataset.validation, size),
                       validation_batch_size=EVALUATION_BATCH, callbacks=callbacks, verbose=0)
    return history


def early_stopping_callbacks(compiled: models.Compiled, es: EarlyStopping,
                             dataset: datasets.Dataset, history: HistoryRecorder):
    """Keras's EarlyStopping on `es.monitor`, after a `StoppingSplitScore` that puts the
    stop_* values of the early-stopping split into the logs when `es.split` is set. `history`
    learns at which steps it stopped and found its best (`HistoryRecorder.stopping`)."""
    callbacks: list[keras.callbacks.Callback] = []
    if es.split is not None:
        # Only the early-stopping split's numbers: every stored metric keeps its own split.
        callbacks.append(StoppingSplitScore(*evaluation_data(
            compiled, dataset.early_stopping, len(dataset.early_stopping))))
    stopper = keras.callbacks.EarlyStopping(
        monitor=es.monitor, patience=es.patience, mode="min" if "loss" in es.monitor else "max",
        restore_best_weights=es.restore_best_weights)
    history.stopper = stopper
    return [*callbacks, stopper]


class StoppingSplitScore(keras.callbacks.Callback):
    """After each epoch, `stop_loss` and `stop_accuracy` in the logs: the loss and accuracy of
    the model on the early-stopping split, measured as `evaluate` measures val_* (the same
    loss, penalties included, and metric; inference mode, so no dropout mask is drawn and no
    batch-norm statistic moves). Keras hands every later callback the same logs dict, so
    EarlyStopping after this one can watch them."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs is None:
            return
        loss, accuracy = self.model.evaluate(self.x, self.y, batch_size=EVALUATION_BATCH,
                                             verbose=0)
        logs["stop_loss"], logs["stop_accuracy"] = float(loss), float(accuracy)


EVALUATION_BATCH = 1000


def evaluation_data(compiled: models.Compiled, split: datasets.Split, size: int):
    """`(x, y)` of the first `size` samples of `split` for `evaluate` (with batch_size 1000): on
    TensorFlow x is a dataset of those batches kept by the worker (`reuse`) and y None
    (Keras ignores batch_size for a dataset), elsewhere the arrays themselves."""
    y = compiled.targets(split.y)
    if keras.backend.backend() == "tensorflow":
        return reuse.evaluation_batches(split.x, y, size, EVALUATION_BATCH), None
    return split.x[:size], y[:size]


def first_batch(config: RunConfig, dataset: datasets.Dataset, seed: int,
                compiled: models.Compiled):
    """`(x, y)` of the run's first training step: batch 0 of its plan, augmented as trained."""
    t = config.training
    steps_per_epoch, epochs = epochs_of(t, len(dataset.train.x))
    plan = Plan.make(len(dataset.train.x), t.batch_size, steps_per_epoch * epochs, seed,
                     t.augment_shift, t.sampling)
    x, y = plan.batch(dataset.train.x, dataset.train.y, 0)
    return x, compiled.targets(y)


class HistoryRecorder(keras.callbacks.Callback):
    """One history row per epoch; stops the run when the loss stops being finite."""

    def __init__(self, optimizer, steps_per_epoch: int):
        super().__init__()
        self.optimizer, self.steps_per_epoch = optimizer, steps_per_epoch
        self.rows: list[dict[str, Any]] = []
        self.diverged = False
        self.stopper: keras.callbacks.EarlyStopping | None = None  # set by early stopping
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        step = (epoch + 1) * self.steps_per_epoch
        self.rows.append({
            "epoch": epoch + 1, "step": step,
            "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
            "learning_rate": current_learning_rate(self.optimizer),
            "time": time.perf_counter() - self._start,
        })
        loss = logs.get("loss")
        if loss is None or not math.isfinite(float(loss)):
            self.diverged = True
            self.model.stop_training = True

    def stopping(self) -> dict[str, Any]:
        """With early stopping: `early_stopping_best_step`, the step of the best monitored
        value (whose weights restore_best_weights keeps), and `early_stopping_stopped_at_step`,
        the step at which it stopped the run (None: it ran to the end)."""
        if self.stopper is None:
            return {}
        stopped = self.stopper.stopped_epoch  # Keras: 0 when it never stopped the run
        return {"early_stopping_best_step": (self.stopper.best_epoch + 1) * self.steps_per_epoch,
                "early_stopping_stopped_at_step":
                    (stopped + 1) * self.steps_per_epoch if stopped else None}


class BoundaryRecorder(keras.callbacks.Callback):
    """After `history` has written an epoch's row, `frames` takes the boundary at its step.

    Keras calls the callbacks in list order, so `history` (before this one) has already
    judged the row: a row whose loss is not finite (the run diverged, its weights are NaN) gets
    no frame, and the frames stop at the last finite row. The forward pass is in inference mode
    and only reads the weights: training goes on as without it.
    """

    def __init__(self, history: HistoryRecorder, frames: BoundaryFrames):
        super().__init__()
        self.history, self.frames = history, frames

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.history.rows and not self.history.diverged:
            self.frames.take(self.history.rows[-1]["step"])


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def history_metrics(rows: list[dict[str, Any]], diverged: bool, params: int) -> dict[str, Any]:
    """The metrics a run's history rows give (both training paths: here and packed)."""
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


def gradient_metrics(norms: list[dict[str, Any]]) -> dict[str, Any]:
    """`grad_norm_<layer>` of each layer and `grad_norm_first_over_last`, from a run's
    gradient norms (`probes.gradient_norms`)."""
    metrics: dict[str, Any] = {f"grad_norm_{g['layer']}": g["norm"] for g in norms}
    # Below 1: the gradient shrinks on its way back to the first layer (vanishes).
    metrics["grad_norm_first_over_last"] = (norms[0]["norm"] / norms[-1]["norm"]
                                            if norms[-1]["norm"] else None)
    return metrics


def pack_metrics(rows: list[dict[str, Any]], diverged: bool, params: int,
                 final: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """The metrics `final_metrics` computes, from a packed run's history and its final
    (loss, accuracy) per split name ("train", "val", "test")."""
    metrics = history_metrics(rows, diverged, params)
    if diverged:
        return metrics
    for name, (loss, accuracy) in final.items():
        metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = loss, accuracy
    add_accuracy_gap(metrics)
    return metrics


def final_metrics(compiled, dataset, evaluate_test: bool, history: HistoryRecorder):
    metrics = history_metrics(history.rows, history.diverged, compiled.model.count_params())
    metrics.update(history.stopping())
    if history.diverged:
        return metrics  # weights are NaN: no final evaluation
    for name, (split, size) in evaluation_splits(dataset, evaluate_test).items():
        x, y = evaluation_data(compiled, split, size)
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
