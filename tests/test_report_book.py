"""The book vs this study: `[book]` validated with the study file, and the study page's table and
findings built from a tiny hand-made database whose stored verdicts are known.

The database holds one XOR study with hand-written runs and hand-written verdicts (nothing is
trained): claim "tanh-learns" supported, "sigmoid-learns" contradicted, "relu-dies" supported
(an explanation that the arms show), "step-dies" inconclusive (one that they do not) and
"relu-learns" without a verdict.
"""

import copy
import html
import re
import tomllib
from pathlib import Path

import pytest

from study.engine.results.store import RunRecord, Store
from study.engine.studies import ConfigError, expand
from study.engine.studies.study_schema import BookSetting
from study.report import build

ACTIVATIONS = ["tanh", "sigmoid", "relu", "step"]
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# The study files that mirror an experiment of the book's chapter 6.
BOOK_STUDIES = ["optimizer_paths", "mnist_optimizers", "mnist_init", "init_histograms",
                "mnist_batchnorm", "mnist_overfitting", "mnist_hparam_search"]


def _claim(claim_id, arm, text):
    return {"id": claim_id, "text": text, "kind": "better", "metric": "val_accuracy",
            "arm": {"activation": arm}, "baseline": {"activation": "step"}}


STUDY = {
    "name": "book-test", "seeds": 2, "data": {"dataset": "xor"},
    "model": {"hidden": [2]}, "training": {"steps": 10, "batch_size": 4},
    "grid": {"activation": ACTIVATIONS},
    "claims": [_claim("tanh-learns", "tanh", "tanh beats step."),
               _claim("sigmoid-learns", "sigmoid", "sigmoid beats step"),
               _claim("relu-dies", "relu", "relu's units die at this scale"),
               {**_claim("step-dies", "step", "step passes no gradient"),
                "baseline": {"activation": "relu"}},
               _claim("relu-learns", "relu", "relu beats step")],
    "book": {
        "experiment": "DLFS 6.x, ch06/example.py",
        "reports": "Every activation learns.",
        "settings": [{"setting": "learning rate", "book": "0.01", "here": " 0.01 "},
                     {"setting": "batch sampling", "book": "with replacement",
                      "here": "without replacement", "note": "seeded <permutations>"}],
        "findings": [
            {"text": "tanh learns.", "claim": "tanh-learns"},
            {"text": "sigmoid learns.", "claim": "sigmoid-learns", "explained_by": ["relu-dies"]},
            {"text": "sigmoid learns, again.", "claim": "sigmoid-learns",
             "explained_by": ["step-dies"]},
            {"text": "Nothing tests this yet."},
            {"text": "sigmoid learns, a third time.", "claim": "sigmoid-learns"},
            {"text": "relu learns.", "claim": "relu-learns"},
        ]},
}

# claim id -> (verdict, p_holm) as a stored evaluation would give them; "relu-learns" has no
# stored verdict (as when a quick run leaves a claim out)
VERDICTS = {"tanh-learns": ("supported", 0.0078), "sigmoid-learns": ("contradicted", 0.03),
            "relu-dies": ("supported", 0.0156), "step-dies": ("inconclusive", 0.5)}


def _stored_claim(claim: dict) -> dict:
    verdict, p = VERDICTS[claim["id"]]
    return {"study": STUDY["name"], "claim_id": claim["id"], "text": claim["text"],
            "kind": claim["kind"], "metric": claim["metric"], "arm": claim["arm"],
            "baseline": claim["baseline"],
            "n": 2, "statistic": 3.0, "p_value": p / 4, "p_adjusted": p, "effect": 1.0,
            "estimate": {"arm_median": 1.0, "baseline_median": 0.5},
            "verdict": verdict, "evaluated_at": "2026-01-01T00:00:00"}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The study page built from a database written by hand: runs, the study, its verdicts."""
    folder = tmp_path_factory.mktemp("book")
    study = expand(copy.deepcopy(STUDY), source="book-test.toml", light=True)
    with Store(folder / "r.db") as store:
        for i, spec in enumerate(study.runs):
            store.write(RunRecord(
                spec.key, spec.study, spec.arm, spec.seed, "finished", spec.config,
                spec.overrides, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0,
                metrics={"val_accuracy": 0.5 + 0.1 * (i % 4), "val_loss": 0.7}))
        store.write_study(study.name, "book-test.toml", False, STUDY,
                          [spec.key for spec in study.runs])
        store.write_claims(study.name, [_stored_claim(c) for c in STUDY["claims"]
                                        if c["id"] in VERDICTS])
    build(folder / "r.db", folder / "out")
    return (folder / "out" / "book-test.html").read_text(encoding="utf-8")


def _findings(page: str) -> list[tuple[str, str]]:
    """(class, text without tags) of every finding, in order."""
    items = re.findall(r"<li class='finding ([^']*)'>(.*?)</li>", page, flags=re.S)
    return [(css, html.unescape(re.sub(r"<[^>]+>", "", body))) for css, body in items]


def test_a_supported_claim_renders_reproduced_with_its_p_value(page):
    css, text = _findings(page)[0]
    assert css == "reproduced"
    assert text == "The book: tanh learns.Reproduced: tanh beats step (supported, p_holm = 0.0078)."


def test_a_contradicted_claim_renders_not_reproduced_with_its_explaining_verdict(page):
    css, text = _findings(page)[1]
    assert css == "not-reproduced explained"
    assert text == ("The book: sigmoid learns.Not reproduced (contradicted): sigmoid beats step "
                    "(p_holm = 0.03). Explained by relu's units die at this scale: supported "
                    "(p_holm = 0.0156).")


def test_an_explanation_the_arms_do_not_support_leaves_the_difference_unexplained(page):
    css, text = _findings(page)[2]
    assert css == "not-reproduced unexplained"
    assert "Explained by step passes no gradient: inconclusive (p_holm = 0.5)" in text
    assert text.endswith("The difference is unexplained: no explaining claim is supported "
                         "either.")


def test_findings_without_a_claim_a_verdict_or_an_explanation_say_so(page):
    css, text = _findings(page)[3]
    assert css == "not-tested" and "Not tested" in text
    css, text = _findings(page)[4]
    assert css == "not-reproduced unexplained"
    assert text.endswith("(p_holm = 0.03). No claim of this study is named to explain it.")
    css, text = _findings(page)[5]
    assert css == "not-evaluated"
    assert "Not evaluated: the database holds no verdict of claim relu-learns" in text


def test_a_differing_setting_row_is_highlighted_and_an_equal_one_is_not(page):
    assert ("<tr class='differs'><th scope='row'>batch sampling</th><td>with replacement</td>"
            "<td>without replacement</td><td>differs</td><td>seeded &lt;permutations&gt;</td>"
            "</tr>") in page
    # spaces around a value do not make a difference; a row without a note has an empty cell
    assert ("<tr><th scope='row'>learning rate</th><td>0.01</td><td>0.01</td><td>same</td>"
            "<td></td></tr>") in page
    assert page.count("<tr class='differs'>") == 1
    assert "tr.differs" in page  # the highlight is styled inside the self-contained page


def test_setting_rows_are_the_same_when_only_spaces_differ():
    assert BookSetting(setting="s", book="0.99 (Keras default)",
                       here=" 0.99\n    (Keras default)").same
    assert not BookSetting(setting="s", book="0.9", here="0.99").same


def _refusal(book_changes: dict) -> str:
    raw = copy.deepcopy(STUDY)
    raw["book"].update(book_changes)
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="experiments/bad.toml", light=True)
    return str(caught.value)


def test_a_finding_naming_an_unknown_claim_is_refused_naming_file_key_and_value():
    text = _refusal({"findings": [{"text": "t", "claim": "tanh-learn"},
                                  {"text": "u", "claim": "tanh-learns",
                                   "explained_by": ["no-such-claim"]}]})
    assert text == ("experiments/bad.toml: book.findings[0].claim: 'tanh-learn' is not a claim "
                    "id of this study (did you mean 'tanh-learns'?); "
                    "book.findings[1].explained_by[0]: 'no-such-claim' is not a claim id of "
                    "this study; the study's claims: tanh-learns, sigmoid-learns, relu-dies, "
                    "step-dies, relu-learns")


@pytest.mark.parametrize("changes, message", [
    ({"settings": [{"setting": "lr", "book": "0.01", "here": "0.01", "hre": "x"}]},
     "book.settings[0].hre: unknown key; did you mean 'here'? (allowed: book, here, note, "
     "setting)"),
    ({"settings": [{"setting": "lr", "book": "0.01", "here": "0.01"},
                   {"setting": "lr", "book": "1", "here": "2"}]},
     "book.settings: 'lr' is listed twice (settings[0] and settings[1])"),
    ({"settings": [{"setting": "lr", "book": 0.01, "here": "0.01"}]},
     "book.settings[0].book: 0.01 is not allowed: Input should be a valid string"),
    ({"findings": [{"text": "t", "explained_by": ["relu-dies"]}]},
     "book.findings[0]: explained_by ['relu-dies'] explains the verdict of a claim: give the "
     "finding's claim too"),
    ({"reports": "  "}, "book.reports: '  ' is not allowed"),
])
def test_bad_book_sections_are_refused_with_a_clear_message(changes, message):
    assert message in _refusal(changes)


@pytest.mark.parametrize("name", BOOK_STUDIES)
def test_each_book_study_says_what_the_book_ran_without_changing_a_run_key(name):
    raw = tomllib.loads((EXPERIMENTS / f"{name}.toml").read_text(encoding="utf-8"))
    study = expand(copy.deepcopy(raw), source=f"{name}.toml", light=True)
    book = study.definition["book"]
    assert any(row["book"] != row["here"] for row in book["settings"])  # the differences shown
    assert any("claim" in finding for finding in book["findings"])
    # [book] describes; it never enters a run's configuration, so no stored result is orphaned
    without = expand({k: v for k, v in raw.items() if k != "book"}, source=f"{name}.toml",
                     light=True)
    assert [spec.key for spec in study.runs] == [spec.key for spec in without.runs]
