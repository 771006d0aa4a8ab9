"""The activation functions of `study.activations` as stateless layers.

Each layer applies its function element-wise (`Softmax` along an axis) and has no weights, so,
like Keras's `Softmax`/`LeakyReLU`, it is built at construction (`_build_at_init`).
"""

import keras

from study import activations


class _ActivationLayer(keras.layers.Layer):
    """Shared body: `call` applies `_function(inputs, **self._arguments())`."""

    _function = None  # a staticmethod in each subclass, so it does not bind as a method

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self._build_at_init()

    def _arguments(self):
        return {}

    def call(self, inputs):
        return self._function(inputs, **self._arguments())

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self._arguments()}


@keras.saving.register_keras_serializable(package="study")
class Step(_ActivationLayer):
    """Step (Heaviside) layer: 1 where the input is positive, else 0.

    `y = 1 if x > 0 else 0`, element-wise, in the input's float dtype. The gradient is an
    explicit zero (not `None`), so a model containing it trains without error but nothing
    before it learns. Keras has no built-in step.
    """

    _function = staticmethod(activations.step)


@keras.saving.register_keras_serializable(package="study")
class Sigmoid(_ActivationLayer):
    """Sigmoid layer: squashes every input into (0, 1).

    `y = 1 / (1 + exp(-x))`, element-wise, overflow-free for large `|x|`.

    Differs from `keras.layers.Activation("sigmoid")`: no `_keras_logits` on the output, so
    TF's crossentropy cannot recover the logits (see `study.activations.sigmoid`).
    """

    _function = staticmethod(activations.sigmoid)


@keras.saving.register_keras_serializable(package="study")
class Tanh(_ActivationLayer):
    """Tanh layer: squashes every input into (-1, 1), zero-centred.

    `y = (exp(x) - exp(-x)) / (exp(x) + exp(-x)) = 2 sigmoid(2x) - 1`, element-wise.
    """

    _function = staticmethod(activations.tanh)


@keras.saving.register_keras_serializable(package="study")
class ReLU(_ActivationLayer):
    """ReLU layer: passes positive inputs, zeroes the rest.

    `y = max(0, x)`, element-wise; the derivative is 1 for `x > 0`, else 0. Equals
    `keras.layers.ReLU()` with its default arguments (no `max_value`, `threshold` or slope).
    """

    _function = staticmethod(activations.relu)


@keras.saving.register_keras_serializable(package="study")
class LeakyReLU(_ActivationLayer):
    """Leaky ReLU layer: ReLU with a small fixed slope for negative inputs.

    `y = x if x > 0 else a * x`, with `a = negative_slope`.

    The default `a = 0.3` mirrors `keras.layers.LeakyReLU`; the FUNCTION
    `study.activations.leaky_relu` defaults to 0.2, as `keras.activations.leaky_relu` does.
    Keras has the two defaults and so does this library, on purpose.

    Args:
        negative_slope: Non-negative float, the slope `a` below 0.
    """

    _function = staticmethod(activations.leaky_relu)

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                f"`negative_slope` must be a non-negative float; received {negative_slope!r}")
        self.negative_slope = negative_slope

    def _arguments(self):
        return {"negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="study")
class ELU(_ActivationLayer):
    """ELU layer: identity for positive inputs, saturating exponential below.

    `y = x if x > 0 else alpha * (exp(x) - 1)` (Clevert et al., 2016).

    Args:
        alpha: Float, the negative saturation level `-alpha`.
    """

    _function = staticmethod(activations.elu)

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def _arguments(self):
        return {"alpha": self.alpha}


@keras.saving.register_keras_serializable(package="study")
class Swish(_ActivationLayer):
    """Swish (SiLU) layer: each input gated by its own sigmoid.

    `y = x * sigmoid(x)` (Ramachandran et al., 2017), element-wise.
    """

    _function = staticmethod(activations.swish)


@keras.saving.register_keras_serializable(package="study")
class Softplus(_ActivationLayer):
    """Softplus layer: a smooth, always-positive ReLU.

    `y = log(1 + exp(x))`, element-wise, overflow-free; `dy/dx = sigmoid(x)`.
    """

    _function = staticmethod(activations.softplus)


@keras.saving.register_keras_serializable(package="study")
class Softmax(_ActivationLayer):
    """Softmax layer: turns scores along `axis` into probabilities that sum to 1.

    `y_k = exp(x_k - max_j x_j) / sum_j exp(x_j - max_j x_j)` along `axis`; subtracting the
    maximum (seed 002, DLFS) keeps it finite for inputs like 1e4.

    Differs from `keras.layers.Softmax`: no `mask` argument, and no `_keras_logits` on the
    output, so TF's crossentropy cannot recover the logits (see
    `study.activations.softmax`).

    Args:
        axis: Integer, the axis the probabilities sum to 1 along.
    """

    _function = staticmethod(activations.softmax)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def _arguments(self):
        return {"axis": self.axis}
