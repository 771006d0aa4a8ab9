"""Build the Keras model, loss and optimizer of one run from its resolved configuration.

The network is the book's: `[Affine -> (BatchNormalization) -> activation -> (Dropout)] x n`,
then an output `Affine`. Every component comes from the registry, so a study can swap in any
of ours or a `keras.<name>` built-in. Initializers are seeded from the run's seed and the layer's
position, so that every arm of one seed starts from the same weights when its architecture and
initializer are the same (the paired design of the studies).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from study import registry
from study.config import RunConfig
from study.layers import Affine, BatchNormalization, Dropout, ResidualBlock, Softmax


@dataclass
class Compiled:
    model: keras.Model
    loss: keras.losses.Loss
    metric: keras.metrics.Metric
    optimizer: keras.optimizers.Optimizer
    regression: bool = False  # data.target "value": one linear output, the digit as a number

    def targets(self, labels):
        """Integer labels in the form the loss expects."""
        if self.regression:
            return labels.astype("float32").reshape(-1, 1)
        return _targets(self.loss, labels, self.model.output_shape[-1])


def build(config: RunConfig, input_shape: tuple[int, ...], num_classes: int, seed: int,
          steps_per_execution: int = 1) -> Compiled:
    m, t = config.model, config.training
    regression = config.data.target == "value"
    inputs, x, _ = hidden_stack(config, input_shape, seed)
    outputs = 1 if t.loss == "binary_cross_entropy" or regression else num_classes
    x = _affine(m, outputs, seed, len(m.hidden), name="output")(x)
    if t.loss == "mse" and not regression:
        x = Softmax(name="softmax")(x)  # seed 003: MSE on probabilities, against one-hot targets
    model = keras.Model(inputs, x, name="network")

    loss, metric = _loss_and_metric(t.loss, regression)
    optimizer = make_optimizer(t)
    # Several steps per compiled call: the same updates, without Python between the steps.
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric],
                  steps_per_execution=steps_per_execution)
    return Compiled(model, loss, metric, optimizer, regression)


def make_optimizer(t):
    return registry.create("optimizer", t.optimizer, learning_rate=_learning_rate(t),
                           **t.optimizer_args)


def hidden_stack(config: RunConfig, input_shape: tuple[int, ...], seed: int):
    """`(inputs, last hidden output, [each hidden layer's activation output])`."""
    m = config.model
    inputs = keras.Input(input_shape, name="inputs")
    x, activations = inputs, []
    for i, units in enumerate(m.hidden):
        if m.residual and i > 0:
            x = ResidualBlock(activation=registry.create("activation", m.activation),
                              kernel_initializer=_initializer(m, seed, i),
                              kernel_regularizer=_regularizer(m), name=f"residual_{i + 1}")(x)
        else:
            x = _affine(m, units, seed, i, name=f"affine_{i + 1}")(x)
        if m.batch_norm:
            normalization = (keras.layers.BatchNormalization if m.batch_norm == "keras"
                             else BatchNormalization)
            x = normalization(name=f"batch_norm_{i + 1}")(x)
        x = registry.create("activation", m.activation, name=f"activation_{i + 1}")(x)
        activations.append(x)
        if m.dropout > 0:
            x = Dropout(m.dropout, seed=_layer_seed(seed, 1000 + i), name=f"dropout_{i + 1}")(x)
    return inputs, x, activations


def _affine(m, units: int, seed: int, index: int, name: str) -> Affine:
    return Affine(units, use_bias=m.use_bias, kernel_initializer=_initializer(m, seed, index),
                  bias_initializer=registry.create("initializer", m.bias_initializer),
                  kernel_regularizer=_regularizer(m), kernel_constraint=_constraint(m), name=name)


def _layer_seed(seed: int, index: int) -> int:
    return seed * 10_007 + index


def _initializer(m, seed: int, index: int):
    kwargs: dict[str, Any] = dict(m.initializer_args)
    factory = (registry.lookup("initializer", m.initializer).factory
               if not m.initializer.startswith(registry.KERAS_PREFIX)
               else type(registry.create("initializer", m.initializer)))
    if "seed" in inspect.signature(factory).parameters and "seed" not in kwargs:
        kwargs["seed"] = _layer_seed(seed, index)
    return registry.create("initializer", m.initializer, **kwargs)


def _regularizer(m):
    return None if m.regularizer is None else registry.create("regularizer", m.regularizer,
                                                              **m.regularizer_args)


def _constraint(m):
    return None if m.constraint is None else registry.create("constraint", m.constraint,
                                                             **m.constraint_args)


def _learning_rate(t):
    s, lr = t.schedule, t.learning_rate
    schedules = keras.optimizers.schedules
    if s.kind == "constant":
        return lr
    if s.kind in ("exponential", "step"):
        return schedules.ExponentialDecay(lr, s.decay_steps, s.decay_rate,
                                          staircase=s.kind == "step")
    if s.kind == "inverse_time":
        return schedules.InverseTimeDecay(lr, s.decay_steps, s.decay_rate)
    return schedules.CosineDecay(lr, s.decay_steps)


def _loss_and_metric(loss: str, regression: bool = False):
    # Losses take logits where they can: the stable log-sum-exp path, whatever the backend.
    if regression:
        return (keras.losses.MeanSquaredError(),
                keras.metrics.MeanMetricWrapper(rounds_to_label, name="accuracy"))
    if loss == "cross_entropy":
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
    if loss == "binary_cross_entropy":
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0))
    return keras.losses.MeanSquaredError(), keras.metrics.CategoricalAccuracy(name="accuracy")


def rounds_to_label(y_true, y_pred):
    """1 where the predicted value rounds (half to even) to the true digit, else 0."""
    return keras.ops.cast(keras.ops.equal(keras.ops.round(y_pred), y_true), "float32")


def _targets(loss, labels, outputs: int):
    if isinstance(loss, keras.losses.BinaryCrossentropy):
        return labels.astype("float32").reshape(-1, 1)
    if isinstance(loss, keras.losses.MeanSquaredError):
        return np.eye(outputs, dtype="float32")[labels]
    return labels
