"""Training options of a run: learning-rate schedules, early stopping, data sets, residual nets."""

import copy

import numpy as np

from study.engine.studies import expand
from study.engine.training.run import train_run

XOR = {
    "name": "options", "seeds": 1, "data": {"dataset": "xor"},
    "model": {"hidden": [5, 4], "activation": "tanh", "initializer": "glorot_uniform"},
    "training": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 4, "steps": 40,
                 "log_every": 10, "loss": "binary_cross_entropy"},
}


def _run(**sections):
    raw = copy.deepcopy(XOR)
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    (spec,) = expand(raw).runs
    record = train_run(spec)
    assert record.status in ("finished", "diverged"), record.error
    return record


def test_exponential_schedule_decays_the_logged_learning_rate():
    record = _run(training={"schedule": {"kind": "exponential", "decay_steps": 10,
                                         "decay_rate": 0.5}})
    rates = [row["learning_rate"] for row in record.history]
    # lr(step) = 0.5 * 0.5 ** (step / 10), logged after steps 10, 20, 30, 40
    np.testing.assert_allclose(rates, [0.25, 0.125, 0.0625, 0.03125], rtol=1e-6)


def test_step_schedule_and_constant():
    steps = _run(training={"schedule": {"kind": "step", "decay_steps": 20, "decay_rate": 0.1}})
    np.testing.assert_allclose([r["learning_rate"] for r in steps.history],
                               [0.5, 0.05, 0.05, 0.005], rtol=1e-6)
    constant = _run()
    assert {r["learning_rate"] for r in constant.history} == {0.5}


def test_inverse_time_and_cosine_schedules_follow_their_formulas():
    steps = np.array([10, 20, 30, 40])
    inverse = _run(training={"schedule": {"kind": "inverse_time", "decay_steps": 15,
                                          "decay_rate": 0.5}})
    # lr(step) = lr0 / (1 + rate * step / decay_steps), continuous (no staircase)
    np.testing.assert_allclose([r["learning_rate"] for r in inverse.history],
                               0.5 / (1 + 0.5 * steps / 15), rtol=1e-6)
    cosine = _run(training={"schedule": {"kind": "cosine", "decay_steps": 30}})
    # lr(step) = lr0 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2: 0 from step 30
    expected = 0.5 * (1 + np.cos(np.pi * np.minimum(steps, 30) / 30)) / 2
    np.testing.assert_allclose([r["learning_rate"] for r in cosine.history], expected,
                               rtol=1e-6, atol=1e-7)
    assert [r["step"] for r in cosine.history] == steps.tolist()


def test_early_stopping_ends_a_run_whose_monitor_stops_improving():
    # The step activation passes no gradient to the hidden layers, so validation accuracy
    # settles at once; patience 1 stops the run after two logged epochs without improvement.
    record = _run(model={"activation": "step"},
                  training={"early_stopping": {"monitor": "val_accuracy", "patience": 1}})
    assert record.status == "finished"
    assert len(record.history) < 4
    assert record.metrics["steps"] < 40


def test_xor_cloud_with_residual_batch_norm_dropout_penalty_and_constraint():
    record = _run(data={"dataset": "xor_cloud", "cloud_points": 64},
                  model={"hidden": [8, 8, 8], "residual": True, "batch_norm": True,
                         "dropout": 0.1, "regularizer": "l2", "regularizer_args": {"l2": 1e-4},
                         "constraint": "max_norm", "constraint_args": {"max_value": 3.0}},
                  training={"batch_size": 16})
    assert record.status == "finished"
    assert record.metrics["params"] > 0 and "test_accuracy" in record.metrics


def test_keras_batch_norm_is_a_control_equal_to_ours():
    # batch_norm = "keras" swaps in keras.layers.BatchNormalization: same formula and defaults
    # (epsilon 1e-3, momentum 0.99). Keras reduces the batch moments in another order; over 40
    # SGD steps at lr 0.5 that float32 rounding grows to ~1e-4 relative, hence rtol 1e-3.
    cloud = {"dataset": "xor_cloud", "cloud_points": 64}
    ours = _run(data=cloud, model={"hidden": [8, 8], "batch_norm": True},
                training={"batch_size": 16})
    keras_bn = _run(data=cloud, model={"hidden": [8, 8], "batch_norm": "keras"},
                    training={"batch_size": 16})
    assert keras_bn.config["model"]["batch_norm"] == "keras"
    np.testing.assert_allclose([r["loss"] for r in keras_bn.history],
                               [r["loss"] for r in ours.history], rtol=1e-3)


def test_none_switches_an_optional_component_off():
    # TOML has no null: "none" is how a study file (or an axis value) says "no regularizer",
    # "no constraint", "no early stopping"; the run is the one without them.
    (spec,) = expand({**XOR, "model": {**XOR["model"], "regularizer": "none",
                                       "constraint": "none"},
                      "training": {**XOR["training"], "early_stopping": "none"}}).runs
    m, t = spec.run_config.model, spec.run_config.training
    assert (m.regularizer, m.constraint, t.early_stopping) == (None, None, None)
    off, plain = train_run(spec), _run()
    assert off.metrics == plain.metrics


def test_mnist_runs_take_up_to_100_steps_per_compiled_call():
    from study.engine.training.fit import build_member
    from study.engine.training.datasets import load_dataset

    def steps_per_call(steps, log_every):
        raw = {"name": "spe", "seeds": 1, "data": {"dataset": "mnist", "n_train": 1000},
               "model": {"hidden": [8]},
               "training": {"batch_size": 100, "steps": steps, "log_every": log_every}}
        (spec,) = expand(raw).runs
        dataset = load_dataset(spec.run_config, spec.seed)
        return build_member(spec.run_config, dataset, spec.seed).model.steps_per_execution

    assert steps_per_call(2000, 200) == 100  # the largest divisor of a history row, at most 100
    assert steps_per_call(600, 60) == 60
    assert steps_per_call(191, 191) == 1  # a prime row: one step per call, the rows stay exact
