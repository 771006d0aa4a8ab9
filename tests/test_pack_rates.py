"""Arms of plain SGD that differ only in their learning rate and L1/L2 factor train in one pack
(`pack_rates`): each run with its own rate and factor, storing what it stores trained alone
within float32 rounding (the tolerance of tests/test_packed_minibatch.py), its history's rate
exactly."""

import copy

import keras
import pytest

from study.engine.studies import expand
from study.engine.training import packed, packed_minibatch
from study.engine.training.run import train_run
from tests.engine_fixtures import assert_trained_alike

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="packs train on TensorFlow")

TOLERANCE = 2e-6
RATES, FACTORS = [0.1, 0.03, 0.3], [{"l2": 0.01}, {"l2": 0.001}, {"l2": 0.1}]
BASE = {
    "name": "pack_rates", "seeds": [3, 4],
    "data": {"dataset": "mnist", "n_train": 300},
    "model": {"hidden": [24, 16], "activation": "relu", "initializer": "he_normal",
              "regularizer": "l2"},
    "training": {"optimizer": "sgd", "batch_size": 64, "steps": 24, "log_every": 6,
                 "loss": "cross_entropy", "history_validation_size": 1500,
                 "evaluate_test": True},
    "zip": {"training.learning_rate": RATES, "model.regularizer_args": FACTORS},
}


def _arms(rates=RATES, factors=FACTORS, **training):
    raw = copy.deepcopy(BASE)
    raw["training"].update(training)
    raw["zip"] = {"training.learning_rate": rates, "model.regularizer_args": factors}
    return expand(raw).runs


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


@pytest.mark.parametrize("optimizer", ["sgd", "keras.sgd"])
def test_arms_differing_in_rate_and_factor_train_as_one_pack_each_run_as_alone(optimizer):
    specs = _arms(optimizer=optimizer)
    (unit,) = packed.packs(list(reversed(specs)))
    # Arm by arm in the order met (reversed here), each arm's seeds in order.
    assert [(s.run_config.training.learning_rate, s.seed) for s in unit] == [
        (0.3, 3), (0.3, 4), (0.03, 3), (0.03, 4), (0.1, 3), (0.1, 4)]
    records = packed.train_pack(unit)
    assert len({r.wall_time for r in records}) == 1  # one pack, not a fallback
    for spec, record in zip(unit, records):
        alone = train_run(spec)
        assert_trained_alike(record, alone, rel=1e-6, abs=TOLERANCE)
        assert ([row["learning_rate"] for row in record.history]
                == [row["learning_rate"] for row in alone.history])


def test_one_arm_s_pack_stores_the_same_bits_on_its_own_as_beside_other_rates():
    # Its rate on the gradients and a step at rate 1: (lr g) 1 = lr g, the update of
    # SGD(lr) exactly; a pack of the arm alone is the pack it was before arms shared packs.
    specs = _arms()
    packed_minibatch.forget()
    once = packed.train_pack(specs[:2])
    packed_minibatch.forget()
    again = packed.train_pack(specs[:2])
    for a, b in zip(once, again):
        assert a.metrics == b.metrics and _without_time(a.history) == _without_time(b.history)


@pytest.mark.parametrize("training", [
    {"optimizer": "adam"},  # the rate does not scale Adam's update alone
    {"optimizer": "momentum"},
    {"optimizer": "keras.sgd", "optimizer_args": {"momentum": 0.9}},
    {"optimizer": "sgd", "optimizer_args": {"clipvalue": 1.0}},  # clipping after the scaling
    {"optimizer": "sgd", "schedule": {"kind": "exponential", "decay_steps": 5,
                                      "decay_rate": 0.5}},  # a schedule is in the graph
])
def test_other_optimizers_train_each_arm_in_its_own_pack(training):
    assert [len(unit) for unit in packed.packs(_arms(**training))] == [2, 2, 2]


def test_arms_differing_in_more_than_rate_and_factor_keep_their_own_packs():
    specs = _arms() + expand({**copy.deepcopy(BASE), "name": "pack_rates",
                              "model": {**BASE["model"], "initializer": "glorot_uniform"}}).runs
    assert [len(unit) for unit in packed.packs(specs)] == [6, 6]


def test_many_arms_go_in_consecutive_packs_of_near_equal_size():
    rates = [0.01 * (i + 1) for i in range(14)]
    specs = _arms(rates, [{"l2": 0.001}] * 14)  # 28 runs: more than MOST_RUNS (25)
    units = packed.packs(specs)
    assert [len(unit) for unit in units] == [14, 14]
    assert [s.key for unit in units for s in unit] == [s.key for s in specs]


def test_a_kept_trainer_takes_the_next_pack_s_rates_and_factors():
    first, second = _arms(), _arms([0.05, 0.2, 0.02], [{"l2": 0.03}, {"l2": 0.0005}, {"l2": 0.2}])
    packed_minibatch.forget()
    fresh = packed.train_pack(second)
    packed_minibatch.forget()  # the kept trainer is made with the first pack's rates
    packed.train_pack(first)
    kept = packed_minibatch.kept_trainer()
    after = packed.train_pack(second)
    assert packed_minibatch.kept_trainer() is kept  # not traced again
    for a, b in zip(fresh, after):
        assert a.metrics == b.metrics
        assert _without_time(a.history) == _without_time(b.history)
