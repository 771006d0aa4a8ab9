"""The studies in experiments/: every file is valid in full and quick form, declares claims, and
the quick form runs end to end with its verdicts stored."""

import pathlib
import sqlite3

import pytest

from study import cli, results
from study.config import load_study

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDIES = sorted((ROOT / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_file_is_valid_and_says_what_it_tests(path):
    full, quick = load_study(path), load_study(path, quick=True)
    assert full.name == path.stem
    assert full.question and full.about and full.claims
    assert 0 < len(quick.runs) < len(full.runs)
    assert quick.claims, "the quick form should still evaluate at least one claim"


def test_xor_quick_end_to_end(tmp_path):
    db = tmp_path / "r.db"
    assert cli.main(["run", str(ROOT / "experiments/xor.toml"), "--quick", "--db", str(db)]) == 0
    runs = results.runs(db, study="xor")
    assert len(runs) == len(load_study(ROOT / "experiments/xor.toml", quick=True).runs)
    assert set(runs["status"]) == {"finished"}
    # Robust at any size: a single perceptron (a linear boundary) never separates XOR.
    perceptron = runs[runs["hidden"] == "[]"]
    assert len(perceptron) > 0 and (perceptron["val_accuracy"] <= 0.75).all()
    with sqlite3.connect(db) as connection:
        verdicts = dict(connection.execute("SELECT claim_id, verdict FROM claims"))
    assert verdicts.get("perceptron-cannot") in ("supported", "inconclusive")
    assert set(verdicts.values()) <= {"supported", "contradicted", "inconclusive"}


def test_an_mnist_study_quick_end_to_end(tmp_path):
    db = tmp_path / "r.db"
    path = ROOT / "experiments/mnist_optimizers.toml"
    assert cli.main(["run", str(path), "--quick", "--db", str(db)]) == 0
    runs = results.runs(db, study="mnist_optimizers")
    assert len(runs) == len(load_study(path, quick=True).runs)
    assert (runs["status"] == "finished").all()
    assert (runs["val_accuracy"] > 0.5).all()  # 200 steps already learn something
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM claims").fetchone()[0] >= 1
