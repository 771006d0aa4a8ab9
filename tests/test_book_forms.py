"""The book's forms of AdaGrad, RMSProp, dropout and residual blocks, from a study file: the
options reach their components, the pre-activation shorthand expands (and folds back) without
an activation after its blocks, bad values are clear messages, and only runs with a residual
block changed key when the blocks began to seed their two kernels apart."""

import copy

import keras
import numpy as np
import pytest

from study import layers
from study.engine.studies import ConfigError, expand, layer_list
from study.engine.training import models
from study.engine.training.run import train_run
from tests.engine_fixtures import OPEN_MODEL

MNIST = OPEN_MODEL
PRE = {"preactivation": True}


def _study(layer_list_=None, training=None, **model):
    raw = copy.deepcopy(MNIST)
    raw["model"].update(model)
    if layer_list_ is not None:
        raw["model"] = {"activation": raw["model"]["activation"], "layers": layer_list_}
    raw["training"].update(training or {})
    return raw


def _only_spec(raw):
    (spec,) = expand(raw, source="book.toml").runs
    return spec


def _problems(raw):
    with pytest.raises(ConfigError) as caught:
        expand(raw, source="book.toml")
    return str(caught.value)


def test_preactivation_blocks_expand_with_no_activation_after_them():
    spec = _only_spec(_study(hidden=[16, 16, 16], activation="sigmoid", residual=True,
                             residual_args=PRE))
    assert layer_list.from_model(spec.run_config.model) == [
        {"layer": "affine", "units": 16}, {"layer": "sigmoid"},
        {"layer": "residual", **PRE}, {"layer": "residual", **PRE}]
    network = models.build(spec.run_config, (784,), 10, spec.seed).model
    names = [layer.name for layer in network.layers]
    assert names == ["inputs", "affine_1", "activation_1", "residual_2", "residual_3", "output"]
    blocks = [layer for layer in network.layers if isinstance(layer, layers.ResidualBlock)]
    assert [b.preactivation for b in blocks] == [True, True]
    assert all(type(b.activation_layer).__name__ == "Sigmoid" for b in blocks)
    # The default form keeps its activation after every block.
    post = _only_spec(_study(hidden=[16, 16, 16], activation="sigmoid", residual=True))
    assert [e["layer"] for e in layer_list.from_model(post.run_config.model)] == [
        "affine", "sigmoid", "residual", "sigmoid", "residual", "sigmoid"]


def test_a_written_out_preactivation_list_is_stored_and_keyed_as_its_shorthand():
    shorthand = _only_spec(_study(hidden=[16, 16, 16], residual=True, residual_args=PRE,
                                  batch_norm=True, dropout=0.2))
    entries = layer_list.from_model(shorthand.run_config.model)
    # batch_norm and dropout still follow each block; only the activation moved inside.
    assert [e["layer"] for e in entries] == ["affine", "batch_norm", "relu", "dropout",
                                             "residual", "batch_norm", "dropout",
                                             "residual", "batch_norm", "dropout"]
    written = _only_spec(_study(entries))
    assert written.key == shorthand.key
    assert written.config["model"]["residual_args"] == PRE
    assert written.config["model"].get("layers") is None
    # Pre-activation blocks followed by an activation are neither shorthand: the list is kept.
    mixed = [{"layer": "affine", "units": 16}, {"layer": "relu"},
             {"layer": "residual", **PRE}, {"layer": "relu"}]
    kept = _only_spec(_study(mixed))
    assert kept.config["model"]["layers"] == mixed
    # Default blocks without their activation are not the pre form either.
    bare = [{"layer": "affine", "units": 16}, {"layer": "relu"}, {"layer": "residual"}]
    assert _only_spec(_study(bare)).config["model"]["layers"] == bare


def test_the_book_options_reach_their_components():
    spec = _only_spec(_study(dropout=0.2, dropout_args={"inverted": False},
                             training={"optimizer": "adagrad", "learning_rate": 0.01,
                                       "optimizer_args": {"epsilon_outside_root": True,
                                                          "initial_accumulator_value": 0.0}}))
    compiled = models.build(spec.run_config, (784,), 10, spec.seed)
    assert compiled.optimizer.epsilon_outside_root is True
    dropouts = [l for l in compiled.model.layers if isinstance(l, layers.Dropout)]
    assert [d.inverted for d in dropouts] == [False, False]
    rmsprop = _only_spec(_study(training={"optimizer": "rmsprop",
                                          "optimizer_args": {"epsilon_outside_root": True}}))
    assert models.make_optimizer(rmsprop.run_config.training).epsilon_outside_root is True


@pytest.mark.parametrize(("model", "training", "message"), [
    ({}, {"optimizer": "adagrad", "optimizer_args": {"epsilon_outside_root": "yes"}},
     "optimizer_args: adagrad: `epsilon_outside_root` must be true or false. "
     "Received: epsilon_outside_root='yes'"),
    ({}, {"optimizer": "sgd", "optimizer_args": {"epsilon_outside_root": True}},
     "optimizer_args: sgd does not take 'epsilon_outside_root'"),
    ({"dropout": 0.5, "dropout_args": {"inverted": 0}}, {},
     "dropout_args: dropout: `inverted` must be true or false; received inverted=0"),
    ({"residual": True, "residual_args": {"preactivation": "true"}}, {},
     "residual_args: residual: `preactivation` must be true or false; "
     "received preactivation='true'"),
])
def test_a_bad_book_option_is_a_clear_message(model, training, message):
    assert message in _problems(_study(training=training, **model))


def test_adagrad_names_the_option_among_what_it_takes():
    text = _problems(_study(training={"optimizer": "adagrad",
                                      "optimizer_args": {"epsilon_outside": True}}))
    assert "adagrad does not take 'epsilon_outside' (it takes: " in text
    assert "epsilon_outside_root" in text


def test_only_runs_with_a_residual_block_changed_key():
    """Keys from the engine before the blocks seeded their kernels apart (main at f9d5e71).
    A plain run, and one with inverted dropout, keep theirs; a residual run, shorthand or a
    list the shorthands cannot express, takes a new one (its W2 is a new draw)."""
    assert _only_spec(_study()).key == "914a7d234c552c2f"
    assert _only_spec(_study(dropout=0.2)).key == "ea562447aab27751"
    residual = _only_spec(_study(residual=True))
    listed = _only_spec(_study([{"layer": "affine", "units": 16}, {"layer": "relu"},
                                {"layer": "residual"}, {"layer": "tanh"}]))
    assert listed.config["model"]["layers"] is not None  # stays a list (tanh is not relu)
    assert residual.key != "16869e2ed58b0a94"
    assert listed.key != "07dd3a12eeea5c13"


def test_a_network_of_the_book_forms_trains():
    spec = _only_spec(_study(hidden=[32, 32, 32], residual=True, residual_args=PRE,
                             dropout=0.2, dropout_args={"inverted": False},
                             training={"optimizer": "rmsprop", "learning_rate": 0.01,
                                       "optimizer_args": {"rho": 0.99,
                                                          "epsilon_outside_root": True},
                                       "epochs": 3}))
    record = train_run(spec)
    assert record.status == "finished", record.error
    assert record.metrics["val_accuracy"] > 0.3  # chance is 0.1
    network = models.build(spec.run_config, (784,), 10, spec.seed).model
    block = network.get_layer("residual_2")
    kernels = [keras.ops.convert_to_numpy(k) for k in (block.inner_1.kernel,
                                                        block.inner_2.kernel)]
    assert not np.array_equal(*kernels)  # the engine's integer seed no longer gives W1 == W2
