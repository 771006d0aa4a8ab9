"""Packed training: the seeds of one small full-batch configuration, trained by one loop.

A run of the 2-5-4-1 XOR net costs about 2 s through `fit`, nearly all of it per-call overhead;
its arithmetic is microseconds. So the runs of one configuration (an arm: everything but the
seed) are stacked: run r's kernel of layer l is slice r of one variable of shape
(R, fan_in, fan_out), and one compiled step computes

    loss_total = sum_r loss_r(W_r),    so    d loss_total / d W_r = d loss_r / d W_r,

which an element-wise optimizer (all of ours and Keras's, without norm clipping) turns into
exactly the update run r would get alone. Each run keeps its own initial weights (its seed's),
history, metrics, divergence and, with `record_boundaries`, decision boundaries per logged step
(slice r of the stacked network's outputs on the grid).

Kinds of pack (`_KINDS`): these XOR runs; mini-batch MNIST runs (`packed_minibatch`); the seeds
of an optimizer path (`packed_paths`).

Here full-batch runs are packed (every step sees the whole training split, in order, for every
seed: `batches.batch_plan`), on TensorFlow, without the options that couple weights or draw
per-step randomness (batch norm, dropout, residual blocks, regularizers, constraints, norm
clipping, early stopping); the stacked network is `stacked.StackedNetwork`. Mini-batch MNIST
runs pack in `packed_minibatch`, each run fed its own seed's batches. Everything else goes
through `run.train_run`; `packable` decides, `train_pack` dispatches.

Exactness: a packed run's record equals the one `train_run` writes up to float32 rounding
(tests/test_packed.py). Bit for bit, a run's numbers depend on its pack, because vectorised
kernels round an element by its position in the buffer; so a pack is always the arm's seeds as
the study file lists them, never a split chosen by the number of jobs, and `--jobs 1` and
`--jobs 2` store identical results. A packed run's `wall_time` is its share of the pack's time.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import keras
import numpy as np

from study import boundary_frames
from study.engine.studies import components
from study.engine.results.store import RunRecord
from study.engine.studies.expansion import RunSpec
from study.engine.training import graph_key, models, packed_minibatch, packed_paths
from study.engine.training.datasets import load_dataset
from study.engine.training.environment import enable_determinism
from study.engine.training.fit import current_learning_rate, pack_metrics
from study.engine.training.probes import BoundaryFrames, decision_boundaries
from study.engine.training.run import train_run, train_together
from study.engine.training.stacked import StackedNetwork, per_run_loss_and_accuracy

_COUPLING_OPTIMIZER_ARGS = ("clipnorm", "global_clipnorm")


def packable(spec: RunSpec) -> bool:
    """Does the run train in a pack (of some kind) rather than alone?"""
    return _kind(spec) is not None


def _kind(spec: RunSpec):
    """The kind of pack the run joins, as its `train_pack`; None: it trains alone."""
    return next((train for joins, train in _KINDS if joins(spec)), None)


def _xor_packable(spec: RunSpec) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    c = spec.run_config
    if c.task != "train" or c.data.dataset not in ("xor", "xor_cloud"):
        return False
    m, t = c.model, c.training
    n_train = 4 if c.data.dataset == "xor" else c.data.cloud_points
    # The packed network is the shorthand's affine -> activation stack of registry components:
    # a layer list, arguments of layers, or your own code take the plain path.
    plain = (m.layers is None and not m.activation_args
             and not components.fingerprints(spec.config))
    # Full batch in data order only: draws with replacement give every seed its own batches.
    return (plain and t.batch_size >= n_train and t.sampling == "permutation"
            and not m.batch_norm and m.dropout == 0
            and not m.residual
            and m.regularizer is None and m.constraint is None and t.early_stopping is None
            and t.ensemble == 1 and not t.record_gradients
            and not any(t.optimizer_args.get(k) for k in _COUPLING_OPTIMIZER_ARGS))


def packs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Work units: the packable runs of each configuration together, every other run alone."""
    arms: dict[str, list[RunSpec]] = {}
    singles: list[list[RunSpec]] = []
    for spec in specs:
        if packable(spec):
            arms.setdefault(json.dumps([spec.study, spec.config], sort_keys=True),
                            []).append(spec)
        else:
            singles.append([spec])
    return [sorted(arm, key=lambda s: s.seed) for arm in arms.values()] + singles


def unit_shape(unit: list[RunSpec]) -> str:
    """What a worker needs traced to train `unit`: the graph of its configuration
    (`graph_key`: initializer, constant learning rate and L1/L2 factor aside) and the pack's
    size. Units of one shape run on one worker's kept model or trainer without a new trace."""
    first = unit[0]
    config = first.run_config
    graph = graph_key.graph_key(config) if config.task == "train" else json.dumps(
        first.config, sort_keys=True)
    return json.dumps([graph, len(unit)])


def train_pack(specs: list[RunSpec], data_dir=None) -> list[RunRecord]:
    """Train the runs of one configuration together; one record each, in the order given."""
    train = _kind(specs[0])
    if train is None:
        return [train_run(spec, data_dir) for spec in specs]
    return train(specs, data_dir)


def _train_xor_pack(specs: list[RunSpec], data_dir=None) -> list[RunRecord]:
    # A packable run alone still takes this path, so its result does not depend on how the
    # runs were split among jobs.
    if len(specs) == 1:
        # TensorFlow's batched matmul takes another kernel for a batch of one, whose rounding
        # differs; a lone run trains beside a copy of itself so that its numbers never depend
        # on how many runs shared its pack.
        return _train_xor_pack([specs[0], specs[0]], data_dir)[:1]
    return train_together(specs, lambda records, start: _train_pack(specs, records, start),
                          lambda spec: train_run(spec, data_dir))


# Kinds of pack, each (does a run join it?, train a pack of it): a run joins the first that
# takes it. A pack is one configuration's runs, so it never mixes kinds.
_KINDS = ((_xor_packable, _train_xor_pack),
          (packed_minibatch.packable, packed_minibatch.train_pack),
          (packed_paths.packable, packed_paths.train_pack))


def _train_pack(specs: list[RunSpec], records: list[RunRecord], start: float) -> StackedNetwork:
    """Fill the records; return the trained network (tests read its weights)."""
    import tensorflow as tf

    first = specs[0].run_config
    enable_determinism()
    dataset = load_dataset(first, 0)
    t = first.training
    outputs = 1 if t.loss == "binary_cross_entropy" else dataset.num_classes
    network = StackedNetwork(first.model, [spec.seed for spec in specs],
                             dataset.input_shape[0], outputs)

    def split(name):
        part = getattr(dataset, name)
        return tf.constant(part.x, keras.config.floatx()), tf.constant(part.y.astype("int32"))

    train_x, train_y = split("train")
    network(train_x)  # builds the layers that make their weights on first call (PReLU)
    variables = [v for layer in network.layers for v in layer.trainable_weights]
    optimizer = models.make_optimizer(t)
    optimizer.build(variables)
    # One step is one pass (full batch): a history row every log_every steps, or every step.
    steps_per_epoch = (t.log_every or 1) if t.steps is not None else 1
    epochs = t.steps // steps_per_epoch if t.steps is not None else t.epochs

    @tf.function(jit_compile=False, reduce_retracing=True)
    def train_epoch():
        loss_sum = tf.zeros(len(specs), keras.config.floatx())
        correct_sum = tf.zeros(len(specs), keras.config.floatx())
        for _ in tf.range(steps_per_epoch):
            with tf.GradientTape() as tape:
                loss, correct = per_run_loss_and_accuracy(t.loss, train_y,
                                                           network(train_x))
                total = tf.reduce_sum(loss)
            gradients = tape.gradient(total, variables)
            optimizer.apply(gradients, variables)
            loss_sum += loss
            correct_sum += correct
        return loss_sum / steps_per_epoch, correct_sum / steps_per_epoch

    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        return per_run_loss_and_accuracy(t.loss, y, network(x))

    val_x, val_y = split("validation")
    if t.history_validation_size:  # as train.fit_member: history rows judge the first N
        val_x, val_y = val_x[:t.history_validation_size], val_y[:t.history_validation_size]
    # record_boundaries: every run's boundary after each logged step, one forward pass of the
    # stacked network on the grid (it reads the weights only: the training is the same).
    frames = (BoundaryFrames(tf.function(lambda points: network(points), reduce_retracing=True),
                             networks=len(specs))
              if t.record_boundaries else None)
    live = np.ones(len(specs), dtype=bool)
    histories: list[list[dict[str, Any]]] = [[] for _ in specs]
    for epoch in range(epochs):
        loss, accuracy = (np.asarray(v, np.float64) for v in train_epoch())
        val_loss, val_accuracy = (np.asarray(v, np.float64) for v in evaluate(val_x, val_y))
        learning_rate = current_learning_rate(optimizer)
        elapsed = time.perf_counter() - start
        for index in range(len(specs)):
            if not live[index]:
                continue
            histories[index].append({
                "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                "loss": float(loss[index]), "accuracy": float(accuracy[index]),
                "val_loss": float(val_loss[index]),
                "val_accuracy": float(val_accuracy[index]),
                "learning_rate": learning_rate, "time": elapsed})
            if not math.isfinite(loss[index]):
                live[index] = False  # its weights are NaN now; the others train on
        if frames is not None and live.any():
            # As on the plain path: a frame per row while the loss is finite.
            frames.take((epoch + 1) * steps_per_epoch, np.flatnonzero(live))

    final = {}
    for name in ("train", "validation", "test") if t.evaluate_test else ("train", "validation"):
        final["val" if name == "validation" else name] = [
            np.asarray(v, np.float64) for v in evaluate(*split(name))]
    boundaries = (decision_boundaries(lambda points: network(points))
                  if first.data.dataset == "xor_cloud" else None)
    params = sum(int(np.prod(v.shape[1:])) for v in variables)
    for index in range(len(specs)):
        record, rows = records[index], histories[index]
        diverged = not live[index]
        record.history = rows
        record.status = "diverged" if diverged else "finished"
        record.metrics = pack_metrics(rows, diverged, params,
                                  {split_name: (float(losses[index]), float(acc[index]))
                                   for split_name, (losses, acc) in final.items()})
        if boundaries is not None and not diverged:
            record.artifacts["decision_boundary"] = boundaries[index]
        if frames is not None and (artifact := frames.artifact(index)) is not None:
            record.artifacts[boundary_frames.ARTIFACT] = artifact
    return network
