"""Packed mini-batch MNIST runs (`packed_minibatch`) against the same runs trained alone.

The bar (issue 18): a packed run's record equals `train_run`'s within float32 rounding, and is
bit for bit the same for the same configuration and seed list, on a new trainer or a kept one. The only expected difference from a
run alone is the order of float32 sums: the epoch's mean loss is a sum of steps weighted by
their batch sizes and an evaluation a sum of batches, accumulated here in the compiled loop and
there by Keras's metrics, and vectorised kernels that round an element by its place in a
buffer. Over the few dozen steps of these cases the
largest difference seen was 4e-7; the tolerance is 2e-6.
"""

import copy
import dataclasses
import time

import keras
import numpy as np
import pytest

from study.engine.studies import expand
from study.engine.training import graph_key, packed, packed_minibatch, stacked_norm
from study.engine.training.run import blank_record, train_run
from tests.engine_fixtures import assert_trained_alike

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="packs train on TensorFlow")

TOLERANCE = 2e-6
BASE = {
    "name": "packed_minibatch", "seeds": [3, 4, 5],
    "data": {"dataset": "mnist", "n_train": 300},
    "model": {"hidden": [24, 16], "activation": "relu", "initializer": "he_normal"},
    "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 64, "steps": 24,
                 "log_every": 6, "loss": "cross_entropy", "history_validation_size": 1500,
                 "evaluate_test": True},
}

BOOK_BN = {"momentum": 0.9, "epsilon": 1e-6, "moving_variance_initializer": "zeros"}

# Each case changes what a packed step computes: the loss and its accuracy rule, the batch
# plan (uneven last batch of a pass, draws with replacement, shifted images), the penalty, the
# optimizer's state and schedule, PReLU's per-run slopes, the history's rhythm, batch norm.
CASES = {
    "adam, cross-entropy, uneven batches": {},
    "sgd, with replacement, l2": {
        "model": {"regularizer": "l2", "regularizer_args": {"l2": 0.01}},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "sampling": "with_replacement"}},
    "momentum, mse, keras l1, schedule": {
        "model": {"regularizer": "keras.l1", "regularizer_args": {"l1": 0.001},
                  "activation": "tanh", "initializer": "variance_scaling"},
        "training": {"optimizer": "momentum", "loss": "mse", "learning_rate": 0.1,
                     "schedule": {"kind": "exponential", "decay_steps": 5, "decay_rate": 0.5}}},
    "rmsprop, parity, binary cross-entropy, prelu": {
        "data": {"target": "parity"},
        "model": {"activation": "prelu", "use_bias": False},
        "training": {"optimizer": "rmsprop", "learning_rate": 0.001,
                     "loss": "binary_cross_entropy"}},
    "adagrad, shifted images, epochs": {
        "training": {"optimizer": "adagrad", "augment_shift": 2, "steps": None,
                     "log_every": None, "epochs": 3, "history_validation_size": None}},
    "gradient norms, deeper sigmoid, shifted images": {
        "model": {"hidden": [16, 16, 16, 16], "activation": "sigmoid",
                  "regularizer": "l2", "regularizer_args": {"l2": 0.01}},
        "training": {"record_gradients": True, "augment_shift": 1,
                     "sampling": "with_replacement"}},
    "elastic net, sigmoid, sgd": {
        "model": {"regularizer": "elastic_net", "regularizer_args": {"l1": 1e-4, "l2": 1e-3},
                  "activation": "sigmoid"},
        "training": {"optimizer": "sgd", "learning_rate": 0.5, "evaluate_test": False}},
    # Residual blocks: W1 and W2 drawn as ResidualBlock draws them, a block's gradient norm
    # over both kernels, the penalty on both; the pre-activation form with PReLU applies one
    # layer's slopes at both places, as the block does. Its rate is 0.03: at 0.1 one seed's
    # float32 rounding grows to 1e-5 in the loss by step 24 (in float64 the two agree to 1e-9,
    # below), a case of chaotic drift, not of other arithmetic.
    "residual, gradient norms, l2, sigmoid": {
        "model": {"hidden": [16, 16, 16], "residual": True, "activation": "sigmoid",
                  "initializer": "variance_scaling", "regularizer": "l2",
                  "regularizer_args": {"l2": 0.01}},
        "training": {"record_gradients": True}},
    "residual, batch norm, sgd": {
        "model": {"hidden": [16, 16, 16], "residual": True, "batch_norm": True},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "record_gradients": True}},
    # Dropout: each run's masks from its own seed generator, one draw per step (none in the
    # gradient norms' probe or the evaluations); the book's non-inverted form scales at
    # inference instead.
    "dropout, adam, gradient norms": {
        "model": {"dropout": 0.3}, "training": {"record_gradients": True}},
    "dropout, the book's form, sgd, batch norm, residual": {
        "model": {"hidden": [16, 16, 16], "dropout": 0.2, "dropout_args": {"inverted": False},
                  "batch_norm": True, "residual": True},
        "training": {"optimizer": "sgd", "learning_rate": 0.1}},
    "pre-activation residual, prelu, sgd": {
        "model": {"hidden": [16, 16, 16], "residual": True,
                  "residual_args": {"preactivation": True}, "activation": "prelu"},
        "training": {"optimizer": "sgd", "learning_rate": 0.03, "record_gradients": True}},
    # Batch norm: each run's batch statistics and moving statistics (training steps, then
    # every evaluation in inference mode), in both forms a run alone builds.
    "batch norm, ours, sgd, gradient norms": {
        "model": {"batch_norm": True},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "record_gradients": True}},
    "batch norm, the book's settings, sgd, with replacement, l2": {
        "model": {"batch_norm": True, "batch_norm_args": BOOK_BN,
                  "regularizer": "l2", "regularizer_args": {"l2": 0.01}},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "sampling": "with_replacement"}},
    "batch norm, keras, sgd, gradient norms": {
        "model": {"batch_norm": "keras"},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "record_gradients": True}},
    # With Adam the affine maps have no bias: a bias just before batch norm has a gradient of
    # zero in exact arithmetic, so its gradient is rounding noise, which Adam scales up to
    # steps of up to the learning rate; the moving mean follows them, and a run alone and a
    # packed run then evaluate ~1e-4 apart (training losses still within 3e-7; in float64, below,
    # 1e-12 apart with the bias: the arithmetic is the same).
    "batch norm, ours, adam, no bias": {
        "model": {"batch_norm": True, "use_bias": False}},
    "batch norm, the book's settings, adam, no bias, gradient norms": {
        "model": {"batch_norm": True, "batch_norm_args": BOOK_BN, "use_bias": False},
        "training": {"record_gradients": True}},
    "batch norm, keras, adam, no bias, center off, momentum 0.9": {
        "model": {"batch_norm": "keras", "batch_norm_args": {"momentum": 0.9, "center": False},
                  "use_bias": False}},
}


def _specs(case="adam, cross-entropy, uneven batches", model=None, **training):
    raw = copy.deepcopy(BASE)
    for section, values in CASES[case].items():
        raw[section] = {**raw[section], **values}
    raw["model"].update(model or {})
    raw["training"].update(training)
    return expand(raw).runs


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def _assert_close(record, alone):
    assert_trained_alike(record, alone, rel=1e-6, abs=TOLERANCE)
    assert set(record.artifacts) == set(alone.artifacts)
    for mine, theirs in zip(record.artifacts.get("gradient_norms", []),
                            alone.artifacts.get("gradient_norms", [])):
        assert (mine["layer"], mine["name"]) == (theirs["layer"], theirs["name"])
        assert mine["norm"] == pytest.approx(theirs["norm"], rel=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_packed_runs_store_what_runs_trained_alone_store(case):
    specs = _specs(case)
    assert all(packed_minibatch.packable(s) for s in specs)
    records = packed.train_pack(specs)
    # One pack (each run's wall time its share), not one run after another after a failure.
    assert len({r.wall_time for r in records}) == 1
    for spec, record in zip(specs, records):
        _assert_close(record, train_run(spec))


def test_each_run_trains_on_its_own_seeds_batches_and_weights():
    # Had the slices shared a batch plan or initial weights, seeds would agree; they do not,
    # and each matches its own run alone (above). Here: the three seeds differ from each other.
    records = packed.train_pack(_specs())
    losses = {r.history[0]["loss"] for r in records}
    assert len(losses) == 3


@pytest.mark.parametrize("case", ["sgd, with replacement, l2",
                                  "batch norm, keras, sgd, gradient norms"])
def test_a_seed_list_stores_the_same_bits_and_another_list_the_same_numbers(case):
    # The same pack on a new trainer: bit for bit (--jobs 1 and --jobs 2 form the same packs).
    # Another seed list (a study resumed with part of an arm left): the same numbers within
    # float32 rounding, since vectorised kernels may round an element by its place in a buffer.
    specs = _specs(case)
    packed_minibatch.forget()
    whole = {r.seed: r for r in packed.train_pack(specs)}
    packed_minibatch.forget()
    for record in packed.train_pack(specs):
        assert record.metrics == whole[record.seed].metrics
        assert _without_time(record.history) == _without_time(whole[record.seed].history)
    for part in ([specs[2], specs[0]], [specs[1]]):
        packed_minibatch.forget()
        for record in packed.train_pack(part):
            _assert_close(record, whole[record.seed])


def test_a_kept_trainer_serves_the_next_pack_of_its_shape_as_a_fresh_one_would():
    # Another initializer, learning rate and L2 factor: the same graph, so the kept trainer
    # (its Adam moments, iteration count, rate and factor restored) trains the second pack.
    first = _specs("sgd, with replacement, l2", optimizer="adam", learning_rate=0.01)
    raw = copy.deepcopy(BASE)
    raw["model"].update(initializer="glorot_uniform", regularizer="l2",
                        regularizer_args={"l2": 0.05})
    raw["training"].update(learning_rate=0.002, sampling="with_replacement")
    _assert_kept_trainer_serves_as_fresh(first, expand(raw).runs)


def test_a_kept_trainer_restores_the_dropout_masks_stream_for_the_next_pack():
    # The seed generators moved on with the first pack's steps; the next pack of the shape
    # must draw its runs' masks from their start again, as fresh ones would (same numbers).
    _assert_kept_trainer_serves_as_fresh(
        _specs("dropout, adam, gradient norms"),
        _specs("dropout, adam, gradient norms", learning_rate=0.003))


def _assert_kept_trainer_serves_as_fresh(first, second, between=None):
    """`second` trained by the trainer `first` leaves behind stores, bit for bit, what it
    stores on a new trainer; `between(kept)` may look at the kept trainer before it serves."""
    packed_minibatch.forget()
    fresh = packed.train_pack(second)
    packed.train_pack(first)
    kept = packed_minibatch.kept_trainer()
    if between is not None:
        between(kept)
    after = packed.train_pack(second)
    assert packed_minibatch.kept_trainer() is kept  # not traced again
    for a, b in zip(fresh, after):
        assert a.metrics == b.metrics
        assert _without_time(a.history) == _without_time(b.history)


def _batch_norm_arm(stddev, batch_norm=True, **model):
    raw = copy.deepcopy(BASE)
    raw["model"].update(batch_norm=batch_norm, initializer="random_normal",
                        initializer_args={"stddev": stddev}, **model)
    raw["training"].update(optimizer="momentum", learning_rate=0.1)
    return expand(raw).runs


def _moving_statistics(trainer):
    return [v.numpy() for layer in trainer.network.layers
            if isinstance(layer, stacked_norm.StackedBatchNorm)
            for v in (layer.moving_mean, layer.moving_variance)]


def test_a_kept_trainer_restores_batch_norm_for_the_next_arm():
    # Another weight scale is the same graph: the arm at w = 1 leaves gamma, beta, the moving
    # statistics and the momentum slots moved; the kept trainer sets them all to the fresh
    # state of the arm at w = 0.05 and stores what a new trainer stores, bit for bit.
    first = _batch_norm_arm(1.0, batch_norm_args=BOOK_BN)
    second = _batch_norm_arm(0.05, batch_norm_args=BOOK_BN)

    def restored(kept):
        start = _moving_statistics(packed_minibatch.Trainer(second[0].run_config, [3, 4, 5],
                                                            784, 10))
        assert all(not np.array_equal(a, b) for a, b in zip(_moving_statistics(kept), start))
        assert packed_minibatch.trainer(second, 784, 10) is kept
        for a, b in zip(_moving_statistics(kept), start):
            assert np.array_equal(a, b)

    _assert_kept_trainer_serves_as_fresh(first, second, restored)


def test_no_batch_norm_ours_and_keras_s_are_three_graphs():
    # A kept trainer serves only its own graph: with and without batch norm, and ours against
    # Keras's (the same variables, other arithmetic), never share one.
    arms = [_batch_norm_arm(0.05, batch_norm=form) for form in (False, True, "keras")]
    assert len({graph_key.graph_key(arm[0].run_config) for arm in arms}) == 3
    assert len({packed.unit_shape(arm) for arm in arms}) == 3
    packed_minibatch.forget()
    trainers = [packed_minibatch.trainer(arm, 784, 10) for arm in arms]
    assert len({id(t) for t in trainers}) == 3
    forms = [[layer.keras_form for layer in t.network.layers
              if isinstance(layer, stacked_norm.StackedBatchNorm)] for t in trainers]
    assert forms == [[], [False, False], [True, True]]


@pytest.mark.parametrize("batch_norm", [True, "keras"])
def test_gradient_norms_take_batch_statistics_and_leave_the_moving_ones(batch_norm):
    # As `probes.gradient_norms` in a StatelessScope: the norms of a training step (batch
    # statistics: they match the run alone's in the cases above), and the moving statistics
    # stay at their start, so training afterwards is the same as without the norms.
    import tensorflow as tf

    specs = _batch_norm_arm(0.05, batch_norm)
    packed_minibatch.forget()
    pack = packed_minibatch.trainer(specs, 784, 10)
    start = _moving_statistics(pack)
    rng = np.random.default_rng(0)
    data = (tf.constant(rng.random((200, 784), np.float32)),
            tf.constant(rng.integers(0, 10, 200, np.int32)))
    norms = pack.gradient_norms(data, packed_minibatch.stacked_plans(specs, 200))
    assert all(np.isfinite(entry["norm"]) and entry["norm"] > 0
               for run in norms for entry in run)
    for a, b in zip(_moving_statistics(pack), start):
        assert np.array_equal(a, b)


def test_the_same_pack_twice_stores_the_same_numbers():
    specs = _specs("rmsprop, parity, binary cross-entropy, prelu")
    packed_minibatch.forget()
    once = packed.train_pack(specs)
    twice = packed.train_pack(specs)
    for a, b in zip(once, twice):
        assert a.metrics == b.metrics
        assert _without_time(a.history) == _without_time(b.history)


def test_a_diverging_seed_stops_alone():
    # SGD at rate 1e6 on the ReLU net: seeds 3 and 4 overflow at once, seed 5's units die
    # first and it trains on as it does alone.
    specs = _specs(optimizer="sgd", learning_rate=1e6, steps=60, log_every=6)
    records = packed.train_pack(specs)
    assert len({r.wall_time for r in records}) == 1
    for spec, record in zip(specs, records):
        alone = train_run(spec)
        assert record.status == alone.status
        assert len(record.history) == len(alone.history)
        if alone.status == "diverged":
            assert record.metrics["diverged_at_step"] == alone.metrics["diverged_at_step"]
            assert "val_accuracy" not in record.metrics
        else:
            _assert_close(record, alone)
    assert [r.status for r in records] == ["diverged", "diverged", "finished"]


@pytest.mark.parametrize("changes, expected", [
    ({}, True),
    ({"data": {"subset": "random"}}, False),  # each seed its own images
    ({"data": {"target": "value"}, "training": {"loss": "mse"}}, False),
    ({"model": {"batch_norm": True}}, True),
    ({"model": {"batch_norm": "keras"}}, True),
    ({"model": {"batch_norm": True, "batch_norm_args": {
        "momentum": 0.9, "epsilon": 1e-6, "axis": -1, "center": False, "scale": False,
        "moving_variance_initializer": "zeros", "gamma_initializer": {
            "class_name": "Constant", "config": {"value": 0.5}}}}}, True),
    ({"model": {"batch_norm": "keras", "batch_norm_args": {"synchronized": False,
                                                           "renorm": False}}}, True),
    # What a stacked batch norm does not reproduce: penalties and constraints on gamma and
    # beta, random initial values, renormalisation, synchronised moments, another axis.
    ({"model": {"batch_norm": True, "batch_norm_args": {"gamma_regularizer": "l2"}}}, False),
    ({"model": {"batch_norm": True, "batch_norm_args": {"beta_constraint": "non_neg"}}},
     False),
    ({"model": {"batch_norm": True, "batch_norm_args": {"gamma_initializer": "he_normal"}}},
     False),
    ({"model": {"batch_norm": "keras", "batch_norm_args": {"renorm": True}}}, False),
    ({"model": {"batch_norm": "keras", "batch_norm_args": {"synchronized": True}}}, False),
    ({"model": {"batch_norm": True, "batch_norm_args": {"axis": 0}}}, False),  # per sample
    ({"model": {"batch_norm": "tests.own_code.throwaway:ScaleBy"}}, False),
    ({"model": {"dropout": 0.2}}, True),
    ({"model": {"dropout": 0.2, "dropout_args": {"inverted": False}}}, True),
    ({"model": {"dropout": 0.2, "dropout_args": {"noise_shape": [1, 24]}}}, False),
    ({"model": {"residual": True, "hidden": [16, 16]}}, True),
    ({"model": {"residual": True, "hidden": [16, 16], "batch_norm": "keras"}}, True),
    ({"model": {"constraint": "max_norm", "constraint_args": {"max_value": 3.0}}}, False),
    # Two activations: no shorthand says that (a list the shorthands can say is stored as them).
    ({"model": {"layers": [{"layer": "affine", "units": 8}, {"layer": "sigmoid"},
                           {"layer": "affine", "units": 8}, {"layer": "tanh"}]}}, False),
    ({"model": {"activation": "leaky_relu", "activation_args": {"negative_slope": 0.1}}}, False),
    ({"model": {"activation": "tests.own_code.throwaway:mish"}}, False),
    ({"training": {"early_stopping": {"patience": 2}}}, False),
    ({"training": {"ensemble": 2}}, False),
    ({"training": {"record_gradients": True}}, True),
    ({"training": {"optimizer_args": {"clipnorm": 1.0}}}, False),  # a norm over all runs
    ({"training": {"optimizer_args": {"clipvalue": 1.0}}}, True),  # element-wise
    ({"model": {"regularizer": "l1", "regularizer_args": {"l1": 0.001}}}, True),
    ({"training": {"sampling": "with_replacement", "augment_shift": 1}}, True),
])
def test_what_packs(changes, expected):
    raw = copy.deepcopy(BASE)
    for section, values in changes.items():
        if "layers" in values:
            raw[section] = values
        else:
            raw[section] = {**raw[section], **values}
    (spec, *_) = expand(raw).runs
    assert packed_minibatch.packable(spec) is expected
    assert packed.packable(spec) is expected


def test_when_a_pack_fails_each_run_trains_alone(monkeypatch, capsys):
    def fails(*args):
        raise ValueError("one run's problem")

    monkeypatch.setattr(packed_minibatch, "train_records", fails)
    monkeypatch.setattr(packed_minibatch, "train_run",
                        lambda spec, data_dir=None: (spec.seed, data_dir))
    assert packed.train_pack(_specs(), "folder") == [(3, "folder"), (4, "folder"), (5, "folder")]
    # and says so: a silent fallback once cost a whole study its packs unnoticed
    assert ("a pack of 3 runs of packed_minibatch failed (ValueError: one run's problem); "
            "training each run alone") in capsys.readouterr().err


def test_a_pack_whose_data_changed_stores_failed_runs_saying_so():
    specs = _specs()
    changed = [dataclasses.replace(spec, data_fingerprint="not the data") for spec in specs]
    records = packed.train_pack(changed)
    assert [r.status for r in records] == ["failed"] * 3
    assert all("the data changed after the study was planned" in r.error for r in records)


def test_blank_records_of_a_pack_are_filled_in_place():
    specs = _specs(steps=6)
    records = [blank_record(spec) for spec in specs]
    packed_minibatch.forget()
    trainer = packed_minibatch.train_records(specs, records, None, time.perf_counter())
    assert [r.status for r in records] == ["finished"] * 3
    # slice r of every stacked weight is run r's: the parameters of one network
    assert records[0].metrics["params"] == 784 * 24 + 24 + 24 * 16 + 16 + 16 * 10 + 10
    assert trainer.network.kernels()[0].shape == (3, 784, 24)
    assert np.all(np.isfinite(trainer.network.kernels()[0].numpy()))


@pytest.fixture
def float64():
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx("float32")


@pytest.mark.parametrize("case, model", [
    ("sgd, with replacement, l2", {}),
    ("momentum, mse, keras l1, schedule", {}),
    ("pre-activation residual, prelu, sgd", {}),
    ("batch norm, the book's settings, sgd, with replacement, l2", {}),
    # Adam with the bias before batch norm kept (see CASES): in float64 the same arithmetic.
    ("batch norm, ours, adam, no bias", {"use_bias": True}),
    ("batch norm, keras, adam, no bias, center off, momentum 0.9", {"use_bias": True}),
])
def test_in_float64_a_packed_run_does_the_arithmetic_of_a_run_alone(case, model, float64):
    # In float32 two roundings of one run drift apart as training amplifies them (after 2000
    # steps of mnist_init: 5e-4 in a validation accuracy, a few images); in float64 the same
    # formulas agree to 1e-9, which shows the packed step computes what Keras's does.
    specs = _specs(case, model, steps=60, log_every=12)
    packed_minibatch.forget()
    records = packed.train_pack(specs)
    assert len({r.wall_time for r in records}) == 1
    for spec, record in zip(specs, records):
        alone = train_run(spec)
        assert record.status == alone.status == "finished"
        for name, value in alone.metrics.items():
            if isinstance(value, float):
                assert record.metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        for mine, theirs in zip(record.history, alone.history):
            for column in ("loss", "val_loss"):
                assert mine[column] == pytest.approx(theirs[column], rel=1e-9), column
