"""The Python API (`study.run`, `study.report`, `study.StudyError`, `Results.figure`): the same
path as `study run`, resumable, its problems as StudyError with the command's messages."""

from __future__ import annotations

import copy
import subprocess
import sys

import matplotlib.figure
import pandas as pd
import pytest

import study
from study import results
from tests.engine_fixtures import (ROOT, XOR_MODEL, XOR_TRAINING, run_study, study_env,
                                   write_study)

# A small XOR study as a dict: 2 optimizers x 2 learning rates x 2 seeds, 40 steps a run; its
# [quick] form runs one seed.
XOR = {"name": "api-xor", "seeds": 2, "data": {"dataset": "xor"}, "model": dict(XOR_MODEL),
       "training": dict(XOR_TRAINING),
       "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.05, 0.5]},
       "quick": {"seeds": 1}}


def xor(**changes) -> dict:
    raw = copy.deepcopy(XOR)
    raw.update(changes)
    return raw


def xor_file(path):
    """XOR as a study file (the same tables, so the same runs and keys)."""
    write_study(path, XOR["name"], seeds=XOR["seeds"], data=XOR["data"], model=XOR["model"],
                training=XOR["training"], grid=XOR["grid"])
    with open(path, "a", encoding="utf-8") as out:
        out.write("[quick]\nseeds = 1\n")
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """XOR run once from a file into a fresh database: (database, Results)."""
    folder = tmp_path_factory.mktemp("api")
    db = folder / "study.db"
    return db, study.run(xor_file(folder / "xor.toml"), db=db, progress=False)


def test_a_study_file_runs_and_its_frames_are_study_results_frames(ran):
    db, result = ran
    assert result.counts == {"finished": 8} and result.skipped == 0
    assert len(result.runs) == 8 and set(result.runs["status"]) == {"finished"}
    for got, expected in ((result.runs, results.runs(db, study="api-xor")),
                          (result.history, results.history(db, study="api-xor")),
                          (result.claims, results.claims(db, study="api-xor"))):
        if "seed" in expected:  # runs and history: the arm's name beside its stored label
            assert list(got.columns).index("name") == list(got.columns).index("arm") + 1
            assert set(got["name"]) == {f"{o} lr={r}" for o in ("SGD", "Adam")
                                        for r in (0.05, 0.5)}
            got = got.drop(columns="name")
        assert list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got, expected)  # the database holds this study alone
    assert {"optimizer", "learning_rate", "val_accuracy", "train_loss"} <= set(result.runs)


def test_the_same_study_as_a_dict_trains_nothing_and_returns_the_same_frames(ran):
    db, result = ran
    started = results.runs(db)[["key", "started_at"]]
    again = study.run(xor(), db=db, progress=False)  # a dict, no longer the file
    assert again.counts == {} and again.skipped == 8
    pd.testing.assert_frame_equal(results.runs(db)[["key", "started_at"]], started)
    pd.testing.assert_frame_equal(again.runs, result.runs)
    pd.testing.assert_frame_equal(again.history, result.history)


def test_quick_runs_the_quick_form(tmp_path):
    result = study.run(xor(name="api-quick"), db=tmp_path / "q.db", quick=True, progress=False)
    assert result.counts == {"finished": 4} and set(result.runs["seed"]) == {0}


def test_a_changed_dict_trains_only_its_new_runs_and_shows_only_its_own(tmp_path):
    db = tmp_path / "study.db"
    study.run(xor(name="api-edit", seeds=1), db=db, progress=False)
    changed = xor(name="api-edit", seeds=1)
    changed["grid"]["optimizer"] = ["adam", "momentum"]
    result = study.run(changed, db=db, progress=False)
    assert result.counts == {"finished": 2} and result.skipped == 2
    assert set(result.runs["optimizer"]) == {"adam", "momentum"}  # not the dropped sgd runs
    assert len(results.runs(db, study="api-edit")) == 6


@pytest.mark.parametrize("kind, options", [
    ("curves", {"metric": "loss"}),
    ("curves", {"metric": "val_accuracy", "hue": "optimizer", "validation": False}),
    ("final", {"metric": "train_loss", "x": "optimizer", "hue": "learning_rate"}),
    ("heatmap", {"metric": "val_accuracy", "x": "optimizer", "y": "learning_rate",
                 "threshold": 1.0, "title": "solved"}),
])
def test_figure_returns_a_matplotlib_figure_of_each_kind(ran, kind, options):
    figure = ran[1].figure(kind, **options)
    assert isinstance(figure, matplotlib.figure.Figure) and figure.axes
    if "title" in options:
        assert figure._suptitle.get_text() == options["title"]


@pytest.mark.parametrize("kind, options, message", [
    ("pie", {}, "figure: kind: 'pie' is not allowed: Input should be 'curves', 'final'"),
    ("curves", {"colour": "optimizer"}, "figure: colour: unknown key; did you mean 'col'?"),
    ("final", {"hue": "optimiser"}, "hue='optimiser' is not a setting the study varies that "
                                    "this figure can split by; allowed: name, learning_rate, "
                                    "optimizer"),
    # the history logs a learning_rate of its own: a curve cannot be split by the axis
    ("curves", {"col": "learning_rate"}, "allowed: name, optimizer"),
    ("curves", {"metric": "val_acc"}, "metric='val_acc' is not logged during training of "
                                      "study 'api-xor'; allowed: loss, accuracy, val_loss"),
    ("histograms", {}, "stored nothing it draws (runs of task = \"activation_histograms\""),
])
def test_a_bad_figure_is_a_study_error_with_the_allowed_values(ran, kind, options, message):
    with pytest.raises(study.StudyError) as error:
        ran[1].figure(kind, **options)
    assert message in str(error.value)


def test_a_bad_dict_is_a_study_error_naming_the_key_as_the_command_does(tmp_path):
    bad = xor(name="api-bad")
    bad["grid"]["optimizer"] = ["sgd", "adma"]
    bad["training"]["stpes"] = 10
    with pytest.raises(study.StudyError) as error:
        study.run(bad, db=tmp_path / "db", progress=False)
    lines = str(error.value).splitlines()
    assert "<dict>: grid.optimizer[1]: 'adma' is not an optimizer; did you mean 'adam'?" in lines
    assert any(line.startswith("<dict>: training.stpes: unknown key") for line in lines)
    assert error.value.printed == str(error.value)  # printed as it is, like a file's problems

    path = tmp_path / "bad.toml"  # the same tables as a file: the command's exact lines
    write_study(path, "api-bad", seeds=2, data=bad["data"], model=bad["model"],
                training=bad["training"], grid=bad["grid"])
    command = run_study(path, "--db", tmp_path / "cli.db", cwd=tmp_path)
    assert command.returncode == 2
    printed = [line for line in command.stderr.splitlines() if line.startswith(str(path))]
    assert printed == [line.replace("<dict>", str(path)) for line in lines]
    assert not (tmp_path / "db").exists() or results.runs(tmp_path / "db").empty


def test_values_toml_cannot_hold_are_refused_at_their_key(tmp_path):
    import numpy as np

    with pytest.raises(study.StudyError, match=r"<dict>: training.steps: np.int64\(40\) is "
                                               r"not allowed: a study holds only what TOML"):
        study.run(xor(training={**XOR_TRAINING, "steps": np.int64(40)}), db=tmp_path / "db")
    with pytest.raises(study.StudyError, match="a study is a file's path or a dict"):
        study.run(["experiments/xor.toml"], db=tmp_path / "db")


@pytest.mark.parametrize("options, cli, message", [
    ({"jobs": 0}, ["--jobs", "0"], "study: --jobs must be at least 1; got 0"),
    ({"address": "127.0.0.1:1"}, ["--address", "127.0.0.1:1"],
     "study: --address and --resources go with --executor ray"),
])
def test_a_bad_option_is_the_commands_message(tmp_path, options, cli, message):
    path = xor_file(tmp_path / "xor.toml")
    with pytest.raises(study.StudyError) as error:
        study.run(path, db=tmp_path / "db", **options)
    assert error.value.printed == message
    command = run_study(path, "--db", tmp_path / "db", *cli, cwd=tmp_path)
    assert (command.returncode, command.stderr.strip()) == (2, message)


def test_unusable_data_is_a_study_error_with_the_commands_message(tmp_path):
    empty = tmp_path / "broken"
    empty.mkdir()
    (empty / "mnist.npz").write_bytes(b"not an npz archive")
    mnist = {"name": "api-mnist", "seeds": 1, "data": {"dataset": "mnist", "n_train": 100},
             "model": {"hidden": [8]}, "training": {"optimizer": "sgd", "steps": 2}}
    with pytest.raises(study.StudyError) as error:
        study.run(mnist, db=tmp_path / "db", data_dir=empty, progress=False)
    path = tmp_path / "mnist.toml"
    write_study(path, "api-mnist", seeds=1, data=mnist["data"], model=mnist["model"],
                training=mnist["training"])
    command = run_study(path, "--db", tmp_path / "cli.db", "--data-dir", empty, cwd=tmp_path)
    assert command.returncode == 2
    assert "mnist.npz" in str(error.value)
    assert error.value.printed in command.stderr.splitlines()


def test_report_writes_the_pages_and_refuses_a_missing_database(ran, tmp_path):
    pages = study.report(ran[0], tmp_path / "reports")
    assert pages[0] == tmp_path / "reports" / "index.html" and pages[0].is_file()
    assert (tmp_path / "reports" / "api-xor.html").is_file()
    with pytest.raises(study.StudyError, match="no such results database"):
        study.report(tmp_path / "none.db", tmp_path / "reports")


def test_import_study_stays_light_until_a_study_runs():
    code = ("import sys, study\n"
            "names = (study.run, study.report, study.StudyError, study.Results)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'study.engine.training',"
            " 'study.engine.execution.runner') if m in sys.modules))")
    ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=study_env(), text=True,
                         capture_output=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_the_readmes_python_api_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it from Python or a notebook"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("```", start)]
    env = {**study_env(), "PYTHONPATH": str(ROOT)}  # `examples.lion` on the Python path
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ("<dict>: grid.optimizer[0]: 'adma' is not an optimizer; did you mean 'adam'?"
            in ran.stdout.splitlines())
    assert "examples.lion:Lion" in ran.stdout
    assert (tmp_path / "loss.svg").is_file()
    assert (tmp_path / "reports" / "mine" / "xor-mine.html").is_file()


def test_a_database_of_several_studies_gives_each_its_own_frames_figures_and_page(tmp_path):
    db = tmp_path / "two.db"
    first = study.run(xor(name="a-first"), db=db, quick=True, progress=False)
    second = study.run(xor(name="z-second", seeds=[5]), db=db, progress=False)
    assert set(first.runs["study"]) == {"a-first"} and set(second.runs["seed"]) == {5}
    assert set(second.history["study"]) == {"z-second"}
    figure = second.figure("final", metric="val_accuracy")  # the second study's own data
    assert len(figure.axes[0].get_xticklabels()) == 4  # its four arms
    study.report(db, tmp_path / "reports")
    assert {p.stem for p in (tmp_path / "reports").glob("*.html")} == {"index", "a-first",
                                                                        "z-second"}
