"""Engine features for the MNIST studies: shift augmentation, ensembles, gradient norms at the
first step, and the targets "parity" and "value". Runs train on 200 MNIST images for a few steps.
"""

import copy

import keras
import numpy as np
import pytest

from study import data as datasets
from study.engine.training import batches as batching, ensemble, fit, models, probes
from study.engine.training.datasets import load_dataset
from study.engine.studies import ConfigError, expand
from study.engine.training.run import train_run
from tests.engine_fixtures import TINY_MNIST as MNIST, tiny_mnist_run

_spec = tiny_mnist_run


def _run(**sections):
    record = train_run(_spec(**sections))
    assert record.status == "finished", record.error
    return record


def _rows(record):
    return [{k: v for k, v in row.items() if k != "time"} for row in record.history]


# --- augmentation -----------------------------------------------------------------------------

def test_a_shift_moves_pixels_exactly_and_fills_zeros():
    image = np.arange(1, 785, dtype=np.float32).reshape(28, 28)
    images = np.stack([image.ravel()] * 3)
    out = batching.shift_images(images, np.array([[1, 0], [0, -2], [0, 0]], dtype=np.int8))
    down, left, same = out.reshape(3, 28, 28)
    np.testing.assert_array_equal(down[1:], image[:-1])  # row r is the old row r - 1
    np.testing.assert_array_equal(down[0], 0)
    np.testing.assert_array_equal(left[:, :-2], image[:, 2:])  # dx = -2: two columns left
    np.testing.assert_array_equal(left[:, -2:], 0)
    np.testing.assert_array_equal(same, image)


def test_the_tf_pipeline_and_the_pydataset_give_the_same_seeded_batches():
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 784), dtype=np.float32), rng.integers(0, 10, 60).astype(np.int32)

    def pipeline(seed, k):
        return [(a.numpy(), b.numpy()) for a, b in
                batching.training_batches(x, y, 16, 10, seed=seed, augment_shift=k)]

    def pydataset(seed, k):
        batches = batching.PlannedBatches(x, y, batching.Plan.make(60, 16, 10, seed, k), 10)
        return [batches[step] for step in range(len(batches))]

    shifted = pipeline(4, 3)
    for (a, b), (c, d) in zip(shifted, pydataset(4, 3), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(shifted, pipeline(4, 3)))
    assert not all(np.array_equal(a, c) for (a, _), (c, _) in zip(shifted, pipeline(5, 3)))
    # k = 0: the plain batches of batch_plan, untouched
    indices, starts, ends = batching.batch_plan(60, 16, 10, seed=4)
    for step, (a, b) in enumerate(pipeline(4, 0)):
        chosen = indices[starts[step]:ends[step]]
        np.testing.assert_array_equal(a, x[chosen])
        np.testing.assert_array_equal(b, y[chosen])


def test_pydataset_batches_train_as_the_tf_pipeline_does_across_epochs():
    # fit calls on_epoch_end once before training (and JAX draws a batch to build): the
    # PyDataset must still hand out step 0, 1, 2, ... of the plan, as the pipeline does.
    rng = np.random.default_rng(1)
    x, y = rng.random((48, 784), dtype=np.float32), rng.integers(0, 10, 48).astype(np.int32)
    weights = []
    for batches in (batching.training_batches(x, y, 16, 12, seed=2, augment_shift=2),
                    batching.PlannedBatches(x, y, batching.Plan.make(48, 16, 12, 2, 2), 12)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(batches, epochs=3, steps_per_epoch=4, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_augmented_runs_repeat_exactly_and_k0_is_todays_run():
    first, again = _run(training={"augment_shift": 2}), _run(training={"augment_shift": 2})
    assert first.metrics == again.metrics and _rows(first) == _rows(again)
    plain = _run()
    assert first.metrics["val_loss"] != plain.metrics["val_loss"]
    # 0 is the default: same resolved config, same key, so stored runs stay valid
    assert _spec(training={"augment_shift": 0}).key == _spec().key
    assert "augment_shift" not in _spec().config["training"]


# --- ensembles --------------------------------------------------------------------------------

def test_an_ensemble_scores_the_mean_of_its_members_probabilities():
    options = {"model": {"dropout": 0.2}}
    plain = _run(**options)
    record = _run(training={"ensemble": 2}, **options)
    # member 0 is the plain run: same history and best epoch
    assert _rows(record) == _rows(plain)
    assert record.metrics["best_val_accuracy"] == plain.metrics["best_val_accuracy"]

    # by hand: the two members trained on their own, with the member seeds
    config = _spec(training={"ensemble": 2}, **options).run_config
    dataset = load_dataset(config, 3)
    probabilities = {"train": [], "val": []}
    for j in range(2):
        keras.utils.clear_session(free_memory=False)
        seed = 3 + 100_003 * j
        assert ensemble.member_seed(3, j) == seed
        keras.utils.set_random_seed(seed)
        member = fit.build_member(config, dataset, seed)
        fit.fit_member(member, config, dataset, seed)
        for name, split in (("train", dataset.train), ("val", dataset.validation)):
            logits = member.model.predict(split.x, verbose=0).astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities[name].append(e / e.sum(axis=1, keepdims=True))
    for name, split in (("train", dataset.train), ("val", dataset.validation)):
        p = np.mean(probabilities[name], axis=0)
        loss = -np.mean(np.log(p[np.arange(len(split.y)), split.y]))
        accuracy = np.mean(p.argmax(axis=1) == split.y)
        assert record.metrics[f"{name}_loss"] == pytest.approx(loss, abs=1e-6)
        assert record.metrics[f"{name}_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    members = [np.mean(p.argmax(axis=1) == dataset.validation.y) for p in probabilities["val"]]
    assert members[0] == pytest.approx(plain.metrics["val_accuracy"], abs=1e-6)
    assert record.metrics["member_val_accuracy_mean"] == pytest.approx(np.mean(members), abs=1e-6)
    assert "test_accuracy" not in record.metrics  # evaluate_test = false


# --- gradient norms ---------------------------------------------------------------------------

def test_gradient_norms_equal_a_gradient_tape_on_the_first_batch():
    import tensorflow as tf

    options = {"model": {"hidden": [16, 16, 16], "residual": True, "batch_norm": True,
                         "dropout": 0.2, "regularizer": "l2", "regularizer_args": {"l2": 1e-3}}}
    record = _run(training={"record_gradients": True}, **options)
    # recording moves nothing: training is the run without it
    assert _rows(record) == _rows(_run(**options))

    config = _spec(**options).run_config
    dataset = load_dataset(config, 3)
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(3)
    compiled = fit.build_member(config, dataset, 3)
    model = compiled.model
    indices, starts, ends = batching.batch_plan(200, 50, 8, seed=3)
    chosen = indices[starts[0]:ends[0]]
    x, y = dataset.train.x[chosen], dataset.train.y[chosen]
    kernels = [[model.get_layer("affine_1").kernel],
               [model.get_layer("residual_2").inner_1.kernel,
                model.get_layer("residual_2").inner_2.kernel],
               [model.get_layer("residual_3").inner_1.kernel,
                model.get_layer("residual_3").inner_2.kernel],
               [model.get_layer("output").kernel]]
    with tf.GradientTape() as tape:
        loss = compiled.loss(y, model(x, training=True)) + tf.add_n(model.losses)
    gradients = tape.gradient(loss, [k.value for group in kernels for k in group])
    squares = [float(tf.reduce_sum(tf.square(g))) for g in gradients]
    expected = [np.sqrt(squares[0]), np.sqrt(squares[1] + squares[2]),
                np.sqrt(squares[3] + squares[4]), np.sqrt(squares[5])]
    found = [record.metrics[f"grad_norm_{i}"] for i in range(1, 5)]
    np.testing.assert_allclose(found, expected, rtol=1e-5)
    assert "grad_norm_5" not in record.metrics
    assert [(g["layer"], g["name"]) for g in record.artifacts["gradient_norms"]] == \
        [(1, "affine_1"), (2, "residual_2"), (3, "residual_3"), (4, "output")]


def test_ten_sigmoid_layers_with_std_1_weights_pass_a_vanishing_gradient_back():
    # Saturated sigmoids: the first layer's gradient is 3-10x smaller than the last's (seeds
    # 0-9 checked); no training needed, only the network at initialisation.
    config = _spec(model={"hidden": [100] * 10, "activation": "sigmoid",
                          "initializer": "random_normal", "initializer_args": {"stddev": 1.0}},
                   training={"batch_size": 100, "record_gradients": True}).run_config
    dataset = load_dataset(config, 0)
    compiled = fit.build_member(config, dataset, 0)
    norms = [g["norm"] for g in probes.gradient_norms(
        compiled, *fit.first_batch(config, dataset, 0, compiled))]
    assert len(norms) == 11
    assert norms[0] < norms[-1] / 2


# --- targets ----------------------------------------------------------------------------------

def test_parity_relabels_every_split():
    dataset = datasets.with_target(datasets.mnist(200), "parity")
    digits = datasets.mnist(200)
    assert dataset.num_classes == 2
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(dataset, name).y, getattr(digits, name).y % 2)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_parity_trains_with_either_cross_entropy(loss):
    record = _run(data={"target": "parity"}, training={"loss": loss})
    assert 0.5 < record.metrics["val_accuracy"] <= 1  # two classes: above chance
    assert all(0 <= row["accuracy"] <= 1 for row in record.history)


def test_value_target_regresses_the_digit():
    spec = _spec(data={"target": "value"}, training={"loss": "mse"})
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert all(np.isfinite(row["loss"]) and 0 <= row["accuracy"] <= 1 for row in record.history)
    assert np.isfinite(record.metrics["val_loss"]) and 0 <= record.metrics["val_accuracy"] <= 1
    config = spec.run_config
    compiled = fit.build_member(config, load_dataset(config, 3), 3)
    assert compiled.model.output_shape == (None, 1)  # one linear output, no softmax
    assert compiled.model.layers[-1].name == "output"
    # accuracy: the prediction rounds to the digit
    hits = keras.ops.convert_to_numpy(models.rounds_to_label(
        np.array([[3.0], [4.0], [2.0]], "float32"), np.array([[3.4], [4.6], [1.5]], "float32")))
    np.testing.assert_array_equal(hits.ravel(), [1, 0, 1])


BAD = {
    "binary cross-entropy on ten digits": (
        {"training": {"loss": "binary_cross_entropy"}},
        'binary_cross_entropy needs two classes; mnist has ten (with target = \'digit\'): set '
        'data.target = "parity" for two'),
    "value without mse": (
        {"data": {"target": "value"}},
        "target = 'value' is a regression: it needs training.loss = 'mse'; got 'cross_entropy'"),
    "target on xor": (
        {"data": {"dataset": "xor", "n_train": None, "target": "parity"}},
        "data: target = 'parity' applies only to 'mnist'"),
    "unknown target": (
        {"data": {"target": "odd"}},
        "data.target: 'odd' is not allowed: Input should be 'digit', 'parity' or 'value'"),
    "shift on xor": (
        {"data": {"dataset": "xor", "n_train": None}, "training": {"augment_shift": 1}},
        "augment_shift shifts images: it applies only to 'mnist', not 'xor'"),
    "shift too large": (
        {"training": {"augment_shift": 28}},
        "augment_shift (28) must be below 28, the side of an MNIST image"),
    "negative shift": (
        {"training": {"augment_shift": -1}},
        "training.augment_shift: -1 is not allowed: Input should be greater than or equal to 0"),
    "empty ensemble": (
        {"training": {"ensemble": 0}},
        "training.ensemble: 0 is not allowed: Input should be greater than 0"),
    "ensemble of optimizer paths": (
        {"task": "optimizer_path", "data": {"dataset": "bowl", "n_train": None},
         "training": {"ensemble": 2, "steps": 10, "log_every": None, "batch_size": 1}},
        "training.ensemble applies only to task 'train', not 'optimizer_path'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_settings_are_refused_with_a_clear_message(case):
    changes, message = BAD[case]
    raw = copy.deepcopy(MNIST)
    for section, values in changes.items():
        if isinstance(values, dict):
            raw[section] = {k: v for k, v in {**raw[section], **values}.items() if v is not None}
        else:
            raw[section] = values
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="bad.toml")
    assert message in str(caught.value)


def test_the_gaps_are_train_minus_validation_and_train_minus_test():
    from study.engine.training.probes import add_accuracy_gap

    metrics = {"train_accuracy": 1.0, "val_accuracy": 0.75, "test_accuracy": 0.7}
    add_accuracy_gap(metrics)
    assert metrics["accuracy_gap"] == 0.25 and metrics["test_accuracy_gap"] == pytest.approx(0.3)
    unseen = {"train_accuracy": 1.0, "val_accuracy": 0.75, "test_accuracy": None}
    add_accuracy_gap(unseen)
    assert "test_accuracy_gap" not in unseen


def test_along_x_measures_the_overshoot_and_the_halving_step():
    from study.engine.training.tasks import along_x

    # From -7 towards 0: past 0 up to 0.9 and back; |x| <= 3.5 first at step 2.
    assert along_x(np.array([-7.0, -5.0, -3.0, 0.5, 0.9, 0.2])) == {
        "x_overshoot": 0.9, "x_halved_at_step": 2}
    # From +4 towards 0 without crossing: no overshoot, never halved.
    assert along_x(np.array([4.0, 3.5, 3.0, 2.5])) == {"x_overshoot": 0.0,
                                                      "x_halved_at_step": None}


def test_a_revision_rekeys_the_optimizer_path_runs_and_no_other():
    from study.engine.studies.identity import run_key

    path = {"task": "optimizer_path", "data": {"dataset": "bowl"}}
    train = {"data": {"dataset": "xor"}}
    payload_key = __import__("hashlib").sha256(
        b'{"config":{"data":{"dataset":"xor"}},"engine":2,"seed":0,"study":"s"}').hexdigest()[:16]
    assert run_key("s", train, 0) == payload_key  # untouched: the key it always had
    unrevised = __import__("hashlib").sha256(
        b'{"config":{"data":{"dataset":"bowl"},"task":"optimizer_path"},"engine":2,"seed":0,'
        b'"study":"s"}').hexdigest()[:16]
    assert run_key("s", path, 0) != unrevised
