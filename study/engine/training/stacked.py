"""The networks of several runs as one: every weight stacked along a leading run axis.

Run r's kernel of layer l is slice r of one variable of shape (R, fan_in, fan_out), its bias
slice r of (R, fan_out); a layer is one batched matmul, y[r] = x[r] @ W[r] + c[r]. Runs lead
the layout (runs, batch, features), so each run's numbers are one contiguous matmul and
reduction whatever R is: a run computes the same bits in a pack of any size (tests/test_packed.py,
tests/test_packed_minibatch.py). With a loss that is a sum over runs,

    loss_total = sum_r loss_r(W_r),    so    d loss_total / d W_r = d loss_r / d W_r,

and an element-wise optimizer turns each slice's gradient into exactly the update run r would
get alone. Batch norm (`stacked_norm`) keeps per-run statistics: slice r of (runs, batch,
units) is normalised by its own moments. Used by `packed` (full-batch XOR runs, one input
shared by every run) and `packed_minibatch` (MNIST runs, each run its own batches).
"""

from __future__ import annotations

import inspect

import keras
import numpy as np

from study import registry
from study.engine.studies import layer_list
from study.engine.training import models
from study.engine.training.stacked_norm import StackedBatchNorm, stacked_batch_norm
from study.layers.residual import ResidualBlock, kernel_initializers


def initial_weights(m, seeds: list[int], n_in: int, n_out: int) -> list[np.ndarray]:
    """Every stacked weight's initial value, in network order (per affine layer its kernel,
    then its bias if any; per residual block W1, b1, W2, b2): slice r is what a run with
    seeds[r] alone starts from (the same seeded initializers as `models.build`)."""
    dtype = keras.config.floatx()
    sizes = [n_in, *m.hidden, n_out]
    weights = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if m.residual and 0 < i < len(m.hidden):
            weights.extend(_residual_weights(m, seeds, i, fan_in, dtype))
            continue
        kernels = [models.initializer(m, seed, i)(shape=(fan_in, fan_out), dtype=dtype)
                   for seed in seeds]
        weights.append(np.stack([keras.ops.convert_to_numpy(k) for k in kernels]))
        if m.use_bias:
            bias = registry.create("initializer", m.bias_initializer)(shape=(fan_out,),
                                                                       dtype=dtype)
            weights.append(np.stack([keras.ops.convert_to_numpy(bias)] * len(seeds)))
    return weights


def _residual_weights(m, seeds: list[int], index: int, width: int, dtype) -> list[np.ndarray]:
    """W1, b1, W2, b2 of residual block `index`, as `ResidualBlock` draws them (its biases:
    the block's own default initializer, whatever the model's bias initializer)."""
    first, second = [], []
    for seed in seeds:
        draw_1, draw_2 = kernel_initializers(models.initializer(m, seed, index))
        first.append(keras.ops.convert_to_numpy(draw_1(shape=(width, width), dtype=dtype)))
        second.append(keras.ops.convert_to_numpy(draw_2(shape=(width, width), dtype=dtype)))
    # The block's bias initializer takes no seed: one draw serves every run (as for biases above).
    bias = keras.initializers.get(inspect.signature(
        ResidualBlock.__init__).parameters["bias_initializer"].default)(shape=(width,), dtype=dtype)
    biases = np.stack([keras.ops.convert_to_numpy(bias)] * len(seeds))
    return [np.stack(first), biases, np.stack(second), biases.copy()]


class StackedNetwork:
    """The shorthand's stack of `m`, one network per seed: per hidden layer affine ->
    (batch_norm) -> activation, or with `m.residual` a first such layer, then residual blocks
    (each followed by batch norm if set and by the activation unless of the pre-activation
    form), and the output affine (`layer_list.from_model`'s order)."""

    def __init__(self, m, seeds: list[int], n_in: int, n_out: int):
        weights = iter(initial_weights(m, seeds, n_in, n_out))
        pre = m.residual and layer_list.preactivation(m)
        self.layers: list[keras.layers.Layer] = []
        self.names: list[str] = []  # each weight layer's name in the model trained alone
        for i in range(len(m.hidden) + 1):
            block = m.residual and 0 < i < len(m.hidden)
            if block:
                self.layers.append(stacked_residual(weights, activation(m.activation), pre))
            else:
                kernel = next(weights)
                bias = next(weights) if m.use_bias else None
                self.layers.append(stacked_affine(kernel, bias, first=i == 0))
            if i == len(m.hidden):  # the output layer: nothing follows it
                self.names.append("output")
                break
            self.names.append(f"{'residual' if block else 'affine'}_{i + 1}")
            if m.batch_norm:
                self.layers.append(stacked_batch_norm(m.batch_norm, m.batch_norm_args,
                                                      len(seeds), m.hidden[i]))
            if not (block and pre):
                self.layers.append(activation(m.activation))
            if m.dropout > 0:
                self.layers.append(stacked_dropout(m.dropout, m.dropout_args, seeds, i))

    def __call__(self, x, training: bool = False):
        """Outputs (runs, batch, outputs). `training`: batch norm normalises by each run's
        batch statistics and moves its moving statistics (a step), dropout draws each run's
        next mask; else batch norm uses the moving statistics and dropout its inference form."""
        for layer in self.layers:
            takes_training = isinstance(layer, (StackedBatchNorm, StackedDropout))
            x = layer(x, training=training) if takes_training else layer(x)
        return x

    def kernel_groups(self) -> list[list]:
        """Each weight layer's stacked kernels, first layer first: an affine layer's one, a
        residual block's W1 and W2."""
        return [[layer.kernel] if isinstance(layer, StackedAffine)
                else [layer.inner_1.kernel, layer.inner_2.kernel]
                for layer in self.layers if isinstance(layer, (StackedAffine, StackedResidual))]

    def kernels(self) -> list:
        """The stacked kernels, first layer first (what a weight penalty applies to)."""
        return [kernel for group in self.kernel_groups() for kernel in group]


def activation(name: str) -> keras.layers.Layer:
    if name.removeprefix(registry.KERAS_PREFIX) != "prelu":
        return registry.create("activation", name)  # element-wise: any layout will do
    # PReLU learns a slope per unit, so per run: seen as one batch of shape (1, R, B, units),
    # slopes shared over the batch axis 2 have the shape (R, 1, units).
    one_sample = OneSample(name="one_sample")
    one_sample.layer = registry.create("activation", name, shared_axes=[2])
    return one_sample


# The layers below are built by functions, not by their own __init__: Keras reads a layer
# class's __init__ signature, which mutation testing's wrapper of __init__ hides.
class OneSample(keras.layers.Layer):
    """Its `layer` applied to the input as one sample."""

    def call(self, x):
        return self.layer(x[None])[0]


class StackedAffine(keras.layers.Layer):
    """R affine maps at once: y[r] = x[r] @ W[r] + c[r], one batched matmul. The first layer
    also takes data of shape (batch, features), shared by every run."""

    def call(self, x):
        if self.first and len(x.shape) == 2:  # the data, shared by every run
            # (1, batch, features): the batched matmul broadcasts it over the runs without
            # writing R copies (31 MB per evaluation batch of 1000 at 10 runs, memory TensorFlow's
            # allocator keeps); each run's product is the same matmul, bit for bit.
            x = keras.ops.cast(x, self.kernel.dtype)[None]
        elif self.first:  # each run's own batch, (runs, batch, features)
            x = keras.ops.cast(x, self.kernel.dtype)
        y = keras.ops.matmul(x, self.kernel)
        return y if self.bias is None else y + self.bias[:, None, :]


class StackedResidual(keras.layers.Layer):
    """R residual blocks at once, as `study.layers.ResidualBlock` computes one:
    y = x + inner_2(act(inner_1(h))), h = act(x) in the pre-activation form, else x."""

    def call(self, x):
        hidden = self.activation(x) if self.preactivation else x
        return x + self.inner_2(self.activation(self.inner_1(hidden)))


def stacked_residual(weights, act: keras.layers.Layer, preactivation: bool) -> StackedResidual:
    """A block from the next four of `weights` (W1, b1, W2, b2, each stacked)."""
    layer = StackedResidual(name="stacked_residual")
    layer.preactivation = preactivation
    layer.inner_1 = stacked_affine(next(weights), next(weights), first=False)
    layer.activation = act
    layer.inner_2 = stacked_affine(next(weights), next(weights), first=False)
    return layer


class StackedDropout(keras.layers.Layer):
    """R dropouts at once, as `study.layers.Dropout` computes one: run r's mask drawn from its
    own seed generator (seeded as the run alone seeds its layer), one draw per training step,
    so each run sees the masks it would alone."""

    def call(self, x, training=False):
        if not training:
            return x if self.inverted else x * keras.ops.cast(1.0 - self.rate, x.dtype)
        shape = keras.ops.shape(x)[1:]
        u = keras.ops.stack([keras.random.uniform(shape, seed=generator, dtype=x.dtype)
                             for generator in self.generators])
        kept = x / (1.0 - self.rate) if self.inverted else x
        return keras.ops.where(keras.ops.greater_equal(u, self.rate), kept,
                               keras.ops.zeros_like(x))


def stacked_dropout(rate: float, args: dict, seeds: list[int], block: int) -> StackedDropout:
    layer = StackedDropout(name="stacked_dropout")
    layer.rate, layer.inverted = rate, args.get("inverted", True)
    layer.generators = [keras.random.SeedGenerator(models.dropout_seed(seed, block))
                        for seed in seeds]
    return layer


def stacked_affine(kernels: np.ndarray, biases: np.ndarray | None,
                   first: bool) -> StackedAffine:
    layer = StackedAffine(name="stacked_affine")
    layer.first = first
    layer.kernel = layer.add_weight(shape=kernels.shape, name="kernel",
                                    initializer=keras.initializers.Constant(kernels))
    layer.bias = (None if biases is None else
                  layer.add_weight(shape=biases.shape, name="bias",
                                   initializer=keras.initializers.Constant(biases)))
    return layer


def per_run_loss_and_accuracy(loss: str, y, outputs):
    """Per-run mean loss and accuracy, each (R,), as `models.loss_and_metric` computes them.

    outputs: (runs, batch, units) logits; y: integer labels of shape (batch,), shared by
    every run.
    """
    losses, correct = per_sample_loss_and_correct(loss, y, outputs)
    return keras.ops.mean(losses, axis=1), keras.ops.mean(correct, axis=1)


def per_sample_loss_and_correct(loss: str, y, outputs):
    """Each sample's loss and 1.0 / 0.0 for a right / wrong prediction, each (R, batch).

    outputs: (runs, batch, units) logits; y: integer labels, (batch,) shared by every run or
    (runs, batch), each run its own.
    """
    if len(y.shape) == 2:
        return _own_labels(loss, y, outputs)
    ops = keras.ops
    if loss == "binary_cross_entropy":
        target = ops.broadcast_to(ops.reshape(ops.cast(y, outputs.dtype), (1, -1, 1)),
                                  ops.shape(outputs))
        losses = keras.losses.binary_crossentropy(target, outputs, from_logits=True)
        correct = ops.cast(ops.equal(ops.cast(outputs[..., 0] > 0.0, outputs.dtype),
                                     target[..., 0]), outputs.dtype)
    elif loss == "cross_entropy":
        target = ops.broadcast_to(ops.reshape(y, (1, -1)), ops.shape(outputs)[:2])
        losses = keras.losses.sparse_categorical_crossentropy(target, outputs, from_logits=True)
        correct = ops.cast(ops.equal(ops.argmax(outputs, -1), ops.cast(target, "int64")),
                           outputs.dtype)
    else:  # mse on softmax probabilities against one-hot targets (seed 003)
        probabilities = ops.softmax(outputs, axis=-1)
        target = ops.expand_dims(ops.one_hot(y, ops.shape(outputs)[-1]), 0)
        losses = ops.mean(ops.square(probabilities - target), axis=-1)
        correct = ops.cast(ops.equal(ops.argmax(outputs, -1), ops.expand_dims(y, 0)),
                           outputs.dtype)
    return losses, correct


def _own_labels(loss: str, y, outputs):
    """`per_sample_loss_and_correct` with labels of shape (runs, batch)."""
    ops = keras.ops
    if loss == "binary_cross_entropy":
        target = ops.cast(y, outputs.dtype)[..., None]
        losses = keras.losses.binary_crossentropy(target, outputs, from_logits=True)
        correct = ops.cast(ops.equal(ops.cast(outputs[..., 0] > 0.0, outputs.dtype),
                                     target[..., 0]), outputs.dtype)
    elif loss == "cross_entropy":
        losses = keras.losses.sparse_categorical_crossentropy(y, outputs, from_logits=True)
        correct = ops.cast(ops.equal(ops.argmax(outputs, -1), ops.cast(y, "int64")),
                           outputs.dtype)
    else:
        probabilities = ops.softmax(outputs, axis=-1)
        target = ops.one_hot(y, ops.shape(outputs)[-1])
        losses = ops.mean(ops.square(probabilities - target), axis=-1)
        correct = ops.cast(ops.equal(ops.argmax(outputs, -1), ops.cast(y, "int64")),
                           outputs.dtype)
    return losses, correct
