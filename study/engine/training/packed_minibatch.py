"""Packed mini-batch training: the seeds of one MNIST configuration trained as one model.

A steady MNIST run through `fit` spends most of its time in steps whose matmuls are small
(784-100x4-10, batch 128), where a core does far less than it could. So the runs of one
configuration (an arm: everything but the seed) are stacked (`stacked.StackedNetwork`): run
r's weights are slice r of every variable, and each step feeds every slice its own seed's
batch, x of shape (runs, batch, 784) gathered from the runs' own batch plans
(`batches.Plan`, drawn from the seed alone, so the arms of a seed still see identical
batches). One compiled loop runs an epoch's steps for all of them, with

    loss_total = sum_r (loss_r + penalty_r(W_r)),   d loss_total / d W_r = d loss_r / d W_r + ...

so an element-wise optimizer gives each slice the update its run would get alone. Per run it
keeps, as `fit` logs them: the epoch's mean loss (penalties included) and accuracy, each step
weighted by its batch size; the history evaluation on the first `history_validation_size`
validation images; the final evaluations (`fit.evaluation_splits`), in batches of 1000; its
own divergence (a slice whose loss turns non-finite stops being recorded; the others train on,
their gradients untouched by its NaNs).

What packs (`packable`): task "train" on MNIST (its first n_train images: the same data for
every seed; `subset = "random"` gives each seed its own, and trains alone), TensorFlow, the
shorthand network of registry components (hidden sizes, activation incl. PReLU, initializer,
bias, residual blocks of either form, dropout of either form with each run's own masks), batch
norm, ours or Keras's (`stacked_norm`: each run's own batch statistics and moving statistics;
momentum, epsilon, center, scale, constant initializers), any registry optimizer and schedule
without norm clipping (clipnorm and global_clipnorm take a norm over the whole stacked
variable, which would couple the runs), a weight penalty (called on each run's slice),
augmentation shifts, either sampling, targets digit and parity with cross-entropy, binary
cross-entropy or MSE, gradient norms before the first step (`record_gradients`). What trains
alone: batch norm with arguments `stacked_norm.packs` does not reproduce (a penalty or
constraint on gamma or beta, renormalisation, random initializers, ...), your own batch norm,
dropout with a noise shape, constraints, early stopping, ensembles, layer lists, activation
arguments, your own components, the regression target, non-TensorFlow backends.

Exactness: a packed run equals the run trained alone by `train_run` up to float32 rounding
(a batched matmul and per-run reductions instead of Keras's Dense and loss, in another order;
tests/test_packed_minibatch.py states the tolerances). Bit for bit, a run's numbers depend on
its configuration, its seed and the seed list of its pack: vectorised kernels may round an
element by its place in a buffer, so the slice a run takes and the pack's size can change its
last bits. A pack is always every pending seed of one configuration, in seed order (`packed.packs`),
never a split chosen by the number of jobs, and its compiled loops are traced for any size
(so a kept trainer computes what a new one does): `--jobs 1` and `--jobs 2` store identical
numbers, and so does a study run twice. A study resumed with part of an arm still to train
packs the seeds left, whose numbers agree with the whole pack's within float32 rounding.

One trace per model shape: a worker keeps its last packed trainer (network, optimizer, traced
functions). The next pack of the same graph (`graph_key`: initializer, constant learning rate
and L1/L2 factor aside) and size gets it back with every variable set to the new runs' fresh
values, as `reuse` does for single runs.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from study.engine.results.store import RunRecord
from study.engine.studies import components
from study.engine.studies.expansion import RunSpec
from study.engine.training import graph_key, models, reuse, stacked_norm
from study.engine.training.batches import Plan, shift_images
from study.engine.training.datasets import changed_data, load_dataset
from study.engine.training.environment import enable_determinism
from study.engine.training.fit import (EVALUATION_BATCH, current_learning_rate, epochs_of,
                                       evaluation_splits, gradient_metrics, pack_metrics)
from study.engine.training.run import train_run, train_together
from study.engine.training.stacked import StackedNetwork, per_sample_loss_and_correct

_COUPLING_OPTIMIZER_ARGS = ("clipnorm", "global_clipnorm")


def packable(spec: RunSpec) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    c = spec.run_config
    if c.task != "train" or c.data.dataset != "mnist":
        return False
    m, t = c.model, c.training
    plain = (m.layers is None and not m.activation_args
             and not components.fingerprints(spec.config))
    return (plain and c.data.subset == "first" and c.data.target != "value"
            and (not m.batch_norm or stacked_norm.packs(m.batch_norm, m.batch_norm_args))
            and (m.dropout == 0 or set(m.dropout_args) <= {"inverted"})
            and m.constraint is None and t.early_stopping is None and t.ensemble == 1
            and not any(t.optimizer_args.get(k) for k in _COUPLING_OPTIMIZER_ARGS))


def train_pack(specs: list[RunSpec], data_dir=None) -> list[RunRecord]:
    """Train the runs of one configuration together; one record each, in the order given. If
    the pack cannot train (its data changed, an argument fails), each run trains alone and
    stores what it gets there (failed, with the reason)."""
    # One configuration, one data fingerprint (`make_specs`): checked once for the pack.
    if changed_data(specs[0].config, specs[0].data_fingerprint, data_dir):
        return [train_run(spec, data_dir) for spec in specs]
    # After a failure the kept trainer's state is unknown: forget it.
    return train_together(specs, lambda records, start: train_records(
        specs, records, data_dir, start), lambda spec: train_run(spec, data_dir),
        on_failure=forget)


_kept: dict[str, "Trainer"] = {}  # the last trainer, by graph and pack size


def kept_trainer() -> "Trainer | None":
    """The trainer this worker keeps for the next pack of its shape, if any."""
    return next(iter(_kept.values()), None)


def forget() -> None:
    """Drop the kept trainer (tests; after a pack that failed, its state is unknown)."""
    _kept.clear()


def trainer(specs: list[RunSpec], n_in: int, n_out: int) -> "Trainer":
    """A trainer for `specs` in its fresh state: the kept one restored if it has their graph
    and size, else a new one (then kept)."""
    config = specs[0].run_config
    key = repr((graph_key.graph_key(config), len(specs), n_in, n_out))
    fresh = Trainer(config, [spec.seed for spec in specs], n_in, n_out)
    kept = _kept.get(key)
    if kept is not None and kept.take_state(fresh):
        return kept
    _kept.clear()
    fresh.hold_factors_in_variables()
    _kept[key] = fresh
    return fresh


class Trainer:
    """A stacked network, its optimizer and weight penalty, and the compiled loops that train
    and evaluate it."""

    def __init__(self, config, seeds: list[int], n_in: int, n_out: int):
        m, t = config.model, config.training
        self.loss_name, self.runs = t.loss, len(seeds)
        self.network = StackedNetwork(m, seeds, n_in, n_out)
        self.network(keras.ops.zeros((1, n_in)))  # builds PReLU's slopes
        self.weights = [v for layer in self.network.layers for v in layer.weights]
        # and dropout's seed generator states: what a kept trainer sets to a fresh pack's
        self.variables = [v for layer in self.network.layers for v in layer.variables]
        self.trainable = [v for layer in self.network.layers for v in layer.trainable_weights]
        self.optimizer = models.make_optimizer(t)
        self.optimizer.build(self.trainable)
        self.regularizer = (None if m.regularizer is None else components.create(
            "regularizer", m.regularizer, **m.regularizer_args))
        self._train_epoch = self._evaluate = None

    def hold_factors_in_variables(self) -> None:
        """Before the first trace: an L1/L2 penalty reads its factor from a variable, so the
        next pack can set another factor without tracing again (`graph_key`)."""
        if type(self.regularizer) in graph_key.FACTOR_REGULARIZERS:
            self.regularizer = graph_key.VariableFactors(self.regularizer, keras.config.floatx())

    def take_state(self, fresh: "Trainer") -> bool:
        """Set every variable (network, batch norm's moving statistics, optimizer, penalty
        factors) to `fresh`'s; False if the two differ in structure."""
        targets = self.variables + self.optimizer.variables
        sources = fresh.variables + fresh.optimizer.variables
        if len(targets) != len(sources) or any(
                a.shape != b.shape or a.dtype != b.dtype for a, b in zip(targets, sources)):
            return False
        if isinstance(self.regularizer, graph_key.VariableFactors):
            if not self.regularizer.take(fresh.regularizer):
                return False
        elif type(self.regularizer) is not type(fresh.regularizer):
            return False
        for target, source in zip(targets, sources):
            target.assign(source.value)
        return True

    def penalties(self):
        """(runs,): each run's weight penalty, the sum over its kernels as Keras adds it."""
        import tensorflow as tf

        if self.regularizer is None:
            return tf.zeros(self.runs, keras.config.floatx())
        # unstack, not kernel[r]: the gradient of R strided slices is R zero-filled copies of
        # the whole stacked kernel (summed), unstack's is one stack of the R slices' gradients:
        # the same numbers (a sum with exact zeros) at a fraction of the memory traffic.
        return tf.add_n([tf.stack([self.regularizer(w) for w in tf.unstack(kernel)])
                         for kernel in self.network.kernels()])

    def train_epoch(self, data, plan, first_step: int, steps: int):
        """`steps` steps from `first_step` of every run's plan; per run the epoch's mean loss
        (penalty included) and accuracy, each step weighted by its batch size."""
        import tensorflow as tf

        if self._train_epoch is None:
            xs, ys, indices, starts, ends, shifts = (*data, *plan)
            signature = [_any_size(xs, 0), _any_size(ys, 0), _any_size(indices, 1),
                         _any_size(starts, 0), _any_size(ends, 0),
                         *([] if shifts is None else [_any_size(shifts, 1, 2)]),
                         tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64)]
            epoch = (self._epoch if shifts is not None else
                     lambda xs, ys, indices, starts, ends, first, steps: self._epoch(
                         xs, ys, indices, starts, ends, None, first, steps))
            self._train_epoch = tf.function(epoch, input_signature=signature)
        arguments = [a for a in (*data, *plan) if a is not None]
        return self._train_epoch(*arguments, tf.constant(first_step, tf.int64),
                                 tf.constant(steps, tf.int64))

    def _epoch(self, xs, ys, indices, starts, ends, shifts, first_step, steps):
        import tensorflow as tf

        dtype = keras.config.floatx()
        loss_sum = tf.zeros(self.runs, dtype)
        correct_sum = tf.zeros(self.runs, dtype)
        count = tf.zeros((), dtype)
        for step in tf.range(first_step, first_step + steps):
            images, labels = self._batch(xs, ys, indices, starts, ends, shifts, step)
            with tf.GradientTape() as tape:
                loss, correct = self._means(labels, self.network(images, training=True))
                loss = loss + self.penalties()
                total = tf.reduce_sum(loss)
            gradients = tape.gradient(total, self.trainable)
            self.optimizer.apply(gradients, self.trainable)
            size = tf.cast(tf.shape(labels)[1], dtype)
            loss_sum += loss * size
            correct_sum += correct * size
            count += size
        return loss_sum / count, correct_sum / count

    @staticmethod
    def _batch(xs, ys, indices, starts, ends, shifts, step):
        """Every run's batch of `step`, (runs, batch, features) and (runs, batch)."""
        import tensorflow as tf

        chosen = indices[:, starts[step]:ends[step]]  # (runs, batch): each run's samples
        images = tf.gather(xs, chosen)
        if shifts is not None:
            width = tf.shape(chosen, out_type=tf.int64)[1]
            moved = shift_images(tf.reshape(images, (-1, images.shape[-1])),
                                 tf.reshape(shifts[:, step, :width], (-1, 2)))
            images = tf.reshape(moved, tf.shape(images))
        return images, tf.gather(ys, chosen)

    def gradient_norms(self, data, plan) -> list[list[dict[str, Any]]]:
        """Per run, `probes.gradient_norms`'s list: ||dL/dW||_2 of each weight layer's kernel
        (the output layer last; a residual block's over both its kernels) on the run's first
        batch, before any step; L its training loss (penalty included). The gradient of the
        sum over runs is each run's own. As there, batch norm uses the batch's statistics, and
        in a StatelessScope its moving statistics stay where they are: training afterwards is
        the same as without this call."""
        import tensorflow as tf

        images, labels = self._batch(*data, *plan, tf.constant(0, tf.int64))
        groups = self.network.kernel_groups()
        with keras.StatelessScope(), tf.GradientTape() as tape:
            loss, _ = self._means(labels, self.network(images, training=True))
            total = tf.reduce_sum(loss + self.penalties())
        gradients = iter(tape.gradient(total, [k for group in groups for k in group]))
        values = [[next(gradients).numpy() for _ in group] for group in groups]

        def norm(group, run):  # as probes.gradient_norms sums a run's squares, kernel by kernel
            return float(np.sqrt(sum(np.sum(np.square(g[run].astype(np.float64)))
                                     for g in group)))

        return [[{"layer": i, "name": name, "norm": norm(group, run)}
                 for i, (name, group) in enumerate(zip(self.network.names, values), start=1)]
                for run in range(self.runs)]

    def evaluate(self, x, y, size: int):
        """Per run the mean loss (penalty included) and accuracy on the first `size` samples
        of (x, y), in batches of EVALUATION_BATCH, as `evaluate` weights them."""
        import tensorflow as tf

        if self._evaluate is None:
            self._evaluate = tf.function(self._scores, input_signature=[
                _any_size(x, 0), _any_size(y, 0), tf.TensorSpec((), tf.int64)])
        return self._evaluate(x, y, tf.constant(size, tf.int64))

    def _scores(self, x, y, size):
        import tensorflow as tf

        dtype = keras.config.floatx()
        loss_sum = tf.zeros(self.runs, dtype)
        correct_sum = tf.zeros(self.runs, dtype)
        penalty = self.penalties()
        for first in tf.range(tf.constant(0, tf.int64), size, EVALUATION_BATCH):
            last = tf.minimum(first + EVALUATION_BATCH, size)
            loss, correct = self._means(y[first:last],
                                        self.network(x[first:last], training=False))
            weight = tf.cast(last - first, dtype)
            loss_sum += (loss + penalty) * weight
            correct_sum += correct * weight
        return loss_sum / tf.cast(size, dtype), correct_sum / tf.cast(size, dtype)

    def _means(self, labels, outputs):
        """Per run: the mean loss and accuracy of a batch."""
        losses, correct = per_sample_loss_and_correct(self.loss_name, labels, outputs)
        return keras.ops.mean(losses, axis=1), keras.ops.mean(correct, axis=1)

    def params(self) -> int:
        """The parameters of one run's network (as `count_params` counts them)."""
        return sum(int(np.prod(v.shape[1:])) for v in self.weights)


def _any_size(tensor, *free: int):
    """A signature that takes `tensor` and any other of its dtype and shape but for the axes
    `free` (the number of samples, of steps): the compiled loops are traced once, for every
    size, so that a pack's numbers never depend on which sizes a kept trainer met first (a
    trace for given sizes lets TensorFlow's optimiser pick other kernels)."""
    import tensorflow as tf

    shape = [None if axis in free else size for axis, size in enumerate(tensor.shape)]
    return tf.TensorSpec(shape, tensor.dtype)


def stacked_plans(specs: list[RunSpec], n: int):
    """Every run's batch plan, stacked: indices (runs, L); starts, ends (steps,), the same for
    every seed (they depend on n, the batch size and the steps); shifts (runs, steps, width, 2)
    or None."""
    import tensorflow as tf

    t = specs[0].run_config.training
    steps_per_epoch, epochs = epochs_of(t, n)
    plans = [Plan.make(n, t.batch_size, steps_per_epoch * epochs, spec.seed, t.augment_shift,
                       t.sampling) for spec in specs]
    shifts = (None if plans[0].shifts is None else
              tf.constant(np.stack([p.shifts for p in plans]), tf.int32))
    return (tf.constant(np.stack([p.indices for p in plans])), tf.constant(plans[0].starts),
            tf.constant(plans[0].ends), shifts)


def train_records(specs: list[RunSpec], records: list[RunRecord], data_dir,
                  start: float) -> Trainer:
    """Fill the records; return the trained trainer (tests read its weights)."""
    import tensorflow as tf

    config = specs[0].run_config
    t = config.training
    enable_determinism()
    dataset = load_dataset(config, specs[0].seed, data_dir)
    n = len(dataset.train.x)
    outputs = 1 if t.loss == "binary_cross_entropy" else dataset.num_classes
    pack = trainer(specs, dataset.input_shape[0], outputs)

    def tensors(split):
        return reuse.tensor(split.x), tf.cast(reuse.tensor(split.y), tf.int32)

    train = tensors(dataset.train)
    plan = stacked_plans(specs, n)
    steps_per_epoch, epochs = epochs_of(t, n)
    norms = pack.gradient_norms(train, plan) if t.record_gradients else None
    validation = tensors(dataset.validation)
    history_size = t.history_validation_size or len(dataset.validation)
    live = np.ones(len(specs), dtype=bool)
    histories: list[list[dict[str, Any]]] = [[] for _ in specs]
    for epoch in range(epochs):
        loss, accuracy = (np.asarray(v, np.float64) for v in pack.train_epoch(
            train, plan, epoch * steps_per_epoch, steps_per_epoch))
        val_loss, val_accuracy = (np.asarray(v, np.float64) for v in pack.evaluate(
            *validation, min(history_size, len(dataset.validation))))
        learning_rate = current_learning_rate(pack.optimizer)
        elapsed = time.perf_counter() - start
        for index in np.flatnonzero(live):
            histories[index].append({
                "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                "loss": float(loss[index]), "accuracy": float(accuracy[index]),
                "val_loss": float(val_loss[index]), "val_accuracy": float(val_accuracy[index]),
                "learning_rate": learning_rate, "time": elapsed})
            if not math.isfinite(loss[index]):
                live[index] = False  # its weights are NaN now; the others train on
        if not live.any():
            break

    final = {}
    if live.any():
        for name, (split, size) in evaluation_splits(dataset, t.evaluate_test).items():
            final[name] = [np.asarray(v, np.float64)
                           for v in pack.evaluate(*tensors(split), size)]
    params = pack.params()
    for index, record in enumerate(records):
        diverged = not live[index]
        record.history = histories[index]
        record.status = "diverged" if diverged else "finished"
        record.metrics = pack_metrics(histories[index], diverged, params,
                                      {name: (float(losses[index]), float(accuracies[index]))
                                       for name, (losses, accuracies) in final.items()})
        if norms is not None:  # as train_run stores them, diverged or not
            record.artifacts["gradient_norms"] = norms[index]
            record.metrics.update(gradient_metrics(norms[index]))
    return pack
