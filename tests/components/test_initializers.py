"""study.initializers: bit-identical to Keras's built-ins, statistics match the formulas.

Runs on every backend (no TensorFlow imports): values are compared on the same backend only,
since random streams differ between backends.
"""

import json
import math

import numpy as np
import pytest

import keras

from study import initializers as ini

DENSE = (30, 20)
CONV = (3, 3, 16, 32)
SEED = 1337

# One table: (id, our factory, Keras's factory, kwargs, works on a conv shape).
# kwargs are non-default where the class has arguments, so a swapped or ignored argument shows.
TABLE = [
    ("zeros", ini.Zeros, keras.initializers.Zeros, {}, True),
    ("ones", ini.Ones, keras.initializers.Ones, {}, True),
    ("constant", ini.Constant, keras.initializers.Constant, {"value": 0.37}, True),
    ("identity", ini.Identity, keras.initializers.Identity, {"gain": 0.5}, False),
    ("orthogonal", ini.Orthogonal, keras.initializers.Orthogonal,
     {"gain": 1.3, "seed": SEED}, True),
    ("random_uniform", ini.RandomUniform, keras.initializers.RandomUniform,
     {"minval": -0.1, "maxval": 0.3, "seed": SEED}, True),
    ("random_normal", ini.RandomNormal, keras.initializers.RandomNormal,
     {"mean": 0.1, "stddev": 0.3, "seed": SEED}, True),
    ("truncated_normal", ini.TruncatedNormal, keras.initializers.TruncatedNormal,
     {"mean": 0.1, "stddev": 0.3, "seed": SEED}, True),
    ("lecun_uniform", ini.LecunUniform, keras.initializers.LecunUniform, {"seed": SEED}, True),
    ("lecun_normal", ini.LecunNormal, keras.initializers.LecunNormal, {"seed": SEED}, True),
    ("glorot_uniform", ini.GlorotUniform, keras.initializers.GlorotUniform, {"seed": SEED}, True),
    ("glorot_normal", ini.GlorotNormal, keras.initializers.GlorotNormal, {"seed": SEED}, True),
    ("he_uniform", ini.HeUniform, keras.initializers.HeUniform, {"seed": SEED}, True),
    ("he_normal", ini.HeNormal, keras.initializers.HeNormal, {"seed": SEED}, True),
] + [
    (f"variance_scaling_{mode}_{dist}", ini.VarianceScaling, keras.initializers.VarianceScaling,
     {"scale": 1.7, "mode": mode, "distribution": dist, "seed": SEED}, True)
    for mode in ("fan_in", "fan_out", "fan_avg")
    for dist in ("truncated_normal", "untruncated_normal", "uniform")
]
IDS = [row[0] for row in TABLE]


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name, ours, theirs, kwargs, conv", TABLE, ids=IDS)
def test_matches_keras_builtin(name, ours, theirs, kwargs, conv):
    """Bit-identical values (same int seed, same backend) and the same config and defaults."""
    shapes = [DENSE, CONV] if conv else [DENSE, (20, 30)]
    for shape in shapes:
        want = _np(theirs(**kwargs)(shape))
        got = _np(ours(**kwargs)(shape))
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=f"{name} {shape}")
    if ours is ini.Identity:
        # Keras's Identity has no get_config (its config is {}: `gain` is lost on saving);
        # ours keeps it.
        assert theirs(**kwargs).get_config() == {}
        assert ours(**kwargs).get_config() == {"gain": kwargs["gain"]}
        return
    assert ours(**kwargs).get_config() == theirs(**kwargs).get_config()
    # Unseeded: both configs hold seed=None, so this compares every default.
    assert ours().get_config() == theirs().get_config()


def test_float16_identical_to_keras_builtin():
    rows = {row[0]: row[1:4] for row in TABLE}
    # Not Orthogonal: JAX has no float16 QR on CPU (Keras's own Orthogonal fails there too).
    for name in ["lecun_uniform", "glorot_normal", "he_normal", "random_uniform"]:
        ours, theirs, kwargs = rows[name]
        want = _np(theirs(**kwargs)(DENSE, dtype="float16"))
        got = _np(ours(**kwargs)(DENSE, dtype="float16"))
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_compute_fans():
    assert ini.compute_fans(()) == (1, 1)
    assert ini.compute_fans((5,)) == (5, 5)
    assert ini.compute_fans((4, 6)) == (4, 6)
    assert ini.compute_fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32) == (144, 288)
    assert ini.compute_fans((5, 16, 32)) == (80, 160)  # Conv1D
    # Explicit axes override the rule (only when both are given, as in Keras).
    assert ini.compute_fans((4, 5, 6), input_axes=[0], output_axes=[1, 2]) == (4, 30)
    assert ini.compute_fans((4, 5, 6), input_axes=[0]) == (20, 24)


# --- statistics ------------------------------------------------------------------------------
# 1e6 draws, but not a square: with fan_in != fan_out != fan_avg a wrong mode shows in the std.
STATS_SHAPE = (2000, 500)
FAN_IN, FAN_OUT = STATS_SHAPE
FAN_AVG = (FAN_IN + FAN_OUT) / 2
# Relative tolerance of a sample std: its standard error from n = 1e6 draws is
# sqrt((kurtosis - 1) / (4 n)) ~ 0.07% for a normal (less for uniform / truncated), so 1% is
# > 10 standard errors (never flaky under another seed) yet far below every formula mistake
# it has to catch (truncation factor 0.88 = 12%, fan_in vs fan_avg here = 26%).
STD_RTOL = 0.01

UNIFORM = [  # (factory, kwargs, limit from the closed form in the docstring)
    (ini.RandomUniform, {"minval": -0.2, "maxval": 0.2}, 0.2),
    (ini.LecunUniform, {}, math.sqrt(3 / FAN_IN)),
    (ini.GlorotUniform, {}, math.sqrt(6 / (FAN_IN + FAN_OUT))),
    (ini.HeUniform, {}, math.sqrt(6 / FAN_IN)),
    (ini.VarianceScaling, {"scale": 3.0, "mode": "fan_out", "distribution": "uniform"},
     math.sqrt(9 / FAN_OUT)),
]
TRUNCATED = [  # (factory, kwargs, raw stddev before truncation, expected sample std)
    (ini.TruncatedNormal, {"stddev": 0.2}, 0.2, 0.87962566103423978 * 0.2),
    (ini.LecunNormal, {}, math.sqrt(1 / FAN_IN) / 0.87962566103423978, math.sqrt(1 / FAN_IN)),
    (ini.GlorotNormal, {}, math.sqrt(1 / FAN_AVG) / 0.87962566103423978,
     math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (ini.HeNormal, {}, math.sqrt(2 / FAN_IN) / 0.87962566103423978, math.sqrt(2 / FAN_IN)),
    (ini.VarianceScaling, {"scale": 0.5, "mode": "fan_out", "distribution": "normal"},
     math.sqrt(0.5 / FAN_OUT) / 0.87962566103423978, math.sqrt(0.5 / FAN_OUT)),
]
UNTRUNCATED = [  # (factory, kwargs, std)
    (ini.RandomNormal, {"stddev": 0.2}, 0.2),
    # DLFS "Xavier" (randn / sqrt(n_in)) and DLFS "He" (randn * sqrt(2 / n_in)).
    (ini.VarianceScaling, {"scale": 1.0, "mode": "fan_in", "distribution": "untruncated_normal"},
     math.sqrt(1 / FAN_IN)),
    (ini.VarianceScaling, {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"},
     math.sqrt(2 / FAN_IN)),
    (ini.VarianceScaling, {"scale": 1.0, "mode": "fan_avg", "distribution": "untruncated_normal"},
     math.sqrt(1 / FAN_AVG)),
]


def _draw(factory, kwargs):
    return _np(factory(seed=7, **kwargs)(STATS_SHAPE)).astype(np.float64)


@pytest.mark.parametrize("factory, kwargs, limit", UNIFORM,
                         ids=[f"{f.__name__}-{k.get('mode', '')}" for f, k, _ in UNIFORM])
def test_uniform_statistics(factory, kwargs, limit):
    w = _draw(factory, kwargs)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit  # 1e6 draws come within 1e-6 * limit of the edge
    np.testing.assert_allclose(w.std(), limit / math.sqrt(3), rtol=STD_RTOL)
    assert abs(w.mean()) < 0.01 * limit  # 0.01 * limit = 17 standard errors of the mean


@pytest.mark.parametrize("factory, kwargs, raw, std", TRUNCATED,
                         ids=[f"{f.__name__}-{k.get('mode', '')}" for f, k, _, _ in TRUNCATED])
def test_truncated_normal_statistics(factory, kwargs, raw, std):
    w = _draw(factory, kwargs)
    # float32 rounding of mean + stddev * z may land a hair past 2 * stddev computed in float64.
    assert np.abs(w).max() <= 2 * raw * (1 + 1e-6)
    assert np.abs(w).max() > 1.99 * raw  # truncated at 2 raw stddev, not earlier
    np.testing.assert_allclose(w.std(), std, rtol=STD_RTOL)
    assert abs(w.mean()) < 0.01 * std


@pytest.mark.parametrize("factory, kwargs, std", UNTRUNCATED,
                         ids=[f"{f.__name__}-{k.get('scale', '')}-{k.get('mode', '')}"
                              for f, k, _ in UNTRUNCATED])
def test_untruncated_normal_statistics(factory, kwargs, std):
    w = _draw(factory, kwargs)
    np.testing.assert_allclose(w.std(), std, rtol=STD_RTOL)
    assert abs(w.mean()) < 0.01 * std
    # Really untruncated: P(|z| > 4) = 6.3e-5 gives ~63 such values in 1e6; a truncated
    # normal has none beyond 2.27 std.
    assert np.abs(w).max() > 4 * std
    np.testing.assert_allclose(np.mean(np.abs(w) > 2 * std), 0.0455, rtol=0.05)


def test_variance_scaling_normal_is_an_alias_of_truncated_normal():
    a = ini.VarianceScaling(distribution="NORMAL", seed=3)
    assert a.distribution == "truncated_normal"
    b = ini.VarianceScaling(distribution="truncated_normal", seed=3)
    np.testing.assert_array_equal(_np(a(DENSE)), _np(b(DENSE)))


# --- orthogonal and identity -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(64, 64), (80, 30), CONV], ids=["square", "tall", "conv"])
def test_orthogonal_has_orthonormal_columns(shape):
    q = _np(ini.Orthogonal(seed=5)(shape)).reshape(-1, shape[-1]).astype(np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(shape[-1]), atol=1e-5)


def test_orthogonal_wide_has_orthonormal_rows():
    q = _np(ini.Orthogonal(seed=5)((30, 80))).astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(30), atol=1e-5)


def test_orthogonal_gain_scales_it():
    q1 = _np(ini.Orthogonal(seed=5)((40, 40))).astype(np.float64)
    q3 = _np(ini.Orthogonal(gain=2.5, seed=5)((40, 40))).astype(np.float64)
    np.testing.assert_allclose(q3, 2.5 * q1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(q3.T @ q3, 2.5**2 * np.eye(40), atol=1e-4)


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3)])
def test_identity_is_gain_times_eye(shape):
    np.testing.assert_array_equal(_np(ini.Identity()(shape)), np.eye(*shape, dtype="float32"))
    np.testing.assert_array_equal(_np(ini.Identity(gain=-1.5)(shape)),
                                  -1.5 * np.eye(*shape, dtype="float32"))


def test_constants():
    np.testing.assert_array_equal(_np(ini.Zeros()(CONV)), np.zeros(CONV, "float32"))
    np.testing.assert_array_equal(_np(ini.Ones()((7,))), np.ones(7, "float32"))
    np.testing.assert_array_equal(_np(ini.Constant(2.5)(DENSE)), np.full(DENSE, 2.5, "float32"))
    assert _np(ini.Zeros()((2,), dtype="int32")).dtype == np.int32


# --- serialization ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, ours, theirs, kwargs, conv", TABLE, ids=IDS)
def test_config_round_trip_gives_identical_values(name, ours, theirs, kwargs, conv):
    init = ours(**kwargs)
    config = init.get_config()
    json.dumps(config)
    clone = type(init).from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(_np(clone(DENSE)), _np(init(DENSE)))

    serialized = keras.saving.serialize_keras_object(init)
    assert serialized["registered_name"] == f"study>{type(init).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(init)
    np.testing.assert_array_equal(_np(restored(DENSE)), _np(init(DENSE)))


def test_registered_string_names():
    init = keras.initializers.get("study>HeNormal")
    assert isinstance(init, ini.HeNormal)
    layer = keras.layers.Dense(4, kernel_initializer="study>GlorotUniform")
    layer.build((None, 3))
    assert layer.kernel.shape == (3, 4)
    for name in IDS[:14]:
        cls = {row[0]: row[1] for row in TABLE}[name]
        assert keras.saving.get_registered_name(cls) == f"study>{cls.__name__}"
        assert keras.saving.get_registered_object(f"study>{cls.__name__}") is cls


def test_seed_generator_seed_serializes():
    init = ini.RandomNormal(seed=keras.random.SeedGenerator(11))
    config = json.loads(json.dumps(init.get_config()))
    clone = ini.RandomNormal.from_config(config)
    assert isinstance(clone.seed, keras.random.SeedGenerator)


# --- seed semantics (same as Keras's RandomInitializer) --------------------------------------
def test_int_seed_gives_the_same_values_on_every_call():
    init = ini.GlorotUniform(seed=42)
    np.testing.assert_array_equal(_np(init(DENSE)), _np(init(DENSE)))


def test_seed_generator_gives_new_values_on_every_call():
    init = ini.GlorotUniform(seed=keras.random.SeedGenerator(42))
    assert not np.array_equal(_np(init(DENSE)), _np(init(DENSE)))


def test_unseeded_is_reproducible_after_set_random_seed_and_matches_keras():
    keras.utils.set_random_seed(99)
    first = _np(ini.HeNormal()(DENSE))
    keras.utils.set_random_seed(99)
    again = _np(ini.HeNormal()(DENSE))
    keras.utils.set_random_seed(99)
    builtin = _np(keras.initializers.HeNormal()(DENSE))
    np.testing.assert_array_equal(first, again)
    # Both draw the default seed from Python's `random`, so they agree exactly.
    np.testing.assert_array_equal(first, builtin)
    keras.utils.set_random_seed(100)
    assert not np.array_equal(first, _np(ini.HeNormal()(DENSE)))


def test_unseeded_instance_repeats_itself_but_its_clone_does_not():
    # Keras's (silent) behaviour: one unseeded instance shared by two layers gives both the
    # same kernel; a clone from the config (seed=None) draws a fresh seed.
    init = ini.HeUniform()
    np.testing.assert_array_equal(_np(init(DENSE)), _np(init(DENSE)))
    assert init.get_config()["seed"] is None
    assert not np.array_equal(_np(init.clone()(DENSE)), _np(init(DENSE)))


# --- bad arguments ---------------------------------------------------------------------------
def test_variance_scaling_rejects_bad_arguments():
    for kwargs in [
        {"mode": "fan_everything"},
        {"distribution": "cauchy"},
        {"distribution": None},
        {"scale": 0.0},
        {"scale": -1.0},
        {"scale": float("nan")},
        {"scale": "2"},
        {"seed": "abc"},
        {"seed": 1.5},
    ]:
        with pytest.raises(ValueError):
            ini.VarianceScaling(**kwargs)
            pytest.fail(f"accepted {kwargs}")


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="rank"):
        ini.Orthogonal(seed=1)((5,))
    with pytest.raises(ValueError, match="2-D"):
        ini.Identity()((2, 3, 4))
    with pytest.raises(ValueError, match="seed"):
        ini.HeNormal(seed="abc")


def test_docstrings_start_with_a_one_line_summary():
    for name in ini.__all__:
        doc = getattr(ini, name).__doc__
        assert doc and doc.strip().splitlines()[0].strip(), name
        lines = doc.strip().splitlines()
        assert len(lines) == 1 or not lines[1].strip(), f"{name}: summary must be one line"
