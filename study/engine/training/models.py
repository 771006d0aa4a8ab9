"""Build the Keras model, loss and optimizer of one run from its resolved configuration.

The network is its hidden stack (`study.engine.studies.layer_list`: written out as `layers`, or
the book's `[Affine -> (BatchNormalization) -> activation -> (Dropout)] x n` from the
shorthands), then an output `Affine`. Every component comes from the registry, Keras, or your
own code (`study.engine.studies.components`). Initializers are seeded from the run's seed and
the layer's position, so that every arm of one seed starts from the same weights when its
architecture and initializer are the same (the paired design of the studies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from study import registry
from study.engine.studies import components, layer_list
from study.engine.studies.run_schema import RunConfig
from study.layers import ResidualBlock, Softmax


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
    weight_layers = sum(e["layer"] in layer_list.WEIGHT_LAYERS for e in layer_list.from_model(m))
    x = _affine(m, outputs, seed, weight_layers, name="output")(x)
    if t.loss == "mse" and not regression:
        x = Softmax(name="softmax")(x)  # seed 003: MSE on probabilities, against one-hot targets
    model = keras.Model(inputs, x, name="network")

    loss, metric = loss_and_metric(t.loss, regression)
    optimizer = make_optimizer(t)
    # Several steps per compiled call: the same updates, without Python between the steps.
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric],
                  steps_per_execution=steps_per_execution)
    return Compiled(model, loss, metric, optimizer, regression)


def make_optimizer(t):
    return components.create("optimizer", t.optimizer, learning_rate=_learning_rate(t),
                             **t.optimizer_args)


def hidden_stack(config: RunConfig, input_shape: tuple[int, ...], seed: int):
    """`(inputs, last hidden output, [each activation layer's output])`."""
    m = config.model
    inputs = keras.Input(input_shape, name="inputs")
    x, activations, block, names = inputs, [], 0, set()
    weight_layers = 0
    for entry in layer_list.from_model(m):
        name, args = entry["layer"], layer_list.arguments(entry)
        if name in layer_list.WEIGHT_LAYERS:
            block, weight_layers = weight_layers, weight_layers + 1
        kind = layer_list.kind_of(name)
        layer_name = _unique(_slug(name, kind), block, names)
        if name in ("affine", "keras.affine"):
            layer = _affine(m, args.pop("units"), seed, block, layer_name, name, **args)
        elif name == "residual":
            activation = components.create("activation", m.activation, **m.activation_args)
            layer = ResidualBlock(**{"activation": activation,
                                     "kernel_initializer": initializer(m, seed, block),
                                     "kernel_regularizer": _regularizer(m), **args},
                                  name=layer_name)
        else:
            if "seed" not in args and components.accepts(kind, name, "seed"):
                args["seed"] = dropout_seed(seed, block)
            layer = components.create(kind, name, name=layer_name, **args)
        x = layer(x)
        if kind == "activation":
            activations.append(x)
    return inputs, x, activations


def _slug(name: str, kind: str) -> str:
    """The layer's name stem: "affine", "batch_norm", "activation", or the class's own."""
    if kind == "activation":
        return "activation"
    bare = name.removeprefix(registry.KERAS_PREFIX).rpartition(":")[2]
    return {"BatchNormalization": "batch_norm"}.get(bare, bare).lower()


def _unique(stem: str, block: int, taken: set[str]) -> str:
    name, n = f"{stem}_{block + 1}", 1
    while name in taken:  # a second layer of one kind in one block
        n += 1
        name = f"{stem}_{block + 1}_{n}"
    taken.add(name)
    return name


def _affine(m, units: int, seed: int, index: int, name: str, component: str = "affine",
            **args) -> keras.layers.Layer:
    settings = {"use_bias": m.use_bias, "kernel_initializer": initializer(m, seed, index),
                "bias_initializer": components.create("initializer", m.bias_initializer),
                "kernel_regularizer": _regularizer(m), "kernel_constraint": _constraint(m),
                **args}
    return components.create("layer", component, units=units, name=name, **settings)


def dropout_seed(seed: int, block: int) -> int:
    """The seed of the dropout (any layer taking a `seed`) in hidden block `block`: its masks
    by run and block."""
    return _layer_seed(seed, 1000 + block)


def _layer_seed(seed: int, index: int) -> int:
    return seed * 10_007 + index


def initializer(m, seed: int, index: int):
    """The kernel initializer of weight layer `index`, seeded by the run's seed and `index`."""
    kwargs: dict[str, Any] = dict(m.initializer_args)
    if "seed" not in kwargs and components.accepts("initializer", m.initializer, "seed"):
        kwargs["seed"] = _layer_seed(seed, index)
    return components.create("initializer", m.initializer, **kwargs)


def _regularizer(m):
    return None if m.regularizer is None else components.create("regularizer", m.regularizer,
                                                                **m.regularizer_args)


def _constraint(m):
    return None if m.constraint is None else components.create("constraint", m.constraint,
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


def loss_and_metric(loss: str, regression: bool = False):
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
