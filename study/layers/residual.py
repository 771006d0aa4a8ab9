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


@keras.saving.register_keras_serializable(package="study")
class ResidualBlock(keras.layers.Layer):
    """Dense residual block: adds a learned two-layer correction to an identity shortcut.

    `y = x + F(x)`, with `F(x) = W2 act(W1 x + b1) + b2`, where `W1`, `W2` are
    `(d, d)` kernels and `b1`, `b2` are `(d,)` biases for an input of width `d` (written
    `x W + b` in code, as in `Affine`). Both inner layers keep the width `d`, so the
    shortcut is the identity and needs no projection. The block only has to learn the
    residual `F(x) = y - x`; with `F = 0` it is the identity, and `dy/dx = I + dF/dx` carries
    the gradient to earlier layers even when `dF/dx` vanishes — the ResNet identity shortcut
    (He et al., 2016, "Deep Residual Learning for Image Recognition"; seed 004).

    Differs from the paper's convolutional block: dense layers instead of 3x3 convolutions,
    no batch normalization inside, and no activation after the addition (the paper applies
    ReLU to `x + F(x)`); stack `study.layers.ReLU()` after the block for that.

    The activation layer is created here; the two `Affine` layers are created in `build`,
    because their width is the input's, unknown until then (the pattern of Keras's
    `MultiHeadAttention`). Their weights are tracked as `block.inner_1.kernel` etc. and saved
    and loaded with the block.

    Args:
        activation: The hidden activation `act`: a name ("relu", "leaky_relu", "prelu",
            "step", ... — the registry's activation names), an activation Layer (e.g.
            `study.layers.LeakyReLU(0.1)`), or a serialized layer config.
        kernel_initializer: Initializer of `W1` and `W2` (He normal suits ReLU).
        bias_initializer: Initializer of `b1` and `b2`.
        kernel_regularizer: Penalty on `W1` and `W2`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, activation="relu", kernel_initializer="he_normal",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation if isinstance(activation, str) else None
        self.activation_layer = _activation_layer(activation, self.dtype_policy)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.inner_1 = self.inner_2 = None
        self.supports_masking = True

    def build(self, input_shape):
        width = input_shape[-1]
        self.inner_1 = self._affine(width, "inner_1")
        self.inner_2 = self._affine(width, "inner_2")
        self.inner_1.build(input_shape)
        self.activation_layer.build(self.inner_1.compute_output_shape(input_shape))
        self.inner_2.build(self.inner_1.compute_output_shape(input_shape))

    def _affine(self, width, name):
        # Each kernel gets its own clone: one initializer instance shared by two layers draws
        # the same W1 and W2 (Keras 3 does not warn), while a clone of an unseeded (or
        # string-named) initializer draws a new seed. An integer seed still gives W1 == W2.
        initializer = self.kernel_initializer
        if isinstance(initializer, keras.initializers.Initializer):
            initializer = initializer.clone()
        return Affine(width, kernel_initializer=initializer, bias_initializer=self.bias_initializer,
                      kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy,
                      name=name)

    def call(self, inputs):
        return inputs + self.inner_2(self.activation_layer(self.inner_1(inputs)))

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
        }
