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
import json

import keras
import numpy as np
import pytest

from study.engine.training import reuse
from study.engine.training import run as run_module
from study.engine.training.datasets import load_dataset
from study.engine.training.fit import build_member, fit_member, reused_member
from study.engine.training.graph_key import VariableFactors
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


def _trained_alone(specs, monkeypatch):
    """Each run on a model built for it alone: no kept model, no factor held in a variable."""
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "reused_member", build_member)
        records = []
        for spec in specs:
            reuse.clear()
            records.append(train_run(spec))
    reuse.clear()
    return records


@pytest.mark.parametrize("case", CASES)
def test_runs_on_a_kept_model_equal_runs_on_fresh_ones(case, monkeypatch):
    specs = _specs(CASES[case])
    fresh = _trained_alone(specs, monkeypatch)
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


# Runs that differ only in values a kept model takes from the run's fresh build (`graph_key`):
# initializer, constant learning rate, L1 / L2 factor. One after another they share one traced
# model; each must equal the same run on a model of its own.
ONE_GRAPH = [  # (initializer settings, penalty factor, learning rate)
    ({"initializer": "he_normal"}, 1e-4, 0.05),
    ({"initializer": "glorot_uniform"}, 3e-2, 0.01),
    ({"initializer": "random_normal", "initializer_args": {"stddev": 0.1}}, 0.0, 0.002)]


@pytest.mark.parametrize("regularizer", ["l2", "keras.l2", "l1", "keras.l1"])
def test_runs_of_one_graph_share_a_kept_model_and_equal_runs_alone(regularizer, monkeypatch):
    factor = regularizer.removeprefix("keras.")
    specs = []
    for initializer, value, learning_rate in ONE_GRAPH:
        model = {**initializer, "regularizer": regularizer, "regularizer_args": {factor: value}}
        specs += _specs({"model": model, "training": {"optimizer": "momentum",
                                                      "learning_rate": learning_rate}})[:1]
    alone = _trained_alone(specs, monkeypatch)
    kept = [train_run(spec) for spec in specs]
    for spec, one, after in zip(specs, alone, kept):
        assert one.status == "finished", one.error
        assert _comparable(after) == _comparable(one), spec.arm
    assert len({json.dumps(record.metrics, sort_keys=True) for record in alone}) == 3

    # ... and it was one model: the last run's, with its factor held in variables
    config = specs[0].run_config
    dataset = load_dataset(config, specs[0].seed)
    model = reused_member(config, dataset, specs[0].seed)
    assert model is reused_member(specs[1].run_config, dataset, specs[1].seed)
    held = [v.regularizer for v in model.model.variables
            if isinstance(getattr(v, "regularizer", None), VariableFactors)]
    assert held and all(float(h.factors[factor].numpy()) == pytest.approx(3e-2) for h in held)


def test_a_run_on_a_kept_model_empties_no_tensorflow_cache(monkeypatch):
    """Emptying TensorFlow's kernel cache (what `clear_session` and `tf.random.set_seed` do)
    makes the next call of the kept model's traced functions instantiate and optimise them
    again, ~0.2 s a run: a run that traced nothing new must not do it (`memory`,
    `fit.seed_member`). The first run of a configuration, which traces, still clears."""
    from tensorflow.python.eager import context

    emptied = []
    for method in ("clear_kernel_cache", "_set_global_seed"):
        original = getattr(context.Context, method)

        def recording(self, *args, _original=original, _name=method):
            emptied.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(context.Context, method, recording)
    first, second = _specs({"model": {"dropout": 0.2}})[:2]
    reuse.clear()
    emptied.clear()
    assert train_run(first).status == "finished"
    assert "clear_kernel_cache" in emptied  # a new trace: the session is cleared after it
    emptied.clear()
    assert train_run(second).status == "finished"
    assert emptied == []
