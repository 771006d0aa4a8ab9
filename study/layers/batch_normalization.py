"""Batch normalization."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="study")
class BatchNormalization(keras.layers.Layer):
    """Batch normalization layer: standardise each feature over the batch, then rescale it.

    Training (`training=True` and the layer is trainable), per feature `k` along `axis`, with
    the statistics taken over every other axis (the batch, and space/time if present):

        mu_k  = mean(x_k)
        var_k = mean((x_k - mu_k)^2)                       (biased: divides by N, not N - 1)
        y_k   = gamma_k * (x_k - mu_k) / sqrt(var_k + eps) + beta_k
        m_k  <- m_k * momentum + mu_k * (1 - momentum)     (moving mean)
        v_k  <- v_k * momentum + var_k * (1 - momentum)    (moving variance, also biased)

    Inference (`training` false, or `trainable=False`): the same `y_k` with `m_k` and `v_k`
    in place of `mu_k` and `var_k`. So a frozen layer normalises with its moving statistics,
    as Keras's does (Ioffe & Szegedy, 2015; seed 000 and 004's algorithm).

    Matches `keras.layers.BatchNormalization`: same arguments, defaults
    (`momentum=0.99`, `epsilon=1e-3`, `gamma=1`, `beta=0`, moving mean 0, moving variance 1),
    weight names (`gamma`, `beta`, `moving_mean`, `moving_variance`), float16/bfloat16
    inputs upcast to float32 for the statistics, and moving statistics that are neither
    trained nor autocast.

    Differs from DLFS `BatchNormalization`: DLFS uses `momentum=0.9`, `eps=1e-6` (written
    `10e-7`), initialises the running variance to 0 (not 1), so a DLFS net evaluated before
    any training step divides by `sqrt(1e-6)`; and in the book it sits between `Affine` and
    `ReLU` (`Affine -> BatchNorm -> ReLU`) with the Affine bias kept, where Keras advises
    `use_bias=False` before it (`beta` does the bias's job).

    Args:
        axis: Integer, the feature axis (usually -1, the channels).
        momentum: Float, the moving averages' decay.
        epsilon: Small float added to the variance before the square root.
        center: Whether to add the learned offset `beta`.
        scale: Whether to multiply by the learned scale `gamma`.
        beta_initializer, gamma_initializer: Initializers for `beta` and `gamma`.
        moving_mean_initializer, moving_variance_initializer: Initial moving statistics.
        beta_regularizer, gamma_regularizer: Penalties on `beta` and `gamma`.
        beta_constraint, gamma_constraint: Projections of `beta` and `gamma`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._reduction_axes = None

    def build(self, input_shape):
        shape = (input_shape[self.axis],)
        # gamma and beta are not autocast either (as in Keras): the arithmetic runs in float32.
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma", shape=shape, initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                trainable=True, autocast=False)
        if self.center:
            self.beta = self.add_weight(
                name="beta", shape=shape, initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                trainable=True, autocast=False)
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer=self.moving_mean_initializer,
            trainable=False, autocast=False)
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer=self.moving_variance_initializer,
            trainable=False, autocast=False)
        self.input_spec = keras.layers.InputSpec(
            ndim=len(input_shape), axes={self.axis: input_shape[self.axis]})
        axis = self.axis % len(input_shape)
        self._reduction_axes = [i for i in range(len(input_shape)) if i != axis]

    def call(self, inputs, training=None):
        # float16/bfloat16 statistics overflow or lose precision: compute in at least float32.
        # (Not `keras.backend.result_type(dtype, "float32")`, as Keras's BN does: on JAX that
        # maps float64 to float32 even with x64 enabled, losing a float64 layer's precision.)
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if dtype in ("float16", "bfloat16"):
            dtype = "float32"
        x = ops.cast(inputs, dtype)
        if training and self.trainable:
            mean = self._mean(x)
            variance = self._mean(ops.square(x - self._broadcast(mean, x)))
            update_moving_statistics(self, mean, variance, dtype)
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)
        gamma = self._broadcast(ops.cast(self.gamma, dtype), x) if self.scale else None
        beta = self._broadcast(ops.cast(self.beta, dtype), x) if self.center else None
        y = normalize(x, self._broadcast(mean, x), self._broadcast(variance, x), self.epsilon,
                      gamma, beta)
        return ops.cast(y, self.compute_dtype)

    def _mean(self, x):
        """The per-feature mean over the reduction axes, as sum / count.

        (Not `ops.mean`: on JAX it accumulates float64 in float32.)
        """
        count = ops.cast(ops.size(x), x.dtype) / x.shape[self.axis]
        return ops.sum(x, axis=self._reduction_axes) / count

    def _broadcast(self, per_feature, x):
        """A `(features,)` vector reshaped to broadcast along `axis` of `x`."""
        shape = [1] * len(x.shape)
        shape[self.axis] = -1
        return ops.reshape(per_feature, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": keras.initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer":
                keras.initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }


def update_moving_statistics(layer, mean, variance, dtype) -> None:
    """`moving <- moving * momentum + batch * (1 - momentum)` for the layer's moving mean and
    variance (`layer.momentum`), in `dtype`. Shared with the packed trainer's stacked batch
    norm (`study.engine.training.stacked_norm`), which must round as this layer does."""
    layer.moving_mean.assign(
        ops.cast(layer.moving_mean, dtype) * layer.momentum + mean * (1.0 - layer.momentum))
    layer.moving_variance.assign(
        ops.cast(layer.moving_variance, dtype) * layer.momentum
        + variance * (1.0 - layer.momentum))


def normalize(x, mean, variance, epsilon, gamma=None, beta=None):
    """`y = (x - mean) / sqrt(variance + epsilon) * gamma + beta`, the statistics, gamma and
    beta already shaped to broadcast against `x` (None: no scale, no centre)."""
    y = (x - mean) / ops.sqrt(variance + epsilon)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y
