"""study.activations: equal to Keras's built-ins, to DLFS-style NumPy oracles, and stable."""

import numpy as np
import pytest

import keras
from keras import ops

from study import activations, layers
from tests.components import gradcheck

# float32 against float32: Keras and this library may round differently by an ulp or two
# (1.2e-7 relative), and near 0 an absolute 1e-7 absorbs e.g. TF's elu(-1e-8) == 0.
RTOL, ATOL = 1e-6, 1e-7

GRID = np.concatenate([
    np.linspace(-50.0, 50.0, 2001),
    [-20.0, -5.0, -1.0, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 1.0, 5.0, 20.0],
]).astype("float32")


# DLFS-style oracles: the formula in NumPy, float64 (overflow in exp is harmless here: +-50).
def _np_step(x):
    return np.array(x > 0, dtype=int)


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(a, axis=-1):
    c = np.max(a, axis=axis, keepdims=True)
    exp_a = np.exp(a - c)
    return exp_a / np.sum(exp_a, axis=axis, keepdims=True)


ORACLES = {
    "step": _np_step,
    "sigmoid": _np_sigmoid,
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "relu": lambda x: np.maximum(0, x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, 1.0 * (np.exp(x) - 1)),
    "swish": lambda x: x * _np_sigmoid(x),
    "softplus": lambda x: np.log(1 + np.exp(x)),
    "softmax": _np_softmax,
}
ELEMENTWISE = [name for name in ORACLES if name != "softmax"]


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n != "step"])
def test_equals_the_keras_builtin_of_the_same_name(name):
    ours = _np(getattr(activations, name)(GRID))
    theirs = _np(getattr(keras.activations, name)(GRID))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_equals_the_numpy_oracle(name):
    x64 = GRID.astype("float64")
    expected = ORACLES[name](x64).astype("float32")
    np.testing.assert_allclose(_np(getattr(activations, name)(GRID)), expected,
                               rtol=RTOL, atol=ATOL)


def test_step_is_zero_or_one_in_the_input_float_dtype():
    y = _np(activations.step(GRID))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, _np_step(GRID).astype("float32"))
    assert _np(activations.step(np.array([0.0], "float32")))[0] == 0.0  # step(0) = 0
    assert _np(activations.step(np.array([-3, 0, 2]))).dtype == np.float32  # ints -> floatx


# Cheap checks loop over the functions inside one test: the per-test Keras reset in
# tests/conftest.py costs more than the checks themselves.

def test_float64_stays_float64():
    with gradcheck.float64():
        for name in ORACLES:
            y = getattr(activations, name)(np.array([-2.0, 0.5, 3.0]))
            assert keras.backend.standardize_dtype(y.dtype) == "float64", name


def test_finite_for_huge_inputs():
    x = np.array([-1e4, -1e3, -88.8, 88.8, 1e3, 1e4], "float32")
    for name in ORACLES:
        y = _np(getattr(activations, name)(x))
        assert np.all(np.isfinite(y)), (name, y)
        if name in ("sigmoid", "tanh", "swish", "softplus", "elu"):
            np.testing.assert_allclose(y, _np(getattr(keras.activations, name)(x)),
                                       rtol=RTOL, atol=ATOL, err_msg=name)


def test_sigmoid_limits_are_exact():
    y = _np(activations.sigmoid(np.array([-1e4, 1e4, 0.0], "float32")))
    np.testing.assert_array_equal(y, [0.0, 1.0, 0.5])


def test_softmax_subtracts_the_max():
    x = np.array([1e4, 1e4 - 1, -1e4], "float32")
    y = _np(activations.softmax(x))
    assert np.all(np.isfinite(y))
    e = np.exp(-1.0)
    np.testing.assert_allclose(y, [1 / (1 + e), e / (1 + e), 0.0], rtol=RTOL, atol=ATOL)
    assert abs(float(y.sum()) - 1.0) < 1e-6


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_equals_keras_elsewhere(axis):
    x = np.random.default_rng(0).normal(scale=5.0, size=(4, 6, 5)).astype("float32")
    ours = _np(activations.softmax(x, axis=axis))
    np.testing.assert_allclose(ours, _np(keras.activations.softmax(x, axis=axis)),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours, _np_softmax(x.astype("float64"), axis=axis),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours.sum(axis=axis), 1.0, rtol=1e-6)


def test_softmax_does_not_attach_keras_logits():
    """Documented difference: Keras caches the logits for TF's crossentropy, we do not."""
    x = ops.convert_to_tensor(np.array([[1.0, 2.0]], "float32"))
    assert getattr(activations.softmax(x), "_keras_logits", None) is None


def test_leaky_relu_defaults_mirror_keras_function_and_layer():
    x = np.array([-10.0], "float32")
    assert _np(activations.leaky_relu(x))[0] == pytest.approx(-2.0)  # function: 0.2
    assert _np(keras.activations.leaky_relu(x))[0] == pytest.approx(-2.0)
    assert _np(layers.LeakyReLU()(x))[0] == pytest.approx(-3.0)  # layer: 0.3
    assert _np(keras.layers.LeakyReLU()(x))[0] == pytest.approx(-3.0)


def test_elu_alpha():
    x = np.array([-2.0, 3.0], "float32")
    np.testing.assert_allclose(_np(activations.elu(x, alpha=0.5)),
                               _np(keras.activations.elu(x, alpha=0.5)), rtol=RTOL)


# --- step: a zero gradient, not None and not NaN ---------------------------------------

def test_step_gradient_is_exactly_zero_even_for_infinite_inputs():
    x = np.array([[-np.inf, -1.0, 0.0, 1e-3, 1.0, np.inf]], "float32")
    _, grads = gradcheck.autodiff(layers.Step(), x, np.ones_like(x))
    assert grads["inputs"] is not None
    np.testing.assert_array_equal(grads["inputs"], np.zeros_like(x))


def test_step_gradient_through_a_dense_layer_is_zero_not_none():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), layers.Step()])
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    _, grads = gradcheck.autodiff(model, x, np.ones((8, 4), "float32"))
    assert set(grads) == {"inputs", model.layers[0].kernel.path, model.layers[0].bias.path}
    for name, grad in grads.items():
        assert grad is not None, name
        np.testing.assert_array_equal(grad, np.zeros_like(grad), err_msg=name)


@pytest.mark.parametrize("step", [layers.Step, lambda: keras.layers.Activation(activations.step)])
def test_a_model_with_step_trains_but_nothing_before_the_step_learns(step):
    """model.fit runs the step in TF graph mode / under JAX jit without error or NaN."""
    model = keras.Sequential([keras.Input((3,)), layers.Affine(4, name="before"), step(),
                              layers.Affine(1, name="after")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_layer("before").get_weights()]
    after = [w.copy() for w in model.get_layer("after").get_weights()]
    x = np.random.default_rng(2).normal(size=(32, 3)).astype("float32")
    history = model.fit(x, x[:, :1], batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for old, new in zip(before, model.get_layer("before").get_weights()):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(o, n)
               for o, n in zip(after, model.get_layer("after").get_weights()))


# --- registration ---------------------------------------------------------------------

def test_registered_and_round_trips_through_keras_serialization():
    assert sorted(activations.__all__) == sorted(ORACLES)
    for name in ORACLES:
        function = getattr(activations, name)
        assert keras.saving.get_registered_name(function) == f"study>{name}"
        assert keras.activations.get(keras.activations.serialize(function)) is function, name


def test_docstrings_start_with_a_one_line_summary_then_the_formula():
    for name in ORACLES:
        lines = getattr(activations, name).__doc__.strip().splitlines()
        assert lines[0].endswith(".") and lines[1].strip() == "", name
        assert f"{name}(x" in lines[2] or "=" in lines[2], name  # the formula follows


def test_an_affine_layer_with_our_activation_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Affine(4, activation=activations.swish),
                              layers.Affine(2, activation=activations.softmax)])
    x = np.random.default_rng(3).normal(size=(5, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].activation is activations.swish
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
