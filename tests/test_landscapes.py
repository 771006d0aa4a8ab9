"""experiments/optimizer_landscapes.toml and what its claims measure: the path metrics on
hand-made paths with known answers, the task's stop at a blow-up (diverged uphill, escaped
downhill on the saddle), and the study file's expansion."""

import hashlib
import math
import pathlib

import numpy as np
import pytest

from study.engine.studies import expand, load_study
from study.engine.studies.identity import revisions
from study.engine.training.run import train_run
from study.engine.training.tasks import BOUND, path_metrics
from study.surfaces import SURFACES

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDY = ROOT / "experiments/optimizer_landscapes.toml"


# --- the metrics of the claims, on hand-made paths ---------------------------------------

def test_escape_step_is_the_first_update_a_unit_below_the_saddles_stationary_value():
    # f = x^2 - y^2 along the path: 2.2499, 0.99, -0.39, -1.44, -4.0: first <= -1 at update 3.
    path = np.array([[-1.5, 0.01], [-1.0, 0.1], [-0.5, 0.8], [0.0, 1.2], [0.0, 2.0]])
    m = path_metrics(path, SURFACES["saddle"])
    assert m["escape_step"] == 3
    assert m["distance"] == pytest.approx(2.0)  # from the stationary point (0, 0)
    assert m["final_value"] == pytest.approx(-4.0)
    assert m["final_gradient_norm"] == pytest.approx(4.0)  # |(2x, -2y)| at (0, 2)
    # The Euclidean norm: (3, -4) at (1.5, 2) is 5 (not 7, not 4).
    assert path_metrics(np.array([[-1.5, 0.01], [1.5, 2.0]]), SURFACES["saddle"])[
        "final_gradient_norm"] == pytest.approx(5.0)
    # Exactly -1 counts (<=); a path that stays above never escapes.
    assert path_metrics(np.array([[-1.5, 0.01], [0.0, 1.0]]),
                        SURFACES["saddle"])["escape_step"] == 1
    assert path_metrics(path[:3], SURFACES["saddle"])["escape_step"] is None


def test_no_path_escapes_where_the_centre_is_the_minimum():
    # Rosenbrock's f >= 0 = f(1, 1): escape_step is None wherever the path goes.
    path = np.array([[-1.2, 1.0], [0.0, 0.0], [1.3, 1.4]])
    m = path_metrics(path, SURFACES["rosenbrock"])
    assert m["escape_step"] is None
    assert m["distance"] == pytest.approx(0.5)  # (0.3, 0.4) from (1, 1)
    assert m["final_value"] == pytest.approx(0.09 + 100 * (1.4 - 1.69) ** 2)
    assert m["path_length"] == pytest.approx(math.hypot(1.2, 1.0) + math.hypot(1.3, 1.4))


def test_rastrigins_local_minimum_is_away_from_the_global_one_and_at_rest():
    surface = SURFACES["rastrigin"]
    # The stationary point near (1, 0): 2v + 20 pi sin(2 pi v) = 0 at v ~ 0.99496.
    v = 1.0
    for _ in range(50):  # Newton on the 1-D derivative
        v -= (2 * v + 20 * math.pi * math.sin(2 * math.pi * v)) / (
            2 + 40 * math.pi ** 2 * math.cos(2 * math.pi * v))
    m = path_metrics(np.array([[-4.5, 4.0], [v, 0.0]]), surface)
    assert v == pytest.approx(0.99496, abs=1e-5)
    assert m["final_gradient_norm"] < 1e-9
    assert m["final_value"] == pytest.approx(0.99496, abs=1e-5)  # >= 0.5: not the global one
    # At (1, 0) itself f = 1 and the gradient is (2, 0): not at rest.
    m = path_metrics(np.array([[-4.5, 4.0], [1.0, 0.0]]), surface)
    assert m["final_value"] == pytest.approx(1.0) and m["final_gradient_norm"] == pytest.approx(2.0)
    # The global minimum: f = 0, gradient 0.
    m = path_metrics(np.array([[-4.5, 4.0], [0.0, 0.0]]), surface)
    assert m["final_value"] == pytest.approx(0.0) and m["final_gradient_norm"] == 0.0


def test_the_bowls_metrics_are_as_before():
    # The metrics optimizer_paths stores (computed as they always were), on a zig-zag.
    path = np.array([[-7.0, 2.0], [-5.0, -1.0], [-3.0, 0.5], [0.5, -0.2], [0.9, 0.1]])
    m = path_metrics(path, SURFACES["anisotropic_bowl"])
    assert m["y_sign_changes"] == 4 and m["x_overshoot"] == 0.9 and m["x_halved_at_step"] == 2
    assert m["distance"] == pytest.approx(math.hypot(0.9, 0.1))
    assert m["escape_step"] is None


# --- the task: a walk stopped at a blow-up --------------------------------------------------

def _one_run(dataset, optimizer, lr, steps, start=None):
    (spec,) = expand({"name": "t", "task": "optimizer_path", "seeds": 1,
                      "data": {"dataset": dataset,
                               "start": list(start or SURFACES[dataset].start)},
                      "model": {"hidden": []},
                      "training": {"optimizer": optimizer, "learning_rate": lr,
                                   "steps": steps}}).runs
    return train_run(spec)


def test_sgd_escaping_the_saddle_is_stopped_past_the_bound_and_counts_as_escaped():
    # SGD at lr 1 on x^2 - y^2: x <- -x, y <- 3y. From y = 0.01, |y| > 1e6 first at update 17
    # (3^17 = 1.3e8); f <= -1 first at update 5 (y = 2.43, x^2 = 2.25).
    record = _one_run("saddle", "sgd", 1.0, 40)
    path = np.asarray(record.artifacts["path"])
    assert record.status == "finished", record.error
    assert record.metrics["stopped_at_step"] == 17 and len(path) == 18
    assert record.metrics["escape_step"] == 5
    assert abs(path[-1, 1]) > BOUND >= abs(path[-2, 1])
    np.testing.assert_allclose(path[:, 0], -1.5 * (-1.0) ** np.arange(18), rtol=1e-6)


def test_a_walk_that_blows_up_uphill_is_diverged_with_its_finite_path():
    # SGD at 0.1 on Rosenbrock: far above 2 / 1330; the steps grow until the walk leaves the
    # box or overflows. The stored path is the finite part, the run diverged, not failed.
    record = _one_run("rosenbrock", "sgd", 0.1, 40)
    path = np.asarray(record.artifacts["path"])
    assert record.status == "diverged", record.error
    assert np.isfinite(path).all() and len(path) >= 2
    stopped = record.metrics["stopped_at_step"]
    assert stopped is not None and stopped < 40 and len(path) in (stopped, stopped + 1)
    assert record.metrics["distance"] == pytest.approx(np.hypot(*(path[-1] - (1.0, 1.0))))


def test_a_walk_that_stays_inside_runs_every_update():
    record = _one_run("rastrigin", "sgd", 0.001, 30)
    assert record.status == "finished" and record.metrics["stopped_at_step"] is None
    assert len(record.artifacts["path"]) == 31


# --- the study file -----------------------------------------------------------------------

def test_the_study_expands_to_function_by_optimizer_by_rate_and_writes_each_start():
    full, quick = load_study(STUDY, light=True), load_study(STUDY, quick=True, light=True)
    arms = {spec.arm: spec for spec in full.runs}
    assert len(arms) == 4 * 6 * 7 and len(full.runs) == 4 * 6 * 7 * 10
    assert len(quick.runs) == 4 * 2 * 2 * 2  # 4 functions, 2 optimizers, 2 rates, 2 seeds
    rates = sorted({spec.config["training"]["learning_rate"] for spec in full.runs})
    np.testing.assert_allclose(np.log10(rates), np.arange(-3, 0.01, 0.5), atol=1e-4)
    for spec in arms.values():
        data = spec.config["data"]
        assert data["start"] == list(SURFACES[data["dataset"]].start)  # each default start
        assert spec.config["training"]["steps"] == 150
    assert {c.id for c in quick.claims} >= {"saddle-rmsprop-escapes-before-sgd"}
    assert len(full.claims) == 7


def test_the_new_functions_take_revision_3_and_optimizer_paths_keeps_its_keys():
    assert revisions({"task": "optimizer_path", "data": {"dataset": "saddle"}}) == {
        "optimizer_path": 3}
    assert revisions({"task": "optimizer_path", "data": {"dataset": "bowl"}}) == {
        "optimizer_path": 2}
    paths = load_study(ROOT / "experiments/optimizer_paths.toml", light=True)
    keys = " ".join(sorted(spec.key for spec in paths.runs))
    # pinned: the 154 keys before the walk could stop (commit f2765f5)
    assert hashlib.sha256(keys.encode()).hexdigest()[:16] == "e9d4ea55a0d0d3f1"
