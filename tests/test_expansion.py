"""Study files -> runs (studies.expansion): reading the file, what a Study carries, the problems
found before any run is made (each once, at its own location, with the file's name), claims'
arms, `--quick`, and the report's light re-reading (components checked by name only)."""

import copy
import locale

import pytest

from study.engine.studies import ConfigError, expand, load_study
from study.engine.studies.identity import run_key

RAW = {
    "name": "expansion", "seeds": 2,
    "data": {"dataset": "xor"},
    "model": {"hidden": [4], "activation": "tanh"},
    "training": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 4, "steps": 10,
                 "loss": "binary_cross_entropy"},
}
MNIST_TWO_CLASSES = ("binary_cross_entropy needs two classes; mnist has ten (with target = "
                     "'digit'): set data.target = \"parity\" for two")
MISSING = "tests.own_code.nothere:Thing"  # an own component whose module does not exist
TOP_LEVEL_TYPO = ("colour: unknown key (allowed: about, background, book, claims, data, grid, "
                  "model, name, question, quick, random, report, search, seeds, task, training, "
                  "zip)")


def _raw(**top):
    raw = copy.deepcopy(RAW)
    raw.update(copy.deepcopy(top))
    return raw


def _problems(raw, **options):
    """The problems of a study, one per line, without the file name every line starts with."""
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="experiments/bad.toml", **options)
    lines = str(caught.value).splitlines()
    assert all(line.startswith("experiments/bad.toml: ") for line in lines), lines
    return [line.removeprefix("experiments/bad.toml: ") for line in lines]


def _claim(id="c", **fields):
    return {"id": id, "text": "t", "kind": "above", "metric": "val_accuracy", "value": 0.5,
            **fields}


# Reading the file

def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


STUDY_FILE = """name = "from-file"
question = "Does tanh \u2014 or relu \u2014 learn XOR faster?"
seeds = 3

[data]
dataset = "xor"

[model]
hidden = [4]
activation = "{activation}"

[training]
steps = 10
loss = "binary_cross_entropy"

[quick]
seeds = 1
"""


def test_load_study_reads_the_whole_study_and_is_neither_quick_nor_light_unless_asked(tmp_path):
    path = _write(tmp_path / "study.toml", STUDY_FILE.format(activation="tanh"))
    study = load_study(path)
    assert (study.name, study.source, study.quick) == ("from-file", str(path), False)
    assert study.question == "Does tanh \u2014 or relu \u2014 learn XOR faster?"
    assert [s.seed for s in study.runs] == [0, 1, 2]
    assert [s.seed for s in load_study(path, quick=True).runs] == [0]
    # Light (the report's re-reading) checks an own component by its name's form only.
    light = _write(tmp_path / "light.toml", STUDY_FILE.format(activation=MISSING))
    assert len(load_study(light, light=True).runs) == 3
    with pytest.raises(ConfigError) as caught:
        load_study(light)
    assert str(caught.value).startswith(f"{light}: model.activation: ")
    assert "no module named 'tests.own_code.nothere'" in str(caught.value)


@pytest.fixture
def ascii_locale():
    """A machine whose locale is plain ASCII (the C locale)."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    yield
    locale.setlocale(locale.LC_CTYPE, before)


def test_a_study_file_is_read_as_utf8_whatever_the_locale(tmp_path, ascii_locale):
    path = _write(tmp_path / "study.toml", STUDY_FILE.format(activation="tanh"))
    assert load_study(path).question == "Does tanh \u2014 or relu \u2014 learn XOR faster?"


def test_a_folder_or_a_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_study(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a folder, not a study file"
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_study(latin1)
    assert str(caught.value).startswith(f"{latin1}: cannot read the file: 'utf-8' codec can't "
                                        f"decode byte 0xe9")


# What a Study and its runs carry

def test_a_study_carries_the_files_texts_and_each_run_its_study_arm_and_seed():
    raw = _raw(question="Which?", about="About.", background="Background.",
               grid={"activation": ["tanh", "relu"]})
    study = expand(raw, source="experiments/carry.toml")
    assert (study.name, study.question, study.about, study.background, study.source) == (
        "expansion", "Which?", "About.", "Background.", "experiments/carry.toml")
    assert study.definition == raw and study.seeds == [0, 1]
    assert (study.quick, study.light, study.search, study.random) == (False, False, None, None)
    assert [(s.study, s.arm, s.seed, s.overrides) for s in study.runs] == [
        ("expansion", "activation=tanh", 0, {"model.activation": "tanh"}),
        ("expansion", "activation=tanh", 1, {"model.activation": "tanh"}),
        ("expansion", "activation=relu", 0, {"model.activation": "relu"}),
        ("expansion", "activation=relu", 1, {"model.activation": "relu"})]
    for spec in study.runs:
        assert spec.key == run_key("expansion", spec.config, spec.seed)
        assert spec.run_config.model.activation == spec.config["model"]["activation"]
    assert expand(raw, quick=True, light=True).quick is True
    assert expand(raw, light=True).light is True


def test_seeds_are_a_number_of_seeds_from_0_or_the_seeds_themselves():
    assert [s.seed for s in expand(_raw(seeds=3)).runs] == [0, 1, 2]
    study = expand(_raw(seeds=[7, 3]))
    assert study.seeds == [7, 3] and [s.seed for s in study.runs] == [7, 3]


def test_a_run_without_a_grid_is_named_base():
    assert {s.arm for s in expand(_raw()).runs} == {"base"}


def test_the_study_name_is_part_of_every_run_key():
    keys = {s.key for s in expand(_raw()).runs}
    assert not keys & {s.key for s in expand(_raw(name="renamed")).runs}


def test_editing_an_own_component_changes_the_key_of_its_runs(tmp_path, monkeypatch):
    from study.engine.studies import components

    source = tmp_path / "expansion_own_act.py"
    source.write_text("def act(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = _raw(grid={"activation": ["tanh", "expansion_own_act:act"]})
    components.source_fingerprint.cache_clear()
    before = {s.arm + str(s.seed): s.key for s in expand(raw, light=True).runs}
    source.write_text("def act(x):\n    return x  # edited\n")
    components.source_fingerprint.cache_clear()
    after = {s.arm + str(s.seed): s.key for s in expand(raw, light=True).runs}
    components.source_fingerprint.cache_clear()
    assert [before[k] == after[k] for k in before] == [True, True, False, False]


def test_make_runs_labels_runs_with_their_marks_and_reports_a_bad_value_by_file():
    study = expand(_raw(), source="experiments/marks.toml")
    specs = study.make_runs({"training.learning_rate": 0.1}, [5, 6], marks={"search.round": 2})
    assert [(s.study, s.arm, s.seed) for s in specs] == [
        ("expansion", "round=2, learning_rate=0.1", 5),
        ("expansion", "round=2, learning_rate=0.1", 6)]
    assert specs[0].overrides == {"search.round": 2, "training.learning_rate": 0.1}
    assert specs[0].key == run_key("expansion", specs[0].config, 5)
    assert specs[0].config["training"]["learning_rate"] == 0.1
    assert study.make_runs({"training.learning_rate": 0.1}, [0])[0].arm == "learning_rate=0.1"
    with pytest.raises(ConfigError) as caught:
        study.make_runs({"training.learning_rate": -1.0}, [0])
    assert str(caught.value) == ("experiments/marks.toml: training.learning_rate: -1.0 is not "
                                 "allowed: Input should be greater than 0")


# Problems found before any run is made

def test_without_a_source_the_problems_name_the_study():
    with pytest.raises(ConfigError) as caught:
        expand(_raw(seeds=0))
    assert str(caught.value).startswith("<study>: seeds: 0 is not allowed")


def test_an_infinite_number_is_reported_beside_the_files_other_problems():
    raw = _raw(colour="red")
    raw["training"]["learning_rate"] = float("inf")
    assert _problems(raw) == [
        "training.learning_rate: inf is not allowed: numbers must be finite (TOML reads 1e400 "
        "and beyond as infinity)", TOP_LEVEL_TYPO]
    # alone, it is still refused (a learning rate of infinity would pass `> 0`)
    raw.pop("colour")
    assert _problems(raw) == [
        "training.learning_rate: inf is not allowed: numbers must be finite (TOML reads 1e400 "
        "and beyond as infinity)"]


def test_a_file_level_problem_comes_with_the_run_sections_problems():
    raw = _raw(colour="red")
    raw["model"]["activation"] = "sigmod"
    raw["training"]["batch_size"] = 0
    assert _problems(raw) == [
        TOP_LEVEL_TYPO,
        "model.activation: 'sigmod' is not an activation; did you mean 'sigmoid'?",
        "training.batch_size: 0 is not allowed: Input should be greater than 0"]


def test_a_file_level_problem_alone_is_reported_alone():
    assert _problems(_raw(colour="red")) == [TOP_LEVEL_TYPO]
    # a task other than training is judged with its own data, not as training
    paths = {"name": "paths", "task": "optimizer_path", "colour": "red",
             "data": {"dataset": "bowl"}, "model": {"hidden": []},
             "training": {"optimizer": "sgd", "learning_rate": 0.1, "steps": 5}}
    assert _problems(paths) == [TOP_LEVEL_TYPO]


def test_a_data_section_that_is_not_a_table_is_reported_once():
    assert _problems(_raw(data="xor")) == [
        "data: 'xor' is not allowed: Input should be a valid dictionary"]


def test_beside_a_file_level_problem_the_base_is_judged_with_its_axes_at_their_first_values():
    # The base has no steps: a grid axis sets them, so that is not the base's problem.
    raw = _raw(colour="red", grid={"steps": [10, 20]})
    del raw["training"]["steps"]
    assert _problems(raw) == [TOP_LEVEL_TYPO]
    raw = _raw(colour="red", zip={"steps": [10, 20], "learning_rate": [0.1, 0.2]})  # [zip] too
    del raw["training"]["steps"]
    assert _problems(raw) == [TOP_LEVEL_TYPO]
    # A misspelt axis value is judged on its own, at its own location, once the file's own
    # keys are right (not as the base's problem)
    raw = _raw(colour="red", zip={"optimizer": ["adma", "sgd"], "learning_rate": [0.1, 0.2]})
    assert _problems(raw) == [TOP_LEVEL_TYPO]
    raw.pop("colour")
    assert _problems(raw) == ["zip.optimizer[0]: 'adma' is not an optimizer; did you mean 'adam'?"]
    # a problem inside an axis's table is the axis's too
    raw = _raw(colour="red", grid={"early_stopping": [{"patience": -1}]})
    assert _problems(raw) == [TOP_LEVEL_TYPO]


def test_the_bases_own_problems_come_with_the_axes_problems():
    raw = _raw(grid={"optimizer": ["adma", "sgd"]})
    raw["model"]["activation"] = "sigmod"
    raw["training"]["optimizer"] = "adma"  # set by the axis: not the base's problem
    assert _problems(raw) == [
        "grid.optimizer[0]: 'adma' is not an optimizer; did you mean 'adam'?",
        "model.activation: 'sigmod' is not an activation; did you mean 'sigmoid'?"]


def test_too_many_runs_counts_seeds_zip_rows_and_random_samples():
    raw = _raw(seeds=1000, zip={"learning_rate": [0.1, 0.2], "batch_size": [2, 4]},
               random={"samples": 60, "seed": 1,
                       "axes": {"model.dropout": {"low": 0.0, "high": 0.5}}},
               grid={"activation": ["sigmod"]})  # found later: not reached
    assert _problems(raw) == [
        "the study would expand to 120,000 runs (1,000 (seeds) x 2 (zip) x 60 "
        "(random.samples)); the limit is 100,000: use fewer seeds or axis values"]


def test_a_random_axis_range_is_judged_at_its_ends():
    raw = _raw(random={"samples": 2, "seed": 1,
                       "axes": {"model.dropout": {"low": 0.1, "high": 1.5}}})
    assert _problems(raw) == [
        "random.axes.model.dropout.high: 1.5 is not allowed: Input should be less than 1"]


# Light: the report re-reads stored study files without importing anything

def test_light_checks_an_own_component_by_its_name_only_everywhere():
    raw = _raw(grid={"activation": ["tanh", MISSING]})
    raw["training"]["optimizer"] = "tests.own_code.nothere:Opt"
    study = expand(raw, light=True)
    assert len(expand(raw, light=True, quick=True).runs) == 4
    assert [s.arm for s in study.runs[::2]] == ["activation=tanh", f"activation={MISSING}"]
    assert {s.config["training"]["optimizer"] for s in study.runs} == {
        "tests.own_code.nothere:Opt"}
    problems = _problems(raw)
    assert any(p.startswith("grid.activation[1]: ") for p in problems)
    assert any(p.startswith("training.optimizer: ") for p in problems)


def test_light_problems_are_only_the_files_own():
    raw = _raw(colour="red")
    raw["model"]["activation"] = MISSING
    assert _problems(raw, light=True) == [TOP_LEVEL_TYPO]
    raw = _raw(grid={"optimizer": ["adma"]})
    raw["model"]["activation"] = MISSING
    assert _problems(raw, light=True) == [
        "grid.optimizer[0]: 'adma' is not an optimizer; did you mean 'adam'?"]


# Claims' arms

def test_each_claim_arm_and_baseline_must_select_exactly_one_arm():
    raw = _raw(grid={"optimizer": ["sgd", "adam"], "activation": ["tanh", "relu"]},
               claims=[_claim("ok", arm={"optimizer": "adam", "activation": "relu"}),
                       _claim("two", arm={"optimizer": "sgd"}),
                       {**_claim("none", arm={"optimizer": "adam", "activation": "relu"}),
                        "kind": "better", "baseline": {"optimizer": "adma"}}])
    arms = ("optimizer=sgd, activation=tanh; optimizer=sgd, activation=relu; "
            "optimizer=adam, activation=tanh; optimizer=adam, activation=relu")
    assert _problems(raw) == [
        "claims[1].arm: {'optimizer': 'sgd'} selects 2 arms (optimizer=sgd, activation=tanh; "
        f"optimizer=sgd, activation=relu); it must select exactly one of: {arms}",
        f"claims[2].baseline: {{'optimizer': 'adma'}} selects no arm; it must select exactly "
        f"one of: {arms}"]
    raw["claims"] = raw["claims"][:1] + [
        {**_claim("better", arm={"optimizer": "sgd", "activation": "tanh"}), "kind": "better",
         "baseline": {"optimizer": "adam", "activation": "tanh"}}]
    assert [c.id for c in expand(raw).claims] == ["ok", "better"]


def test_a_claim_id_used_twice_is_named():
    raw = _raw(grid={"activation": ["tanh", "relu"]},
               claims=[_claim("a", arm={"activation": "tanh"}),
                       _claim("b", arm={"activation": "relu"}),
                       _claim("a", arm={"activation": "relu"})])
    assert _problems(raw) == ["claims[2].id: 'a' is used twice"]


def test_claims_are_checked_only_once_every_combination_expanded():
    raw = _raw(grid={"dataset": ["xor", "mnist"]}, claims=[_claim(arm={"dataset": "mnist"})])
    assert _problems(raw) == [f"combination dataset=mnist: {MNIST_TWO_CLASSES}"]


def test_a_problem_of_every_combination_is_the_bases():
    raw = _raw(grid={"activation": ["tanh", "relu"]})
    raw["data"]["dataset"] = "mnist"
    assert _problems(raw) == [MNIST_TWO_CLASSES]


def test_quick_keeps_the_claims_whose_arms_it_runs_and_checks_them_all_on_the_full_study():
    raw = _raw(grid={"activation": ["tanh", "relu"]},
               claims=[_claim("tanh", arm={"activation": "tanh"}),
                       _claim("relu", arm={"activation": "relu"})],
               quick={"grid.activation": ["relu"], "seeds": 1})
    quick = expand(raw, quick=True)
    assert [c.id for c in quick.claims] == ["relu"] and len(quick.runs) == 1
    assert [c.id for c in expand(raw).claims] == ["tanh", "relu"]
    raw["claims"].append(_claim("typo", arm={"activation": "sigmod"}))
    assert _problems(raw, quick=True) == [
        "claims[2].arm: {'activation': 'sigmod'} selects no arm; it must select exactly one "
        "of: activation=tanh; activation=relu"]


# A search: its first stage now, its later stages from the study's base and settings

SEARCH = {
    "name": "search", "seeds": 2,
    "data": {"dataset": "xor"},
    "model": {"hidden": [4]},
    "training": {"steps": 10, "evaluate_test": False},
    "random": {"samples": 4, "seed": 3, "axes": {
        "learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"}}},
    "search": {"rounds": 2, "keep": 0.5, "final_seeds": 3, "repeats": 3},
    "claims": [_claim("c", arm={"round": "final", "repeat": 2}),
               _claim("d", arm={"round": "final"})],
}


def test_quick_shrinks_a_search_and_its_settings_reach_every_stage():
    raw = copy.deepcopy(SEARCH)
    raw["quick"] = {"search.final_seeds": 1, "search.repeats": 1, "seeds": 1,
                    "training.steps": 5}
    full, quick = expand(raw), expand(raw, quick=True)
    assert (full.search.final_seeds, full.search.repeats) == (3, 3)
    assert (quick.search.final_seeds, quick.search.repeats) == (1, 1)
    assert len(full.runs) == 3 * 4 * 2 and len(quick.runs) == 4
    assert {s.config["training"]["steps"] for s in quick.runs} == {5}
    assert quick.base["training"]["steps"] == 5 and full.base["training"]["steps"] == 10
    # the quick form runs one search: it keeps the claim on the final runs, not the one on repeat 2
    assert [c.id for c in full.claims] == ["c", "d"] and [c.id for c in quick.claims] == ["d"]
    raw["claims"][0]["arm"] = {"round": 1}
    message = ("claims[0].arm: {'round': 1}: in a search, claims select round = 'final', "
               "optionally repeat = 0..2")
    assert _problems(raw) == [message]
    assert _problems(raw, quick=True) == [message]


def test_quick_keeps_the_search_claims_it_can_judge():
    raw = copy.deepcopy(SEARCH)
    raw["quick"] = {"search.repeats": 3, "random.samples": 2}
    raw["random"]["samples"] = 4
    assert [c.id for c in expand(raw, quick=True).claims] == ["c", "d"]


def test_light_reads_a_search_naming_an_own_component():
    raw = copy.deepcopy(SEARCH)
    raw["model"]["activation"] = MISSING
    study = expand(raw, light=True)
    assert len(study.runs) == 3 * 4 * 2
    assert {s.config["model"]["activation"] for s in study.runs} == {MISSING}
    assert len(expand(raw, light=True, quick=True).runs) == 3 * 4 * 2


def test_a_model_too_big_for_the_machine_is_refused_but_not_when_re_read(monkeypatch):
    # xor into 4 tanh units into 1: 17 weights x 4 bytes x 2 (weights, gradients; sgd has no
    # slots) = 136 bytes, against a machine of 100 bytes
    monkeypatch.setenv("STUDY_MEMORY_BYTES", "100")
    assert _problems(_raw()) == [
        "model: the model needs about 0.0 GB (17 parameters x 4 bytes x 2: weights, gradients "
        "and 0 sgd slot(s)); this machine has 0.0 GB of memory"]
    # the report re-reads a stored study on whatever machine it runs on
    assert len(expand(_raw(), light=True).runs) == 2
    monkeypatch.setenv("STUDY_MEMORY_BYTES", "136")
    assert len(expand(_raw()).runs) == 2


def test_a_study_as_a_dict_is_validated_as_a_file_and_named_dict():
    raw = _raw(grid={"hidden": ([2], (4, 2))})  # tuples read as TOML's lists
    study = load_study(raw)
    assert study.source == "<dict>" and len(study.runs) == 4
    assert [s.config["model"]["hidden"] for s in study.runs[::2]] == [[2], [4, 2]]
    assert {s.key for s in study.runs} == {s.key for s in expand(
        _raw(grid={"hidden": [[2], [4, 2]]})).runs}  # the same runs as the file's tables
    raw["data"]["dataset"] = "mnist"
    assert study.definition["data"]["dataset"] == "xor"  # a copy: later edits change nothing
    quick = load_study(_raw(quick={"seeds": 1}), quick=True)
    assert quick.quick and {s.seed for s in quick.runs} == {0}


def test_a_dict_value_toml_cannot_hold_is_refused_at_its_key_path():
    class Thing:
        def __repr__(self):
            return "<thing>"

    raw = _raw(seeds=None, model={"hidden": [4, Thing()], 3: "x"}, grid={"seeds": [1]})
    with pytest.raises(ConfigError) as caught:
        load_study(raw)
    assert str(caught.value).splitlines() == [
        "<dict>: seeds: None is not allowed: a study holds only what TOML can (str, int, float, "
        "bool, lists and dicts of them), not builtins.NoneType",
        "<dict>: model.hidden[1]: <thing> is not allowed: a study holds only what TOML can (str, "
        "int, float, bool, lists and dicts of them), not "
        "tests.test_expansion.test_a_dict_value_toml_cannot_hold_is_refused_at_its_key_path."
        "<locals>.Thing",
        "<dict>: model: key 3 is not allowed: keys must be strings"]
    with pytest.raises(ConfigError, match=r"^<dict>: \(top level\): key 1 is not allowed"):
        load_study({1: "x"})
    with pytest.raises(ConfigError, match=r"^<dict>: grid.optimizer\[1\]: 'adma' is not an "):
        load_study(_raw(grid={"optimizer": ["sgd", "adma"]}))
