"""Packed optimizer paths: the seeds of one `optimizer_path` configuration, walked by one loop.

A single walk (`tasks.optimizer_path`) is 150 updates of a two-weight Keras model; its ~0.27 s
is nearly all Keras's set-up (build, compile, `fit` with a batch of one and a callback per
batch), its arithmetic microseconds. So the seeds of one configuration (everything but the
seed equal) walk together in one compiled loop (`tf.range` over the updates): run r's point is
its own (2,) variable, started where its single walk starts (`tasks.path_start`), and each
update takes the gradient of sum_r f(x_r, y_r), which for run r's variable is its own
gradient (runs do not interact), and applies the run's optimizer to all the variables: the
update each run would get alone, as long as the optimizer treats variables and elements
apart. The registry's six and their Keras twins do, with every base argument but
`global_clipnorm` (one norm over all the variables, so over all the runs: such runs walk
alone, as do runs of own optimizers and of other `keras.*` ones, which this module cannot
vouch for; `clipnorm` clips each variable by its own norm, here each run's). Every run's point
after every update is recorded; afterwards each run keeps its walk up to its own stop
(`tasks.stop_index`, the single walk's rule: its first point outside the box or not finite,
on the functions that stop), so a run that leaves the box ends there while the others go on,
and `tasks.record_path` measures it exactly as a single walk is measured.

Exactness (tests/test_packed_paths.py): a packed run's record is its single walk's, bit for
bit, on every function, Rastrigin's cos included. That takes two things that one stacked
(R, 2) variable lacks. (1) Each run has its own (2,) variable and scalar ops, the single
walk's shapes: TensorFlow's element-wise kernels round an element by its place in a buffer
(vectorised packets or the scalar tail), and its graph optimizer turns AdaGrad's and RMSProp's
`g / sqrt(h)` into `g * rsqrt(h)`, whose packets round differently (measured with an (R, 2)
variable: Rosenbrock, AdaGrad at 1, 8.6e-7 off in x; RMSProp at 1, 3.9 off once the walk's
chaos had amplified the last bit). (2) Each run's ops are built in a name scope of their own,
so that they are named as in a single walk relative to their scope: the graph optimizer's
rewrites depend on the ops' names, and without the scopes the fourth of four runs on Beale
rounded its first update differently (seed 3 of every Beale arm of optimizer_landscapes).
So a run's numbers do not depend on its pack, and a lone run needs no copy beside it (the XOR
pack needs one, for its batched matmul's kernel for a batch of one); packs are still all the
seeds of one configuration (`packed.packs`).
A packed run's `wall_time` is its share of the pack's time.
"""

from __future__ import annotations

import keras
import numpy as np

from study import registry
from study.engine.results.store import RunRecord
from study.engine.studies import components
from study.engine.studies.expansion import RunSpec
from study.engine.training import models
from study.engine.training.environment import enable_determinism
from study.engine.training.run import train_run, train_together
from study.engine.training.tasks import path_start, path_stops, record_path, stop_index
from study.surfaces import SURFACES

# Element-wise update rules: the registry's six (ours or, as "keras.<name>", Keras's own).
ELEMENT_WISE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
# Optimizer arguments that couple the runs: one norm over all the variables, so all the runs.
# (`clipnorm` clips each variable by its own norm, so each run's (2,) by its own, as alone.)
COUPLING_OPTIMIZER_ARGS = ("global_clipnorm",)


def packable(spec: RunSpec) -> bool:
    """Can this run walk in a pack? An optimizer path on TensorFlow, with one of the
    registry's optimizers (ours or its `keras.` twin), without global norm clipping."""
    c = spec.run_config
    if c.task != "optimizer_path" or keras.backend.backend() != "tensorflow":
        return False
    t = c.training
    return (t.optimizer.removeprefix(registry.KERAS_PREFIX) in ELEMENT_WISE_OPTIMIZERS
            and not components.fingerprints(spec.config)
            and not any(t.optimizer_args.get(k) for k in COUPLING_OPTIMIZER_ARGS))


def train_pack(specs: list[RunSpec], data_dir=None) -> list[RunRecord]:
    """Walk the runs of one configuration together; one record each, in the order given."""
    return train_together(specs, lambda records, start: walk_pack(specs, records),
                          lambda spec: train_run(spec, data_dir))


def walk_pack(specs: list[RunSpec], records: list[RunRecord]) -> np.ndarray:
    """Fill the records; return every row's points, (steps + 1, R, 2) float32 (tests)."""
    import tensorflow as tf

    config = specs[0].run_config
    enable_determinism()
    t = config.training
    value = SURFACES[config.data.dataset].value
    starts = np.stack([path_start(spec.run_config, spec.seed) for spec in specs])
    # One (2,) variable per run, the single walk's shape: TensorFlow's element-wise kernels
    # round an element by its place in a buffer (vectorised packets or the scalar tail), so a
    # run's numbers match its single walk's only if every tensor it touches is shaped as there.
    points_of = [keras.Variable(start, dtype="float32", name="xy") for start in starts]
    optimizer = models.make_optimizer(t)
    optimizer.build(points_of)

    @tf.function(jit_compile=False)
    def walk(steps):
        points = tf.TensorArray(tf.float32, size=steps)
        for step in tf.range(steps):
            with tf.GradientTape() as tape:
                values = []
                for index, xy in enumerate(points_of):
                    with tf.name_scope(f"run{index}"):
                        values.append(value(xy[0], xy[1], keras.ops))
            # The gradient of sum_r f_r, each run's own (not of the mean, which would scale
            # every update by 1 / R), taken from the f_r themselves, each seeded with 1 as a
            # single walk's loss is.
            optimizer.apply(tape.gradient(values, points_of), points_of)
            points = points.write(step, tf.stack([tf.convert_to_tensor(xy)
                                                  for xy in points_of]))
        return points.stack()

    points = np.concatenate([starts[None], walk(tf.constant(t.steps)).numpy()])
    for index, record in enumerate(records):
        path = points[:, index]
        if path_stops(config) and (stop := stop_index(path)) is not None:
            path = path[:stop + 1]  # the single walk stops after recording this point
        record_path(config, path.tolist(), record)
    return points
