"""Which samples each training step sees: a plan drawn from the run's seed alone.

Two ways to draw (`training.sampling`): "permutation" (the default) takes seeded permutations
from `numpy.random.default_rng([seed, pass])`; "with_replacement" draws each step's indices
uniformly with replacement from `default_rng([seed, WITH_REPLACEMENT_STREAM])`, the book's
`np.random.choice(N, B)` every step. Either depends on the run's seed alone, never on the
model, so every arm of one seed sees the same batches; data augmentation's shifts come from
`default_rng([seed, 5])`, as independent of the model.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from study.engine.training import reuse, tf_data


SAMPLINGS = ("permutation", "with_replacement")

# The seed stream of with-replacement draws: [seed, 1_000_003], far from the small stream
# numbers used elsewhere (permutation pass p: [seed, p]; shifts: [seed, 5]).
WITH_REPLACEMENT_STREAM = 1_000_003


def batch_plan(n: int, batch_size: int, steps: int, seed: int,
               sampling: str = "permutation"):
    """The sample indices of every training step: `permutation_plan` or, with
    sampling = "with_replacement", `with_replacement_plan`."""
    if sampling == "with_replacement":
        return with_replacement_plan(n, batch_size, steps, seed)
    if sampling != "permutation":
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {sampling!r}")
    return permutation_plan(n, batch_size, steps, seed)


def with_replacement_plan(n: int, batch_size: int, steps: int, seed: int):
    """Every step's B indices drawn independently and uniformly from {0, ..., n-1}, with
    replacement (DLFS: `batch_mask = np.random.choice(train_size, batch_size)` every step):

        i[s, j] ~ Uniform{0, ..., n-1},  independent over s and j,

    from `default_rng([seed, WITH_REPLACEMENT_STREAM]).integers(n, size=(steps, B))`. A batch
    can hold a sample twice and an epoch (n / B steps) misses about a share (1 - 1/n)^n ~ 1/e
    of the samples. Every batch has B indices, also when B > n. NumPy draws the array in row
    order, so a run of more steps begins with the same batches. Same return as `batch_plan`.
    Against the book: the same law, other numbers (its np.random.choice draws from NumPy's
    global legacy RandomState; here each run has its seeded PCG64 stream); tests/test_sampling.py
    checks the law (chi-square on the counts, the rate of repeats in a batch and an epoch).
    """
    rng = np.random.default_rng([seed, WITH_REPLACEMENT_STREAM])
    indices = rng.integers(0, n, size=(steps, batch_size), dtype=np.int64).ravel()
    starts = np.arange(steps, dtype=np.int64) * batch_size
    return indices, starts, starts + batch_size


def permutation_plan(n: int, batch_size: int, steps: int, seed: int):
    """The sample indices of every training step, from a stream of seeded permutations.

    Pass p of the data is `default_rng([seed, p]).permutation(n)`, cut into ceil(n / batch)
    batches (the last one smaller when batch does not divide n; no batch straddles two
    passes). Returns `(indices, starts, ends)`: step s trains on `indices[starts[s]:ends[s]]`.
    The order depends on the seed alone, never on the model, so arms compared seed by seed
    see the same batches. Full-batch training (batch >= n) has no order to draw: every step
    takes the data as it is, which lets runs of different seeds share one input (`packed`).
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


class Plan:
    """`batch_plan`, and with augmentation each step's `shift_plan`: step s's batch, numerically."""

    def __init__(self, indices, starts, ends, shifts):
        self.indices, self.starts, self.ends, self.shifts = indices, starts, ends, shifts

    @classmethod
    def make(cls, n: int, batch_size: int, steps: int, seed: int, augment_shift: int = 0,
             sampling: str = "permutation"):
        # The widest batch: a permutation's batches hold at most n samples, draws with
        # replacement always batch_size.
        width = batch_size if sampling == "with_replacement" else min(batch_size, n)
        shifts = shift_plan(augment_shift, steps, width, seed) if augment_shift else None
        return cls(*batch_plan(n, batch_size, steps, seed, sampling), shifts)

    def batch(self, x, y, step: int):
        chosen = self.indices[self.starts[step]:self.ends[step]]
        if self.shifts is None:
            return x[chosen], y[chosen]
        return shift_images(x[chosen], self.shifts[step, :len(chosen)]), y[chosen]


def training_batches(x, y, batch_size: int, steps: int, seed: int, augment_shift: int = 0,
                     sampling: str = "permutation"):
    """The batches of `batch_plan`, shifted by `shift_plan` when augment_shift > 0, in the form
    `fit` takes fastest on this backend."""
    plan = Plan.make(len(x), batch_size, steps, seed, augment_shift, sampling)
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

        return tf_data.untuned(tf.data.Dataset.range(steps).map(gather).prefetch(4))
    return PlannedBatches(x, y, plan, steps)


class PlannedBatches(keras.utils.PyDataset):
    """`Plan` as a PyDataset (backends other than TensorFlow): item i is step i of the run.

    One item per step of the whole run, not per epoch: `fit` (given steps_per_epoch) keeps
    the iterator across epochs, as with tf.data. Counting epochs in on_epoch_begin/end would
    not do: `fit` calls on_epoch_end once before training and, on JAX, draws a batch to build.
    """

    def __init__(self, x, y, plan: Plan, steps: int):
        super().__init__()
        self.x, self.y, self.plan, self.steps = x, y, plan, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.plan.batch(self.x, self.y, step)
