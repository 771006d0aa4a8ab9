"""Every component in one model: saved to .keras, loaded in a new Python process with
safe_mode=True (importing only `study`), predicts exactly the same; the optimizer state too."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras

from study import activations, constraints, initializers, layers, regularizers
from study.registry import COMPONENTS, lookup

OPTIMIZERS = [c for c in COMPONENTS if c.kind == "optimizer"]
# Each registered optimizer, and the book's options (no Keras twin): (file name, entry, arguments).
BOOK_OPTIMIZER_ARGUMENTS = {
    "adagrad": {"epsilon_outside_root": True, "initial_accumulator_value": 0.0},
    "rmsprop": {"epsilon_outside_root": True, "rho": 0.99}}
OPTIMIZER_CASES = [(c.name, c, {}) for c in OPTIMIZERS] + [
    (f"{name}-book", lookup("optimizer", name), args)
    for name, args in BOOK_OPTIMIZER_ARGUMENTS.items()]
INITIALIZERS = [c for c in COMPONENTS if c.kind == "initializer"]
ACTIVATION_LAYERS = [c for c in COMPONENTS if c.kind == "activation"]


def _every_component_model(seed):
    """A model that holds every layer, activation, initializer, regularizer and constraint."""
    inputs = keras.Input((12,))
    x = inputs
    for k, init in enumerate(INITIALIZERS):
        kwargs = {"seed": seed + k} if "seed" in inspect.signature(init.factory).parameters else {}
        if init.name == "constant":
            kwargs = {"value": 0.05}
        x = layers.Affine(12, kernel_initializer=init.create(**kwargs),
                          kernel_regularizer=[regularizers.L1(1e-4), regularizers.L2(1e-4),
                                              regularizers.ElasticNet(1e-5, 1e-5)][k % 3],
                          kernel_constraint=constraints.MaxNorm(3.0) if k % 2 else None,
                          name=f"affine_{init.name}")(x)
        activation = ACTIVATION_LAYERS[k % len(ACTIVATION_LAYERS)]
        if activation.name not in ("step", "softmax"):  # keep gradients alive through the stack
            x = activation.create(name=f"act_{k}")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.2, seed=seed)(x)
    x = layers.ResidualBlock(activation="prelu")(x)
    x = layers.Dropout(0.2, seed=seed + 1, inverted=False)(x)  # the book's: x 0.8 at inference
    x = layers.ResidualBlock(activation="prelu", preactivation=True)(x)
    x = layers.Affine(12, activation=activations.swish)(x)
    side = layers.Step()(layers.Affine(4, activation=activations.tanh)(x))
    x = layers.Softmax()(layers.Affine(3)(keras.layers.Concatenate()([x, side])))
    return keras.Model(inputs, x)


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 12)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")


def test_every_component_round_trips_through_a_keras_file_in_a_new_process(tmp_path):
    x, y = _data()
    expected = {}
    for k, (name, optimizer, arguments) in enumerate(OPTIMIZER_CASES):
        model = _every_component_model(seed=10 * k)
        model.compile(optimizer=optimizer.create(learning_rate=0.01, **arguments),
                      loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)  # 8 steps: optimizer state is non-trivial
        path = tmp_path / f"{name}.keras"
        model.save(path)
        expected[name] = {
            "prediction": model.predict(x, verbose=0),
            "optimizer": {v.path: keras.ops.convert_to_numpy(v) for v in model.optimizer.variables},
            "arguments": arguments,
        }

    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import keras
        import study  # registers the components; nothing else is passed to load_model
        out = {{}}
        for name in {json.dumps(list(expected))}:
            model = keras.saving.load_model({str(tmp_path)!r} + f"/{{name}}.keras", safe_mode=True)
            out[name + ".prediction"] = model.predict(np.load({str(tmp_path)!r} + "/x.npy"), verbose=0)
            out[name + ".class"] = np.array(type(model.optimizer).__module__ + "." +
                                            type(model.optimizer).__name__)
            out[name + ".config"] = np.array(json.dumps(model.optimizer.get_config(),
                                                        default=repr))
            for v in model.optimizer.variables:
                out[name + ".opt." + v.path] = keras.ops.convert_to_numpy(v)
        np.savez({str(tmp_path)!r} + "/loaded.npz", **out)
    """)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    loaded = np.load(tmp_path / "loaded.npz")
    for name, want in expected.items():
        # Same weights, same float ops, same process kind: predictions are bit-identical.
        np.testing.assert_array_equal(loaded[name + ".prediction"], want["prediction"])
        assert str(loaded[name + ".class"]).startswith("study.optimizers.")
        config = json.loads(str(loaded[name + ".config"]))
        assert {k: config[k] for k in want["arguments"]} == want["arguments"], name
        for path, value in want["optimizer"].items():
            np.testing.assert_array_equal(loaded[name + ".opt." + path], value, err_msg=path)


@pytest.mark.parametrize("component", [c for c in COMPONENTS], ids=lambda c: f"{c.kind}:{c.name}")
def test_every_registered_component_has_a_complete_config(component):
    """get_config -> from_config gives an object with the same config, for every entry."""
    kwargs = {"units": 3} if component.name == "affine" else {}
    if component.name == "dropout":
        kwargs = {"rate": 0.3}
    obj = component.create(**kwargs)
    config = obj.get_config()
    json.dumps(keras.saving.serialize_keras_object(obj))  # plain JSON, as a .keras file needs
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(type(obj)) == f"study>{type(obj).__name__}"
