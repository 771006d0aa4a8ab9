"""The 2-D functions of optimizer paths (study.surfaces): gradients, minima,
the Keras and NumPy values agreeing, and a short path on each new function."""

import typing

import keras
import numpy as np
import pytest

from study.engine.studies import expand
from study.engine.studies.run_schema import Data
from study.engine.training.run import train_run
from study.surfaces import SURFACES

NAMES = list(SURFACES)
NEW = ["rosenbrock", "saddle", "beale", "rastrigin"]


def points(surface, n=8):
    """The start, the minimum's neighbourhood and seeded points across the plotting window."""
    rng = np.random.default_rng(17)
    spread = rng.uniform([surface.x_range[0], surface.y_range[0]],
                         [surface.x_range[1], surface.y_range[1]], (n, 2))
    cx, cy = surface.centre
    near = [(cx + 0.3, cy - 0.2), (cx - 0.05, cy + 0.1)]
    return np.vstack([surface.start, near, spread])


@pytest.mark.parametrize("name", NAMES)
def test_the_gradient_matches_central_finite_differences(name):
    # Central differences in float64 with h = 1e-5: truncation error h²/6·|f'''| (below 1e-7
    # even for Rastrigin, |f'''| <= 20π(2π)² ≈ 2.5e3) plus rounding ε|f|/h ≈ 2e-11·|f| (about
    # 1e-6 at Beale's largest values in its window, |f| ~ 1e5, where the gradient is ~1e5).
    # So rtol = 1e-6 with atol = 1e-5 passes every correct gradient with a wide margin and
    # fails any wrong coefficient, which moves the gradient by O(1) or more.
    surface, h = SURFACES[name], 1e-5
    for x, y in points(surface):
        dx = (surface.value(x + h, y) - surface.value(x - h, y)) / (2 * h)
        dy = (surface.value(x, y + h) - surface.value(x, y - h)) / (2 * h)
        np.testing.assert_allclose(surface.gradient(x, y), (dx, dy), rtol=1e-6, atol=1e-5,
                                   err_msg=f"{name} at ({x}, {y})")


@pytest.mark.parametrize("name", NAMES)
def test_the_keras_value_is_the_numpy_value_in_float32(name):
    # Keras computes in float32 (ε ≈ 1.2e-7): a few operations lose ~1e-6 of the largest
    # term, and Rastrigin's cos(2πv) with 2πv up to 32 loses ~32ε in its argument, 10·32ε ≈
    # 4e-5 in f. Hence rtol 2e-5, atol 1e-4; NumPy gets the float32-rounded points, so only
    # the arithmetic differs.
    surface = SURFACES[name]
    xy = points(surface, n=50).astype("float32")
    in_keras = keras.ops.convert_to_numpy(
        surface.value(keras.ops.convert_to_tensor(xy[:, 0]),
                      keras.ops.convert_to_tensor(xy[:, 1]), keras.ops))
    in_numpy = surface.value(xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64))
    np.testing.assert_allclose(in_keras, in_numpy, rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in NAMES if SURFACES[n].minimum is not None])
def test_the_minimum_is_zero_flat_and_lower_than_around_it(name):
    surface = SURFACES[name]
    x, y = surface.minimum
    assert surface.value(x, y) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(surface.gradient(x, y), (0.0, 0.0), atol=1e-12)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    around = surface.value(x + 1e-3 * np.cos(angles), y + 1e-3 * np.sin(angles))
    assert (around > 0).all()


def test_the_saddle_has_no_minimum_and_is_flat_at_its_centre():
    saddle = SURFACES["saddle"]
    assert saddle.minimum is None and saddle.centre == (0.0, 0.0)
    np.testing.assert_allclose(saddle.gradient(0.0, 0.0), (0.0, 0.0))
    # Up along x, down along y: a saddle, not an extremum.
    assert saddle.value(0.1, 0.0) > 0 > saddle.value(0.0, 0.1)


def test_every_function_is_a_dataset_of_the_run_schema_and_starts_in_its_window():
    allowed = typing.get_args(Data.model_fields["dataset"].annotation)
    for surface in SURFACES.values():
        assert surface.name in allowed
        assert surface.x_range[0] < surface.start[0] < surface.x_range[1]
        assert surface.y_range[0] < surface.start[1] < surface.y_range[1]
        assert surface.source


@pytest.mark.parametrize("name", NEW)
def test_a_short_optimizer_path_on_each_new_function(name):
    surface, lr, steps = SURFACES[name], 1e-3, 5
    (spec,) = expand({"name": "paths", "task": "optimizer_path", "seeds": 1,
                      "data": {"dataset": name, "start": list(surface.start)},
                      "model": {"hidden": []},
                      "training": {"optimizer": "sgd", "learning_rate": lr,
                                   "steps": steps}}).runs
    record = train_run(spec)
    assert record.status == "finished", record.error
    path = np.asarray(record.artifacts["path"])
    assert path.shape == (steps + 1, 2)
    start = np.asarray(surface.start, dtype="float32")
    np.testing.assert_array_equal(path[0], start)
    # SGD's first step is -lr·∇f: Keras's autodiff of the keras.ops value agrees with the
    # analytic gradient (float32 tolerance).
    np.testing.assert_allclose(path[1], start - lr * np.asarray(surface.gradient(*start)),
                               rtol=1e-5, atol=1e-6)
    final, m = path[-1], record.metrics
    assert m["distance"] == pytest.approx(np.hypot(*(final - surface.centre)))
    assert m["final_value"] == pytest.approx(surface.value(*final))
    assert m["steps"] == steps and m["path_length"] > 0
