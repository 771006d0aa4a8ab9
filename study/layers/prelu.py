"""Parametric ReLU: a leaky ReLU whose negative slope is learned."""

import keras

from study import activations


@keras.saving.register_keras_serializable(package="study")
class PReLU(keras.layers.Layer):
    """Parametric ReLU layer: a leaky ReLU whose negative slope is a trained weight.

    `f(x) = max(0, x) + alpha * min(0, x)`, computed as Keras does,
    `relu(x) - alpha * relu(-x)`, with `alpha` a weight of shape `input_shape[1:]` (one slope
    per feature), reduced to 1 along each axis in `shared_axes` (He et al., 2015). With
    `alpha = 0` it is ReLU, with a fixed `alpha = a` it is LeakyReLU(a). The gradient with
    respect to `alpha` is `min(0, x)`, so only negative inputs teach the slope.

    Equals `keras.layers.PReLU` with the same `alpha`: same arguments, defaults
    (`alpha_initializer="zeros"`), weight name `"alpha"` and weight shape.

    Args:
        alpha_initializer: Initializer for `alpha`.
        alpha_regularizer: Penalty on `alpha`.
        alpha_constraint: Projection applied to `alpha` after each optimizer step.
        shared_axes: Axis or axes (counting the batch axis as 0) along which one slope is
            shared, e.g. `[1, 2]` for one slope per channel of an image.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.alpha_initializer = keras.initializers.get(alpha_initializer)
        self.alpha_regularizer = keras.regularizers.get(alpha_regularizer)
        self.alpha_constraint = keras.constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (list, tuple)):
            self.shared_axes = list(shared_axes)
        else:
            self.shared_axes = [shared_axes]

    def build(self, input_shape):
        param_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            param_shape[axis - 1] = 1
        self.alpha = self.add_weight(
            name="alpha", shape=tuple(param_shape), initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        # Like Keras, pin the non-shared axes only when some are shared.
        axes = {i: input_shape[i] for i in range(1, len(input_shape))
                if self.shared_axes and i not in self.shared_axes}
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes=axes)

    def call(self, inputs):
        return activations.relu(inputs) - self.alpha * activations.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": keras.constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
