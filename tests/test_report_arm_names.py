"""Arms' short names (study/engine/studies/arm_names.py) on every study of the project, and
the study page's pivot (study/report/pivot.py) against an oracle from the runs frame."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from study.cli import main
from study.engine.studies import ConfigError, load_study
from study.engine.studies.arm_names import short_names
from study.engine.studies.identity import arm_name
from study.engine.studies.setting_words import value_text
from study.report import data as report_data
from study.report import pivot
from tests.engine_fixtures import xor_study

ROOT = Path(__file__).resolve().parent.parent
STUDIES = sorted([*ROOT.glob("experiments/*.toml"), *ROOT.glob("examples/*.toml")])
LONGEST = 64  # characters: a legend entry or a table's row header, not a paragraph


def _names(study, given=True):
    arms = list({json.dumps(s.overrides, sort_keys=True): s.overrides
                 for s in study.runs}.values())
    if not given:
        study = dataclasses.replace(study, report=study.report.model_copy(update={"names": {}}))
    return arms, report_data.arm_names(study, arms)


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_arm_of_every_study_has_a_distinct_short_name(path, quick):
    study = load_study(path, quick=quick, light=True)
    for given in (True, False):  # as shown, and as derived without the file's own names
        arms, names = _names(study, given)
        assert len(set(names)) == len(arms), [n for n in names if names.count(n) > 1]
        long = [n for n in names if len(n) > LONGEST]
        assert not long, long
        if given:  # the study's [report.names] are kept as written
            for arm, name in zip(arms, names):
                assert name == study.report.names.get(arm_name(arm), name)


def _derived(stem: str) -> dict[str, str]:
    """automatic (stored-style) name -> derived short name, without the file's names."""
    study = load_study(ROOT / "experiments" / f"{stem}.toml", light=True)
    arms, names = _names(study, given=False)
    return {arm_name(arm): name for arm, name in zip(arms, names)}


@pytest.mark.parametrize("stem, automatic, short", [
    ("xor", "tanh, hidden=[5,4]", "hidden 5-4, tanh"),
    ("xor", "step, hidden=[]", "no hidden layer, step"),
    ("optimizer_paths", "bowl, learning_rate=0.3, adam", "bowl, Adam lr=0.3"),
    ("optimizer_paths", "anisotropic_bowl, learning_rate=0.95, sgd",
     "anisotropic bowl, SGD lr=0.95"),
    ("mnist_overfitting", "none, dropout=0, l2, l2=0.05, augment_shift=0, none, ensemble=1, "
                          "log_every=129, steps=903", "L2 λ=0.05"),
    ("mnist_overfitting", "none, dropout=0.5, none, augment_shift=0, none, ensemble=1, "
                          "log_every=129, steps=903", "dropout p=0.5"),
    ("mnist_init", "relu, variance_scaling, distribution=untruncated_normal mode=fan_in "
                   "scale=2, learning_rate=0.01", "He"),
    ("mnist_init", "sigmoid, random_normal, stddev=0.01, learning_rate=0.5",
     "sigmoid, std 0.01, lr=0.5"),
    ("mnist_batchnorm", "batch_norm=True, stddev=0.0136", "BN, std 0.0136"),
    ("mnist_optimizers", "he_normal, learning_rate=0.01, rmsprop, rho=0.99, permutation",
     "RMSProp ρ=0.99 lr=0.01"),
    ("mnist_depth", "relu, hidden=[100,100,100,100,100,100,100,100,100,100], "
                    "distribution=untruncated_normal mode=fan_in scale=2, residual=False",
     "hidden 10×100, ReLU, He"),
])
def test_known_arms_get_the_textbook_words(stem, automatic, short):
    assert _derived(stem)[automatic] == short


def test_the_study_files_own_names_are_kept():
    study = load_study(ROOT / "experiments" / "mnist_batchnorm.toml", light=True)
    arms, names = _names(study)
    shown = dict(zip(map(arm_name, arms), names))
    assert shown["batch_norm=False, stddev=1"] == "no BN, w = 1"


def test_colliding_names_fall_back_to_a_longer_form_for_those_arms_only():
    base = {"data": {"dataset": "xor"}, "model": {"hidden": [5, 4]},
            "training": {"optimizer": "sgd", "learning_rate": 0.1}}
    # 0.10001 and 0.1 read "lr=0.1" at 3 digits: the two take 6 digits, the third stays.
    arms = [{"training.learning_rate": 0.1}, {"training.learning_rate": 0.10001},
            {"training.learning_rate": 0.5}]
    assert short_names(arms, base) == ["lr=0.1", "lr=0.10001", "lr=0.5"]
    # A derived name that a given one already holds moves aside.
    given = {"learning_rate=0.5": "lr=0.1"}
    named = short_names(arms[::2], base, given=given)
    assert named[1] == "lr=0.1" and named[0] != "lr=0.1" and len(set(named)) == 2
    # Equal overrides: one arm, one name.
    assert short_names([arms[0], dict(arms[0])], base) == ["lr=0.1", "lr=0.1"]


@pytest.mark.parametrize("column, value, text", [
    ("hidden", "[5,4]", "hidden 5-4"), ("hidden", "[]", "no hidden layer"),
    ("initializer_args", '{"stddev":0.01}', "std 0.01"), ("optimizer", "rmsprop", "RMSProp"),
    ("batch_norm", False, "no BN"), ("learning_rate", 0.001, "0.001"), ("name", "a, b", "a, b"),
    ("optimizer", "examples.lion:Lion", "Lion"), ("regularizer", "keras.l2", "keras.L2"),
])
def test_a_column_value_reads_as_words(column, value, text):
    assert value_text(column, value) == text


def test_a_pivot_that_mixes_arms_or_names_an_unvaried_setting_is_refused(tmp_path):
    path = xor_study(tmp_path / "s.toml", grid={"activation": ["tanh", "relu"],
                                                 "hidden": [[2], [4]],
                                                 "optimizer": ["sgd", "adam"]})
    text = path.read_text()
    (tmp_path / "a.toml").write_text(
        text + '[report]\npivot = { rows = "activation", columns = "hidden" }\n')
    with pytest.raises(ConfigError, match="a cell would hold 2 arms.*add optimizer"):
        load_study(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text(
        text + '[report]\npivot = { rows = "activation", columns = "dropout" }\n')
    with pytest.raises(ConfigError, match="'dropout' is not a setting the study varies"):
        load_study(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(
        text + '[report]\npivot = { rows = "activation", columns = "activation" }\n')
    with pytest.raises(ConfigError, match="named twice"):
        load_study(tmp_path / "c.toml")


# --- the pivot on a small trained study -------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pivot")
    plain = xor_study(folder / "plain.toml", "xor-pivot", seeds=3,
                      grid={"hidden": [[], [4]], "activation": ["tanh", "relu", "sigmoid"]})
    shares = folder / "shares.toml"
    shares.write_text(plain.read_text().replace('name = "xor-pivot"', 'name = "xor-shares"')
                      + '[report]\nmetrics = ["val_accuracy", "val_loss"]\n'
                      'pivot = { rows = "hidden", columns = "activation", '
                      'metric = "val_accuracy", threshold = 0.75 }\n')
    db = folder / "study.db"
    assert main(["run", str(plain), str(shares), "--db", str(db)]) == 0
    out = folder / "out"
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    return db, out


def _oracle(runs: pd.DataFrame, rows: str, columns: str, metric: str) -> pd.DataFrame:
    """The arm's median from the runs frame with pandas alone: finished runs (none diverge or
    fail here), rows × columns by the settings' words."""
    frame = runs[runs["status"] == "finished"].assign(
        r=runs[rows].map(lambda v: value_text(rows, v)),
        c=runs[columns].map(lambda v: value_text(columns, v)))
    return frame.pivot_table(index="r", columns="c", values=metric, aggfunc="median")


def test_a_study_of_two_settings_shows_its_pivot_of_the_arms_medians(trained):
    db, out = trained
    (study,) = report_data.load(db, only="xor-pivot")
    assert set(study.runs["status"]) == {"finished"}
    spec = pivot.spec_of(study)
    # Rows are the first setting, columns the second, in the stored study's order (its keys
    # sorted: activation before hidden), values in the file's order.
    assert (spec.rows, spec.columns, spec.metric) == (["activation"], ["hidden"],
                                                      "val_accuracy")
    exported = pd.read_csv(out / "xor-pivot" / "pivot.csv", index_col=0)
    assert list(exported.index) == ["tanh", "ReLU", "sigmoid"]
    assert list(exported.columns) == ["no hidden layer", "hidden 4"]
    oracle = _oracle(study.runs, "activation", "hidden", "val_accuracy")
    pd.testing.assert_frame_equal(exported, oracle.loc[exported.index, exported.columns],
                                  check_names=False)
    # ... and each cell is the summary's median of that arm.
    summary = pd.read_csv(out / "xor-pivot" / "summary.csv", index_col="name")
    for row in exported.index:
        for column in exported.columns:
            assert exported.loc[row, column] == pytest.approx(
                summary.loc[f"{row}, {column}", "val_accuracy"])
    page = (out / "xor-pivot.html").read_text()
    assert page.index("results pivot") < page.index("<details><summary>Every arm")
    assert "xor-pivot/pivot.csv" in page


def test_a_threshold_pivot_shows_the_share_of_runs_reaching_it(trained):
    db, out = trained
    (study,) = report_data.load(db, only="xor-shares")
    exported = pd.read_csv(out / "xor-shares" / "pivot.csv", index_col=0)
    # The file's pivot: rows hidden (not the default's activation), the share reaching 0.75.
    assert list(exported.index) == ["no hidden layer", "hidden 4"]
    assert list(exported.columns) == ["tanh", "ReLU", "sigmoid"]
    runs = study.runs.assign(hit=(study.runs["val_accuracy"] >= 0.75).astype(float))
    shares = runs.assign(r=runs["hidden"].map(lambda v: value_text("hidden", v)),
                         c=runs["activation"].map(lambda v: value_text("activation", v))
                         ).pivot_table(index="r", columns="c", values="hit", aggfunc="mean")
    pd.testing.assert_frame_equal(exported, shares.loc[exported.index, exported.columns],
                                  check_names=False)
    page = (out / "xor-shares.html").read_text()
    assert "share of runs with val_accuracy ≥ 0.75" in page


def test_the_api_frames_carry_the_arms_names_beside_the_stored_label(trained):
    from study.api import Results

    db, _ = trained
    result = Results(db, "xor-pivot")
    runs = result.runs
    assert list(runs.columns[list(runs.columns).index("arm"):][:2]) == ["arm", "name"]
    assert set(runs["name"]) == {f"{a}, {h}" for h in ("no hidden layer", "hidden 4")
                                 for a in ("tanh", "ReLU", "sigmoid")}
    assert runs["arm"].str.contains("activation=").all()  # the stored label unchanged
    assert result.history["name"].notna().all()


def test_a_functions_start_is_left_to_the_functions_name():
    # optimizer_landscapes zips each function with its start and jitter: the function says it.
    study = load_study(ROOT / "experiments" / "optimizer_landscapes.toml", light=True)
    names = set(_names(study)[1])
    assert "Adam lr=0.01, saddle" in names, sorted(names)[:5]
    assert not [n for n in names if "start" in n]
