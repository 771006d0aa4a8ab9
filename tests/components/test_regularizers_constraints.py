"""study.regularizers and study.constraints: equal to Keras's built-ins and to NumPy oracles.

Runs on every backend (no TensorFlow imports).
"""

import json

import numpy as np
import pytest

import keras

from study import constraints, regularizers

EPSILON = 1e-7  # keras.config.epsilon(), checked below


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _random(shape, scale=1.0, seed=0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


# --- NumPy oracles, written from the formulas, in float64 ------------------------------------
def l1_oracle(w, l1):
    return l1 * np.sum(np.abs(np.float64(w)))


def l2_oracle(w, l2):
    return l2 * np.sum(np.float64(w) ** 2)


def max_norm_oracle(w, max_value, axis):
    w = np.float64(w)
    n = np.sqrt(np.sum(w**2, axis=tuple(np.atleast_1d(axis)), keepdims=True))
    return w * np.clip(n, 0, max_value) / (EPSILON + n)


# --- regularizers ----------------------------------------------------------------------------
# (ours, Keras's, kwargs, oracle)
REGULARIZERS = [
    (regularizers.L1, keras.regularizers.L1, {"l1": 0.03}, lambda w: l1_oracle(w, 0.03)),
    (regularizers.L2, keras.regularizers.L2, {"l2": 0.02}, lambda w: l2_oracle(w, 0.02)),
    (regularizers.ElasticNet, keras.regularizers.L1L2, {"l1": 0.03, "l2": 0.02},
     lambda w: l1_oracle(w, 0.03) + l2_oracle(w, 0.02)),
    (regularizers.ElasticNet, keras.regularizers.L1L2, {"l1": 0.0, "l2": 0.02},
     lambda w: l2_oracle(w, 0.02)),
    (regularizers.ElasticNet, keras.regularizers.L1L2, {"l1": 0.03},
     lambda w: l1_oracle(w, 0.03)),
]
REG_IDS = ["l1", "l2", "elastic_net", "elastic_net_l2_only", "elastic_net_l1_only"]
# Against the float64 oracle: a float32 sum of ~600 positive terms carries a relative error of
# about sqrt(n) * 6e-8 ~ 1.5e-6 (worst case n * 6e-8 ~ 4e-5 for a sequential sum), so 1e-5.
ORACLE_RTOL = 1e-5


def _keras_config(theirs, kwargs):
    # Keras's L1 keeps its factor as a float32 tensor, so its config reads
    # 0.009999999776482582 for 0.01; ours stores the Python float (the penalty is the same in
    # float32). Compare the configs up to that rounding.
    return {k: pytest.approx(v, rel=1e-7) for k, v in theirs(**kwargs).get_config().items()}


@pytest.mark.parametrize("ours, theirs, kwargs, oracle", REGULARIZERS, ids=REG_IDS)
def test_regularizer_matches_keras_and_oracle(ours, theirs, kwargs, oracle):
    for shape in [(30, 20), (3, 3, 4, 8)]:
        w = _random(shape, seed=len(shape))
        got = _np(ours(**kwargs)(keras.ops.convert_to_tensor(w)))
        want = _np(theirs(**kwargs)(keras.ops.convert_to_tensor(w)))
        assert got.shape == () and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=str(shape))
        np.testing.assert_allclose(got, oracle(w), rtol=ORACLE_RTOL, err_msg=str(shape))


def test_l2_has_no_one_half():
    ones = keras.ops.ones((10,))
    np.testing.assert_allclose(_np(regularizers.L2(0.01)(ones)), 0.1, rtol=1e-6)
    np.testing.assert_allclose(_np(regularizers.L1(0.01)(ones)), 0.1, rtol=1e-6)
    np.testing.assert_allclose(_np(regularizers.ElasticNet(0.01, 0.01)(2 * ones)), 0.6, rtol=1e-6)
    # The lecture notes' weight decay 0.5 * lambda * ||W||^2 is L2(lambda / 2).
    lam, w = 0.1, _random((5, 4), seed=3)
    np.testing.assert_allclose(_np(regularizers.L2(lam / 2)(keras.ops.convert_to_tensor(w))),
                               0.5 * lam * np.sum(np.float64(w) ** 2), rtol=ORACLE_RTOL)


def test_regularizer_defaults_and_none_match_keras():
    assert (regularizers.L1().get_config() == {"l1": 0.01}
            == _keras_config(keras.regularizers.L1, {}))
    assert regularizers.L2().get_config() == keras.regularizers.L2().get_config() == {"l2": 0.01}
    assert (regularizers.ElasticNet().get_config() == keras.regularizers.L1L2().get_config()
            == {"l1": 0.0, "l2": 0.0})
    assert regularizers.L1(None).l1 == 0.01 and regularizers.ElasticNet(None, None).l2 == 0.0
    assert _np(regularizers.ElasticNet()(keras.ops.ones((3,)))) == 0.0


def test_regularizers_reject_bad_factors():
    for bad in [-0.1, float("nan"), float("inf"), "0.01", [0.01], True]:
        for make, kwargs in [(regularizers.L1, {"l1": bad}), (regularizers.L2, {"l2": bad}),
                             (regularizers.ElasticNet, {"l1": bad}),
                             (regularizers.ElasticNet, {"l2": bad})]:
            with pytest.raises(ValueError, match="non-negative"):
                make(**kwargs)
                pytest.fail(f"{make.__name__} accepted {kwargs}")


def test_factors_are_stored_as_float():
    assert type(regularizers.L1(1).l1) is float
    assert type(regularizers.L2(np.float32(0.5)).l2) is float
    assert regularizers.ElasticNet(1, 2).get_config() == {"l1": 1.0, "l2": 2.0}


@pytest.mark.parametrize("ours, theirs, kwargs, oracle", REGULARIZERS, ids=REG_IDS)
def test_regularizer_config_round_trip(ours, theirs, kwargs, oracle):
    reg = ours(**kwargs)
    config = reg.get_config()
    assert config == _keras_config(theirs, kwargs)
    clone = ours.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(reg)
    assert serialized["registered_name"] == f"study>{ours.__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is ours and restored.get_config() == config
    w = keras.ops.convert_to_tensor(_random((6, 5)))
    np.testing.assert_array_equal(_np(restored(w)), _np(reg(w)))


@pytest.mark.parametrize("ours, theirs, kwargs, oracle", REGULARIZERS, ids=REG_IDS)
def test_regularizer_penalty_appears_in_dense_layer_losses(ours, theirs, kwargs, oracle):
    layer = keras.layers.Dense(5, kernel_regularizer=ours(**kwargs),
                               bias_regularizer=ours(**kwargs), bias_initializer="ones")
    layer(keras.ops.ones((2, 7)))
    assert len(layer.losses) == 2
    kernel_penalty, bias_penalty = (_np(loss) for loss in layer.losses)
    np.testing.assert_allclose(kernel_penalty, oracle(_np(layer.kernel)), rtol=ORACLE_RTOL)
    np.testing.assert_allclose(bias_penalty, oracle(np.ones(5)), rtol=ORACLE_RTOL)


# --- MaxNorm ---------------------------------------------------------------------------------
def _columns_with_norms(norms, rows=16, seed=0):
    """A (rows, len(norms)) matrix whose column j has L2 norm norms[j]."""
    w = np.random.default_rng(seed).normal(size=(rows, len(norms)))
    return (w / np.linalg.norm(w, axis=0) * np.asarray(norms)).astype("float32")


def test_keras_epsilon_is_the_one_the_oracle_uses():
    assert keras.config.epsilon() == EPSILON


@pytest.mark.parametrize("shape, axis, max_value", [
    ((20, 10), 0, 2),
    ((20, 10), 1, 1.5),
    ((3, 3, 16, 32), [0, 1, 2], 3.0),
], ids=["dense-axis0", "dense-axis1", "conv-axis012"])
def test_max_norm_matches_keras_and_oracle(shape, axis, max_value):
    # Give the vectors norms spread over [0.3 M, 1.7 M]: some are clipped, some are not.
    axes = tuple(np.atleast_1d(axis))
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    spread = np.linspace(0.3, 1.7, int(np.prod(kept))).reshape(kept)
    w = (_random(shape, seed=1) / np.sqrt(np.prod([shape[a] for a in axes]))
         * max_value * spread).astype("float32")
    norms = np.sqrt(np.sum(np.float64(w) ** 2, axis=tuple(np.atleast_1d(axis))))
    assert (norms > max_value).any() and (norms < max_value).any()

    got = _np(constraints.MaxNorm(max_value, axis)(keras.ops.convert_to_tensor(w)))
    want = _np(keras.constraints.MaxNorm(max_value, axis)(keras.ops.convert_to_tensor(w)))
    assert got.shape == w.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, max_norm_oracle(w, max_value, axis), rtol=1e-6, atol=1e-7)


def test_max_norm_clips_long_columns_and_keeps_short_ones():
    norms = np.array([0.5, 1.0, 1.9, 2.5, 4.0, 10.0])
    w = _columns_with_norms(norms)
    got = np.float64(_np(constraints.MaxNorm(2.0)(keras.ops.convert_to_tensor(w))))
    out_norms = np.linalg.norm(got, axis=0)
    long, short = norms > 2.0, norms <= 2.0
    np.testing.assert_allclose(out_norms[long], 2.0, rtol=1e-6)
    # Rescaled, not reshaped: the direction of a clipped column is kept.
    np.testing.assert_allclose(got[:, long] / out_norms[long], w[:, long] / norms[long],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, short], w[:, short], rtol=1e-6)


def test_max_norm_epsilon_changes_short_columns_slightly():
    # As in Keras: w * n / (eps + n) != w. Visible for a tiny norm, e.g. n = 1e-5 -> -1%.
    w = _columns_with_norms([1e-5], rows=4)
    got = np.float64(_np(constraints.MaxNorm(2.0)(keras.ops.convert_to_tensor(w))))
    np.testing.assert_allclose(got, w * 1e-5 / (EPSILON + 1e-5), rtol=1e-5)
    assert not np.allclose(got, w, rtol=1e-3, atol=0)


def test_max_norm_config_round_trip():
    c = constraints.MaxNorm(max_value=1.5, axis=[0, 1, 2])
    config = c.get_config()
    assert config == keras.constraints.MaxNorm(max_value=1.5, axis=[0, 1, 2]).get_config()
    assert constraints.MaxNorm().get_config() == keras.constraints.MaxNorm().get_config()
    clone = constraints.MaxNorm.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(c)
    assert serialized["registered_name"] == "study>MaxNorm"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is constraints.MaxNorm and restored.get_config() == config


def test_max_norm_rejects_bad_max_value():
    for bad in [-1.0, float("nan"), "2", None]:
        with pytest.raises(ValueError, match="max_value"):
            constraints.MaxNorm(bad)
            pytest.fail(f"accepted max_value={bad!r}")


def _one_sgd_step(constraint):
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(3, kernel_initializer="ones", kernel_constraint=constraint)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    x = _random((16, 8), seed=4)
    y = _random((16, 3), seed=5)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return np.float64(_np(model.layers[-1].kernel))


def test_max_norm_is_applied_by_the_optimizer_after_a_step():
    # Initial columns have norm sqrt(8) = 2.83 > 1; the layer itself never projects them.
    layer = keras.layers.Dense(3, kernel_initializer="ones",
                               kernel_constraint=constraints.MaxNorm(1.0))
    layer.build((None, 8))
    np.testing.assert_allclose(np.linalg.norm(_np(layer.kernel), axis=0), np.sqrt(8), rtol=1e-6)

    kernel = _one_sgd_step(constraints.MaxNorm(1.0))
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=1e-6)
    unconstrained = _one_sgd_step(None)
    assert (np.linalg.norm(unconstrained, axis=0) > 2.0).all()
    np.testing.assert_allclose(kernel, max_norm_oracle(unconstrained, 1.0, 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(kernel, _one_sgd_step(keras.constraints.MaxNorm(1.0)), rtol=1e-6)
