"""Early stopping on a split of its own (`early_stopping.split`): images no scored metric uses,
so that the validation split, which the gap is measured on, does not also pick the checkpoint.
"""

import copy

import keras
import numpy as np
import pytest

from study import data as datasets
from study.engine.studies import ConfigError, expand
from study.engine.training import fit
from study.engine.training.datasets import load_dataset
from study.engine.training.environment import enable_determinism
from tests.engine_fixtures import DATA_DIR, mnist_study, run_study, runs_table

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the engine trains on TensorFlow")

# 300 images, a learning rate high enough that the losses turn up after a few history rows;
# a split of 100 images is noisy enough that its best row is not validation's.
BASE = {
    "name": "stop", "seeds": [0], "data": {"dataset": "mnist", "n_train": 300},
    "model": {"hidden": [64], "dropout": 0.1},
    "training": {"optimizer": "sgd", "learning_rate": 0.3, "batch_size": 50, "steps": 240,
                 "log_every": 6, "evaluate_test": True},
}
NEVER = 1000  # a patience longer than any run here: early stopping that never stops


def _config(**training):
    raw = copy.deepcopy(BASE)
    raw["training"].update(training)
    (spec,) = expand(raw).runs
    return spec.run_config, spec.seed


def _fit(**training):
    """As `run.train_config` trains: (history rows without time, final metrics, the per-row
    logs Keras's History kept, stop_* included)."""
    config, seed = _config(**training)
    enable_determinism()
    keras.utils.set_random_seed(seed)
    dataset = load_dataset(config, seed)
    compiled = fit.reused_member(config, dataset, seed)
    history = fit.fit_member(compiled, config, dataset, seed)
    metrics = fit.final_metrics(compiled, dataset, config.training.evaluate_test, history)
    rows = [{k: v for k, v in row.items() if k != "time"} for row in history.rows]
    return rows, metrics, compiled.model.history.history


def _stop_row(losses, patience):
    """The 0-based row at which early stopping stops, from the rule: stop once `patience` rows
    in a row brought no loss strictly below the best so far (never at row 0); None if never."""
    best, waited = np.inf, 0
    for row, loss in enumerate(losses):
        if loss < best:
            best, waited = loss, 0
            continue
        waited += 1
        if waited >= patience and row > 0:
            return row
    return None


# --- the split --------------------------------------------------------------------------------

def test_the_split_is_the_end_of_the_training_images_and_touches_no_other_split():
    stop = datasets.early_stopping_indices(1000, slice(0, 300))
    np.testing.assert_array_equal(stop, np.arange(49_000, 50_000))
    validation = np.arange(50_000, 60_000)  # indices into MNIST's 60,000 training images
    assert not np.intersect1d(stop, np.arange(300)).size
    assert not np.intersect1d(stop, validation).size

    config, seed = _config(early_stopping={"split": 1000, "patience": 2})
    dataset = load_dataset(config, seed)
    (x_full, y_full), (x_test, _) = datasets.load_mnist_npz(DATA_DIR / "mnist.npz")
    np.testing.assert_array_equal(dataset.early_stopping.x * 255, x_full[stop].reshape(-1, 784))
    np.testing.assert_array_equal(dataset.early_stopping.y, y_full[stop])
    # The other splits are what they are without a split; and no image of the split is one of
    # the test file's (compared pixel for pixel).
    plain = load_dataset(_config()[0], seed)
    assert dataset is not plain  # the worker's cache keeps them apart
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(dataset, name).x, getattr(plain, name).x)
    assert plain.early_stopping is None
    test_images = {row.tobytes() for row in x_test.reshape(len(x_test), -1)}
    assert not any(row.tobytes() in test_images for row in x_full[stop].reshape(len(stop), -1))


def test_a_random_subset_that_would_reach_into_the_split_is_refused_by_the_data_too():
    with pytest.raises(ValueError, match="would overlap the 300 training images"):
        datasets.early_stopping_indices(1000, np.array([5, 49_500]).repeat(150))
    with pytest.raises(ValueError, match="n_train \\+ split must be at most 50000"):
        datasets.mnist(49_500, data_dir=DATA_DIR, early_stopping_size=1000)


def test_parity_relabels_the_split_as_every_other_split():
    raw = copy.deepcopy(BASE)
    raw["data"]["target"] = "parity"
    raw["training"].update(loss="binary_cross_entropy", early_stopping={"split": 50})
    (spec,) = expand(raw).runs
    dataset = load_dataset(spec.run_config, spec.seed)
    (_, y_full), _ = datasets.load_mnist_npz(DATA_DIR / "mnist.npz")
    np.testing.assert_array_equal(dataset.early_stopping.y, y_full[49_950:50_000] % 2)


# --- what it changes, and what it must not --------------------------------------------------

def test_watching_the_split_changes_no_stored_number_but_where_the_run_stops():
    plain_rows, plain, _ = _fit()
    rows, watched, logs = _fit(early_stopping={"split": 100, "patience": NEVER,
                                               "restore_best_weights": False})
    assert len(logs["stop_loss"]) == len(rows) == 40  # it was measured every row
    # Evaluating the split draws no dropout mask and moves no metric: history and every
    # train_*, val_*, test_* metric are bit for bit the run without early stopping.
    assert rows == plain_rows
    assert {k: v for k, v in watched.items() if not k.startswith("early_stopping_")} == plain
    assert watched["early_stopping_stopped_at_step"] is None
    assert watched["early_stopping_best_step"] == 6 * (int(np.argmin(logs["stop_loss"])) + 1)


def test_it_stops_and_restores_where_the_splits_losses_say_not_where_validations_do():
    _, _, logs = _fit(early_stopping={"split": 100, "patience": NEVER,
                                      "restore_best_weights": False})
    plain_rows, _, _ = _fit()
    stop_losses, val_losses = logs["stop_loss"], logs["val_loss"]
    patience = 4
    stop = _stop_row(stop_losses, patience)
    best = int(np.argmin(stop_losses[:stop + 1]))
    # The case tells the two monitors apart: validation would stop and pick elsewhere.
    assert stop != _stop_row(val_losses, patience)
    assert best != int(np.argmin(val_losses[:stop + 1]))

    rows, metrics, _ = _fit(early_stopping={"split": 100, "patience": patience})
    assert rows == plain_rows[:stop + 1]  # the same training, up to the stopping point
    assert metrics["early_stopping_stopped_at_step"] == 6 * (stop + 1)
    assert metrics["early_stopping_best_step"] == 6 * (best + 1)
    # The restored weights are those of the split's best row: their final val_loss (on all
    # 10,000 validation images, as the history rows are here) is that row's val_loss. The same
    # evaluation of the same weights: equal but for float32 summation order, hence rtol 1e-6.
    np.testing.assert_allclose(metrics["val_loss"], rows[best]["val_loss"], rtol=1e-6)
    assert abs(rows[best]["val_loss"] - min(r["val_loss"] for r in rows)) > 1e-4


def test_a_study_with_a_split_runs_from_the_command_line_and_stores_the_stopping_steps(
        tmp_path):
    study = mnist_study(tmp_path / "s.toml", data={"n_train": 300},
                        grid={}, epochs=8, early_stopping={"split": 200, "patience": 1})
    result = run_study(study, "--db", tmp_path / "r.db", "--data-dir", DATA_DIR, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (row,) = runs_table(tmp_path / "r.db").values()
    assert row["status"] == "finished"
    assert row["metrics"]["early_stopping_best_step"] <= row["metrics"]["steps"]
    assert "early_stopping_stopped_at_step" in row["metrics"]


# --- bad input --------------------------------------------------------------------------------

BAD = {
    "overlap": ({"data": {"n_train": 49_500}, "training": {"early_stopping": {"split": 1000}}},
                "training.early_stopping.split = 1000: the split is the last 1000 of MNIST's "
                "50,000 training images and would overlap the first n_train = 49500 that "
                "train: n_train + split must be at most 50000"),
    "all training images": (
        {"data": {"n_train": None}, "training": {"early_stopping": {"split": 10}}},
        "would overlap the first n_train = 50000"),
    "xor": ({"data": {"dataset": "xor", "n_train": None},
             "training": {"early_stopping": {"split": 2}, "loss": "binary_cross_entropy"}},
            "training.early_stopping.split = 2: only 'mnist' has images to spare"),
    "random subset": ({"data": {"subset": "random"}, "training": {"early_stopping": {"split": 10}}},
                      "training.early_stopping.split = 10: needs data.subset = 'first'"),
    "stop monitor without a split": (
        {"training": {"early_stopping": {"monitor": "stop_loss"}}},
        "training.early_stopping: monitor = 'stop_loss' watches the early-stopping split: give "
        "its size, e.g. split = 1000"),
    "validation monitor with a split": (
        {"training": {"early_stopping": {"monitor": "val_loss", "split": 100}}},
        "training.early_stopping: with split = 100, monitor 'stop_loss' or 'stop_accuracy'"),
    "empty split": ({"training": {"early_stopping": {"split": 0}}},
                    "training.early_stopping.split: 0 is not allowed: Input should be greater "
                    "than 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_split_is_refused_with_a_clear_message(case):
    changes, message = BAD[case]
    raw = copy.deepcopy(BASE)
    for section, values in changes.items():
        raw[section] = {k: v for k, v in {**raw[section], **values}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="bad.toml")
    assert message in str(caught.value)


def test_an_overlapping_split_is_refused_by_study_run_naming_the_file(tmp_path):
    study = mnist_study(tmp_path / "bad.toml", data={"n_train": 49_900},
                        early_stopping={"split": 200})
    result = run_study(study, "--db", tmp_path / "r.db", "--data-dir", DATA_DIR, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (f"{study}: training.early_stopping.split = 200: the split is the last 200 of MNIST's "
            f"50,000 training images and would overlap the first n_train = 49900"
            in result.stderr), result.stderr
    assert not (tmp_path / "r.db").exists() or runs_table(tmp_path / "r.db") == {}


def test_the_default_keeps_the_key_of_early_stopping_on_validation():
    raw = copy.deepcopy(BASE)
    raw["training"]["early_stopping"] = {"monitor": "val_loss", "patience": 2}
    (spec,) = expand(raw).runs
    assert "split" not in spec.config["training"]["early_stopping"]
    raw["training"]["early_stopping"]["split"] = None
    assert expand(raw).runs[0].key == spec.key
    raw["training"]["early_stopping"] = {"split": 100, "patience": 2}
    (split,) = expand(raw).runs
    assert split.config["training"]["early_stopping"]["monitor"] == "stop_loss"
    assert split.key != spec.key
