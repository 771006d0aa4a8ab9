"""Packed optimizer paths (study.engine.training.packed_paths) against single walks.

The bar: a packed run's record is the one `tasks.optimizer_path` writes for its seed alone,
bit for bit (metrics, path, status, stopped_at_step): every tensor a run touches in the pack
has the shape it has in the single walk, and its ops the names they have there relative to
their scope, so TensorFlow's kernels and graph optimizer treat it alike, also for Rastrigin's
cos and for the rsqrt that the graph optimizer puts in AdaGrad's and RMSProp's `g / sqrt(h)`.
"""

import copy
import json
import math

import keras
import numpy as np
import pytest

from study.engine.execution.executors import ProcessExecutor, SerialExecutor
from study.engine.studies import expand
from study.engine.training import packed, packed_paths
from study.engine.training.run import blank_record, train_run
from study.surfaces import SURFACES


def _raw(dataset, optimizer, learning_rate, seeds, steps, jitter=0.05, **training):
    return {"name": "packed-paths", "seeds": seeds, "task": "optimizer_path",
            "data": {"dataset": dataset, "start": list(SURFACES[dataset].start),
                     "start_jitter": jitter},
            "model": {"hidden": []},
            "training": {"optimizer": optimizer, "learning_rate": learning_rate,
                         "steps": steps, **training}}


# Each case: the study file's form, and what its single walks do (checked below, so that a
# case cannot drift into one that no longer tests what it is named for).
CASES = {
    # One seed of three leaves the box (uphill: diverged, at update 12), the others walk on.
    "rosenbrock-sgd-one-seed-stops": (
        _raw("rosenbrock", "sgd", 0.0031623, [5, 6, 7], 20), [None, 12, None]),
    # Both stop, at different updates; seed 1's last point is not finite (dropped from path).
    "beale-momentum-overflows": (_raw("beale", "momentum", 0.1, [0, 1], 10), [3, 4]),
    # Four runs: the fourth's update 1 rounded differently from its single walk's until each
    # run's ops got a name scope of their own (TensorFlow's graph optimizer, which rewrites
    # Beale's sums, goes by the ops' names).
    "beale-sgd-four-runs": (_raw("beale", "sgd", 0.031623, [0, 1, 2, 3], 10), [None] * 4),
    # Escapes downhill past the box: finished, stopped at 17 (x <- -x, y <- 3y).
    "saddle-sgd-escapes": (_raw("saddle", "sgd", 1.0, [0, 1], 20, jitter=0.002), [17, 17]),
    "saddle-rmsprop": (_raw("saddle", "rmsprop", 0.031623, [0, 1, 2], 40, jitter=0.002),
                       [None] * 3),
    "rastrigin-adagrad": (_raw("rastrigin", "adagrad", 0.1, [0, 1, 2], 40), [None] * 3),
    # clipnorm clips each variable by its own norm: each run's alone, as in its single walk.
    "rosenbrock-momentum-clipnorm": (
        _raw("rosenbrock", "momentum", 0.001, [0, 1, 2], 30,
             optimizer_args={"clipnorm": 1.0}), [None] * 3),
    "rastrigin-adam-lone": (_raw("rastrigin", "adam", 0.031623, [3], 40), [None]),
    # The bowls keep their revision-2 walk: no stop rule, not even past the box.
    "anisotropic-bowl-nesterov": (
        _raw("anisotropic_bowl", "nesterov", 0.1, [0, 1, 2], 30, jitter=0.5), [None] * 3),
    "bowl-adam-schedule-clipvalue": (
        _raw("bowl", "adam", 0.3, [0, 1], 30, jitter=0.5,
             schedule={"kind": "exponential", "decay_steps": 10},
             optimizer_args={"clipvalue": 0.5}), [None] * 2),
    # SGD at 2 on x^2 + y^2: x <- -3x, past float32's range by update ~85, then NaN.
    "bowl-sgd-blows-up-without-stopping": (_raw("bowl", "sgd", 2.0, [0, 1], 90, jitter=0.5),
                                          [None] * 2),
}


def _same(a, b):
    """Equal, bit for bit where floats: NaN equals NaN (a blown-up bowl's metrics)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_packed_run_is_its_single_walk_bit_for_bit(case):
    raw, stops = CASES[case]
    specs = expand(copy.deepcopy(raw)).runs
    assert all(packed.packable(s) for s in specs)
    records = packed.train_pack(specs)
    assert len({r.wall_time for r in records}) == 1 and records[0].wall_time > 0  # one pack
    for spec, record, stop in zip(specs, records, stops):
        alone = train_run(spec)
        assert alone.status != "failed", alone.error
        assert alone.metrics.get("stopped_at_step") == stop, (case, spec.seed)
        assert (record.key, record.seed, record.status) == (alone.key, alone.seed,
                                                            alone.status), spec.seed
        assert record.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            assert _same(record.metrics[name], value), (case, spec.seed, name)
        assert record.artifacts.keys() == alone.artifacts.keys() == {"path"}
        np.testing.assert_array_equal(np.array(record.artifacts["path"]),
                                      np.array(alone.artifacts["path"]))


def test_the_cases_hold_what_they_are_named_for():
    beale, _ = CASES["beale-momentum-overflows"]
    records = packed.train_pack(expand(copy.deepcopy(beale)).runs)
    # Seed 1's walk ends on a non-finite point, which its path leaves out.
    assert [len(r.artifacts["path"]) for r in records] == [4, 4]
    assert [r.status for r in records] == ["diverged", "diverged"]
    saddle, _ = CASES["saddle-sgd-escapes"]
    assert {r.status for r in packed.train_pack(expand(copy.deepcopy(saddle)).runs)} == {
        "finished"}
    bowl, _ = CASES["bowl-sgd-blows-up-without-stopping"]
    records = packed.train_pack(expand(copy.deepcopy(bowl)).runs)
    for record in records:
        path = np.array(record.artifacts["path"])
        assert record.status == "diverged" and len(path) == 91 and not np.isfinite(path).all()
        assert "stopped_at_step" not in record.metrics


def test_the_same_pack_twice_stores_the_same_records():
    raw, _ = CASES["rosenbrock-sgd-one-seed-stops"]
    specs = expand(copy.deepcopy(raw)).runs
    first, second = (packed.train_pack(specs) for _ in range(2))
    for a, b in zip(first, second):
        assert (a.status, json.dumps(a.metrics), json.dumps(a.artifacts)) == (
            b.status, json.dumps(b.metrics), json.dumps(b.artifacts))


def test_jobs_2_stores_what_jobs_1_stores():
    raw = _raw("rastrigin", "rmsprop", 0.1, [0, 1, 2], 20)
    raw["grid"] = {"optimizer": ["rmsprop", "sgd"]}
    specs = expand(raw).runs
    one = {r.key: r for r in SerialExecutor().map(specs)}
    two = {r.key: r for r in ProcessExecutor(2).map(specs)}
    assert one.keys() == two.keys() == {s.key for s in specs}
    for key, record in one.items():
        assert record.status == "finished"
        assert (json.dumps(record.metrics), json.dumps(record.artifacts)) == (
            json.dumps(two[key].metrics), json.dumps(two[key].artifacts))


def _spec(**training):
    raw = _raw("rosenbrock", "adam", 0.01, [0], 5)
    raw["training"].update(training)
    return expand(raw).runs[0]


@pytest.mark.parametrize("training, expected", [
    ({}, True),
    ({"optimizer": "keras.adam"}, True),
    ({"optimizer": "nesterov"}, True),
    ({"optimizer_args": {"clipvalue": 1.0}}, True),  # element by element
    ({"optimizer_args": {"weight_decay": 0.01}}, True),
    ({"optimizer_args": {"clipnorm": 1.0}}, True),  # each run's own variable by its own norm
    ({"optimizer_args": {"global_clipnorm": 1.0}}, False),  # one norm over all the runs
    ({"optimizer": "keras.adafactor"}, False),  # not one of the six: walks alone
    ({"optimizer": "keras.lion"}, False),
])
def test_what_walks_in_a_pack(training, expected):
    spec = _spec(**training)
    assert packed_paths.packable(spec) is expected
    assert packed.packable(spec) is expected


def test_only_tensorflow_packs_paths(monkeypatch):
    spec = _spec()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert packed.packable(spec) is False


def test_packs_are_the_seeds_of_one_configuration_beside_xor_packs():
    raw = _raw("saddle", "sgd", 0.1, 3, 5)
    raw["grid"] = {"optimizer": ["sgd", "adam"], "learning_rate": [0.1, 1.0]}
    paths = expand(raw).runs
    xor = expand({"name": "x", "seeds": 2, "data": {"dataset": "xor"},
                  "model": {"hidden": [3]},
                  "training": {"batch_size": 4, "steps": 5, "log_every": 5}}).runs
    units = packed.packs(list(reversed(paths)) + xor)
    assert sorted(len(u) for u in units) == [2, 3, 3, 3, 3]
    for unit in units:
        assert len({s.arm for s in unit}) == 1 and len({s.study for s in unit}) == 1
        assert [s.seed for s in unit] == sorted(s.seed for s in unit)


def test_a_pack_that_fails_walks_each_run_alone(monkeypatch):
    def fails(*args):
        raise ValueError("one run's problem")

    monkeypatch.setattr(packed_paths, "walk_pack", fails)
    monkeypatch.setattr(packed_paths, "train_run",
                        lambda spec, data_dir=None: (spec.seed, data_dir))
    specs = expand(_raw("beale", "sgd", 0.01, [0, 1], 5)).runs
    assert packed.train_pack(specs, "data") == [(0, "data"), (1, "data")]


def test_walk_pack_returns_every_runs_points_from_its_own_start():
    raw, _ = CASES["saddle-sgd-escapes"]
    specs = expand(copy.deepcopy(raw)).runs
    points = packed_paths.walk_pack(specs, [blank_record(s) for s in specs])
    assert points.shape == (21, 2, 2)
    # SGD at 1 on x^2 - y^2 from its own start: x <- -x, y <- 3y, in float32.
    for index, spec in enumerate(specs):
        x0, y0 = points[0, index]
        assert (x0, y0) != tuple(points[0, 1 - index])
        np.testing.assert_allclose(points[:, index, 0], x0 * (-1.0) ** np.arange(21),
                                   rtol=1e-6)
        np.testing.assert_allclose(points[:10, index, 1], y0 * 3.0 ** np.arange(10),
                                   rtol=1e-5)


def test_global_clipnorm_would_couple_the_runs_so_they_walk_alone():
    # Walked packed anyway, each run's step is clipped by the norm of all the runs' gradients.
    raw = _raw("rosenbrock", "sgd", 0.001, [0, 1, 2], 5, optimizer_args={"global_clipnorm": 1.0})
    specs = expand(raw).runs
    assert not any(packed.packable(s) for s in specs)
    records = [blank_record(s) for s in specs]
    packed_paths.walk_pack(specs, records)
    for spec, record in zip(specs, records):
        alone = np.array(train_run(spec).artifacts["path"])
        assert not np.allclose(np.array(record.artifacts["path"]), alone, rtol=1e-3)
