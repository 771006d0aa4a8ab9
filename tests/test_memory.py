"""A run gives back what it allocated: nothing of its traced graphs outlives it.

TensorFlow's gradient registry keeps every `CustomGradient-<uid>` function a trace registers,
and each holds its graph (tensorflow/tensorflow#97697); a worker of a long grid grew with
every run until `study.memory` dropped them. These tests fail if the purge is removed.
"""

import gc

import keras
import numpy as np
import pytest

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
    # MNIST's splits are made on 64-byte boundaries (data.aligned_empty) so that a worker
    # holds the 157 MB of training images once, not twice (reuse.shared_tensor).
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow tensors")
    from study import data

    x = data.aligned_empty((300, 784), np.float32)
    assert x.ctypes.data % data.ALIGNMENT == 0 and x.flags.c_contiguous
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
        assert split.x.ctypes.data % data.ALIGNMENT == 0 and split.x.dtype == np.float32
    raw = np.load(data.mnist_file())
    expected = raw["x_train"][:300].reshape(300, 784).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(mnist.train.x, expected)
