"""The worked examples of the lecture notes, reproduced with this library's components."""

import numpy as np
import pytest

import keras
from keras import ops

from study import initializers, layers
from tests.components import gradcheck

# seed 000, forward pass: every intermediate value as printed on the slide (8 decimals).
SEED_000 = {
    "z1": 0.08, "z2": 0.11,
    "h1": 0.51998934, "h2": 0.52747230,
    "z3": 0.44498412, "z4": 0.68047592,
    "o1": 0.60944600, "o2": 0.66384491,
    "E_o1": 0.02193381, "E_o2": 0.00203809, "E": 0.02397190,
}


def _seed_000_forward(dtype):
    # Kernels are (inputs, units): column j holds the weights into unit j,
    # z1 = W1 x1 + W2 x2, z2 = W3 x1 + W4 x2, z3 = W5 h1 + W6 h2, z4 = W7 h1 + W8 h2.
    w1, w2, w3, w4, w5, w6, w7, w8 = 0.3, 0.25, 0.4, 0.35, 0.45, 0.4, 0.7, 0.6
    hidden = layers.Affine(2, use_bias=False, kernel_initializer=initializers.Zeros(), dtype=dtype)
    output = layers.Affine(2, use_bias=False, kernel_initializer=initializers.Zeros(), dtype=dtype)
    hidden.build((None, 2))
    output.build((None, 2))
    hidden.kernel.assign(np.array([[w1, w3], [w2, w4]], dtype))
    output.kernel.assign(np.array([[w5, w7], [w6, w8]], dtype))
    sigmoid = layers.Sigmoid(dtype=dtype)

    x = np.array([[0.1, 0.2]], dtype)
    target = np.array([[0.4, 0.6]], dtype)
    z12 = hidden(x)
    h12 = sigmoid(z12)
    z34 = output(h12)
    o12 = sigmoid(z34)
    e_each = 0.5 * ops.square(target - o12)
    values = [z12, h12, z34, o12, e_each]
    z12, h12, z34, o12, e_each = (ops.convert_to_numpy(v)[0] for v in values)
    return {"z1": z12[0], "z2": z12[1], "h1": h12[0], "h2": h12[1], "z3": z34[0], "z4": z34[1],
            "o1": o12[0], "o2": o12[1], "E_o1": e_each[0], "E_o2": e_each[1],
            "E": e_each.sum()}


@pytest.mark.parametrize(("dtype", "atol"), [
    # The slide rounds to 8 decimals (error <= 5e-9); float64 must land within that rounding.
    ("float64", 5e-9),
    # float32 carries ~7 significant digits: the 1e-7 bar.
    ("float32", 1e-7),
])
def test_forward_pass_of_seed_000(dtype, atol):
    with gradcheck.float64():  # JAX computes float64 only with x64 enabled
        got = _seed_000_forward(dtype)
    for name, expected in SEED_000.items():
        assert abs(float(got[name]) - expected) <= atol, (name, float(got[name]), expected)


def test_parameter_counts_of_seed_003():
    """Dense(9) on 6 inputs then Dense(4): 103; 8 -> 9 -> 9 -> 9 -> 4: 301."""
    small = keras.Sequential([keras.Input((6,)), layers.Affine(9), layers.Affine(4)])
    deep = keras.Sequential([keras.Input((8,)), layers.Affine(9), layers.Affine(9),
                             layers.Affine(9), layers.Affine(4)])
    assert small.count_params() == 6 * 9 + 9 + 9 * 4 + 4 == 103
    assert deep.count_params() == 301
