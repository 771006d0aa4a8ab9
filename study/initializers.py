"""Weight initializers: constants, identity, orthogonal, plain random and variance scaling.

Every class reproduces the Keras built-in of the same name bit for bit (same arguments,
defaults, `get_config` keys and, with the same integer seed on the same backend, the same
values), and says in its docstring where the lecture notes / "Deep Learning from Scratch"
(DLFS) mean something else by the same name.

Notation: `fan_in`, `fan_out` from `compute_fans(shape)`; `N(m, s^2)` a normal with standard
deviation `s`; `TN(m, s^2)` that normal truncated to `|W - m| <= 2 s` (values outside are
re-drawn), whose own standard deviation is `0.87962566103423978 * s`; `U(a, b)` uniform.

Seeds work as in Keras: an int, or `None` (one default seed is drawn from Python's `random`
at construction, so `keras.utils.set_random_seed(n)` makes it reproducible), gives the same
values on every call -- one unseeded instance shared by two layers gives them identical
kernels. A `keras.random.SeedGenerator` gives new values on every call.
"""

import math
import numbers
import random

import keras
from keras import ops

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
]

# std of N(0, 1) truncated to [-2, 2]; dividing by it gives a truncated normal of unit std.
_TRUNCATED_STD = 0.87962566103423978

_serializable = keras.saving.register_keras_serializable(package="study")


def compute_fans(shape, input_axes=None, output_axes=None):
    """Number of input and output units of a weight of `shape`, as `(fan_in, fan_out)`.

    - `()` -> `(1, 1)` (a scalar);
    - `(n,)` -> `(n, n)` (a bias or a BN scale);
    - `(in, out)` -> `(in, out)` (a Dense kernel);
    - `(*k, in, out)` -> `(in * prod(k), out * prod(k))` (a channels-last conv kernel:
      every input reaches `prod(k)` weights of each filter).

    `input_axes` and `output_axes` (lists of axes) override the rule, but, as in Keras, only
    when both are given: `fan_in = prod(shape[a] for a in input_axes)`, likewise `fan_out`.
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (int(math.prod(shape[a] for a in input_axes)),
                int(math.prod(shape[a] for a in output_axes)))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    receptive_field = math.prod(shape[:-2])  # 1 for a Dense kernel
    return int(shape[-2] * receptive_field), int(shape[-1] * receptive_field)


class _RandomInitializer(keras.initializers.Initializer):
    """Seed handling shared by the random initializers (Keras's `RandomInitializer`)."""

    def __init__(self, seed=None):
        # The *argument* is what get_config stores, so a clone of an unseeded initializer
        # draws a new seed, exactly as in Keras.
        self._init_seed = seed
        if seed is None:
            # Keras's make_default_seed: Python's RNG, which set_random_seed seeds.
            seed = random.randint(1, int(1e9))
        elif isinstance(seed, dict):
            seed = keras.saving.deserialize_keras_object(seed)
        elif not isinstance(seed, (int, keras.random.SeedGenerator)):
            raise ValueError(
                "`seed` must be an integer, a `keras.random.SeedGenerator` or None. "
                f"Received: seed={seed!r}"
            )
        self.seed = seed

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._init_seed)}


@_serializable
class Zeros(keras.initializers.Initializer):
    """All zeros: W = 0.

    A constant initialization gives every unit of a layer the same output and the same
    gradient, so the units never become different (the notes' "symmetry problem"); use it for
    biases, not for kernels.
    """

    def __call__(self, shape, dtype=None):
        return ops.zeros(shape, dtype=keras.backend.standardize_dtype(dtype))


@_serializable
class Ones(keras.initializers.Initializer):
    """All ones: W = 1.

    Same symmetry problem as `Zeros` for kernels; the usual start for a BN scale (gamma).
    """

    def __call__(self, shape, dtype=None):
        return ops.ones(shape, dtype=keras.backend.standardize_dtype(dtype))


@_serializable
class Constant(keras.initializers.Initializer):
    """One scalar everywhere: W = value.

    Computed as `cast(value, dtype) * ones(shape)`, like Keras. Only scalar values are meant;
    same symmetry problem as `Zeros` for kernels.
    """

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        dtype = keras.backend.standardize_dtype(dtype)
        return ops.cast(self.value, dtype=dtype) * ops.ones(shape=shape, dtype=dtype)

    def get_config(self):
        return {"value": keras.saving.serialize_keras_object(self.value)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["value"]))


@_serializable
class Identity(keras.initializers.Initializer):
    """Scaled identity matrix: W = gain * I (2-D only; rectangular shapes allowed).

    `W[i, j] = gain` if `i == j` else 0; for `(rows, cols)` with `rows != cols` it is the
    rectangular identity `eye(rows, cols)`. Raises `ValueError` for any shape not of rank 2.
    """

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(
                "Identity can only initialize 2-D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        dtype = keras.backend.standardize_dtype(dtype)
        return self.gain * ops.eye(*shape, dtype=dtype)

    def get_config(self):
        return {"gain": self.gain}


@_serializable
class Orthogonal(_RandomInitializer):
    """Random orthogonal matrix (Saxe et al., 2014): W = gain * Q, Q^T Q = I.

    With `r = prod(shape[:-1])` and `c = shape[-1]`:

        A ~ N(0, 1) of shape (max(r, c), min(r, c))
        Q, R = qr(A)                 (reduced QR)
        Q <- Q * sign(diag(R))       (makes Q uniformly distributed over orthogonal matrices)
        Q <- Q^T if r < c
        W = gain * reshape(Q, shape)

    So a tall or square `(r, c)` matrix has orthonormal columns (`W^T W = gain^2 I`), a wide
    one orthonormal rows (`W W^T = gain^2 I`); a conv kernel is orthogonal as its
    `(prod(k) * in, out)` matrix. Raises `ValueError` for shapes of rank < 2.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        if len(shape) < 2:
            raise ValueError(
                "Orthogonal needs a shape of rank >= 2. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        num_rows = math.prod(shape[:-1])
        num_cols = shape[-1]
        flat_shape = (max(num_rows, num_cols), min(num_rows, num_cols))
        a = keras.random.normal(flat_shape, seed=self.seed, dtype=dtype)
        q, r = ops.qr(a)
        q *= ops.sign(ops.diag(r))
        if num_rows < num_cols:
            q = ops.transpose(q)
        return self.gain * ops.reshape(q, shape)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


@_serializable
class RandomUniform(_RandomInitializer):
    """Uniform in a fixed range: W ~ U(minval, maxval).

    The range does not depend on the shape; the variance is `(maxval - minval)^2 / 12`.
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return keras.random.uniform(shape, minval=self.minval, maxval=self.maxval,
                                    dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


@_serializable
class RandomNormal(_RandomInitializer):
    """Normal with a fixed standard deviation: W ~ N(mean, stddev^2).

    The notes' "small normal" initialization (std 0.01) is `RandomNormal(stddev=0.01)`; the
    DLFS histogram experiment's std 1 is `RandomNormal(stddev=1.0)`. Not truncated: values
    beyond 2 stddev occur (about 4.6% of them).
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return keras.random.normal(shape, mean=self.mean, stddev=self.stddev,
                                   dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@_serializable
class TruncatedNormal(_RandomInitializer):
    """Normal cut at two standard deviations: W ~ TN(mean, stddev^2), |W - mean| <= 2 stddev.

    Values farther than `2 * stddev` from the mean are re-drawn. `stddev` is the standard
    deviation *before* truncation, so the samples' own standard deviation is
    `0.87962566103423978 * stddev` (about 0.88 stddev). The variance-scaling presets below
    (`GlorotNormal`, `HeNormal`, ...) correct for this; this class does not.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return keras.random.truncated_normal(shape, mean=self.mean, stddev=self.stddev,
                                             dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@_serializable
class VarianceScaling(_RandomInitializer):
    """Zero-mean random weights with variance scale / n, n a fan of the shape.

    With `fan_in, fan_out = compute_fans(shape)`:

        n = fan_in                     if mode == "fan_in"
            fan_out                    if mode == "fan_out"
            (fan_in + fan_out) / 2     if mode == "fan_avg"
        s = scale / max(1, n)

        "truncated_normal" (alias "normal"):
            W ~ TN(0, sigma^2), sigma = sqrt(s) / 0.87962566103423978,
            so |W| <= 2 sigma and std(W) = sqrt(s)
        "untruncated_normal":
            W ~ N(0, s), std(W) = sqrt(s)
        "uniform":
            W ~ U(-limit, limit), limit = sqrt(3 s), std(W) = sqrt(s)

    All three have the same variance `s`; they differ in the tails.

    Differs from the lecture notes / DLFS: their "Xavier" (`randn(n_in, n_out) /
    sqrt(n_in)`) and "He" (`randn * sqrt(2 / n_in)`) are *untruncated* normals, which the
    Keras presets `LecunNormal` / `HeNormal` are not. Get them with
    `VarianceScaling(1.0, "fan_in", "untruncated_normal")` (DLFS Xavier; note it is LeCun's
    fan_in rule, not Glorot's fan_avg) and `VarianceScaling(2.0, "fan_in",
    "untruncated_normal")` (DLFS He).

    Args:
        scale: positive scaling factor.
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal", "untruncated_normal" or "uniform" (any case;
            "normal" means "truncated_normal").
        seed: int, `keras.random.SeedGenerator` or None (see the module docstring).
        input_axes, output_axes: optional axis lists that override `compute_fans`'s rule
            (only when both are given).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        # Keras compares `scale <= 0.0` directly, so a string fails with a TypeError there;
        # a ValueError for every bad scale is the clearer message.
        if (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
                or not math.isfinite(scale) or scale <= 0.0):
            raise ValueError(
                f"Argument `scale` must be a positive float. Received: scale={scale!r}"
            )
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: {mode!r}. Please use one of {self._MODES}.")
        if isinstance(distribution, str):
            distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution!r}. "
                f"Please use one of {self._DISTRIBUTIONS} (or 'normal' for 'truncated_normal')."
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = input_axes
        self.output_axes = output_axes
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        s = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return keras.random.truncated_normal(shape, mean=0.0,
                                                 stddev=math.sqrt(s) / _TRUNCATED_STD,
                                                 dtype=dtype, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return keras.random.normal(shape, mean=0.0, stddev=math.sqrt(s),
                                       dtype=dtype, seed=self.seed)
        limit = math.sqrt(3.0 * s)
        return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype,
                                    seed=self.seed)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed scale, mode and distribution (only the seed is free)."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(scale=self._SCALE, mode=self._MODE, distribution=self._DISTRIBUTION,
                         seed=seed, input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        # Only the constructor's own arguments, so from_config(get_config()) works.
        return {
            "seed": keras.saving.serialize_keras_object(self._init_seed),
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


@_serializable
class LecunUniform(_Preset):
    """LeCun uniform: W ~ U(-limit, limit), limit = sqrt(3 / fan_in).

    `VarianceScaling(1.0, "fan_in", "uniform")`; std(W) = sqrt(1 / fan_in), as the notes'
    LeCun uniform.
    """

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "uniform"


@_serializable
class LecunNormal(_Preset):
    """LeCun normal, truncated: W ~ TN(0, sigma^2), sigma = sqrt(1 / fan_in) / 0.8796.

    `VarianceScaling(1.0, "fan_in", "truncated_normal")`: std(W) = sqrt(1 / fan_in) and
    |W| <= 2 sigma = 2.27 sqrt(1 / fan_in).

    Differs from the lecture notes / DLFS: the notes' LeCun normal and DLFS's "Xavier"
    (`randn / sqrt(n_in)`) are the same variance but *untruncated*; that is
    `VarianceScaling(1.0, "fan_in", "untruncated_normal")`.
    """

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"


@_serializable
class GlorotUniform(_Preset):
    """Glorot / Xavier uniform: W ~ U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).

    `VarianceScaling(1.0, "fan_avg", "uniform")`; std(W) = sqrt(2 / (fan_in + fan_out)).
    Keras's default kernel initializer for `Dense` and the convolutions.

    Differs from DLFS: DLFS's "Xavier" uses only fan_in and a normal distribution (see
    `LecunNormal`).
    """

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "uniform"


@_serializable
class GlorotNormal(_Preset):
    """Glorot / Xavier normal, truncated: W ~ TN(0, sigma^2), sigma = sqrt(2/(in+out))/0.8796.

    `VarianceScaling(1.0, "fan_avg", "truncated_normal")`: std(W) = sqrt(2 / (fan_in +
    fan_out)) and |W| <= 2 sigma.

    Differs from the lecture notes / DLFS: the notes' Xavier normal (std sqrt(2 / (fan_in +
    fan_out))) is untruncated -- `VarianceScaling(1.0, "fan_avg", "untruncated_normal")` --
    and DLFS's "Xavier" is not Glorot at all but an untruncated LeCun normal,
    `VarianceScaling(1.0, "fan_in", "untruncated_normal")`.
    """

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"


@_serializable
class HeUniform(_Preset):
    """He uniform: W ~ U(-limit, limit), limit = sqrt(6 / fan_in).

    `VarianceScaling(2.0, "fan_in", "uniform")`; std(W) = sqrt(2 / fan_in), for ReLU nets.
    """

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "uniform"


@_serializable
class HeNormal(_Preset):
    """He normal, truncated: W ~ TN(0, sigma^2), sigma = sqrt(2 / fan_in) / 0.8796.

    `VarianceScaling(2.0, "fan_in", "truncated_normal")`: std(W) = sqrt(2 / fan_in) (the
    variance that keeps ReLU activations from shrinking layer to layer) and |W| <= 2 sigma.

    Differs from the lecture notes / DLFS: their He (`randn * sqrt(2 / n_in)`) has the same
    variance but is *untruncated*; that is `VarianceScaling(2.0, "fan_in",
    "untruncated_normal")`.
    """

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "truncated_normal"
