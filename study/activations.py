"""Activation functions of the lecture notes, written from their formulas with `keras.ops`.

Each function is registered as `"study>name"`, so it can be passed to `Affine(activation=...)`
as a function object and survives a `.keras` round trip. The layer wrappers live in
`study.layers` (`Step`, `Sigmoid`, ...).

Branches that could overflow are written as a "safe where": the input of each branch is clamped
to that branch's side of the split, so the unselected branch never produces `inf` and its zero
cotangent never turns into `0 * inf = NaN` during backprop.
"""

import keras
from keras import ops

__all__ = [
    "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish", "softplus", "softmax",
]


def _float(x):
    """`x` as a tensor of a float dtype (ints become floatx, as Keras's activations do)."""
    x = ops.convert_to_tensor(x)
    if "float" not in keras.backend.standardize_dtype(x.dtype):
        x = ops.cast(x, keras.config.floatx())
    return x


def _split(x, positive):
    """(x where `positive` else 0, 0 where `positive` else x): each side of a safe where."""
    zero = ops.zeros_like(x)
    return ops.where(positive, x, zero), ops.where(positive, zero, x)


@keras.saving.register_keras_serializable(package="study")
def step(x):
    """Step (Heaviside) function: 1 where the input is positive, else 0.

    `step(x) = 1 if x > 0 else 0`, as seed 002 writes it (`np.array(x > 0, dtype=int)`);
    the output has `x`'s float dtype. Its derivative is 0 almost everywhere (and undefined
    at 0), so backprop sees an explicit ZERO gradient rather than `None`: a network using it
    trains without error but cannot learn through it — the reason the perceptron's step
    gave way to the sigmoid.
    """
    x = _float(x)
    if keras.backend.is_keras_tensor(x):
        # Symbolic shape inference only; the gradient rule matters on real tensors.
        return ops.cast(ops.greater(x, 0), x.dtype)
    return _step_with_zero_gradient(x)


@ops.custom_gradient
def _step_with_zero_gradient(x):
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # zeros_like, not upstream * 0: an inf or NaN upstream must not leak through.
        return ops.zeros_like(upstream)

    return ops.cast(ops.greater(x, 0), x.dtype), grad


@keras.saving.register_keras_serializable(package="study")
def sigmoid(x):
    """Logistic sigmoid: squashes any real number into (0, 1).

    `sigmoid(x) = 1 / (1 + exp(-x))`, evaluated as `1 / (1 + e)` for `x >= 0` and as the
    equal `e / (1 + e)` for `x < 0`, with `e = exp(-|x|)`: `exp` only ever sees a
    non-positive argument, so no overflow at `x = -1e4` (DLFS's one-liner
    `1 / (1 + np.exp(-x))` overflows there, with a warning, though it still returns 0). One
    `exp` serves both sides.

    The gradient is written out (`_sigmoid`): the operations reverse-mode differentiation
    performs on the two-sided form, `where(x >= 0, 1 / (1 + exp(-x+)), e- / (1 + e-))` with
    `e- = exp(x-)` and x+, x- the input clamped to each side, taken only on the side each
    element is on. Values and gradients are the same bits as differentiating that form
    (checked on 4 million inputs, float32 and float64, eager and compiled, infinities and
    NaN included: tests/components/test_sigmoid_gradient.py), and forward + backward take about
    half the time and keep three tensors for the backward pass instead of six.

    Differs from `keras.activations.sigmoid`: Keras attaches the input as
    `output._keras_logits`, which TF's crossentropy losses use for stability even with
    `from_logits=False`; this function does not, so a loss on top of it can differ from the
    Keras one in the last digits on TF.
    """
    x = _float(x)
    if keras.backend.is_keras_tensor(x):
        # Symbolic shape inference only; the gradient rule matters on real tensors.
        return _sigmoid_value(*_sigmoid_parts(x))
    return _sigmoid(x)


def _sigmoid_parts(x):
    """(x >= 0, e = exp(-|x|), d = 1 + e)."""
    positive = ops.greater_equal(x, 0)
    e = ops.exp(ops.negative(ops.abs(x)))
    return positive, e, 1.0 + e


def _sigmoid_value(positive, e, d):
    # 1 / d and e / d as the two-sided form had them, not where(positive, 1, e) / d: compiled,
    # that one division rounds otherwise (1.47 million of 4 million values differed).
    return ops.where(positive, 1.0 / d, e / d)


@ops.custom_gradient
def _sigmoid(x):
    positive, e, d = _sigmoid_parts(x)

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        g = upstream
        # With t = -1 / d^2 (x >= 0) or -e / d^2 (x < 0), as autodiff rounds them:
        # d/dx 1 / (1 + exp(-x)) = -(g t) e;  d/dx e / (1 + e) = (g / d + g t) e.
        gt = g * ((ops.where(positive, -1.0, ops.negative(e)) / d) / d)
        zero = ops.zeros_like(g)
        # Autodiff adds the two sides' gradients (0 on the other side): the same sum here,
        # so that a -0.0 becomes +0.0 as there.
        return (ops.where(positive, ops.negative(gt * e), zero)
                + ops.where(positive, zero, (g / d + gt) * e))

    return _sigmoid_value(positive, e, d), grad


@keras.saving.register_keras_serializable(package="study")
def tanh(x):
    """Hyperbolic tangent: squashes any real number into (-1, 1), zero-centred.

    `tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)) = (1 - exp(-2x)) / (1 + exp(-2x))
    = 2 sigmoid(2x) - 1`. Evaluated as `-e / (2 + e)` with `e = expm1(-2x)` for `x >= 0`,
    and as its mirror image `e' / (2 + e')` with `e' = expm1(2x)` for `x < 0`, so it neither
    overflows for large `|x|` nor loses relative precision near 0.
    """
    x = _float(x)
    positive = ops.greater_equal(x, 0)
    x_pos, x_neg = _split(x, positive)
    e_pos = ops.expm1(-2.0 * x_pos)
    e_neg = ops.expm1(2.0 * x_neg)
    return ops.where(positive, -e_pos / (2.0 + e_pos), e_neg / (2.0 + e_neg))


@keras.saving.register_keras_serializable(package="study")
def relu(x):
    """Rectified linear unit: passes positive inputs, zeroes the rest.

    `relu(x) = max(0, x) = x if x > 0 else 0`. The derivative is 1 for `x > 0` and 0
    otherwise (0 at `x = 0` too, as TF's and DLFS's `Relu` do). A unit whose input stays
    negative gets no gradient at all ("dying ReLU").
    """
    x = _float(x)
    return ops.where(ops.greater(x, 0), x, ops.zeros_like(x))


@keras.saving.register_keras_serializable(package="study")
def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU: ReLU with a small slope for negative inputs, so no unit dies.

    `leaky_relu(x) = x if x > 0 else a * x`, with `a = negative_slope`.

    The default `a = 0.2` mirrors `keras.activations.leaky_relu`; the LAYER
    `study.layers.LeakyReLU` defaults to 0.3, as `keras.layers.LeakyReLU` does. Keras has
    the two defaults and so does this library, on purpose.
    """
    x = _float(x)
    return ops.where(ops.greater(x, 0), x, negative_slope * x)


@keras.saving.register_keras_serializable(package="study")
def elu(x, alpha=1.0):
    """Exponential linear unit: identity for positive inputs, saturating exponential below.

    `elu(x) = x if x > 0 else alpha * (exp(x) - 1)` (Clevert et al., 2016), computed with
    `expm1` on the clamped negative side so a large positive `x` cannot overflow it.
    """
    x = _float(x)
    positive = ops.greater(x, 0)
    _, x_neg = _split(x, positive)
    return ops.where(positive, x, alpha * ops.expm1(x_neg))


@keras.saving.register_keras_serializable(package="study")
def swish(x):
    """Swish (SiLU): the input gated by its own sigmoid.

    `swish(x) = x * sigmoid(x)` (Ramachandran et al., 2017), with the stable `sigmoid`
    above. `keras.activations.swish` is the same function (an alias of `silu`).
    """
    x = _float(x)
    return x * sigmoid(x)


@keras.saving.register_keras_serializable(package="study")
def softplus(x):
    """Softplus: a smooth ReLU, always positive.

    `softplus(x) = log(1 + exp(x))`, evaluated as `x + log1p(exp(-x))` for `x >= 0` and
    `log1p(exp(x))` for `x < 0` (i.e. `logaddexp(x, 0)`), so `exp` never overflows. Its
    derivative is `sigmoid(x)`.
    """
    x = _float(x)
    positive = ops.greater_equal(x, 0)
    x_pos, x_neg = _split(x, positive)
    return ops.where(positive, x_pos + ops.log1p(ops.exp(-x_pos)), ops.log1p(ops.exp(x_neg)))


@keras.saving.register_keras_serializable(package="study")
def softmax(x, axis=-1):
    """Softmax: turns a vector of scores into probabilities that sum to 1.

    `softmax(x)_k = exp(x_k - c) / sum_j exp(x_j - c)`, with `c = max_j x_j` along `axis`.
    Subtracting `c` leaves the result unchanged but keeps every `exp` argument <= 0, the
    overflow fix of seed 002 and DLFS (finite for inputs of 1e4 and -1e4). `c` is held
    constant for backprop (`stop_gradient`), as the shift does not change the value.

    Differs from `keras.activations.softmax`: Keras attaches the input as
    `output._keras_logits`, which TF's crossentropy losses use for stability even with
    `from_logits=False`; this function does not, so a loss on top of it can differ from the
    Keras one in the last digits on TF.
    """
    x = _float(x)
    shift = ops.stop_gradient(ops.max(x, axis=axis, keepdims=True))
    e = ops.exp(x - shift)
    return e / ops.sum(e, axis=axis, keepdims=True)
