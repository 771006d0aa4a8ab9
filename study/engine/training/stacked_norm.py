"""Batch normalisation of stacked runs: each run normalised by its own batch's statistics.

A packed network's activations have the layout (runs, batch, units) (`stacked`), so run r's
batch statistics are the moments of slice r over axis 1, and its gamma, beta and moving
statistics are row r of variables of shape (runs, units). A run alone builds one of two layers
(`models.hidden_stack`, after each hidden affine map and before its activation): ours
(`study.layers.BatchNormalization`, the registry's "batch_norm") or Keras's
(`keras.layers.BatchNormalization`, "keras.batch_norm"). They compute the same formula with
different operations, and a packed run must round as its run alone does, so each form is
reproduced op for op, with the run axis in front:

- ours: mean = sum(x) / n, variance = sum((x - mean)^2) / n, y = (x - mean) / sqrt(variance +
  eps) * gamma + beta;
- Keras's: `ops.moments` (TensorFlow's: reduce_mean, then the mean of squared_difference with
  the mean's gradient stopped) and `ops.batch_normalization` (TensorFlow's: inv = rsqrt(variance
  + eps) * gamma, y = x * inv + (beta - mean * inv)).

Both update the moving statistics as m <- m * momentum + statistic * (1 - momentum) in training
mode, and normalise with them in inference mode (every evaluation). `packs` says which
arguments are reproduced; any other (a penalty or constraint on gamma or beta, batch
renormalisation, synchronised statistics, a dtype, `trainable = false`, an initializer that
draws random numbers, a feature axis other than the last) leaves the run to train alone.

A packed run equals its run alone within float32 rounding (tests/test_packed_minibatch.py),
with one amplifier of rounding: an affine bias just before batch norm has a gradient of zero in
exact arithmetic, i.e. of rounding noise, which Adam-like optimizers scale up to real steps
that the moving mean follows; such runs evaluate ~1e-4 apart in loss after 24 steps (their
training losses agree to rounding, and in float64 everything to 1e-12).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from study.engine.studies import components
from study.layers import BatchNormalization
from study.layers.batch_normalization import normalize, update_moving_statistics

# `model.batch_norm` -> the registry name of the layer a run alone builds.
LAYER_NAMES = {True: "batch_norm", "keras": "keras.batch_norm"}
_FREE = ("momentum", "epsilon", "center", "scale", "renorm_momentum")  # renorm's, unused
_INITIALIZERS = ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                 "moving_variance_initializer")
_OFF = ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
        "renorm", "renorm_clipping", "synchronized")  # packs only when None or false
_CONSTANTS = (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)


def packs(batch_norm: Any, args: dict[str, Any]) -> bool:
    """Can a stacked layer reproduce this batch norm (`model.batch_norm`, `batch_norm_args`)?"""
    if batch_norm is not True and batch_norm != "keras":
        return False  # your own layer (or none)
    for name, value in args.items():
        if name == "axis":
            if value not in (-1, 1):  # the features of (batch, units)
                return False
        elif name in _INITIALIZERS:
            # Every run's start is the one the layer draws; a random draw is not reproduced.
            try:
                if not isinstance(keras.initializers.get(value), _CONSTANTS):
                    return False
            except (ValueError, TypeError):
                return False
        elif name in _OFF:
            if value not in (None, False):
                return False
        elif name not in _FREE:
            return False
    return True


# Built by a function, not by its own __init__ (see `stacked.StackedAffine`).
class StackedBatchNorm(keras.layers.Layer):
    """R batch norms at once on (runs, batch, units): each run's statistics over its batch."""

    def call(self, x, training=False):
        return self._keras(x, training) if self.keras_form else self._ours(x, training)

    def _ours(self, inputs, training):
        """`study.layers.BatchNormalization.call`, each run's moments over axis 1."""
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if dtype in ("float16", "bfloat16"):
            dtype = "float32"
        x = ops.cast(inputs, dtype)
        if training:
            # Ours divides the sum by size / units, i.e. the batch size (exact in floats).
            count = ops.cast(ops.shape(x)[1], dtype)
            mean = ops.sum(x, axis=1) / count
            variance = ops.sum(ops.square(x - _runs(mean)), axis=1) / count
            update_moving_statistics(self, mean, variance, dtype)
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)
        gamma = None if self.gamma is None else _runs(ops.cast(self.gamma, dtype))
        beta = None if self.beta is None else _runs(ops.cast(self.beta, dtype))
        y = normalize(x, _runs(mean), _runs(variance), self.epsilon, gamma, beta)
        return ops.cast(y, self.compute_dtype)

    def _keras(self, inputs, training):
        """`keras.layers.BatchNormalization.call` (no mask, no renorm), each run's moments over
        axis 1."""
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        moving_mean = ops.cast(self.moving_mean, inputs.dtype)
        moving_variance = ops.cast(self.moving_variance, inputs.dtype)
        gamma = None if self.gamma is None else _runs(ops.cast(self.gamma, inputs.dtype))
        beta = None if self.beta is None else _runs(ops.cast(self.beta, inputs.dtype))
        if training:
            mean, variance = ops.moments(inputs, axes=[1])
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean, variance = moving_mean, moving_variance
        outputs = ops.batch_normalization(x=inputs, mean=_runs(mean), variance=_runs(variance),
                                          axis=-1, offset=beta, scale=gamma,
                                          epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def _runs(per_run):
    """(runs, units) -> (runs, 1, units): broadcast over each run's batch."""
    return ops.expand_dims(per_run, 1)


def stacked_batch_norm(batch_norm: Any, args: dict[str, Any], runs: int,
                       units: int) -> StackedBatchNorm:
    """The batch norm after a hidden layer of `units`, for `runs` runs: every run starts from
    the values of the layer a run alone builds (constant initializers, `packs`)."""
    alone = components.create("layer", LAYER_NAMES[batch_norm], **args)
    if type(alone) not in (BatchNormalization, keras.layers.BatchNormalization):
        raise TypeError(f"no stacked form of {type(alone).__name__}")
    alone.build((None, units))
    layer = StackedBatchNorm(name="stacked_batch_norm")
    layer.keras_form = type(alone) is keras.layers.BatchNormalization
    layer.momentum, layer.epsilon = alone.momentum, alone.epsilon

    def stacked(variable, trainable: bool):
        if variable is None:  # center or scale off
            return None
        value = np.stack([keras.ops.convert_to_numpy(variable)] * runs)
        return layer.add_weight(shape=value.shape, name=variable.name, trainable=trainable,
                                initializer=keras.initializers.Constant(value), autocast=False)

    layer.gamma = stacked(alone.gamma, True)
    layer.beta = stacked(alone.beta, True)
    layer.moving_mean = stacked(alone.moving_mean, False)
    layer.moving_variance = stacked(alone.moving_variance, False)
    return layer
