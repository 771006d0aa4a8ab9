"""Study files: validation messages (file, key path, value, what is allowed), expansion, keys."""

import copy

import pytest

from study.engine.studies import ConfigError, expand, load_study
from study.engine.studies.identity import (
    arm_name, has_residual_block, label, revisions, run_key, selects, short,
    without_later_defaults)

BASE = {
    "name": "xor-test",
    "seeds": 2,
    "data": {"dataset": "xor"},
    "model": {"hidden": [5, 4], "activation": "sigmoid", "initializer": "glorot_uniform"},
    "training": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 4, "steps": 40,
                 "log_every": 20, "loss": "binary_cross_entropy"},
}


def _with(**changes):
    raw = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = raw
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def _problems(raw):
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="experiments/bad.toml")
    text = str(caught.value)
    assert all(line.startswith("experiments/bad.toml: ") for line in text.splitlines())
    return text


# (changes, the message the user must see)
BAD_INPUT = {
    "misspelt optimizer in a grid": (
        {"grid": {"optimizer": ["sgd", "adam", "adma"]}},
        "grid.optimizer[2]: 'adma' is not an optimizer; did you mean 'adam'?"),
    "misspelt activation": (
        {"model__activation": "sigmod"},
        "model.activation: 'sigmod' is not an activation; did you mean 'sigmoid'?"),
    "unknown key in a section": (
        {"model__hiden": [3]},
        "model.hiden: unknown key; did you mean 'hidden'? (allowed: activation,"),
    "unknown top-level key": (
        {"colour": "red"},
        "colour: unknown key (allowed: about, background, book, claims, data, grid, model, name, "
        "question, quick, random, report, search, seeds, task, training, zip)"),
    "value out of range": (
        {"model__dropout": 1.5},
        "model.dropout: 1.5 is not allowed: Input should be less than 1"),
    "negative learning rate": (
        {"training__learning_rate": -0.1},
        "training.learning_rate: -0.1 is not allowed: Input should be greater than 0"),
    "wrong type in a grid": (
        {"grid": {"learning_rate": [0.1, "fast"]}},
        "grid.learning_rate[1]: 'fast' is not allowed: Input should be a valid number"),
    "unknown axis": (
        {"grid": {"learnig_rate": [0.1]}},
        "grid.learnig_rate: 'learnig_rate' is not a setting of a run; did you mean "
        "'learning_rate'?"),
    "zip lists of different lengths": (
        {"zip": {"optimizer": ["sgd", "adam"], "learning_rate": [0.1]}},
        "zip: the lists must have one length; got optimizer = 2, learning_rate = 1"),
    "unknown dataset": (
        {"data__dataset": "cifar"},
        "data.dataset: 'cifar' is not allowed: Input should be 'xor', 'xor_cloud', 'mnist', 'gaussian', 'bowl', "
        "'anisotropic_bowl', 'rosenbrock', 'saddle', 'beale', 'rastrigin', 'npz' or 'csv'"),
    "no seeds": (
        {"seeds": 0},
        "seeds: 0 is not allowed: give a number of seeds (> 0) or a list of distinct seeds"),
    "both epochs and steps": (
        {"training__epochs": 3},
        "training: set exactly one of epochs or steps"),
    "optimizer argument it does not take": (
        {"training__optimizer_args": {"momentm": 0.9}},
        "training: optimizer_args: sgd does not take 'momentm' (it takes: clipnorm, clipvalue,"),
    "bad optimizer argument value": (
        {"training__optimizer": "momentum", "training__optimizer_args": {"momentum": 1.5}},
        "training: optimizer_args: momentum: `momentum` must be a float in [0, 1]. "
        "Received: momentum=1.5"),
    "log scale from zero": (
        {"random": {"samples": 3, "axes": {"learning_rate": {"low": 0, "high": 1,
                                                             "scale": "log"}}}},
        "random.axes.learning_rate: a log scale needs low > 0; got 0.0"),
    "unknown keras built-in": (
        {"grid": {"initializer": ["keras.he_normal", "keras.he_nromal"]}},
        "grid.initializer[1]: 'keras.he_nromal' is not an initializer; did you mean "
        "'keras.he_normal'?"),
    "residual with mixed widths": (
        {"model__residual": True},
        "model: residual = true needs hidden layers of one width"),
    "combination that does not fit": (
        {"grid": {"dataset": ["xor", "mnist"]}},
        "combination dataset=mnist: binary_cross_entropy needs two classes; mnist has ten"),
    "quick override of a missing axis": (
        {"quick": {"grid.optimizer": ["sgd"]}},
        "quick.grid.optimizer: the study has no grid axis 'optimizer'; it has none"),
    "missing section": (
        {"training": None},
        "training: None is not allowed: Input should be a valid dictionary"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_reported_with_location_value_and_what_is_allowed(case):
    changes, message = BAD_INPUT[case]
    raw = _with(**{k: v for k, v in changes.items() if "__" in k})
    raw.update({k: v for k, v in changes.items() if "__" not in k})
    if raw.get("training") is None:
        raw.pop("training")
        message = "training: required key is missing"
    assert message in _problems(raw)


def test_every_problem_of_a_file_is_reported_at_once():
    raw = _with(model__activation="sigmod", training__batch_size=0,
                grid={"optimizer": ["adma"]})
    text = _problems(raw)
    assert "model.activation" in text and "training.batch_size" in text


def test_not_toml_and_missing_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("name = 'x'\n[data\n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_study(broken)
    with pytest.raises(ConfigError, match=r"nope.toml: no such file"):
        load_study(tmp_path / "nope.toml")


def test_grid_crosses_zip_pairs_and_seeds_multiply():
    raw = _with(grid={"optimizer": ["sgd", "adam"], "hidden": [[2], [5, 4], [8]]},
                zip={"learning_rate": [0.1, 0.5], "batch_size": [2, 4]})
    study = expand(raw)
    assert len(study.runs) == 2 * 3 * 2 * 2  # grid x grid x zip rows x seeds
    pairs = {(r.config["training"]["learning_rate"], r.config["training"]["batch_size"])
             for r in study.runs}
    assert pairs == {(0.1, 2), (0.5, 4)}  # zipped, never crossed
    assert len({r.key for r in study.runs}) == len(study.runs)
    first = study.runs[0]
    assert first.arm == "optimizer=sgd, hidden=[2], learning_rate=0.1, batch_size=2"
    assert first.config["model"]["dropout"] == 0.0  # defaults are resolved into the config


def test_random_axes_are_seeded_and_within_range():
    raw = _with(random={"samples": 20, "seed": 7, "axes": {
        "learning_rate": {"low": 1e-6, "high": 1e-2, "scale": "log"},
        "batch_size": {"low": 2, "high": 4, "integer": True}}})
    first, again = expand(raw), expand(copy.deepcopy(raw))
    rates = [r.config["training"]["learning_rate"] for r in first.runs[::2]]
    assert rates == [r.config["training"]["learning_rate"] for r in again.runs[::2]]
    assert all(1e-6 <= lr <= 1e-2 for lr in rates)
    # log-uniform: about as many draws below 1e-4 (the log midpoint) as above
    assert 5 <= sum(lr < 1e-4 for lr in rates) <= 15
    assert {r.config["training"]["batch_size"] for r in first.runs} <= {2, 3, 4}
    other = expand(_with(random={**raw["random"], "seed": 8}))
    assert [r.key for r in other.runs] != [r.key for r in first.runs]


def test_keys_change_only_for_the_runs_a_change_affects():
    raw = _with(grid={"optimizer": ["sgd", "adam"]})
    before = {r.arm + str(r.seed): r.key for r in expand(raw).runs}
    raw["zip"] = {}
    raw["training"]["learning_rate"] = 0.5  # unchanged value: same keys
    assert {r.arm + str(r.seed): r.key for r in expand(raw).runs} == before
    raw["grid"]["optimizer"] = ["sgd", "momentum"]
    after = {r.arm + str(r.seed): r.key for r in expand(raw).runs}
    assert {k: v for k, v in after.items() if "sgd" in k} == \
        {k: v for k, v in before.items() if "sgd" in k}
    assert not set(after.values()) & {v for k, v in before.items() if "adam" in k}
    # the question and description are not part of a run: editing them reruns nothing
    assert {r.key for r in expand({**raw, "question": "new?"}).runs} == set(after.values())


def test_run_key_is_a_stable_hash():
    config = {"data": {"dataset": "xor"}, "model": {}, "training": {}}
    assert run_key("s", config, 1) == run_key("s", dict(reversed(list(config.items()))), 1)
    assert run_key("s", config, 1) != run_key("s", config, 2)
    assert len(run_key("s", config, 1)) == 16


def test_quick_shrinks_seeds_axes_and_length():
    raw = _with(grid={"optimizer": ["sgd", "adam", "momentum"]},
                quick={"seeds": 1, "grid.optimizer": ["sgd"], "training.steps": 20})
    full, quick = expand(raw), expand(raw, quick=True)
    assert len(full.runs) == 6 and len(quick.runs) == 1
    assert quick.runs[0].config["training"]["steps"] == 20
    assert quick.runs[0].key not in {r.key for r in full.runs}


def test_keras_builtins_resolve_as_controls():
    study = expand(_with(grid={"optimizer": ["adam", "keras.adam"]}))
    assert {r.config["training"]["optimizer"] for r in study.runs} == {"adam", "keras.adam"}


def test_report_names_must_name_an_arm():
    raw = {"name": "names", "data": {"dataset": "xor"}, "grid": {"activation": ["tanh", "relu"]},
           "training": {"steps": 10},
           "report": {"names": {"tanh": "hyperbolic tangent", "rleu": "typo"}}}
    with pytest.raises(ConfigError) as error:
        expand(raw, source="experiments/names.toml")
    assert str(error.value) == ("experiments/names.toml: report.names: 'rleu' is not the name "
                                "of an arm; the arms are: tanh; relu")


def test_a_figures_start_arm_must_select_an_arm():
    raw = {"name": "steps", "data": {"dataset": "xor"}, "grid": {"activation": ["tanh", "relu"]},
           "training": {"steps": 10, "record_boundaries": True},
           "report": {"figures": [{"kind": "boundary_steps", "arm": {"activation": "tahn"}}]}}
    with pytest.raises(ConfigError) as error:
        expand(raw, source="experiments/steps.toml")
    assert str(error.value) == ("experiments/steps.toml: report.figures[0].arm: {'activation': "
                                "'tahn'} selects no arm; the arms are: tanh; relu")
    raw["report"]["figures"][0]["arm"] = {"activation": "relu"}
    assert {r.arm for r in expand(raw).runs} == {"activation=tanh", "activation=relu"}


def test_a_figure_kind_outside_the_list_is_refused():
    raw = {"name": "figures", "data": {"dataset": "xor"},
           "report": {"figures": [{"kind": "pie"}]}}
    with pytest.raises(ConfigError) as error:
        expand(raw, source="experiments/figures.toml")
    assert "report.figures[0].kind" in str(error.value)
    assert "'pie'" in str(error.value)


# Keys of stored runs, computed when these tests were written: a change to how a key is made
# (or to a default that enters it) would silently retrain every stored run, or worse, take one
# computation's stored results for another's.
PINNED_KEYS = {
    "xor, seed 0": ("aa0e6d724dafea53", BASE, 0),
    "xor, seed 1": ("2d832b892711658d", BASE, 1),
    "residual block": ("cfec3f0caba76bfd",
                       {**BASE, "model": {"hidden": [4, 4], "residual": True}}, 0),
    "optimizer path": ("2261aed45f4d2d35",
                       {"name": "paths", "task": "optimizer_path", "seeds": 1,
                        "data": {"dataset": "bowl"}, "model": {"hidden": []},
                        "training": {"optimizer": "sgd", "learning_rate": 0.1, "steps": 30}}, 0),
    "no training": ("d8f65ae90d378f1a",
                    {"name": "hist", "task": "activation_histograms", "seeds": 1,
                     "data": {"dataset": "xor"}}, 0),
}


@pytest.mark.parametrize("case", list(PINNED_KEYS))
def test_the_key_of_an_existing_configuration_never_changes(case):
    key, raw, seed = PINNED_KEYS[case]
    (run,) = [r for r in expand(copy.deepcopy(raw)).runs if r.seed == seed]
    assert run.key == key


def test_run_key_of_a_plain_configuration_is_pinned():
    config = {"data": {"dataset": "xor"}, "model": {"hidden": [3]}, "training": {"steps": 5}}
    assert run_key("s", config, 0) == "40721f69b7379594"
    assert run_key("s", config, 0, code={"mine.Layer": "0123abcd"}) == "1e32a42f9906fb65"
    # no own components: the key a run without them always had
    assert run_key("s", config, 0, code={}) == run_key("s", config, 0, code=None)
    assert run_key("t", config, 0) != run_key("s", config, 0)
    assert run_key("s", config, 0, code={"mine.Layer": "0123abce"}) != \
        run_key("s", config, 0, code={"mine.Layer": "0123abcd"})
    assert all(c in "0123456789abcdef" for c in run_key("s", config, 0))


# Settings added after results were first stored: (path, their default, another value). Written
# out here from the run schema's defaults, not read from identity.ADDED_LATER, so a default that
# drifts there shows.
LATER_SETTINGS = [
    (("task",), "train", "activation_histograms"),
    (("model", "use_bias"), True, False),
    (("data", "n_points"), 1000, 999),
    (("data", "dim"), 100, 99),
    (("data", "start"), [-7.0, 2.0], [-7.0, 3.0]),
    (("data", "start"), [-7.0, 2.0], [-6.0, 2.0]),
    (("data", "start_jitter"), 0.0, 0.5),
    (("data", "target"), "digit", "parity"),
    (("training", "augment_shift"), 0, 1),
    (("training", "ensemble"), 1, 2),
    (("training", "record_gradients"), False, True),
    (("training", "record_boundaries"), False, True),
    (("training", "history_validation_size"), None, 1000),
    (("model", "activation_args"), {}, {"negative_slope": 0.1}),
    (("model", "dropout_args"), {}, {"seed": 1}),
    (("model", "batch_norm_args"), {}, {"momentum": 0.9}),
    (("model", "residual_args"), {}, {"shortcut": "identity"}),
    (("model", "layers"), None, [{"layer": "affine", "units": 3}]),
    (("training", "sampling"), "permutation", "replacement"),
    (("training", "early_stopping", "split"), None, 500),
]


def _keyed_config(path=None, value=None):
    config = {"data": {"dataset": "xor"}, "model": {"hidden": [3]},
              "training": {"steps": 5, "early_stopping": {"patience": 2}}}
    if path is not None:
        *parents, last = path
        node = config
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(value)
    return config


@pytest.mark.parametrize(("path", "default", "other"), LATER_SETTINGS,
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else None)
def test_a_setting_added_later_keeps_old_keys_at_its_default_and_changes_them_otherwise(
        path, default, other):
    before = run_key("s", without_later_defaults(_keyed_config()), 0)
    at_default = without_later_defaults(_keyed_config(path, default))
    assert at_default == _keyed_config()  # left out: the key the run had before the setting
    assert run_key("s", at_default, 0) == before
    changed = without_later_defaults(_keyed_config(path, other))
    assert changed == _keyed_config(path, other)
    assert run_key("s", changed, 0) != before


def test_later_defaults_leave_out_a_missing_section_and_a_config_without_training():
    # an activation_histograms run resolves with `training = None`: it is not part of its key
    assert without_later_defaults({"task": "activation_histograms", "data": {"dim": 100},
                                   "training": None}) == {"task": "activation_histograms",
                                                          "data": {}}
    # nothing to leave out: a config without the sections, or a key missing, is kept as is
    assert without_later_defaults({"data": {"dataset": "xor"}}) == {"data": {"dataset": "xor"}}
    assert without_later_defaults({"training": {"steps": 3}}) == {"training": {"steps": 3}}
    assert without_later_defaults({}) == {}


def test_writing_a_later_setting_at_its_default_in_a_study_file_reruns_nothing():
    raw = copy.deepcopy(PINNED_KEYS["optimizer path"][1])
    key = PINNED_KEYS["optimizer path"][0]
    raw["data"].update(start=[-7.0, 2.0], start_jitter=0.0)
    raw["training"]["sampling"] = "permutation"
    assert expand(copy.deepcopy(raw)).runs[0].key == key
    raw["data"]["start_jitter"] = 0.5
    assert expand(raw).runs[0].key != key


def test_a_residual_block_is_found_in_the_shorthand_and_in_a_layer_list():
    assert has_residual_block({"model": {"hidden": [4, 4], "residual": True}})
    assert not has_residual_block({"model": {"hidden": [4, 4], "residual": False}})
    block = [{"layer": "affine", "units": 4}, {"layer": "residual", "units": 4},
             {"layer": "relu"}]
    assert has_residual_block({"model": {"residual": False, "layers": block}})
    assert not has_residual_block({"model": {"layers": [block[0], block[2]]}})
    assert not has_residual_block({"model": {"layers": None}})
    assert not has_residual_block({"model": None}) and not has_residual_block({})


def test_a_residual_block_and_a_revision_join_the_key_of_their_runs_only():
    plain = {"model": {"hidden": [4, 4], "residual": False}}
    residual = {"model": {"hidden": [4, 4], "residual": True}}
    # pinned: the key a block run gets with its kernels seeded apart
    assert run_key("s", residual, 0) == "cf81c3a45355f964"
    assert run_key("s", plain, 0) == "90eea92dfa0a4a1b"
    assert revisions({"task": "optimizer_path"}) == {"optimizer_path": 2}
    assert revisions({"task": "train"}) == {} and revisions({}) == {}


def test_arm_labels_and_names_for_people():
    overrides = {"training.optimizer": "adam", "model.hidden": [5, 4],
                 "training.learning_rate": 0.012345, "training.schedule.kind": "exponential"}
    # stored label: the study file's order, the last part of each path, values short
    assert label(overrides) == ("optimizer=adam, hidden=[5,4], learning_rate=0.0123, "
                                "kind=exponential")
    # name: sorted by path, strings bare
    assert arm_name(overrides) == "hidden=[5,4], learning_rate=0.0123, adam, exponential"
    assert arm_name({"model.activation_args": {"b": 0.5, "a": {"x": 1}},
                     "model.dropout_args": {}}) == 'a={"x":1} b=0.5'
    assert arm_name({}) == "base" and label({}) == ""
    assert arm_name({"model.dropout_args": {}}) == "base"
    assert arm_name({"seeds.count": 3, "model.use_bias": False,
                     "training.schedule.decay_steps": 500}) == \
        "use_bias=False, count=3, decay_steps=500"


def test_short_values():
    assert short(0.1 + 0.2) == "0.3" and short(123456.0) == "1.23e+05" and short(3) == "3"
    assert short([1, [2, 3]]) == "[1,[2,3]]" and short({"a": 1, "b": [2]}) == '{"a":1,"b":[2]}'
    assert short("x") == "x" and short(None) == "None"


def test_a_claims_selector_matches_arms_by_axis_name_and_value():
    arm = {"training.optimizer": "adam", "training.schedule.kind": "exponential", "seeds": 3}
    assert selects({}, arm)
    assert selects({"optimizer": "adam"}, arm)
    assert selects({"kind": "exponential", "optimizer": "adam", "seeds": 3}, arm)
    assert not selects({"optimizer": "sgd"}, arm)
    assert not selects({"optimizer": "adam", "kind": "constant"}, arm)
    assert not selects({"learning_rate": 0.1}, arm)  # an axis the arm does not vary
    assert not selects({"schedule": "exponential"}, arm)
