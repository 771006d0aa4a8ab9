"""The studies in experiments/: every file is valid in full and quick form, declares claims, and
the quick form runs end to end with its verdicts stored."""

import pathlib
import sqlite3
import tomllib

import pandas as pd
import pytest

from study import cli, results
from study.engine.results import stats
from study.engine.studies import load_study
from study.report import build

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDIES = sorted((ROOT / "experiments").glob("*.toml"))


MNIST_FLOOR = 10  # issue 14: at least 10 seeds behind every MNIST claim


def units_of_claims(study) -> int:
    """What a claim of the study pairs: whole searches when a search is repeated, the chosen
    setting's final seeds for a search run once, otherwise the study's seeds."""
    if study.search is None:
        return len(study.seeds)
    repeats = getattr(study.search, "repeats", 1)
    return repeats if repeats > 1 else study.search.final_seeds


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_has_the_seeds_its_claims_need(path):
    # The power rule: a claim whose every unit agrees must be able to reach p_holm <= 0.01
    # after the study's Holm correction (both directions of each tested claim in one family),
    # and an MNIST claim has at least 10 units behind it. Rates are judged by their interval.
    study = load_study(path, light=True)
    tested = [claim for claim in study.claims if claim.kind != "rate"]
    if not tested:
        return
    need = stats.seeds_needed(2 * len(tested), alpha=0.01)
    if study.base.get("data", {}).get("dataset") == "mnist":
        need = max(need, MNIST_FLOOR)
    assert units_of_claims(study) >= need, (
        f"{path.name}: {len(tested)} tested claims need {need} units; the file gives "
        f"{units_of_claims(study)}")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_optimizer_path_study_writes_its_start(path):
    # The schema's default start is the bowls' (-7, 2): a study of another function must say
    # where its walks begin, in [data] or on an axis.
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    if raw.get("task") != "optimizer_path":
        return
    assert "start" in raw["data"] or any("start" in raw.get(section, {})
                                         for section in ("grid", "zip")), path.name


def _run_quick(tmp_path, name):
    """`study run experiments/<name>.toml --quick` into a new database: (db, its runs)."""
    db = tmp_path / "r.db"
    assert cli.main(["run", str(ROOT / f"experiments/{name}.toml"), "--quick", "--db",
                     str(db)]) == 0
    return db, results.runs(db, study=name)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_file_is_valid_and_says_what_it_tests(path):
    full, quick = load_study(path), load_study(path, quick=True)
    assert full.name == path.stem
    assert full.question and full.about and full.claims
    assert 0 < len(quick.runs) < len(full.runs)
    assert quick.claims, "the quick form should still evaluate at least one claim"


def test_xor_quick_end_to_end(tmp_path):
    db, runs = _run_quick(tmp_path, "xor")
    assert len(runs) == len(load_study(ROOT / "experiments/xor.toml", quick=True).runs)
    assert set(runs["status"]) == {"finished"}
    # Robust at any size: a single perceptron (a linear boundary) never separates XOR.
    perceptron = runs[runs["hidden"] == "[]"]
    assert len(perceptron) > 0 and (perceptron["val_accuracy"] <= 0.75).all()
    # The step activation passes no gradient: its hidden layers keep their random weights.
    step = runs[(runs["activation"] == "step") & (runs["hidden"] == "[5,4]")]
    assert len(step) > 0 and (step["val_accuracy"] <= 0.75).all()
    with sqlite3.connect(db) as connection:
        verdicts = dict(connection.execute("SELECT claim_id, verdict FROM claims"))
    assert verdicts.get("perceptron-cannot") in ("supported", "inconclusive")
    assert set(verdicts.values()) <= {"supported", "contradicted", "inconclusive"}


def test_an_mnist_study_quick_end_to_end(tmp_path):
    path = ROOT / "experiments/mnist_optimizers.toml"
    db, runs = _run_quick(tmp_path, "mnist_optimizers")
    assert len(runs) == len(load_study(path, quick=True).runs)
    assert (runs["status"] == "finished").all()
    assert (runs["val_accuracy"] > 0.5).all()  # 200 steps already learn something
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM claims").fetchone()[0] >= 1


def test_init_histograms_quick_end_to_end(tmp_path):
    db, runs = _run_quick(tmp_path, "init_histograms")
    small = runs[(runs["activation"] == "sigmoid") & (runs["initializer_args"] == '{"stddev":0.01}')]
    # Robust at any size: std 0.01 sigmoid activations collapse toward 0.5 by layer 5.
    assert len(small) > 0
    assert (small["layer5_std"] < 0.03).all() and ((small["layer5_mean"] - 0.5).abs() < 0.05).all()
    histograms = results.artifacts(db, "histograms", study="init_histograms")
    assert len(histograms) == len(runs)
    first = histograms["value"].iloc[0]
    assert len(first) == 5 and sum(first[0]["counts"]) == 1000 * 100


def test_optimizer_paths_quick_end_to_end_and_sgd_in_closed_form(tmp_path):
    db, runs = _run_quick(tmp_path, "optimizer_paths")
    paths = results.artifacts(db, "path", study="optimizer_paths").set_index("run_key")["value"]
    sgd = runs[(runs["optimizer"] == "sgd") & (runs["dataset"] == "anisotropic_bowl")
               & (runs["learning_rate"] == 0.95)]
    assert len(sgd) == 2  # the quick form's two seeds of the book's SGD
    for _, run in sgd.iterrows():
        (x0, y0), *_ = paths[run["key"]]
        # SGD on x^2/20 + y^2 at lr 0.95: x <- (1 - 0.95/10) x, y <- (1 - 2 * 0.95) y = -0.9 y
        assert run["final_x"] == pytest.approx(x0 * 0.905 ** 30, rel=1e-4)
        assert run["final_y"] == pytest.approx(y0 * (-0.9) ** 30, rel=1e-4)
        assert run["y_sign_changes"] == 30  # the zig-zag: y flips at every update
        assert len(paths[run["key"]]) == 31


def test_xor_cloud_quick_stores_decision_boundaries(tmp_path):
    path = ROOT / "experiments/xor_cloud.toml"
    db, runs = _run_quick(tmp_path, "xor_cloud")
    assert len(runs) == len(load_study(path, quick=True).runs)
    boundaries = results.artifacts(db, "decision_boundary", study="xor_cloud")
    assert len(boundaries) == len(runs)
    grid = boundaries["value"].iloc[0]
    assert len(grid["x"]) == len(grid["probability"]) == len(grid["probability"][0]) == 41
    # A straight line gets at most 3 of the 4 clusters right.
    perceptron = runs[runs["hidden"] == "[]"]
    assert len(perceptron) > 0 and (perceptron["test_accuracy"] < 0.8).all()


def test_mnist_batchnorm_quick_end_to_end(tmp_path):
    path = ROOT / "experiments/mnist_batchnorm.toml"
    db, runs = _run_quick(tmp_path, "mnist_batchnorm")
    assert len(runs) == len(load_study(path, quick=True).runs)
    assert set(runs["status"]) <= {"finished", "diverged"}
    with sqlite3.connect(db) as connection:
        verdicts = dict(connection.execute("SELECT claim_id, verdict FROM claims"))
    assert set(verdicts) == {c.id for c in load_study(path, quick=True).claims}


def test_mnist_depth_sigmoid_gradient_vanishes_at_quick_size():
    from study.engine.training.run import train_run

    study = load_study(ROOT / "experiments/mnist_depth.toml", quick=True)
    plain_sigmoid = [s for s in study.runs if s.overrides["model.activation"] == "sigmoid"
                     and not s.overrides["model.residual"]]
    ratio = {}
    for spec in plain_sigmoid:
        record = train_run(spec, ROOT / "data")
        assert record.status == "finished", record.error
        depth = len(spec.overrides["model.hidden"])
        assert len(record.artifacts["gradient_norms"]) == depth + 1  # hidden layers + output
        ratio[depth, spec.seed] = record.metrics["grad_norm_first_over_last"]
    # Robust at any size: 8 more sigmoid layers shrink the first layer's gradient, seed by seed.
    for seed in {seed for _, seed in ratio}:
        assert ratio[10, seed] < 0.5 * ratio[2, seed]


def test_hparam_search_quick_runs_its_stages_and_touches_test_once(tmp_path):
    db, runs = _run_quick(tmp_path, "mnist_hparam_search")
    counts = runs.groupby([runs["round"].astype(str), "repeat"]).size().to_dict()
    # Two whole searches (quick: repeats = 2), the grid once; every run labelled.
    assert counts == {(stage, repeat): n for repeat in (0, 1)
                      for stage, n in (("1", 4), ("2", 4), ("final", 2), ("control", 2))
                      } | {("grid", 0): 4}
    first = runs[runs["round"].astype(str) == "1"]
    assert not set(first.loc[first["repeat"] == 0, "learning_rate"]) & set(
        first.loc[first["repeat"] == 1, "learning_rate"])  # independent sampling
    final = runs[runs["round"].astype(str) == "final"]
    assert sorted(final["seed"]) == [1000, 1001, 2000, 2001]  # fresh, one set per repeat
    assert final["test_accuracy"].notna().all()
    assert runs.loc[runs["round"].astype(str) != "final", "test_accuracy"].isna().all()
    # The control twin: the chosen point again with Keras's SGD and L2, judged on validation.
    control = runs[runs["round"].astype(str) == "control"]
    assert set(control["optimizer"]) == {"keras.sgd"}
    assert set(control["regularizer"]) == {"keras.l2"}
    assert sorted(control["learning_rate"]) == sorted(final["learning_rate"])
    with sqlite3.connect(db) as connection:
        (verdicts,) = connection.execute("SELECT COUNT(*) FROM claims").fetchone()
    assert verdicts == len(load_study(ROOT / "experiments/mnist_hparam_search.toml").claims)
    # Its report draws the `search` figure (learning rate x L2, every point by its score).
    build(db, tmp_path / "reports")
    (search_figure,) = (tmp_path / "reports" / "mnist_hparam_search").glob("figure-*-search.svg")
    assert search_figure.stat().st_size > 10_000
    assert search_figure.name in (tmp_path / "reports" / "mnist_hparam_search.html").read_text()
    # `[report] group_by = ["round", "repeat"]`: a row per combination; `metrics`: its columns.
    summary = pd.read_csv(tmp_path / "reports" / "mnist_hparam_search" / "summary.csv")
    assert list(summary.columns[:2]) == ["round", "repeat"]
    assert len(summary) == len(counts)
    assert summary["runs"].sum() == len(runs)
    assert {"val_accuracy", "test_accuracy"} <= set(summary.columns)
    assert "loss" not in summary.columns  # only the metrics the file names


def test_tuned_optimizers_quick_end_to_end(tmp_path):
    path = ROOT / "experiments/mnist_optimizers_tuned.toml"
    db, runs = _run_quick(tmp_path, "mnist_optimizers_tuned")
    assert len(runs) == len(load_study(path, quick=True).runs) + 2 * 2  # + the final stage
    rounds = runs["round"].astype(str)
    counts = runs.groupby([rounds, "optimizer"]).size().to_dict()
    assert counts == {(stage, o): 2 for stage in ("1", "book", "final") for o in ("sgd", "adam")}
    assert "repeat" not in runs  # one search per optimizer: no repeat label
    # Tuned on validation over the grid; the chosen and the book's rates judged on test with
    # the same fresh seeds (paired); the tuning runs never see the test split.
    tuning, book, final = (runs[rounds == stage] for stage in ("1", "book", "final"))
    assert set(tuning["learning_rate"]) == {1e-4, 1.0} and tuning["test_accuracy"].isna().all()
    assert dict(zip(book["optimizer"], book["learning_rate"])) == {"sgd": 0.01, "adam": 0.001}
    for optimizer in ("sgd", "adam"):
        searched = tuning[tuning["optimizer"] == optimizer]
        scores = searched["val_accuracy"].where(searched["status"] == "finished", -1.0)
        best = searched.loc[scores.idxmax(), "learning_rate"]
        assert set(final.loc[final["optimizer"] == optimizer, "learning_rate"]) == {best}
    for stage in (book, final):
        assert sorted(stage["seed"]) == [1000, 1000, 1001, 1001]
        assert stage.loc[stage["status"] == "finished", "test_accuracy"].notna().all()
    with sqlite3.connect(db) as connection:
        verdicts = dict(connection.execute("SELECT claim_id, verdict FROM claims"))
    assert set(verdicts) == {c.id for c in load_study(path, quick=True).claims}
    assert len(verdicts) == 3  # the quick form runs SGD and Adam only
