"""The floor's micro-measurements: ms per run-step of the MNIST network trained without the
engine, from the barest compiled step up to Keras's `fit`, in one process.

What is timed (784-100x4-10 ReLU, He-normal, SGD lr 0.01, batch 128, sparse cross-entropy from
the logits, float32):

- `raw_call`: one `tf.function` step (GradientTape over the Keras layers, `optimizer.apply`) on
  a fixed batch, called from a Python loop: the compiled step plus one call's overhead.
- `raw_loop`: the same step K times in a `tf.range` loop inside one `tf.function`: no Python
  between steps, the floor of what one network's step costs here.
- `packed_R`: R networks stacked (weights (R, fan_in, fan_out), biases (R, fan_out)), one
  batched matmul per layer, each slice fed its own batch gathered from its own indices every
  step, loss = sum over slices of each slice's mean cross-entropy (so slice r's gradient is its
  network's own), SGD; the in-graph loop again, its time divided by R. The gather is timed with
  it (the raw step's batch is fixed), as a packed engine path would have to pay it.
- `fit_100`, `fit_1`: Keras `fit` (accuracy metric, as the engine compiles it) on a
  `tf.data` of in-memory tensors, `repeat().batch(128)`, steps_per_execution 100 and 1.

Everything is traced and warmed up first; then each repeat times every measurement once, in a
fresh random order, so a slow spell of the shared machine falls on all of them alike (as
`steps.measure` does). The part runs this module as a child process (`python -m
study.bench.floor_steps SPEC`) whose TensorFlow has one intra-op and one inter-op thread, what a
worker of `--jobs 2` gets on two cores; it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

BATCH = 128
HIDDEN = (100, 100, 100, 100)
CLASSES = 10
LEARNING_RATE = 0.01


def keras_network(seed: int = 0, hidden=HIDDEN, n_in: int = 784):
    """The Keras Sequential network (He-normal kernels seeded by `seed`, zero biases)."""
    import keras

    initializer = keras.initializers.HeNormal(seed=seed)
    layers = [keras.Input((n_in,))] + [keras.layers.Dense(n, "relu",
                                                          kernel_initializer=initializer)
                                       for n in hidden]
    return keras.Sequential(layers + [keras.layers.Dense(CLASSES,
                                                         kernel_initializer=initializer)])


def raw_steps(model, learning_rate: float = LEARNING_RATE):
    """(step(x, y), loop(x, y, k)): one compiled SGD step of `model`, and k of them in a
    `tf.range` loop inside one compiled function. Both return the last step's loss."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def body(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    @tf.function(jit_compile=False)
    def loop(x, y, k):
        loss = tf.constant(0.0)
        for _ in tf.range(k):
            loss = body(x, y)
        return loss

    return tf.function(body, jit_compile=False), loop


class PackedNetworks:
    """R networks as stacked variables: slice r of every weight is network r's."""

    def __init__(self, kernels: list[np.ndarray], biases: list[np.ndarray],
                 learning_rate: float = LEARNING_RATE):
        import keras
        import tensorflow as tf

        self.kernels = [tf.Variable(k, dtype=tf.float32) for k in kernels]
        self.biases = [tf.Variable(b, dtype=tf.float32) for b in biases]
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]
        self.optimizer = keras.optimizers.SGD(learning_rate)
        self.optimizer.build(self.variables)
        self.train = tf.function(self._train, jit_compile=False)

    @classmethod
    def he_normal(cls, networks: int, sizes=(784, *HIDDEN, CLASSES), seed: int = 0):
        """R networks, each with its own He-normal kernels (NumPy, seeded) and zero biases."""
        kernels = [np.stack([np.random.default_rng([seed, r, layer]).normal(
            0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)) for r in range(networks)])
            .astype(np.float32)
            for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
        biases = [np.zeros((networks, k.shape[2]), np.float32) for k in kernels]
        return cls(kernels, biases)

    def logits(self, x):
        """x: (R, batch, inputs) -> (R, batch, classes)."""
        import tensorflow as tf

        for layer, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            x = tf.matmul(x, kernel) + bias[:, None, :]
            if layer < len(self.kernels) - 1:
                x = tf.nn.relu(x)
        return x

    def _train(self, x_all, y_all, indices):
        """One SGD step per row of `indices` (steps, R, batch): slice r trains on the samples
        indices[s, r] of (x_all, y_all). Returns the last step's per-slice losses (R,)."""
        import tensorflow as tf

        losses = tf.zeros(self.kernels[0].shape[0])
        for step in tf.range(tf.shape(indices)[0]):
            x = tf.gather(x_all, indices[step])  # (R, batch, inputs)
            y = tf.gather(y_all, indices[step])  # (R, batch)
            with tf.GradientTape() as tape:
                losses = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=self.logits(x)), axis=1)
                total = tf.reduce_sum(losses)  # d total / d W_r = d loss_r / d W_r
            gradients = tape.gradient(total, self.variables)
            self.optimizer.apply(gradients, self.variables)
        return losses


def _fit_model(steps_per_execution: int, seed: int):
    import keras

    model = keras_network(seed)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


def largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def timers(x: np.ndarray, y: np.ndarray, *, steps: int, packs=(8, 11), fit: bool = True,
           seed: int = 0):
    """name -> (run(): times `steps` steps, run-steps per step): every measurement, warmed up.
    Without `packs` and `fit`, the raw steps alone."""
    import tensorflow as tf

    x_all, y_all = tf.constant(x, tf.float32), tf.constant(y.astype(np.int32))
    batch_x, batch_y = x_all[:BATCH], y_all[:BATCH]
    step, loop = raw_steps(keras_network(seed))
    k = tf.constant(steps)

    def raw_call():
        for _ in range(steps):
            loss = step(batch_x, batch_y)
        float(loss)  # the last step has run

    found = {"raw_call": (raw_call, 1), "raw_loop": (lambda: float(loop(batch_x, batch_y, k)), 1)}
    rng = np.random.default_rng([seed, 1])
    for networks in packs:
        packed = PackedNetworks.he_normal(networks, seed=seed)
        indices = tf.constant(rng.integers(len(x), size=(steps, networks, BATCH)), tf.int32)
        found[f"packed_{networks}"] = (
            lambda packed=packed, indices=indices: packed.train(x_all, y_all, indices).numpy(),
            networks)
    data = tf.data.Dataset.from_tensor_slices((x_all, y_all)).repeat().batch(
        BATCH, drop_remainder=True)
    fits = (("fit_100", largest_divisor(steps, 100)), ("fit_1", 1)) if fit else ()
    for name, per_execution in fits:
        model = _fit_model(per_execution, seed)
        found[name] = (lambda model=model: model.fit(data, steps_per_epoch=steps, epochs=1,
                                                     shuffle=False, verbose=0), 1)
    for run, _ in found.values():
        run()  # trace and warm up
    return found


def measure(x: np.ndarray, y: np.ndarray, *, repeats: int, steps: int, packs=(8, 11),
            fit: bool = True, seed: int = 0) -> list[dict]:
    """One row per (measurement, repeat): `ms_per_run_step`, interleaved in random order."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    found = timers(x, y, steps=steps, packs=packs, fit=fit, seed=seed)
    names = list(found)
    rng = np.random.default_rng(seed)
    rows = []
    for repeat in range(repeats):
        for index in rng.permutation(len(names)):
            run, per_step = found[names[index]]
            start = time.perf_counter()
            run()
            rows.append({"what": names[index], "repeat": repeat,
                         "ms_per_run_step": (time.perf_counter() - start) * 1000
                         / (steps * per_step)})
    order = {name: i for i, name in enumerate(names)}
    return sorted(rows, key=lambda row: (order[row["what"]], row["repeat"]))


def main(spec: dict) -> dict:
    from study import data

    mnist = data.mnist(spec["n_train"], data_dir=spec.get("data_dir"))
    rows = measure(mnist.train.x, mnist.train.y, repeats=spec["repeats"], steps=spec["steps"],
                   packs=tuple(spec["packs"]), fit=spec.get("fit", True))
    # TensorFlow reads these when it starts (tf.config's getters say 0, "not set", then).
    threads = {"intra_op": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
               "inter_op": os.environ.get("TF_NUM_INTEROP_THREADS", "default")}
    return {"rows": rows, "threads": threads,
            "fit_steps_per_execution": largest_divisor(spec["steps"], 100)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
