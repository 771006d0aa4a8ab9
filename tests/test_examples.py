"""examples/: the own optimizer and layer against NumPy oracles and Keras's built-ins, and the
study that compares them with the classics, run end to end in its quick form."""

import keras
import numpy as np
import pytest

from examples.layer_norm import LayerNormalization
from examples.lion import Lion
from tests.engine_fixtures import DATA_DIR, ROOT, run_study, runs_table, summary


def lion_oracle(w, gradients, lr, beta_1=0.9, beta_2=0.99):
    """Chen et al. (2023), Algorithm 2, in NumPy."""
    m = np.zeros_like(w)
    for g in gradients:
        c = beta_1 * m + (1 - beta_1) * g
        w = w - lr * np.sign(c)
        m = beta_2 * m + (1 - beta_2) * g
    return w


def _steps(optimizer, w0, gradients):
    variable = keras.Variable(w0)
    for g in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
    return keras.ops.convert_to_numpy(variable)


def test_lion_follows_its_paper_and_equals_keras_lion():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype("float32")
    gradients = [rng.normal(size=(5, 3)).astype("float32") for _ in range(6)]
    ours = _steps(Lion(learning_rate=0.01), w0, gradients)
    np.testing.assert_allclose(ours, lion_oracle(w0.astype("float64"), gradients, 0.01),
                               atol=1e-6)  # float32 sums of +-0.01 steps
    builtin = _steps(keras.optimizers.Lion(learning_rate=0.01), w0, gradients)
    np.testing.assert_array_equal(ours, builtin)


def test_layer_norm_follows_its_formula_and_keras():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(4, 7)).astype("float32")
    ours = keras.ops.convert_to_numpy(LayerNormalization()(x))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ours, (x - mu) / np.sqrt(var + 1e-3), atol=1e-5)
    builtin = keras.ops.convert_to_numpy(keras.layers.LayerNormalization()(x))
    np.testing.assert_allclose(ours, builtin, atol=1e-5)  # float32, two orders of operations


def test_the_own_components_study_runs_quick_end_to_end(tmp_path):
    db = tmp_path / "own.db"
    result = run_study(ROOT / "examples" / "own_components.toml", "--quick", "--db", db,
                       "--data-dir", DATA_DIR, "--jobs", 1, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)["finished"] == 12
    runs = runs_table(db)
    by_arm = {}
    for run in runs.values():
        by_arm.setdefault(run["arm"], []).append(run["metrics"]["val_accuracy"])
    lion = by_arm["optimizer=examples.lion:Lion, learning_rate=0.0001, batch_norm=False"]
    builtin = by_arm["optimizer=keras.lion, learning_rate=0.0001, batch_norm=False"]
    # The own Lion and Keras's, seed by seed: Keras's seeds train packed (one stacked model,
    # packed_minibatch), ours alone (own code is never packed), so the two agree to float32
    # rounding, grown over the steps: a few of the 10,000 validation images.
    assert lion == pytest.approx(builtin, abs=0.002)
    assert all(a > 0.5 for a in by_arm["optimizer=adam, learning_rate=0.001, batch_norm="
                                       "examples.layer_norm:LayerNormalization"])
