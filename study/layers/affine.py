"""The affine (fully connected, "Dense") layer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="study")
class Affine(keras.layers.Layer):
    """Affine (fully connected) layer: every output is a weighted sum of every input plus a bias.

    `y = f(x W + b)`, with `x` of shape `(batch, ..., d_in)`, the kernel `W` of shape
    `(d_in, units)`, the bias `b` of shape `(units,)` and `f` the activation (identity by
    default). This is `keras.layers.Dense`, under DLFS's name: same arguments, defaults,
    weight names (`"kernel"`, `"bias"`) and outputs with the same weights.

    Differs from DLFS `Affine`: DLFS keeps the activation in a separate layer, initialises
    `W` with `0.01 * randn` (or its "Xavier"/"He" untruncated normals) and flattens inputs of
    rank > 2 to `(batch, -1)`; here, as in Keras, the activation is optional in the layer,
    the default kernel initializer is Glorot uniform (`limit = sqrt(6 / (d_in + units))`),
    and inputs of rank > 2 are contracted along their last axis only.

    Args:
        units: Positive integer, the output width.
        activation: Activation function (name, function or `None` for the identity), looked
            up with `keras.activations.get`, so `study.activations.relu` works.
        use_bias: Whether to add the bias `b`.
        kernel_initializer, bias_initializer: Initializers for `W` and `b` (names, including
            `"study>HeNormal"`, or instances).
        kernel_regularizer, bias_regularizer, activity_regularizer: Penalties on `W`, `b`
            and the output.
        kernel_constraint, bias_constraint: Projections applied to `W` and `b` after each
            optimizer step.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer; received units={units!r}")
        self.units = units
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        in_features = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(in_features, self.units), initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: in_features})

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
