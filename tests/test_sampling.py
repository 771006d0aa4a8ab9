"""training.sampling: batches drawn with replacement (DLFS's `np.random.choice(N, B)` every
step) beside the default seeded permutations, which must stay bit for bit what they were."""

import copy
import math

import numpy as np
import pytest

from study.engine.studies import ConfigError, expand
from study.engine.training import batches as batching
from study.engine.training import fit
from study.engine.training.datasets import load_dataset
from study.engine.training.packed import packable
from study.engine.training.run import train_run
from tests.engine_fixtures import TINY_MNIST as MNIST, tiny_mnist_run

_spec = tiny_mnist_run


def _steps(plan):
    indices, starts, ends = plan
    return [indices[a:b].tolist() for a, b in zip(starts, ends)]


# --- the default stays today's rule -----------------------------------------------------------

def test_the_default_plan_is_the_one_the_old_code_drew():
    # Printed by the code before `sampling` existed: batch_plan(10, 4, 7, seed=11) and the
    # shifts of Plan.make(10, 4, 3, 11, augment_shift=1).
    assert _steps(batching.batch_plan(10, 4, 7, seed=11)) == [
        [8, 5, 6, 1], [9, 3, 4, 2], [7, 0], [5, 0, 7, 8], [9, 4, 6, 3], [1, 2], [7, 8, 2, 3]]
    assert batching.Plan.make(10, 4, 3, 11, augment_shift=1).shifts.tolist() == [
        [[1, -1], [1, 1], [1, 0], [-1, -1]], [[1, 0], [-1, 0], [1, 0], [0, -1]],
        [[0, 0], [1, -1], [0, -1], [-1, 0]]]


def _old_rule(n, batch, steps, seed):
    """The permutation rule as the book's loop would write it: pass p is
    default_rng([seed, p]).permutation(n), cut into batches of `batch` (the last one short);
    full-batch training takes the data in order."""
    if batch >= n:
        return [list(range(n))] * steps
    out, p = [], 0
    while len(out) < steps:
        order = np.random.default_rng([seed, p]).permutation(n)
        out += [order[i:i + batch].tolist() for i in range(0, n, batch)]
        p += 1
    return out[:steps]


@pytest.mark.parametrize(("n", "batch", "steps", "seed"),
                         [(10, 4, 7, 11), (300, 100, 9, 0), (7, 7, 3, 5), (4, 9, 2, 1),
                          (1000, 64, 40, 123)])
def test_permutation_sampling_is_the_old_rule_explicitly_or_by_default(n, batch, steps, seed):
    expected = _old_rule(n, batch, steps, seed)
    assert _steps(batching.batch_plan(n, batch, steps, seed)) == expected
    assert _steps(batching.batch_plan(n, batch, steps, seed, "permutation")) == expected


def test_the_default_setting_keeps_the_run_key_and_stays_out_of_the_config():
    assert _spec(training={"sampling": "permutation"}).key == _spec().key
    assert "sampling" not in _spec().config["training"]
    assert _spec(training={"sampling": "with_replacement"}).key != _spec().key


# --- draws with replacement -------------------------------------------------------------------

def test_with_replacement_depends_on_the_seed_alone_and_a_longer_run_starts_the_same():
    first = batching.batch_plan(50, 8, 30, 1, "with_replacement")
    again = batching.batch_plan(50, 8, 30, 1, "with_replacement")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], batching.batch_plan(50, 8, 30, 2, "with_replacement")[0])
    longer = batching.batch_plan(50, 8, 60, 1, "with_replacement")
    assert np.array_equal(longer[0][:first[0].size], first[0])
    assert _steps(first) != _steps(batching.batch_plan(50, 8, 30, 1))  # not the permutations


def test_two_arms_of_one_seed_train_on_the_same_batches_whatever_their_model():
    # Paired design: the first batch as trained (and the whole plan) depends on the seed,
    # N, B and steps, not on the network or optimizer of the arm.
    small = _spec(training={"sampling": "with_replacement"})
    other = _spec(model={"hidden": [8], "dropout": 0.3},
                  training={"sampling": "with_replacement", "optimizer": "sgd"})
    batches = []
    for spec in (small, other):
        config = spec.run_config
        dataset = load_dataset(config, spec.seed)
        compiled = fit.build_member(config, dataset, spec.seed)
        batches.append(fit.first_batch(config, dataset, spec.seed, compiled))
    np.testing.assert_array_equal(batches[0][0], batches[1][0])
    np.testing.assert_array_equal(batches[0][1], batches[1][1])
    plan = batching.batch_plan(200, 50, 8, 3, "with_replacement")
    chosen = plan[0][plan[1][0]:plan[2][0]]
    np.testing.assert_array_equal(batches[0][0], dataset.train.x[chosen])


def test_draws_are_uniform_over_the_samples():
    n, batch, steps = 10, 7, 2000
    indices, _, _ = batching.batch_plan(n, batch, steps, seed=0, sampling="with_replacement")
    counts = np.bincount(indices, minlength=n)
    assert len(counts) == n and counts.sum() == batch * steps
    expected = batch * steps / n
    chi_square = float(np.sum((counts - expected) ** 2 / expected))
    # 9 degrees of freedom: P(chi2 > 33.7) = 1e-4 for uniform draws. An off-by-one bound
    # (never drawing sample n-1: 1556 draws of each other one) gives chi2 ~ 1556.
    assert chi_square < 33.7, (chi_square, counts)


def test_duplicates_occur_as_often_as_drawing_with_replacement_predicts():
    n, batch, steps = 12, 4, 3000
    steps_per_epoch = n // batch
    plan = _steps(batching.batch_plan(n, batch, steps, 5, "with_replacement"))
    # Within a batch: P(no repeat among B draws from N) = N (N-1) ... (N-B+1) / N^B.
    unique = math.prod(range(n - batch + 1, n + 1)) / n ** batch  # 0.573
    share = np.mean([len(set(b)) < batch for b in plan])
    # Binomial share over 3000 batches: standard error 0.009; 5 standard errors.
    assert abs(share - (1 - unique)) < 5 * math.sqrt(unique * (1 - unique) / steps)
    # Within an epoch of N / B steps (N draws), a sample is missed with probability
    # (1 - 1/N)^N = 0.352: the epoch sees about 7.8 of the 12, a permutation always all 12.
    epochs = [sum(plan[e * steps_per_epoch:(e + 1) * steps_per_epoch], [])
              for e in range(steps // steps_per_epoch)]
    missed = np.mean([1 - len(set(e)) / n for e in epochs])
    # The mean over 1000 epochs of a share with standard deviation below 0.15: 5 standard errors.
    assert abs(missed - (1 - 1 / n) ** n) < 5 * 0.15 / math.sqrt(len(epochs))
    permutation = _steps(batching.batch_plan(n, batch, steps, 5))
    assert all(len(set(sum(permutation[e * 3:e * 3 + 3], []))) == n for e in range(100))


def test_a_batch_larger_than_the_data_still_draws_its_b_indices():
    indices, starts, ends = batching.batch_plan(4, 9, 5, 0, "with_replacement")
    assert (ends - starts).tolist() == [9] * 5 and set(indices) <= {0, 1, 2, 3}


def test_augmentation_shifts_the_drawn_batches_in_both_pipelines():
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 784), dtype=np.float32), rng.integers(0, 10, 60).astype(np.int32)
    plan = batching.Plan.make(60, 16, 10, 4, 2, "with_replacement")
    assert plan.shifts.shape == (10, 16, 2)
    pipeline = [(a.numpy(), b.numpy()) for a, b in batching.training_batches(
        x, y, 16, 10, seed=4, augment_shift=2, sampling="with_replacement")]
    pydataset = batching.PlannedBatches(x, y, plan, 10)
    for step, (a, b) in enumerate(pipeline):
        chosen = plan.indices[plan.starts[step]:plan.ends[step]]
        np.testing.assert_array_equal(a, batching.shift_images(x[chosen], plan.shifts[step]))
        np.testing.assert_array_equal(b, y[chosen])
        np.testing.assert_array_equal(a, pydataset[step][0])
    assert not np.array_equal(pipeline[0][0], x[plan.indices[:16]])  # really shifted


# --- end to end -------------------------------------------------------------------------------

def test_a_run_with_replacement_trains_repeats_exactly_and_differs_from_permutations():
    options = {"training": {"sampling": "with_replacement", "augment_shift": 1}}
    first, again = train_run(_spec(**options)), train_run(_spec(**options))
    assert first.status == "finished", first.error
    assert first.metrics == again.metrics
    assert [r["loss"] for r in first.history] == [r["loss"] for r in again.history]
    assert len(first.history) == 2 and first.metrics["steps"] == 8  # an epoch: 200 / 50 steps
    plain = train_run(_spec(training={"augment_shift": 1}))
    assert first.metrics["val_loss"] != plain.metrics["val_loss"]


def test_full_batch_draws_are_not_packed_and_train_alone():
    raw = {"name": "x", "seeds": [0, 1], "data": {"dataset": "xor"},
           "model": {"hidden": [4], "activation": "tanh"},
           "training": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 4, "steps": 10,
                        "loss": "binary_cross_entropy"}}
    assert all(packable(s) for s in expand(raw).runs)
    raw["training"]["sampling"] = "with_replacement"
    specs = expand(raw).runs
    assert not any(packable(s) for s in specs)
    record = train_run(specs[0])
    assert record.status == "finished", record.error


def _bowl_path(**training):
    return {"name": "p", "seeds": [0], "task": "optimizer_path", "data": {"dataset": "bowl"},
            "training": {"optimizer": "sgd", "steps": 10, "batch_size": 1, **training}}


@pytest.mark.parametrize(("raw", "message"), [
    ({**MNIST, "training": {**MNIST["training"], "sampling": "bootstrap"}},
     "training.sampling: 'bootstrap' is not allowed: Input should be 'permutation' or "
     "'with_replacement'"),
    (_bowl_path(sampling="with_replacement"),
     "training.sampling applies only to task 'train', not 'optimizer_path'"),
])
def test_bad_sampling_is_refused_with_a_clear_message(raw, message):
    with pytest.raises(ConfigError) as caught:
        expand(copy.deepcopy(raw), source="bad.toml")
    assert message in str(caught.value)
    expand(copy.deepcopy({**raw, "training": {**raw["training"], "sampling": "permutation"}}))
