"""An open model: arguments for every component, an explicit layer list, a layer the engine has
never seen registered at run time, and your own components by import path."""

import copy
import dataclasses

import keras
import numpy as np
import pytest

from study import registry
from study.engine.studies import ConfigError, expand, layer_list
from study.engine.studies.run_schema import RunConfig
from study.engine.training import models
from study.engine.training.run import train_run
from tests.engine_fixtures import OPEN_MODEL

MNIST = OPEN_MODEL


def _study(**model):
    raw = copy.deepcopy(MNIST)
    raw["model"].update(model)
    return raw


def _only_spec(raw):
    (spec,) = expand(raw, source="own.toml").runs
    return spec


def _network(spec):
    return models.build(spec.run_config, (784,), 10, spec.seed).model


def _problems(raw):
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="own.toml")
    return str(caught.value)


@pytest.mark.parametrize("batch_norm", [True, "keras"])
def test_batch_norm_takes_the_notes_settings_on_ours_and_on_keras(batch_norm):
    args = {"momentum": 0.9, "epsilon": 1e-6, "moving_variance_initializer": "zeros"}
    spec = _only_spec(_study(batch_norm=batch_norm, batch_norm_args=args))
    layers = [l for l in _network(spec).layers if l.name.startswith("batch_norm")]
    assert [l.name for l in layers] == ["batch_norm_1", "batch_norm_2"]
    for layer in layers:
        assert (layer.momentum, layer.epsilon) == (0.9, 1e-6)
        assert np.all(keras.ops.convert_to_numpy(layer.moving_variance) == 0.0)
        assert isinstance(layer, keras.layers.BatchNormalization) == (batch_norm == "keras")


def test_arguments_of_activation_dropout_and_residual_reach_their_layers():
    spec = _only_spec(_study(activation="leaky_relu", activation_args={"negative_slope": 0.2},
                             dropout=0.3, dropout_args={"noise_shape": None},
                             residual=True, residual_args={"bias_initializer": "ones"}))
    network = _network(spec)
    activations = [l for l in network.layers if l.name.startswith("activation")]
    assert [l.negative_slope for l in activations] == [0.2, 0.2]
    assert [l.rate for l in network.layers if l.name.startswith("dropout")] == [0.3, 0.3]
    (block,) = [l for l in network.layers if l.name.startswith("residual")]
    assert np.all(keras.ops.convert_to_numpy(block.inner_1.bias) == 1.0)
    assert block.activation_layer.negative_slope == 0.2  # the block's activation takes them too


def test_an_unknown_argument_names_the_component_and_what_it_takes():
    text = _problems(_study(batch_norm=True, batch_norm_args={"momentun": 0.9}))
    assert "batch_norm_args: batch_norm does not take 'momentun' (it takes: " in text
    assert "momentum" in text and "moving_variance_initializer" in text
    assert "dropout_args given but dropout is not set" in _problems(
        _study(dropout_args={"noise_shape": None}))
    assert "dropout_args: 'seed' is set by the engine" in _problems(
        _study(dropout=0.5, dropout_args={"seed": 1}))


def test_defaults_keep_every_run_key():
    plain = _only_spec(_study())
    spelled = _only_spec(_study(activation_args={}, batch_norm_args={}, dropout_args={},
                                residual_args={}))
    assert plain.key == spelled.key and "layers" not in plain.config["model"]


EXPLICIT = [{"layer": "affine", "units": 16}, {"layer": "batch_norm", "momentum": 0.9},
            {"layer": "relu"}, {"layer": "dropout", "rate": 0.2},
            {"layer": "affine", "units": 16}, {"layer": "batch_norm", "momentum": 0.9},
            {"layer": "relu"}, {"layer": "dropout", "rate": 0.2}]


def test_the_shorthands_expand_to_the_explicit_list_with_one_key_and_train_identically():
    shorthand = _only_spec(_study(batch_norm=True, batch_norm_args={"momentum": 0.9},
                                  dropout=0.2))
    explicit_raw = _study()
    explicit_raw["model"] = {"activation": "relu", "layers": EXPLICIT}
    explicit = _only_spec(explicit_raw)
    assert layer_list.from_model(shorthand.run_config.model) == EXPLICIT
    assert explicit.key == shorthand.key  # one run, however it is written
    written = copy.deepcopy(explicit_raw)
    written["model"]["layers"][3]["rate"] = 0.25  # no shorthand says this: the list is kept
    (other,) = expand(written, source="own.toml").runs
    assert other.config["model"]["layers"][3] == {"layer": "dropout", "rate": 0.25}
    # The builder reads the written-out list as it reads the shorthands' expansion.
    listed = dataclasses.replace(shorthand, run_config=RunConfig.model_validate(
        {**shorthand.config, "model": {"activation": "relu", "layers": EXPLICIT}}))
    assert listed.run_config.model.layers == EXPLICIT
    a, b = train_run(shorthand), train_run(listed)
    assert a.status == b.status == "finished", (a.error, b.error)
    assert a.metrics == b.metrics
    assert [dict(r, time=0) for r in a.history] == [dict(r, time=0) for r in b.history]


def test_a_layer_list_refuses_shorthands_and_unknown_layers():
    raw = _study(hidden=[8])
    raw["model"]["layers"] = [{"layer": "affine", "units": 8}]
    assert "give either layers or the shorthands" in _problems(raw)
    raw = _study()
    raw["model"] = {"layers": [{"layer": "affine", "units": 8}, {"layer": "reul"}]}
    assert "model.layers: [1]: 'reul' is not a layer or activation; did you mean 'relu'?" in (
        _problems(raw))
    raw["model"] = {"layers": [{"layer": "affine"}]}
    assert "[0]: affine needs `units`" in _problems(raw)


def test_a_layer_registered_at_run_time_is_usable_with_no_engine_change():
    entry = registry.Component("layer", "scale_by", "tests.own_code.throwaway:ScaleBy")
    registry.register(entry)
    try:
        raw = _study()
        raw["model"] = {"layers": [{"layer": "affine", "units": 16}, {"layer": "relu"},
                                   {"layer": "scale_by", "factor": 0.5}]}
        raw["training"]["epochs"] = 5
        spec = _only_spec(raw)
        (scale,) = [l for l in _network(spec).layers if type(l).__name__ == "ScaleBy"]
        assert scale.factor == 0.5 and scale.name == "scale_by_1"
        record = train_run(spec)
        assert record.status == "finished" and record.metrics["val_accuracy"] > 0.3
    finally:
        registry.unregister("layer", "scale_by")


def test_own_components_by_import_path_train_in_a_study():
    raw = _study(activation="tests.own_code.throwaway:mish", activation_args={"beta": 1.0})
    raw["training"]["optimizer"] = "examples.lion:Lion"
    raw["training"].update(learning_rate=0.001, epochs=5)
    spec = _only_spec(raw)
    network = _network(spec)
    assert type(network.optimizer).__name__ == "Lion"
    assert [l.name for l in network.layers if l.name.startswith("activation")] == [
        "activation_1", "activation_2"]
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert record.metrics["val_accuracy"] > 0.3  # chance is 0.1


@pytest.mark.parametrize("name, message", [
    ("tests.own_code.nothere:Thing", "no module named 'tests.own_code.nothere'"),
    ("tests.own_code.throwaway:ScaleBi", "has no 'ScaleBi'; did you mean 'ScaleBy'?"),
    ("tests.own_code.throwaway:NotALayer", "must subclass keras.layers.Layer"),
    ("tests.own_code.throwaway:NoConfig", "get_config does not round-trip"),
])
def test_a_broken_own_layer_is_a_clear_message(name, message):
    raw = _study()
    raw["model"] = {"layers": [{"layer": "affine", "units": 8}, {"layer": name}]}
    assert message in _problems(raw)


def test_an_own_constructor_that_rejects_an_argument_is_named():
    raw = _study()
    raw["model"] = {"layers": [{"layer": "tests.own_code.throwaway:ScaleBy", "factr": 2}]}
    text = _problems(raw)
    assert "layers[0]: tests.own_code.throwaway:ScaleBy does not take 'factr'" in text
    raw["training"]["optimizer"] = "tests.own_code.throwaway:ScaleBy"
    assert "your own optimizer must subclass keras.optimizers.Optimizer" in _problems(raw)


def test_editing_an_own_component_changes_exactly_the_keys_of_its_runs(tmp_path, monkeypatch):
    package = tmp_path / "mine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "opt.py"
    source.write_text("import keras\n\nclass Plain(keras.optimizers.SGD):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = _study()
    raw["grid"] = {"optimizer": ["sgd", "mine.opt:Plain"]}
    from study.engine.studies import components

    before = {s.arm: s.key for s in expand(raw).runs}
    source.write_text("import keras\n\nclass Plain(keras.optimizers.SGD):\n    '''edited'''\n")
    components.source_fingerprint.cache_clear()
    after = {s.arm: s.key for s in expand(raw).runs}
    assert before["optimizer=sgd"] == after["optimizer=sgd"]
    assert before["optimizer=mine.opt:Plain"] != after["optimizer=mine.opt:Plain"]
