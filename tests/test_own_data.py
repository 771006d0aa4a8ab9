"""Your own data (`dataset = "npz" | "csv"`): reading, every refusal, the splits, the key.

The splits are checked against small NumPy oracles written from their definitions; the
refusals through `expand` (the study file's message) and through `study run` (exit code 2,
nothing stored).
"""

from __future__ import annotations

import copy
import sqlite3

import numpy as np
import pytest

from study import own_data, own_splits
from study.data import DataError
from study.engine.studies import expand
from study.engine.studies.errors import ConfigError
from study.engine.training.run import train_run
from tests.engine_fixtures import ROOT, run_count, run_study

TRAINING = {"optimizer": "adam", "learning_rate": 0.05, "batch_size": 8, "epochs": 2,
            "loss": "cross_entropy"}


def study(data: dict, *, name: str = "own", training: dict | None = None, **more) -> dict:
    return {"name": name, "seeds": [0, 1], "data": data, "model": {"hidden": [4]},
            "training": {**TRAINING, **(training or {})}, **more}


def write_csv(path, rows: int = 40, classes=("a", "b"), seed: int = 0):
    """Two numeric features, a text column the defaults leave out, and a label."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,note,kind"]
    for i in range(rows):
        lines.append(f"{rng.normal():.4f},{rng.normal():.4f},n{i},{classes[i % len(classes)]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_npz(path, n: int = 30, val: bool = False, **replace):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.normal(size=(n, 2, 3)), "y_train": np.arange(n) % 3,
              "x_test": rng.normal(size=(12, 2, 3)), "y_test": np.arange(12) % 3}
    if val:
        arrays |= {"x_val": rng.normal(size=(9, 2, 3)), "y_val": np.arange(9) % 3}
    arrays.update(replace)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def problems_of(raw: dict, source) -> str:
    with pytest.raises(ConfigError) as caught:
        expand(raw, source=source)
    return str(caught.value)


# --- reading ------------------------------------------------------------------------------------


def test_csv_classes_in_sorted_order_and_the_numeric_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", rows=40, classes=("zebra", "ant", "moth"))
    table = own_data.read(own_data.Source("csv", str(path), label="kind"))
    assert table.classes == ("ant", "moth", "zebra")  # sorted, not first-seen
    assert table.features == ("x1", "x2")  # "note" is text: left out by default
    assert len(table.y_train) + len(table.y_test) == 40 and len(table.y_test) == 8
    names = np.array(("zebra", "ant", "moth"))[np.arange(40) % 3]
    test_rows = np.sort(np.random.default_rng(0).permutation(40)[:8])
    np.testing.assert_array_equal(np.array(table.classes)[table.y_test], names[test_rows])


def test_integer_labels_sort_as_numbers(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=(np.arange(30) % 3) * 5 + 2,
                     y_test=(np.arange(12) % 3) * 5 + 2)  # labels 2, 7, 12
    table = own_data.read(own_data.Source("npz", str(path)))
    assert table.classes == ("2", "7", "12")
    np.testing.assert_array_equal(table.y_train, np.arange(30) % 3)
    assert table.x_train.shape == (30, 6) and table.x_train.dtype == np.float32  # flattened


def test_regression_reads_the_label_as_numbers(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(20)))
    table = own_data.read(own_data.Source("csv", str(path), label="y", regression=True))
    assert table.classes is None and table.num_classes == 1
    assert sorted(np.concatenate([table.y_train, table.y_test]).tolist()) == \
        [i * 0.5 for i in range(20)]


# --- the splits ---------------------------------------------------------------------------------


def test_validation_rows_drawn_by_the_seed_and_scaling_fitted_on_training_rows(tmp_path):
    table = own_data.read(own_data.Source("npz", str(write_npz(tmp_path / "d.npz", n=30))))
    first, again, other = (own_splits.splits(table, s, 0.2, "standard") for s in (4, 4, 5))
    rows = np.random.default_rng([4, own_splits.VALIDATION_STREAM]).permutation(30)
    val, kept = np.sort(rows[:6]), np.sort(rows[6:])
    mean, std = table.x_train[kept].mean(0), table.x_train[kept].std(0)
    np.testing.assert_allclose(first.train.x, (table.x_train[kept] - mean) / std, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(first.validation.x, (table.x_train[val] - mean) / std,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.test.x, (table.x_test - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first.validation.y, table.y_train[val])
    np.testing.assert_array_equal(first.validation.x, again.validation.x)  # same seed, same rows
    assert not np.array_equal(first.validation.y, other.validation.y) or \
        not np.array_equal(first.validation.x, other.validation.x)
    np.testing.assert_array_equal(first.test.y, other.test.y)  # the test set never moves


def test_minmax_and_a_constant_feature(tmp_path):
    x = np.stack([np.arange(20.0), np.full(20, 3.0)], axis=1)
    path = write_npz(tmp_path / "d.npz", n=20, x_train=x, y_train=np.arange(20) % 2,
                     x_test=np.array([[0.0, 3.0], [38.0, 3.0]]), y_test=np.array([0, 1]))
    table = own_data.read(own_data.Source("npz", str(path)))
    split = own_splits.splits(table, 0, 0.25, "minmax")
    low, high = split.train.x[:, 0].min(), split.train.x[:, 0].max()
    assert low == 0.0 and high == 1.0
    assert np.all(split.train.x[:, 1] == 0.0)  # constant: (x - min) / 1
    assert split.test.x[1, 0] > 1.0  # test rows scaled with the training rows' range


def test_given_validation_arrays_are_used_as_they_are(tmp_path):
    table = own_data.read(own_data.Source("npz", str(write_npz(tmp_path / "d.npz", val=True))))
    split = own_splits.splits(table, 3, 0.5, "none")
    np.testing.assert_array_equal(split.validation.x, table.x_val)
    assert len(split.train) == 30


# --- refusals: message names the file, the array or column, and what is allowed -----------------


def _csv(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


REFUSALS = {
    "missing file": (lambda p: {"dataset": "csv", "path": "nope.csv", "label": "kind"},
                     "nope.csv: no such file"),
    "missing array": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "m.npz", y_test=None))}, "no array y_test"),
    "lengths": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "l.npz", y_train=np.arange(29) % 3))}, "x_train has 30 examples but y_train has 29"),
    "x_val alone": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "v.npz", x_val=np.zeros((3, 6))))}, "has x_val but no y_val"),
    "object array": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "o.npz", x_test=np.array([{"a": 1}] * 12, dtype=object)))}, "Python objects"),
    "label column": (lambda p: {"dataset": "csv", "path": str(write_csv(p / "c.csv")),
                                "label": "knd"}, "no column 'knd' for data.label (did you mean "
                                                 "'kind'?)"),
    "feature column": (lambda p: {"dataset": "csv", "path": str(write_csv(p / "c.csv")),
                                  "label": "kind", "features": ["x1", "x22"]},
                       "no column 'x22' for data.features (did you mean 'x2'?)"),
    "text feature": (lambda p: {"dataset": "csv", "path": str(write_csv(p / "c.csv")),
                                "label": "kind", "features": ["x1", "note"]},
                     "column 'note' is not numeric (row 2 of the file: 'n0')"),
    "nan feature": (lambda p: {"dataset": "csv", "label": "y", "path": str(_csv(
        p, "a,b,y\n1,2,0\n3,,1\n" + "5,6,1\n1,1,0\n" * 10))}, "1 value(s) are NaN, empty or "
                                                              "infinite (first: row 3 of the "
                                                              "file, column 'b')"),
    "missing label": (lambda p: {"dataset": "csv", "label": "y", "path": str(_csv(
        p, "a,y\n1,0\n2,\n" + "3,1\n4,0\n" * 10))}, "column 'y' is empty in 1 row(s) (first: "
                                                    "row 3 of the file)"),
    "one class": (lambda p: {"dataset": "csv", "path": str(write_csv(p / "c.csv",
                                                                    classes=("a",))),
                             "label": "kind"}, "one class only ('a')"),
    "too many classes": (lambda p: {"dataset": "csv", "label": "y", "path": str(_csv(
        p, "a,y\n" + "".join(f"{i},{i * 0.001}\n" for i in range(1500))))},
                         "1,500 distinct labels"),
    "empty test": (lambda p: {"dataset": "csv", "label": "kind", "test_fraction": 0.01,
                              "path": str(write_csv(p / "c.csv", rows=20))},
                   "test_fraction = 0.01 of its 20 rows leaves no test rows"),
    "empty validation": (lambda p: {"dataset": "csv", "label": "kind",
                                    "validation_fraction": 0.01,
                                    "path": str(write_csv(p / "c.csv", rows=20))},
                         "validation_fraction = 0.01 of 16 training rows leaves no validation "
                         "rows"),
    "empty split": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "e.npz", x_test=np.zeros((0, 6)), y_test=np.zeros(0)))},
                    "the test split is empty"),
    "class only in test": (lambda p: {"dataset": "npz", "path": str(write_npz(
        p / "u.npz", y_test=np.arange(12) % 4))}, "class(es) '3' appear in the test or "
                                                 "validation split but never in training"),
    "text target": (lambda p: {"dataset": "csv", "path": str(write_csv(p / "c.csv")),
                               "label": "kind", "target": "value"},
                    "target = \"value\" regresses on numbers"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_data_problem_is_refused_before_training(tmp_path, case):
    data, expected = REFUSALS[case]
    raw = study(data(tmp_path))
    if case == "text target":
        raw["training"]["loss"] = "mse"
    text = problems_of(raw, tmp_path / "s.toml")
    assert str(tmp_path / "s.toml") in text and "data: " in text
    assert expected in text, text


def test_binary_cross_entropy_needs_two_classes(tmp_path):
    path = write_csv(tmp_path / "c.csv", classes=("a", "b", "c"))
    text = problems_of(study({"dataset": "csv", "path": str(path), "label": "kind"},
                             training={"loss": "binary_cross_entropy"}), "s.toml")
    assert "binary_cross_entropy needs two classes" in text and "has 3" in text


@pytest.mark.parametrize("data, expected", [
    ({"dataset": "csv", "path": "x.csv"}, "label: required for dataset 'csv'"),
    ({"dataset": "npz"}, "path: required for dataset 'npz'"),
    ({"dataset": "npz", "path": "x.npz", "label": "y"}, "label: only for dataset 'csv'"),
    ({"dataset": "xor", "path": "x.csv"}, "path: only for your own data"),
    ({"dataset": "csv", "path": "x.csv", "label": "y", "target": "parity"},
     "target = 'parity' applies only to 'mnist'"),
])
def test_settings_that_do_not_fit_the_dataset(data, expected):
    assert expected in problems_of(study(data), "s.toml")


# --- end to end ---------------------------------------------------------------------------------


def test_a_run_trains_on_the_csv_and_stores_its_classes(tmp_path):
    path = write_csv(tmp_path / "t.csv", rows=60, classes=("no", "yes"))
    (spec, _) = expand(study({"dataset": "csv", "path": "t.csv", "label": "kind",
                              "scale": "standard"}), source=tmp_path / "s.toml").runs
    assert spec.config["data"]["path"] == str(path.resolve())  # from the study file's folder
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert record.artifacts["data"] == {"classes": ["no", "yes"], "features": ["x1", "x2"],
                                        "train": 43, "validation": 5, "test": 12,
                                        "scale": "standard"}
    assert 0.0 <= record.metrics["test_accuracy"] <= 1.0


def test_an_npz_with_validation_arrays_trains(tmp_path):
    path = write_npz(tmp_path / "d.npz", val=True)
    (spec, _) = expand(study({"dataset": "npz", "path": str(path)})).runs
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert record.artifacts["data"] == {"classes": ["0", "1", "2"], "features": None,
                                        "train": 30, "validation": 9, "test": 12,
                                        "scale": "none"}


def test_a_regression_trains(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n" + "".join(f"{i % 7},{i % 5},{(i % 7) + (i % 5)}\n"
                                        for i in range(50)))
    (spec, _) = expand(study({"dataset": "csv", "path": str(path), "label": "y",
                              "target": "value"}, training={"loss": "mse"})).runs
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert record.artifacts["data"]["classes"] is None
    assert np.isfinite(record.metrics["val_loss"])


def test_a_file_edited_after_planning_is_not_trained_under_the_old_key(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    (spec, _) = expand(study({"dataset": "npz", "path": str(path)})).runs
    write_npz(path, y_train=(np.arange(30) + 1) % 3)
    record = train_run(spec)
    assert record.status == "failed" and "the data changed after the study was planned" in \
        record.error


# --- the key ------------------------------------------------------------------------------------


def keys(raw, source="<dict>"):
    return [spec.key for spec in expand(copy.deepcopy(raw), source=source).runs]


def test_the_key_follows_the_content_not_the_path(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    raw = study({"dataset": "npz", "path": str(path)})
    before = keys(raw)
    copied = tmp_path / "elsewhere" / "copy.npz"
    copied.parent.mkdir()
    copied.write_bytes(path.read_bytes())
    assert keys(study({"dataset": "npz", "path": str(copied)})) == before
    with np.load(path) as stored:
        x_train = stored["x_train"].copy()
    x_train[0, 0, 0] += 1.0  # one value of one example
    write_npz(path, x_train=x_train)
    changed = keys(raw)
    assert set(changed).isdisjoint(before)


def test_another_mnist_file_gets_other_keys(tmp_path, valid_npz):
    raw = {"name": "m", "seeds": [0], "data": {"dataset": "mnist", "n_train": 100},
           "model": {"hidden": [4]}, "training": TRAINING}
    usual = keys(raw)
    other = expand(copy.deepcopy(raw), data_dir=valid_npz.parent).runs[0].key
    assert other not in usual


def test_editing_a_file_reruns_its_runs_only(tmp_path):
    """Through `study run`: an edited csv's runs train again; another study's are skipped."""
    write_csv(tmp_path / "a.csv", rows=30)
    write_csv(tmp_path / "b.csv", rows=30, seed=1)
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(
            f'name = "{name}"\nseeds = 1\n[data]\ndataset = "csv"\npath = "{name}.csv"\n'
            f'label = "kind"\n[model]\nhidden = [3]\n[training]\noptimizer = "adam"\n'
            f'batch_size = 8\nepochs = 1\nloss = "cross_entropy"\n')
    db = tmp_path / "r.db"
    first = run_study(tmp_path / "a.toml", tmp_path / "b.toml", "--db", db, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    lines = (tmp_path / "a.csv").read_text().splitlines()
    lines[5] = "9.9999," + lines[5].split(",", 1)[1]  # one value of one row
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    again = run_study(tmp_path / "a.toml", tmp_path / "b.toml", "--db", db, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert "1 runs to do, 1 already stored" in again.stderr
    with sqlite3.connect(db) as connection:
        studies = [row[0] for row in connection.execute("SELECT study FROM runs")]
    assert sorted(studies) == ["a", "a", "b"]


def test_bad_data_through_the_command_exits_2_and_stores_nothing(tmp_path):
    write_csv(tmp_path / "c.csv")
    (tmp_path / "s.toml").write_text(
        'name = "s"\nseeds = 1\n[data]\ndataset = "csv"\npath = "c.csv"\nlabel = "knd"\n'
        '[model]\nhidden = [3]\n[training]\nbatch_size = 8\nepochs = 1\n'
        'loss = "cross_entropy"\n')
    db = tmp_path / "r.db"
    result = run_study(tmp_path / "s.toml", "--db", db, cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data: " in result.stderr and "did you mean 'kind'?" in result.stderr
    assert run_count(db) == 0


def test_the_example_csv_study_runs_as_the_readme_says():
    from study.engine.studies import load_study

    loaded = load_study(ROOT / "examples" / "iris.toml", quick=True)
    assert len(loaded.runs) == 4
    for spec in loaded.runs:
        record = train_run(spec)
        assert record.status == "finished", record.error
        assert record.artifacts["data"]["train"] + record.artifacts["data"]["validation"] == 120
    assert own_data.read(own_data.Source("csv", str(ROOT / "examples" / "iris.csv"),
                                         label="species")).classes == \
        ("setosa", "versicolor", "virginica")


def test_data_error_type():
    with pytest.raises(DataError):
        own_data.read(own_data.Source("npz", "/nonexistent/x.npz"))
