"""The floor's micro-measurements: ms per run-step of the MNIST network trained without the
engine, from the barest compiled step up to Keras's `fit`, in one process.

What is timed (784-100x4-10 ReLU, He-normal, SGD lr 0.01, batch 128, sparse cross-entropy from
the logits, float32):

- `raw_call`: one `tf.function` step (GradientTape over the Keras layers, `optimizer.apply`) on
  a fixed batch, called from a Python loop: the compiled step plus one call's overhead.
- `raw_loop`: the same step K times in a `tf.range` loop inside one `tf.function`: no Python
  between steps, the floor of what one network's step costs here.
- `packed_R`: the engine's packed trainer (`packed_minibatch.Trainer`: R networks stacked,
  weights (R, fan_in, fan_out), one batched matmul per layer, each slice fed its own seed's
  batch every step, draws with replacement as mnist_init's) running `steps` steps in its
  compiled loop, its time divided by R. Each step's gather of the R batches, and the epoch's
  running loss and accuracy, are timed with it (the raw step's batch is fixed).
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


def network_runs(seeds: int, steps: int, initializers=("he_normal",)):
    """The run specs of the network as the engine trains it (draws with replacement, as
    mnist_init's), seeds 0..seeds-1, an arm per initializer (one model shape)."""
    from study.engine.studies import expand

    return expand({
        "name": "bench_floor", "seeds": list(range(seeds)), "data": {"dataset": "mnist"},
        "model": {"hidden": list(HIDDEN), "activation": "relu"},
        "training": {"optimizer": "sgd", "learning_rate": LEARNING_RATE, "batch_size": BATCH,
                     "steps": steps, "loss": "cross_entropy", "sampling": "with_replacement"},
        "grid": {"initializer": list(initializers)},
    }, light=True).runs


def engine_pack(networks: int, n_train: int, steps: int):
    """The engine's packed trainer (`packed_minibatch.Trainer`) of the network for seeds
    0..networks-1, and their stacked batch plans of `steps` steps over `n_train` images."""
    from study.engine.training import packed_minibatch

    specs = network_runs(networks, steps)
    trainer = packed_minibatch.Trainer(specs[0].run_config, [s.seed for s in specs], 784,
                                       CLASSES)
    return trainer, packed_minibatch.stacked_plans(specs, n_train)


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
    for networks in packs:
        trainer, plan = engine_pack(networks, len(x), steps)
        found[f"packed_{networks}"] = (
            lambda trainer=trainer, plan=plan: trainer.train_epoch(
                (x_all, y_all), plan, 0, steps)[0].numpy(), networks)
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


def arm_start_up_seconds(networks: int, n_train: int, steps: int, repeats: int) -> float:
    """Median seconds an arm's pack takes to start on a worker that has trained its shape:
    `packed_minibatch.trainer` (a fresh build of the arm's initial state copied into the kept
    trainer: weights, optimizer slots, rate) and the seeds' batch plans, for arms that differ
    in their initializer, taken in turn."""
    from study.engine.training import packed_minibatch

    specs = network_runs(networks, steps, ["he_normal", "glorot_normal"])
    arms = [[s for s in specs if s.arm == arm] for arm in dict.fromkeys(s.arm for s in specs)]
    packed_minibatch.forget()
    packed_minibatch.trainer(arms[1], 784, CLASSES)  # the kept trainer of the shape
    times = []
    for repeat in range(max(repeats, 2)):
        arm = arms[repeat % 2]
        start = time.perf_counter()
        packed_minibatch.trainer(arm, 784, CLASSES)
        packed_minibatch.stacked_plans(arm, n_train)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(spec: dict) -> dict:
    from study import data

    mnist = data.mnist(spec["n_train"], data_dir=spec.get("data_dir"))
    rows = measure(mnist.train.x, mnist.train.y, repeats=spec["repeats"], steps=spec["steps"],
                   packs=tuple(spec["packs"]), fit=spec.get("fit", True))
    # TensorFlow reads these when it starts (tf.config's getters say 0, "not set", then).
    threads = {"intra_op": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
               "inter_op": os.environ.get("TF_NUM_INTEROP_THREADS", "default")}
    result = {"rows": rows, "threads": threads,
              "fit_steps_per_execution": largest_divisor(spec["steps"], 100)}
    if spec.get("start_up"):
        result["arm_start_up_s"] = arm_start_up_seconds(
            spec["start_up"], len(mnist.train.x), spec.get("start_up_steps", 2000),
            spec["repeats"])
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
