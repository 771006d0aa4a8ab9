"""Milliseconds per training step: each of our optimizers against its Keras built-in.

The network is the book's MNIST net (784-100x4-10, ReLU, He-normal weights), batch 128, the
same loss, metric and `steps_per_execution` as the engine, fed from an in-memory tf.data
pipeline over the first 10,000 training images; only the optimizer differs between the two
models of a pair. Every model is compiled and warmed up first (its traced functions exist), then
the timings are interleaved: each repeat times every model once, in a fresh random order, so a
slow spell of the shared machine falls on both sides of a pair alike. The ratio of a pair is
taken per repeat (ours / Keras's, timed minutes apart at most) and summarised by its median.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

BATCH = 128
HIDDEN = (100, 100, 100, 100)
STEPS_PER_EXECUTION = 100


def optimizer_pairs(learning_rate: float = 0.01) -> list[tuple[str, object, object]]:
    """(name, ours, Keras's) for every optimizer of the registry."""
    from study import registry

    return [(c.name, c.create(learning_rate=learning_rate), c.create_keras(learning_rate=learning_rate))
            for c in registry.COMPONENTS if c.kind == "optimizer"]


def _network(optimizer, seed: int = 0):
    import keras

    initializer = keras.initializers.HeNormal(seed=seed)
    layers = [keras.Input((784,))] + [keras.layers.Dense(n, "relu", kernel_initializer=initializer)
                                      for n in HIDDEN]
    model = keras.Sequential(layers + [keras.layers.Dense(10, kernel_initializer=initializer)])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=STEPS_PER_EXECUTION)
    return model


def measure(x: np.ndarray, y: np.ndarray, *, repeats: int, steps: int,
            seed: int = 0) -> pd.DataFrame:
    """One row per (optimizer, implementation, repeat): `ms_per_step` of `steps` steps."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # twelve models trace twelve functions: no retracing advice
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(BATCH, drop_remainder=True)
    models = {}
    for name, ours, theirs in optimizer_pairs():
        for implementation, optimizer in (("ours", ours), ("keras", theirs)):
            model = _network(optimizer)
            model.fit(data, steps_per_epoch=steps, epochs=1, shuffle=False,
                      verbose=0)  # trace and warm up
            models[name, implementation] = model
    keys = list(models)
    rng = np.random.default_rng(seed)
    rows = []
    for repeat in range(repeats):
        for index in rng.permutation(len(keys)):
            name, implementation = keys[index]
            start = time.perf_counter()
            models[keys[index]].fit(data, steps_per_epoch=steps, epochs=1, shuffle=False,
                                    verbose=0)
            rows.append({"optimizer": name, "implementation": implementation, "repeat": repeat,
                         "ms_per_step": (time.perf_counter() - start) * 1000 / steps})
    order = {key: i for i, key in enumerate(keys)}  # the registry's order, not the timing order
    rows.sort(key=lambda row: (order[row["optimizer"], row["implementation"]], row["repeat"]))
    return pd.DataFrame(rows)


def summarise(timings: pd.DataFrame, bar: float = 1.05) -> pd.DataFrame:
    """Per optimizer: median [quartiles] ms/step of each side and the per-repeat ratio."""
    rows = []
    for name, group in timings.groupby("optimizer", sort=False):
        side = {impl: g.set_index("repeat")["ms_per_step"]
                for impl, g in group.groupby("implementation")}
        ratio = (side["ours"] / side["keras"]).dropna()
        rows.append({
            "optimizer": name, "repeats": len(ratio),
            "ours_ms": _quartiles(side["ours"]), "keras_ms": _quartiles(side["keras"]),
            "ratio": _quartiles(ratio), "within_bar": bool(np.median(ratio) <= bar),
        })
    return pd.DataFrame(rows)


def _quartiles(values) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(median), float(q1), float(q3)
