"""A dense residual block with an identity shortcut."""

import keras

from study.layers.activation_layers import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus
from study.layers.activation_layers import Step, Swish, Tanh
from study.layers.affine import Affine
from study.layers.prelu import PReLU

# The registry's activation names (study.registry, kind "activation"), as layer classes.
# Local, so that this module does not import the registry (which imports the layers).
ACTIVATION_LAYERS = {
    "step": Step, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
    "elu": ELU, "prelu": PReLU, "swish": Swish, "softplus": Softplus, "softmax": Softmax,
}


def _activation_layer(activation, dtype):
    """A layer for `activation`: a name above, a layer instance, or a layer config."""
    if isinstance(activation, str):
        if activation not in ACTIVATION_LAYERS:
            raise ValueError(f"unknown activation {activation!r}; one of "
                             f"{', '.join(ACTIVATION_LAYERS)}, a Layer, or a layer config")
        # Named after the activation, so weight paths are stable: "block/prelu/alpha".
        return ACTIVATION_LAYERS[activation](dtype=dtype, name=activation)
    if isinstance(activation, keras.layers.Layer):
        return activation
    if isinstance(activation, dict):
        return keras.layers.deserialize(activation)
    raise TypeError(f"`activation` must be a name, a Layer or a layer config; got {activation!r}")


# inner_2's seed when the block's initializer has an integer seed s: s + 2**30 (mod 2**31), a
# shift by half the range, so never s itself. The engine seeds layers run_seed * 10007 + position,
# below 2**30 for run seeds below 107,000, so W2 then also differs from every other kernel's seed.
SECOND_KERNEL_SEED_OFFSET = 2**30


def kernel_initializers(initializer):
    """`(for W1, for W2)` of a block whose kernel initializer is `initializer`: one initializer
    instance shared by two layers would draw the same W1 and W2 (Keras 3 does not warn), and so
    would two clones of one integer seed. Public so that a network built without the block
    (the engine's stacked networks) draws the very same kernels."""
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer, initializer  # a plain function: it draws anew on each call
    seed = getattr(initializer, "seed", None)
    if isinstance(seed, keras.random.SeedGenerator):
        return initializer, initializer  # the generator advances between the two draws
    config = initializer.get_config()
    if isinstance(config.get("seed"), int) and not isinstance(config["seed"], bool):
        second_seed = (config["seed"] + SECOND_KERNEL_SEED_OFFSET) % 2**31
        return initializer.clone(), type(initializer).from_config({**config, "seed": second_seed})
    # Unseeded (or string-named): each clone draws a new default seed.
    return initializer.clone(), initializer.clone()


@keras.saving.register_keras_serializable(package="study")
class ResidualBlock(keras.layers.Layer):
    """Dense residual block: adds a learned two-layer correction to an identity shortcut.

    `y = x + F(x)`, for an input `x` of width `d`, with `(d, d)` kernels `W1`, `W2`, `(d,)`
    biases `b1`, `b2` (written `x W + b` in code, as in `Affine`) and the activation `act`:

    ```
    F(x) = W2 act(W1 x + b1) + b2               # preactivation=False (default)
    F(x) = W2 act(W1 act(x) + b1) + b2          # preactivation=True
    ```

    Both inner layers keep the width `d`, so the shortcut is the identity and needs no
    projection. The block only has to learn the residual `F(x) = y - x`; with `F = 0` it is
    the identity, and `dy/dx = I + dF/dx` carries the gradient to earlier layers even when
    `dF/dx` vanishes — the ResNet identity shortcut (He et al., 2016, "Deep Residual Learning
    for Image Recognition"; seed 004).

    The default form is meant to be followed by an activation, `act(x + F(x))` (the original
    ResNet; the engine's shorthand puts one after every block): then each block multiplies the
    gradient by `act'`, at most 1/4 for the sigmoid, and a deep sigmoid stack still loses it.
    `preactivation=True` is the pre-activation block of He et al. (2016, "Identity Mappings in
    Deep Residual Networks"): the activation moves to the start of `F`, nothing follows the
    sum, and the path from a block's input to its output is the identity. Measured at
    initialisation (10 sigmoid blocks of width 100, N(0, 1/d) kernels, inputs in (0, 1)):
    the gradient reaching the input is 1.01-1.02 times the output's in the pre-activation
    stack and 3e-7 times it with a sigmoid after each default block, over three seeds
    (`tests/components/test_layers.py::test_preactivation_stack_keeps_the_gradient`).
    The pre form applies its one activation layer at both places (a PReLU's slope is one
    parameter, shared by them).

    Differs from the paper's convolutional blocks: dense layers instead of 3x3 convolutions and
    no batch normalization inside; the default form has no activation after the addition (the
    paper applies ReLU to `x + F(x)`); stack `study.layers.ReLU()` after the block for that.

    The activation layer is created here; the two `Affine` layers are created in `build`,
    because their width is the input's, unknown until then (the pattern of Keras's
    `MultiHeadAttention`). Their weights are tracked as `block.inner_1.kernel` etc. and saved
    and loaded with the block. Each kernel draws its own values: `W1` from a clone of the
    initializer, `W2` from a clone with the seed `s + 2**30 (mod 2**31)` when the initializer
    has an integer seed `s` (the same `s` gives the same block, and `W1 != W2`), from the
    initializer itself when it draws from a `keras.random.SeedGenerator` (which advances
    between the draws), and from a fresh unseeded clone otherwise.

    Args:
        activation: The hidden activation `act`: a name ("relu", "leaky_relu", "prelu",
            "step", ... — the registry's activation names), an activation Layer (e.g.
            `study.layers.LeakyReLU(0.1)`), or a serialized layer config.
        kernel_initializer: Initializer of `W1` and `W2` (He normal suits ReLU).
        bias_initializer: Initializer of `b1` and `b2`.
        kernel_regularizer: Penalty on `W1` and `W2`.
        preactivation: bool; apply `act` to the block's input as well (the pre-activation
            form above); defaults to `False`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, activation="relu", kernel_initializer="he_normal",
                 bias_initializer="zeros", kernel_regularizer=None, preactivation=False,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(preactivation, bool):
            raise ValueError(f"`preactivation` must be true or false; received "
                             f"preactivation={preactivation!r}")
        self.preactivation = preactivation
        self.activation = activation if isinstance(activation, str) else None
        self.activation_layer = _activation_layer(activation, self.dtype_policy)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.inner_1 = self.inner_2 = None
        self.supports_masking = True

    def build(self, input_shape):
        width = input_shape[-1]
        first, second = kernel_initializers(self.kernel_initializer)
        self.inner_1 = self._affine(width, first, "inner_1")
        self.inner_2 = self._affine(width, second, "inner_2")
        self.inner_1.build(input_shape)
        self.activation_layer.build(self.inner_1.compute_output_shape(input_shape))
        self.inner_2.build(self.inner_1.compute_output_shape(input_shape))

    def _affine(self, width, initializer, name):
        return Affine(width, kernel_initializer=initializer, bias_initializer=self.bias_initializer,
                      kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy,
                      name=name)

    def call(self, inputs):
        hidden = self.activation_layer(inputs) if self.preactivation else inputs
        return inputs + self.inner_2(self.activation_layer(self.inner_1(hidden)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        activation = (self.activation if self.activation is not None
                      else keras.layers.serialize(self.activation_layer))
        return {
            **super().get_config(),
            "activation": activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "preactivation": self.preactivation,
        }
