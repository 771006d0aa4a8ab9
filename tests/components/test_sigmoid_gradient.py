"""`study.activations.sigmoid` writes its gradient out (one `exp` for both sides, three tensors
kept for the backward pass): on TensorFlow, where the studies train, its values and gradients
must be the bits reverse mode gives for the two-sided form it replaced, so that no stored number
of a sigmoid run moves. On JAX, whose autodiff orders a quotient's derivative otherwise, they
agree to rounding."""

import numpy as np
import pytest

import keras
from keras import ops

from study import activations
from tests.components import gradcheck

SIZE = 400_000


def two_sided_sigmoid(x):
    """The form before the gradient was written out, left to autodiff: each side's input
    clamped to that side, `exp` of each."""
    positive = ops.greater_equal(x, 0)
    zero = ops.zeros_like(x)
    x_pos, x_neg = ops.where(positive, x, zero), ops.where(positive, zero, x)
    e_neg = ops.exp(x_neg)
    return ops.where(positive, 1.0 / (1.0 + ops.exp(-x_pos)), e_neg / (1.0 + e_neg))


def _inputs(dtype, rng):
    """Every exponent (random bit patterns), normals from 0.01 to 100 wide, and the edges."""
    unsigned = np.uint32 if dtype == "float32" else np.uint64
    bits = rng.integers(0, np.iinfo(unsigned).max, SIZE, dtype=unsigned, endpoint=True)
    scales = rng.choice([0.01, 1.0, 5.0, 30.0, 100.0], SIZE)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 88.7, -88.7, 103.9, -103.9]
    return np.concatenate([bits.view(dtype), (rng.standard_normal(SIZE) * scales).astype(dtype),
                           np.array(special, dtype)])


def _cotangents(n, dtype, rng):
    """Normal values, a tenth of them +0 or -0 (where the sum of autodiff's two sides turns
    a -0 into +0), and some infinities and NaN."""
    g = rng.standard_normal(n)
    g[rng.random(n) < 0.1] = 0.0
    g[rng.random(n) < 0.05] *= -0.0
    g[rng.choice(n, 30, replace=False)] = rng.choice([np.inf, -np.inf, np.nan], 30)
    return g.astype(dtype)


def _differing(a, b):
    """How many elements differ in their bits (NaN equal to NaN)."""
    unsigned = np.uint32 if a.dtype == np.float32 else np.uint64
    same = (a.view(unsigned) == b.view(unsigned)) | (np.isnan(a) & np.isnan(b))
    return int((~same).sum())


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_values_and_gradients_are_the_two_sided_form_s(dtype, compiled):
    rng = np.random.default_rng(7)
    with gradcheck.float64():
        x = _inputs(dtype, rng)
        g = _cotangents(len(x), dtype, rng)
        ours = gradcheck.value_and_input_gradient(activations.sigmoid, x, g, compiled)
        theirs = gradcheck.value_and_input_gradient(two_sided_sigmoid, x, g, compiled)
    if keras.backend.backend() == "tensorflow":
        assert [_differing(a, b) for a, b in zip(ours, theirs)] == [0, 0]
    else:
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=4 * np.finfo(dtype).eps,
                                       atol=np.finfo(dtype).tiny)


def test_sigmoid_gradient_is_finite_where_a_side_would_overflow():
    x = np.array([-1e4, -100.0, 100.0, 1e4], "float32")
    _, dx = gradcheck.value_and_input_gradient(activations.sigmoid, x, np.ones(4, "float32"))
    np.testing.assert_array_equal(dx, np.zeros(4, "float32"))
