"""A run gives back what it allocated, and a worker holds each thing it keeps once.

TensorFlow's gradient registry keeps every `CustomGradient-<uid>` function a trace registers,
and each holds its graph (tensorflow/tensorflow#97697); a worker of a long grid grew with
every run until `study.memory` dropped them. These tests fail if the purge is removed, if the
first run's model is frozen out of the collector for good (`memory`), if a tf.data pipeline
makes a copy of the tensors it captures (`tf_data`), or if two
MNIST datasets of one process hold the same images twice (`mnist_images`).
"""

import gc
import weakref

import keras
import numpy as np
import pytest

from study import mnist_images
from study.engine.training import memory, reuse
from study.engine.studies import expand
from study.engine.training.run import train_run

XOR = {
    "name": "memory", "seeds": 1, "data": {"dataset": "xor"},
    "model": {"hidden": [5, 4], "activation": "sigmoid"},
    "training": {"optimizer": "adam", "learning_rate": 0.05, "batch_size": 4, "steps": 20,
                 "log_every": 10, "loss": "binary_cross_entropy"},
}

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the gradient registry is TensorFlow's")


def _live_graphs() -> int:
    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def _spec(hidden):
    (spec,) = expand({**XOR, "model": {**XOR["model"], "hidden": hidden}}).runs
    return spec


def test_a_run_leaves_no_gradient_functions_and_no_graphs_behind():
    registry = memory._gradient_registry()
    assert train_run(_spec([5, 4])).status == "finished"  # warm-up: module traces, the freeze
    # The worker keeps the last run's model, traced functions and all (`reuse`): measured with
    # one such model alive, after a run past the freeze.
    assert train_run(_spec([6, 3])).status == "finished"
    names, graphs = memory._custom_gradient_names(registry), _live_graphs()
    # Each a network of its own, so each traces (a worker's kept model would trace nothing,
    # and then there would be nothing to purge) and replaces the kept one.
    for hidden in ([3, 6], [4, 4]):
        assert train_run(_spec(hidden)).status == "finished"
    assert memory._custom_gradient_names(registry) == names
    assert _live_graphs() == graphs


def test_without_the_purge_the_registry_grows():
    # The control: the same run outside released_after_run leaves its entries (and graphs).
    (spec,) = expand(XOR).runs
    reuse.clear()  # a kept model of this configuration would trace nothing
    registry = memory._gradient_registry()
    before = memory._custom_gradient_names(registry)
    from study.engine.training.run import blank_record, train_config

    train_config(spec.run_config, spec.seed, None, blank_record(spec))
    added = memory._custom_gradient_names(registry) - before
    assert added
    for name in added:  # leave the registry as the test found it
        del registry[name]
    keras.utils.clear_session(free_memory=True)


def test_a_workers_tensor_of_an_aligned_array_shares_its_memory():
    # MNIST's splits are made on 64-byte boundaries (mnist_images.aligned_empty) so that a worker
    # holds the 157 MB of training images once, not twice (reuse.shared_tensor).
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow tensors")
    from study import data

    x = mnist_images.aligned_empty((300, 784), np.float32)
    assert x.ctypes.data % mnist_images.ALIGNMENT == 0 and x.flags.c_contiguous
    x[...] = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    x.flags.writeable = False  # as reuse.dataset leaves it
    tensor = reuse.shared_tensor(x)
    np.testing.assert_array_equal(tensor.numpy(), x)
    assert not x.flags.writeable
    x.flags.writeable = True
    x[7, 5] = 42.0  # the tensor sees it: one buffer
    assert float(tensor[7, 5]) == 42.0
    # An array TensorFlow cannot hold as it is (here: off the boundary) is copied.
    unaligned = np.frombuffer(bytes(4 * 785), dtype=np.float32, offset=4)
    assert reuse.shared_tensor(unaligned) is None
    np.testing.assert_array_equal(reuse.tensor(unaligned).numpy(), unaligned)


def test_mnist_splits_are_aligned_and_the_values_they_were():
    from study import data

    mnist = data.mnist(300)
    for split in (mnist.train, mnist.validation, mnist.test):
        assert split.x.ctypes.data % mnist_images.ALIGNMENT == 0 and split.x.dtype == np.float32
    raw = np.load(data.mnist_file())
    expected = raw["x_train"][:300].reshape(300, 784).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(mnist.train.x, expected)


def _traced() -> set[str]:
    from tensorflow.python.eager import context

    return {n for n in context.context().list_function_names() if not n.startswith("__wrapped")}


def test_the_first_runs_model_is_freed_when_another_shape_replaces_it(monkeypatch):
    # The objects alive before a worker's first run are frozen out of the collector; frozen
    # after it, they took the run's kept model (reference cycles: never freed) with them.
    monkeypatch.setattr(memory, "_frozen", False)  # as in a fresh worker
    reuse.clear()
    before = _traced()
    assert train_run(_spec([7, 2])).status == "finished"
    first = _traced() - before
    assert first  # its traced functions, alive while the worker keeps its model
    assert train_run(_spec([2, 7])).status == "finished"  # another graph replaces the model
    assert not first & _traced()


def _grown(make) -> tuple[int, object]:
    """How far TensorFlow's CPU allocator's peak rose above its use while `make()` ran."""
    import tensorflow as tf

    tf.config.experimental.reset_memory_stats("CPU:0")
    start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    value = make()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - start, value


def test_the_engines_pipelines_make_no_copy_of_their_images():
    # Under op determinism a pipeline's first iterator rewrote it (make_deterministic), and for
    # that Grappler filled a zero tensor as large as every tensor the pipeline captures: the
    # training images, 157 MB of MNIST, which TensorFlow's allocator then kept (`tf_data`).
    # The evaluation batches too (their slices of the tensors, a copy for the rewrite).
    from study.engine.training import batches
    from study.engine.training.environment import enable_determinism

    enable_determinism()
    rng = np.random.default_rng(0)
    x = mnist_images.aligned_empty((4000, 784), np.float32)
    x[...] = rng.random(x.shape, dtype=np.float32)
    y = rng.integers(0, 10, 4000).astype(np.int32)
    x.flags.writeable = y.flags.writeable = False  # as reuse.dataset leaves them

    grown, (images, labels) = _grown(lambda: next(iter(
        batches.training_batches(x, y, 100, 3, seed=0))))
    assert grown < x.nbytes / 4
    want_x, want_y = batches.Plan.make(4000, 100, 3, 0).batch(x, y, 0)
    np.testing.assert_array_equal(images.numpy(), want_x)
    np.testing.assert_array_equal(labels.numpy(), want_y)

    def score():  # the batches one after another, as `evaluate` takes them
        count = 0
        for images, labels in reuse.evaluation_batches(x, y, 3900, 250):
            np.testing.assert_array_equal(images.numpy(), x[count:count + len(labels)])
            np.testing.assert_array_equal(labels.numpy(), y[count:count + len(labels)])
            count += len(labels)
        return count

    grown, count = _grown(score)
    assert count == 3900 and grown < x.nbytes / 4


def test_mnist_datasets_of_a_process_hold_their_images_once():
    # Datasets that differ in their target (digits, parity: one study's arms) share all their
    # images, any two share validation and test; held twice, output_and_loss's workers peaked
    # at ~1.5 GB. The memory goes with the last dataset that holds it.
    from study import data

    reuse.clear()  # a kept dataset of the same images would hold them too
    digits = data.mnist(321)
    parity = data.with_target(data.mnist(321), "parity")
    for ours, theirs in zip(digits.splits(), parity.splits()):
        assert np.shares_memory(ours.x, theirs.x)
    other = data.mnist(654, early_stopping_size=1000)
    assert np.shares_memory(other.validation.x, digits.validation.x)
    assert np.shares_memory(other.test.x, digits.test.x)
    assert not np.shares_memory(other.train.x, digits.train.x)  # other rows: its own
    sampled = data.mnist(321, subset_seed=3)
    assert not np.shares_memory(sampled.train.x, digits.train.x)
    for dataset in (digits, other, sampled):  # TensorFlow holds each split as it is
        for split in dataset.splits():
            assert reuse.shared_tensor(split.x) is not None
    held = weakref.ref(digits.train.x.base)
    del digits, parity
    gc.collect()
    assert held() is None
