"""A worker's kept models and data (`study.reuse`) change no number a run computes.

Each case trains seeds 3, 4, 5 of one configuration one after another, as a worker does (the
second and third reuse the first one's compiled model, restored to their own initial state),
and compares every record with the same seed trained on a fresh model in a clean worker state:
metrics, history (but the wall-clock column) and artifacts must be equal bit for bit. The cases
cover every kind of state a model or optimizer holds: dropout seed generators, batch-norm
statistics (ours and Keras's), Adam's moments and iteration count, AdaGrad's non-zero initial
accumulator, a decay schedule, early stopping's restored weights, ensemble members, gradient
norms before the first step, shifted batches, draws with replacement and early stopping on
its own split.
"""

import copy

import keras
import numpy as np
import pytest

from study.engine.training import reuse
from study.engine.training.datasets import load_dataset
from study.engine.training.fit import build_member, fit_member, reused_member
from study.engine.training.run import train_run
from study.engine.studies import expand

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the engine trains on TensorFlow")

BASE = {
    "name": "reuse", "seeds": [3, 4, 5], "data": {"dataset": "mnist", "n_train": 300},
    "model": {"hidden": [24, 16]},
    "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 50, "steps": 12,
                 "log_every": 6, "evaluate_test": True},
}

CASES = {
    "dropout + adam": {"model": {"dropout": 0.3}},
    "our batch norm + momentum": {"model": {"batch_norm": True},
                                  "training": {"optimizer": "momentum"}},
    "keras batch norm + adagrad": {"model": {"batch_norm": "keras"},
                                   "training": {"optimizer": "keras.adagrad"}},
    "schedule + l2": {"model": {"regularizer": "l2", "regularizer_args": {"l2": 0.01}},
                      "training": {"optimizer": "sgd", "learning_rate": 0.1,
                                   "schedule": {"kind": "exponential", "decay_steps": 3,
                                                "decay_rate": 0.5}}},
    "early stopping": {"training": {"steps": 30, "log_every": 3, "learning_rate": 0.05,
                                    "early_stopping": {"monitor": "val_loss", "patience": 1}}},
    "early stopping on its own split, draws with replacement": {
        "training": {"steps": 30, "log_every": 3, "learning_rate": 0.05,
                     "sampling": "with_replacement",
                     "early_stopping": {"split": 200, "patience": 1}}},
    "ensemble + augmentation": {"training": {"ensemble": 3, "augment_shift": 2}},
    "gradients, random subset, residual": {
        "data": {"subset": "random"},
        "model": {"hidden": [16, 16, 16], "residual": True, "activation": "sigmoid"},
        "training": {"record_gradients": True}},
}


def _specs(options):
    raw = copy.deepcopy(BASE)
    for section, values in options.items():
        raw[section] = {**raw.get(section, {}), **values}
    return expand(raw).runs


def _comparable(record):
    return (record.status, record.metrics, record.artifacts,
            [{k: v for k, v in row.items() if k != "time"} for row in record.history])


@pytest.mark.parametrize("case", CASES)
def test_runs_on_a_kept_model_equal_runs_on_fresh_ones(case):
    specs = _specs(CASES[case])
    fresh = []
    for spec in specs:
        reuse.clear()
        fresh.append(train_run(spec))
    reuse.clear()
    kept = [train_run(spec) for spec in specs]
    for spec, alone, after in zip(specs, fresh, kept):
        assert alone.status == "finished", alone.error
        assert _comparable(after) == _comparable(alone), f"seed {spec.seed}"


def test_the_next_seed_gets_the_kept_model_in_its_own_initial_state():
    first, second = _specs({"model": {"dropout": 0.3, "batch_norm": True}})[:2]
    reuse.clear()
    config = first.run_config
    dataset = load_dataset(config, first.seed)
    model = reused_member(config, dataset, first.seed)
    fit_member(model, config, dataset, first.seed)
    again = reused_member(config, dataset, second.seed)
    assert again is model  # the traced functions are kept
    expected = build_member(config, dataset, second.seed)
    expected.optimizer.build(expected.model.trainable_variables)
    for got, want in zip(again.model.variables + again.optimizer.variables,
                         expected.model.variables + expected.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got),
                                      keras.ops.convert_to_numpy(want), err_msg=got.path)
    assert int(keras.ops.convert_to_numpy(again.optimizer.iterations)) == 0


def test_a_different_configuration_builds_its_own_model_and_datasets_are_shared():
    a, b = _specs({}), _specs({"model": {"hidden": [24, 8]}})
    reuse.clear()
    dataset = load_dataset(a[0].run_config, a[0].seed)
    first = reused_member(a[0].run_config, dataset, 3)
    first.model.fit(dataset.train.x[:50], dataset.train.y[:50], verbose=0)  # builds its optimizer
    other = reused_member(b[0].run_config, dataset, 3)
    assert other is not first
    assert load_dataset(a[1].run_config, a[1].seed) is dataset  # same data, other seed
    with pytest.raises(ValueError):  # shared arrays are read-only: no run can change another's
        dataset.train.x[0, 0] = 1.0


def test_the_engines_pipelines_are_not_autotuned():
    """tf.data's autotuning thread made the end of every fit with validation wait ~1.2 s when
    both cores were busy (`study.engine.training.tf_data`); the engine's training batches and
    its kept evaluation batches switch it off. The numbers are the same either way (the tests
    above compare records bit for bit with fresh runs; the full studies' databases were compared
    run by run)."""
    from study.engine.training.batches import training_batches

    x = np.arange(40, dtype="float32").reshape(10, 4)
    y = np.arange(10)
    pipelines = {"training": training_batches(x, y, 4, 6, seed=0),
                 "with replacement": training_batches(x, y, 4, 6, seed=0,
                                                      sampling="with_replacement"),
                 "shifted": training_batches(np.zeros((10, 784), "float32"), y, 4, 6, seed=0,
                                             augment_shift=1),
                 "evaluation": reuse.evaluation_batches(x, y, 8, 4)}
    for name, dataset in pipelines.items():
        assert dataset.options().autotune.enabled is False, name
