"""study.layers: gradients, equality with Keras's built-ins, behaviour, and serialization."""

import numpy as np
import pytest

import keras
from keras import ops

from study import activations, initializers, layers
from tests.components import gradcheck, oracles

# float32 against Keras's float32 built-ins: the same formula evaluated in a different order
# (e.g. BN's x*inv + (beta - mean*inv) vs gamma*(x - mean)/sqrt(var + eps) + beta) differs by
# a few ulps, ~1e-7 relative.
RTOL, ATOL = 1e-6, 1e-6
# Central differences in float64 with h = 1e-5 are accurate to ~1e-10; 1e-6 leaves margin.
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-9


def _np(x):
    return ops.convert_to_numpy(x)


def _away_from_zero(shape, seed=0, low=0.2, high=2.0):
    """Random values with |x| in [low, high]: no kinks of ReLU/LeakyReLU/PReLU/Step nearby."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def _set_random_weights(layer, seed=0, positive=("gamma", "moving_variance")):
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        if "seed_generator" in v.path:
            continue
        value = rng.normal(size=v.shape)
        if any(v.path.endswith(p) for p in positive):
            value = rng.uniform(0.5, 2.0, size=v.shape)
        v.assign(value.astype(v.dtype))


# --- numerical gradient check, float64 -------------------------------------------------

GRADIENT_CASES = {
    "Affine": lambda: layers.Affine(3, activation=activations.tanh),
    "Sigmoid": layers.Sigmoid,
    "Tanh": layers.Tanh,
    "ReLU": layers.ReLU,
    "LeakyReLU": layers.LeakyReLU,
    "ELU": lambda: layers.ELU(alpha=0.7),
    "PReLU": layers.PReLU,
    "Swish": layers.Swish,
    "Softplus": layers.Softplus,
    "Softmax": layers.Softmax,
    "BatchNormalization": layers.BatchNormalization,
    "ResidualBlock": layers.ResidualBlock,
    "ResidualBlock-prelu": lambda: layers.ResidualBlock(activation="prelu"),
    "ResidualBlock-pre": lambda: layers.ResidualBlock(preactivation=True),
    "ResidualBlock-pre-prelu": lambda: layers.ResidualBlock(activation="prelu",
                                                            preactivation=True),
    "ResidualBlock-pre-sigmoid": lambda: layers.ResidualBlock(activation="sigmoid",
                                                              preactivation=True),
}


@pytest.mark.parametrize("name", list(GRADIENT_CASES))
def test_gradient_matches_central_differences(name):
    """dL/d(inputs) and dL/d(every trainable weight), L = sum(w * layer(x)), training mode."""
    with gradcheck.float64():
        layer = GRADIENT_CASES[name]()
        layer = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
        x = _away_from_zero((6, 4))
        layer.build(x.shape)
        _set_random_weights(layer)  # non-trivial alpha, gamma, beta, biases
        w = np.random.default_rng(1).normal(size=_np(layer(x)).shape)
        _, analytic = gradcheck.autodiff(layer, x, w, training=True)
        numeric = gradcheck.numerical(layer, x, w, training=True)
    assert set(analytic) == set(numeric) == {"inputs", *(v.path for v in layer.trainable_weights)}
    for key in numeric:
        assert analytic[key] is not None, key
        np.testing.assert_allclose(analytic[key], numeric[key], rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   err_msg=key)
        assert np.any(analytic[key] != 0), key


@pytest.mark.parametrize("inverted", [True, False], ids=["inverted", "book"])
def test_dropout_gradient_is_its_mask_times_its_scale(inverted):
    """Inverted: mask / (1 - p) in training, 1 at inference; the book's: the mask, then 1 - p."""
    rate = 0.4
    layer = layers.Dropout(rate, seed=5, inverted=inverted)
    x = _away_from_zero((50, 20)).astype("float32")
    w = np.random.default_rng(2).normal(size=x.shape).astype("float32")
    y, grads = gradcheck.autodiff(layer, x, w, training=True)
    kept = y != 0
    assert 0 < kept.mean() < 1
    scale = 1 / (1 - rate) if inverted else 1.0
    np.testing.assert_allclose(grads["inputs"], np.where(kept, w * scale, 0.0), rtol=1e-6)
    _, grads = gradcheck.autodiff(layer, x, w, training=False)
    np.testing.assert_allclose(grads["inputs"], w if inverted else w * (1 - rate), rtol=1e-6)


# --- Affine ------------------------------------------------------------------------------

def test_affine_equals_dense_with_the_same_seeded_initializers():
    kwargs = {"kernel_initializer": keras.initializers.GlorotUniform(seed=11),
              "bias_initializer": keras.initializers.RandomNormal(seed=12)}
    ours, dense = layers.Affine(5, **kwargs), keras.layers.Dense(5, **kwargs)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    ours.build(x.shape)
    dense.build(x.shape)
    assert [v.name for v in ours.weights] == [v.name for v in dense.weights] == ["kernel", "bias"]
    for a, b in zip(ours.weights, dense.weights):
        np.testing.assert_array_equal(_np(a), _np(b))
    np.testing.assert_allclose(_np(ours(x)), _np(dense(x)), rtol=RTOL, atol=ATOL)


def test_affine_equals_dense_with_the_same_weights():
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")  # rank 3 as well
    for kwargs in [{}, {"activation": "relu"}, {"use_bias": False}]:
        ours, dense = layers.Affine(6, **kwargs), keras.layers.Dense(6, **kwargs)
        ours.build(x.shape)
        dense.build(x.shape)
        ours.set_weights(dense.get_weights())
        assert ours.compute_output_shape(x.shape) == dense.compute_output_shape(x.shape)
        np.testing.assert_allclose(_np(ours(x)), _np(dense(x)), rtol=RTOL, atol=ATOL)


def test_affine_accepts_study_components_by_name_and_instance():
    by_name = layers.Affine(3, kernel_initializer="study>HeNormal")
    by_instance = layers.Affine(3, kernel_initializer=initializers.HeNormal(seed=1))
    for layer in (by_name, by_instance):
        layer.build((None, 200))
        assert isinstance(layer.kernel_initializer, initializers.HeNormal)
        assert 0.05 < float(np.std(_np(layer.kernel))) < 0.15  # He: sqrt(2/200) = 0.1
    with pytest.raises(ValueError):
        layers.Affine(0)


# --- PReLU -------------------------------------------------------------------------------

@pytest.mark.parametrize("shared_axes", [None, [1]])
def test_prelu_equals_keras_prelu_with_the_same_alpha(shared_axes):
    ours = layers.PReLU(shared_axes=shared_axes)
    theirs = keras.layers.PReLU(shared_axes=shared_axes)
    x = np.random.default_rng(0).normal(size=(4, 3, 5)).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    assert ours.alpha.shape == theirs.alpha.shape
    assert ours.alpha.name == "alpha"
    alpha = np.random.default_rng(1).uniform(-0.5, 0.5, size=ours.alpha.shape).astype("float32")
    ours.alpha.assign(alpha)
    theirs.alpha.assign(alpha)
    np.testing.assert_allclose(_np(ours(x)), _np(theirs(x)), rtol=RTOL, atol=ATOL)


def test_prelu_alpha_learns():
    model = keras.Sequential([keras.Input((4,)), layers.PReLU(), layers.Affine(1)])
    x = _away_from_zero((16, 4)).astype("float32")
    y = np.sum(x, axis=1, keepdims=True).astype("float32")
    prelu = model.layers[0]
    _, grads = gradcheck.autodiff(model, x, np.ones((16, 1), "float32"))
    assert np.all(grads[prelu.alpha.path] != 0)  # alpha starts at 0 and still gets a gradient
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # one SGD step
    assert np.all(_np(prelu.alpha) != 0)


# --- BatchNormalization -------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "axis"), [((16, 5), -1), ((8, 3, 4), 1), ((8, 3, 4), -1)])
def test_batch_norm_equals_keras_in_training_then_inference(shape, axis):
    kwargs = {"axis": axis, "momentum": 0.9, "gamma_initializer": "random_uniform",
              "beta_initializer": "random_normal"}
    ours, theirs = layers.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    rng = np.random.default_rng(0)
    ours.build(shape)
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())
    assert [v.name for v in ours.weights] == [v.name for v in theirs.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]
    for _ in range(4):
        x = rng.normal(loc=3.0, scale=2.0, size=shape).astype("float32")
        np.testing.assert_allclose(_np(ours(x, training=True)), _np(theirs(x, training=True)),
                                   rtol=RTOL, atol=ATOL)
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(_np(a), _np(b), rtol=RTOL, atol=ATOL, err_msg=a.name)
    assert not np.allclose(_np(ours.moving_mean), 0.0)  # the statistics did move
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(_np(ours(x)), _np(theirs(x)), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_np(ours(x, training=False)), _np(theirs(x, training=False)),
                               rtol=RTOL, atol=ATOL)


def test_batch_norm_training_output_is_the_textbook_formula():
    layer = layers.BatchNormalization(epsilon=1e-3, momentum=0.9)
    x = np.random.default_rng(0).normal(loc=1.0, scale=3.0, size=(32, 4)).astype("float32")
    y = _np(layer(x, training=True))
    mu, var = x.mean(axis=0), x.var(axis=0)  # biased, like ops.moments
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_mean), 0.1 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(layer.moving_variance), 0.9 + 0.1 * var, rtol=1e-5)


def test_frozen_batch_norm_runs_in_inference_mode_like_keras():
    ours, theirs = layers.BatchNormalization(), keras.layers.BatchNormalization()
    x = np.random.default_rng(0).normal(loc=2.0, size=(8, 3)).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    _set_random_weights(ours)
    theirs.set_weights(ours.get_weights())
    ours.trainable = theirs.trainable = False
    before = ours.get_weights()
    np.testing.assert_allclose(_np(ours(x, training=True)), _np(ours(x, training=False)))
    np.testing.assert_allclose(_np(ours(x, training=True)), _np(theirs(x, training=True)),
                               rtol=RTOL, atol=ATOL)
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def _bn_model(bn):
    return keras.Sequential([
        keras.Input((6,)),
        layers.Affine(8, kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
        bn,
        layers.ReLU(),
        layers.Affine(1, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
    ])


def test_batch_norm_in_a_model_trains_like_keras_batch_norm():
    ours = _bn_model(layers.BatchNormalization(momentum=0.8))
    twin = _bn_model(keras.layers.BatchNormalization(momentum=0.8))
    twin.set_weights(ours.get_weights())
    rng = np.random.default_rng(0)
    x = rng.normal(loc=1.0, size=(64, 6)).astype("float32")
    y = (x[:, :1] - 2 * x[:, 1:2]).astype("float32")
    for model in (ours, twin):
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b, v in zip(ours.get_weights(), twin.get_weights(), ours.weights):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=v.path)
    np.testing.assert_allclose(ours.predict(x, verbose=0), twin.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    assert not np.allclose(_np(ours.layers[1].moving_mean), 0.0)


def test_batch_norm_keeps_float32_statistics_under_mixed_precision():
    layer = layers.BatchNormalization(dtype="mixed_float16")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float16")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in layer.weights)


# --- Dropout -----------------------------------------------------------------------------

def test_dropout_is_the_identity_at_inference():
    layer = layers.Dropout(0.5, seed=1)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_array_equal(_np(layer(x)), x)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_statistics_in_training(rate):
    n = 100_000
    y = _np(layers.Dropout(rate, seed=3)(np.ones((100, n // 100), "float32"), training=True))
    assert set(np.unique(y)) <= {0.0, np.float32(1.0) / np.float32(1 - rate)}
    keep = 1 - rate
    assert abs((y != 0).mean() - keep) < 3 * np.sqrt(keep * rate / n)
    assert abs(y.mean() - 1.0) < 3 * np.sqrt(rate / keep / n)  # inverted: E[y] = x


def test_dropout_keeps_values_scaled_by_one_over_keep_probability():
    rate = 0.3
    x = _away_from_zero((20, 30)).astype("float32")
    y = _np(layers.Dropout(rate, seed=4)(x, training=True))
    kept = y != 0
    # Within one float32 ulp: XLA (JAX) may multiply by the reciprocal instead of dividing.
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(1 - rate), rtol=1.2e-7)


def test_dropout_masks_follow_the_seed_generator():
    x = np.ones((10, 100), "float32")
    a, b = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7)
    first_a, first_b = _np(a(x, training=True)), _np(b(x, training=True))
    np.testing.assert_array_equal(first_a, first_b)  # same seed => same mask
    assert not np.array_equal(first_a, _np(a(x, training=True)))  # the generator advanced
    assert not np.array_equal(first_a, _np(layers.Dropout(0.5, seed=8)(x, training=True)))


def test_dropout_noise_shape_shares_the_mask():
    y = _np(layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=1)(
        np.ones((4, 5, 6), "float32"), training=True))
    assert np.all(y == y[:, :1, :])
    assert 0 < (y != 0).mean() < 1


def test_dropout_compared_with_keras_dropout():
    """Same statistics; same stream of uniforms, so on TF the very same masks.

    Ours keeps an element when u >= rate (DLFS: rand > ratio; TF's stateless_dropout keeps
    u >= rate too). keras.random.dropout on JAX is jax.random.bernoulli(1 - rate), which
    keeps u < 1 - rate: the mirror image, so at rate 0.5 its mask is our mask's complement.
    """
    rate = 0.5
    x = np.ones((200, 500), "float32")
    ours = _np(layers.Dropout(rate, seed=9)(x, training=True)) != 0
    theirs = _np(keras.layers.Dropout(rate, seed=9)(x, training=True)) != 0
    for mask in (ours, theirs):
        assert abs(mask.mean() - (1 - rate)) < 3 * np.sqrt(rate * (1 - rate) / x.size)
    if keras.backend.backend() == "tensorflow":
        np.testing.assert_array_equal(ours, theirs)
    elif keras.backend.backend() == "jax":
        np.testing.assert_array_equal(ours, ~theirs)


def _dropout_model():
    return keras.Sequential([
        keras.Input((5,)),
        layers.Affine(16, kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
        layers.Dropout(0.5, seed=3),
        layers.Affine(1, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
    ])


def test_dropout_under_fit_is_reproducible():
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    runs = []
    for _ in range(2):
        model = _dropout_model()
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.fit(x, x[:, :1], batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_dropout_draws_a_new_mask_at_every_fit_step():
    """With lr = 0 only the mask changes the loss: a mask frozen at trace time (an unseeded
    random op under JAX jit) would give the same loss every epoch."""
    model = _dropout_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    losses = model.fit(x, x[:, :1], batch_size=64, epochs=4, verbose=0).history["loss"]
    assert len(set(losses)) == 4, losses


def test_dropout_rejects_a_rate_outside_zero_to_one():
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError):
            layers.Dropout(rate)
    with pytest.raises(ValueError, match="`inverted` must be true or false"):
        layers.Dropout(0.5, inverted="no")


def test_book_dropout_equals_the_book_in_float64():
    """20 training calls, each against DLFS's forward with the uniforms the layer drew (the
    same seed's stream, drawn beside it), then inference. Exact up to float64 round-off; 1e-6
    relative is the bar of the other oracle tests."""
    rate = 0.2  # the book's dropout_ratio
    book = oracles.DropoutDLFS(rate)
    x = _away_from_zero((8, 30))
    with gradcheck.float64():
        layer = layers.Dropout(rate, seed=6, inverted=False, dtype="float64")
        stream = keras.random.SeedGenerator(6)
        for _ in range(20):
            u = _np(keras.random.uniform(x.shape, seed=stream, dtype="float64"))
            y = _np(layer(x, training=True))
            assert y.dtype == np.float64
            np.testing.assert_allclose(y, book.forward(x, u), rtol=1e-6, atol=0)
            assert 0 < book.mask.mean() < 1
        y = _np(layer(x, training=False))
    np.testing.assert_allclose(y, book.forward(x, train_flg=False), rtol=1e-6, atol=0)


def test_book_dropout_is_the_inverted_one_times_the_keep_probability():
    """One seed, one mask: the docstring's measured difference, a factor 1 - p everywhere."""
    rate = 0.2
    x = _away_from_zero((20, 30)).astype("float32")
    book, inverted = layers.Dropout(rate, seed=4, inverted=False), layers.Dropout(rate, seed=4)
    for training in (True, False):
        np.testing.assert_allclose(_np(book(x, training=training)),
                                   _np(inverted(x, training=training)) * np.float32(1 - rate),
                                   rtol=3e-7, atol=0)  # a float32 rounding or two apart


# --- ResidualBlock ------------------------------------------------------------------------

def test_residual_block_is_x_plus_two_affine_layers():
    block = layers.ResidualBlock(bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    y = _np(block(x))
    w1, b1 = _np(block.inner_1.kernel), _np(block.inner_1.bias)
    w2, b2 = _np(block.inner_2.kernel), _np(block.inner_2.bias)
    assert w1.shape == w2.shape == (4, 4)
    assert not np.array_equal(w1, w2)  # each kernel drew its own values
    np.testing.assert_allclose(y - x, np.maximum(x @ w1 + b1, 0) @ w2 + b2, rtol=1e-5, atol=1e-6)


def test_residual_block_with_zero_kernels_is_the_identity_and_passes_the_gradient():
    block = layers.ResidualBlock(activation="step", kernel_initializer="zeros")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(_np(block(x)), x)
    w = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    # The step blocks every gradient through F: all of dL/dx comes through the shortcut.
    _, grads = gradcheck.autodiff(block, x, w)
    np.testing.assert_array_equal(grads["inputs"], w)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "step", "elu", "swish",
                                        "tanh", "sigmoid", "softplus", "softmax"])
def test_residual_block_accepts_the_registry_activation_names(activation):
    block = layers.ResidualBlock(activation=activation)
    y = block(np.ones((2, 3), "float32"))
    assert y.shape == (2, 3)
    n_alpha = 1 if activation == "prelu" else 0
    assert len(block.trainable_weights) == 4 + n_alpha


def _relu(z):
    return np.maximum(z, 0.0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize(("activation", "act"), [("relu", _relu), ("sigmoid", _sigmoid)])
def test_preactivation_block_equals_numpy_in_float64(activation, act):
    """y = x + W2 act(W1 act(x) + b1) + b2; atol 1e-12 only for outputs that pass near 0
    (float64 round-off of these sums is ~1e-15)."""
    x = np.random.default_rng(0).normal(size=(6, 5))
    with gradcheck.float64():
        block = layers.ResidualBlock(activation, bias_initializer="random_normal",
                                     preactivation=True, dtype="float64")
        y = _np(block(x))
        w1, b1 = _np(block.inner_1.kernel), _np(block.inner_1.bias)
        w2, b2 = _np(block.inner_2.kernel), _np(block.inner_2.bias)
    assert y.dtype == np.float64
    expected = x + act(act(x) @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-12)
    post = x + act(x @ w1 + b1) @ w2 + b2  # the default form: the test tells them apart
    assert not np.allclose(expected, post, rtol=1e-3)


def _gradient_into_a_stack(preactivation, blocks=10, width=100):
    """|dL/dx| / |dL/dy| of 10 sigmoid blocks at initialisation (N(0, 1/d) kernels), the
    default form with a sigmoid after each block (the engine's shorthand), or the pre form."""
    stack = [keras.Input((width,))]
    for i in range(blocks):
        kernels = initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal", seed=i)
        stack.append(layers.ResidualBlock("sigmoid", kernel_initializer=kernels,
                                          preactivation=preactivation))
        if not preactivation:
            stack.append(layers.Sigmoid())
    rng = np.random.default_rng(0)
    x = _sigmoid(rng.normal(size=(32, width))).astype("float32")
    w = rng.normal(size=(32, width)).astype("float32")
    _, grads = gradcheck.autodiff(keras.Sequential(stack), x, w)
    return np.linalg.norm(grads["inputs"], axis=1).mean() / np.linalg.norm(w, axis=1).mean()


def test_preactivation_stack_keeps_the_gradient():
    """Measured: 1.0095 (pre) vs 3.7e-7 (sigmoid after each block): each sigmoid' <= 1/4."""
    assert 0.9 < _gradient_into_a_stack(preactivation=True) < 1.2
    assert _gradient_into_a_stack(preactivation=False) < 1e-5


@pytest.mark.parametrize("make", [
    lambda: initializers.HeNormal(seed=3),
    lambda: keras.initializers.HeNormal(seed=3),
    lambda: initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal", seed=3),
], ids=["ours", "keras", "variance_scaling"])
def test_residual_block_seeds_its_kernels_apart_and_reproducibly(make):
    def kernels(initializer):
        block = layers.ResidualBlock(kernel_initializer=initializer)
        block.build((None, 6))
        return _np(block.inner_1.kernel), _np(block.inner_2.kernel)

    w1, w2 = kernels(make())
    assert not np.array_equal(w1, w2)  # one integer seed used to give W1 == W2
    again_1, again_2 = kernels(make())
    np.testing.assert_array_equal(w1, again_1)  # the same seed gives the same block
    np.testing.assert_array_equal(w2, again_2)
    affine = layers.Affine(6, kernel_initializer=make())
    affine.build((None, 6))
    np.testing.assert_array_equal(w1, _np(affine.kernel))  # W1 is the seed's own draw
    assert not np.array_equal(kernels(keras.initializers.HeNormal(seed=4))[1], w2)


def test_residual_block_seeded_by_a_seed_generator_draws_two_kernels():
    block = layers.ResidualBlock(
        kernel_initializer=keras.initializers.HeNormal(seed=keras.random.SeedGenerator(3)))
    block.build((None, 6))
    assert not np.array_equal(_np(block.inner_1.kernel), _np(block.inner_2.kernel))


def test_residual_block_accepts_a_layer_and_rejects_unknown_names():
    block = layers.ResidualBlock(activation=layers.LeakyReLU(0.1))
    clone = layers.ResidualBlock.from_config(block.get_config())
    assert isinstance(clone.activation_layer, layers.LeakyReLU)
    assert clone.activation_layer.negative_slope == 0.1
    with pytest.raises(ValueError, match="unknown activation"):
        layers.ResidualBlock(activation="relu6")
    with pytest.raises(ValueError, match="`preactivation` must be true or false"):
        layers.ResidualBlock(preactivation="yes")


# --- serialization -------------------------------------------------------------------------

SERIALIZATION_CASES = {
    "Affine": lambda: layers.Affine(
        3, activation=activations.elu, kernel_initializer="study>HeNormal",
        kernel_regularizer=keras.regularizers.L2(1e-3), bias_constraint="non_neg"),
    "Step": layers.Step,
    "Sigmoid": layers.Sigmoid,
    "Tanh": layers.Tanh,
    "ReLU": layers.ReLU,
    "LeakyReLU": lambda: layers.LeakyReLU(negative_slope=0.1),
    "ELU": lambda: layers.ELU(alpha=0.5),
    "PReLU": lambda: layers.PReLU(alpha_initializer="ones", shared_axes=[1]),
    "Swish": layers.Swish,
    "Softplus": layers.Softplus,
    "Softmax": lambda: layers.Softmax(axis=1),
    "Dropout": lambda: layers.Dropout(0.3, noise_shape=(None, 1, 4), seed=2),
    "Dropout-book": lambda: layers.Dropout(0.3, seed=2, inverted=False),
    "BatchNormalization": lambda: layers.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-4,
                                                            center=False),
    "ResidualBlock": lambda: layers.ResidualBlock(activation="prelu"),
    "ResidualBlock-layer": lambda: layers.ResidualBlock(activation=layers.ELU(0.5)),
    "ResidualBlock-pre": lambda: layers.ResidualBlock(activation="prelu", preactivation=True),
}


def test_every_exported_layer_has_a_serialization_case():
    assert sorted(layers.__all__) == sorted(n for n in SERIALIZATION_CASES if "-" not in n)
    for name in layers.__all__:
        cls = getattr(layers, name)
        assert issubclass(cls, keras.layers.Layer)
        assert keras.saving.get_registered_name(cls) == f"study>{name}"
        lines = cls.__doc__.strip().splitlines()
        assert lines[0].endswith(".") and lines[1].strip() == "", name


@pytest.mark.parametrize("name", list(SERIALIZATION_CASES))
def test_config_round_trip_and_keras_file(name, tmp_path):
    layer = SERIALIZATION_CASES[name]()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config

    model = keras.Sequential([keras.Input((3, 4)), layer])
    _set_random_weights(layer)
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[0]) is type(layer)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(model.weights) == len(loaded.weights)
    for a, b in zip(model.weights, loaded.weights):
        assert a.path.endswith(b.path)  # the reloaded model's paths lack the "sequential/"
        np.testing.assert_array_equal(_np(a), _np(b), err_msg=a.path)
