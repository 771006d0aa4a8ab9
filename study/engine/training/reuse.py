"""What a worker keeps from one run to the next, so that a run costs its training and little more.

A 2000-step mnist_init run took 4.7 s of which its steps were 2.0 s (measured with one thread);
the rest was building, tracing and feeding: Keras traced the train and test functions of every
new model again (~0.7 s), each run turned the 50,000 training images into a new tensor
(~0.15 s), and every evaluation converted its NumPy arrays into a new dataset (~30 ms of each of
the run's 13 evaluations). A worker now keeps, per process:

1. `dataset`: the last few datasets it loaded, so the runs of one configuration share arrays;
2. `tensor` and `evaluation_batches`: a tensor per array and a batched dataset per evaluated
   split, built once;
3. `compiled_model`: the last compiled model of each configuration. The next run of the same
   graph (the next seed of an arm, an ensemble's next member, another initializer, learning
   rate or penalty factor: `graph_key`) gets it back with every variable - weights,
   batch-norm statistics, dropout seed states, optimizer slots, iteration count and learning
   rate, penalty factors - set to the values a fresh build with its seed holds, so Keras's
   traced functions are called again instead of traced again.

None of this changes a number: the same graph computes the same steps on the same values, and
tests/test_reuse.py checks records bit for bit against fresh builds, also with dropout, batch
norm, Adam, schedules, early stopping and ensembles.
"""

from __future__ import annotations

import collections
from typing import Callable

import keras
import numpy as np

from study.engine.training import graph_key, tf_data

_MODELS = 1  # configurations whose compiled model is kept: a worker's runs come arm by arm
_DATASETS = 2
_models: collections.OrderedDict = collections.OrderedDict()
_datasets: collections.OrderedDict = collections.OrderedDict()
_tensors: dict[int, tuple[np.ndarray, object]] = {}
_batches: dict[tuple, object] = {}


def compiled_model(key: str, build: Callable[[], "Compiled"]) -> "Compiled":  # noqa: F821
    """`build()`'s model in its initial state, on the traced functions of the last model built
    for `key` (`graph_key`: everything `build` depends on but the values of variables)."""
    fresh = build()
    kept = _models.get(key)
    if kept is None or not _restore(kept, fresh):
        graph_key.hold_factors_in_variables(fresh.model)  # before its first trace
        _remember(_models, key, fresh, _MODELS)
        return fresh
    _models.move_to_end(key)
    return kept


def _restore(kept, fresh) -> bool:
    """Set every variable of `kept` (model and optimizer) to `fresh`'s; False if they differ in
    structure (then `fresh` is used as it is)."""
    if not kept.optimizer.built:
        return False  # never trained: nothing traced to reuse
    fresh.optimizer.build(fresh.model.trainable_variables)
    targets = kept.model.variables + kept.optimizer.variables
    sources = fresh.model.variables + fresh.optimizer.variables
    if len(targets) != len(sources) or any(
            t.shape != s.shape or t.dtype != s.dtype for t, s in zip(targets, sources)):
        return False
    if not graph_key.take_factors(kept.model, fresh.model):
        return False
    for target, source in zip(targets, sources):
        target.assign(source.value)
    return True


def forget_models() -> None:
    """Drop the kept models (after a run that failed: its model's state is unknown)."""
    _models.clear()


def dataset(key: str, load: Callable[[], "Dataset"]) -> "Dataset":  # noqa: F821
    """`load()`, or what it returned last time for `key`; its arrays are made read-only, since
    later runs share them."""
    if key in _datasets:
        _datasets.move_to_end(key)
        return _datasets[key]
    value = load()
    for split in value.splits():
        split.x.flags.writeable = split.y.flags.writeable = False
    _remember(_datasets, key, value, _DATASETS)
    return value


def tensor(array: np.ndarray):
    """`array` as a TensorFlow tensor, converted once per array object; one that shares the
    array's memory when TensorFlow can (`shared_tensor`)."""
    import tensorflow as tf

    kept = _tensors.get(id(array))
    if kept is None or kept[0] is not array:
        _drop_stale()
        shared = shared_tensor(array)
        kept = _tensors[id(array)] = (array, tf.constant(array) if shared is None else shared)
    return kept[1]


def shared_tensor(array: np.ndarray):
    """A TensorFlow tensor over `array`'s own buffer (DLPack, no copy), or None when
    TensorFlow cannot hold it as it is: not C-contiguous, or not on a 64-byte boundary
    (`mnist_images` makes MNIST's arrays so). `tf.constant` would copy it, and passes
    through a second transient copy: ~320 MB more at the peak for MNIST's training images.
    TensorFlow never writes into an input tensor, so a read-only array is lent as it is."""
    import tensorflow as tf

    if (not array.flags.c_contiguous or array.ctypes.data % 64
            or array.dtype not in (np.float32, np.int32, np.int64, np.uint8)):
        return None
    writeable = array.flags.writeable
    try:
        array.flags.writeable = True  # NumPy exports only writeable arrays by DLPack
    except ValueError:
        return None
    try:
        capsule = array.__dlpack__()
    finally:
        array.flags.writeable = writeable
    return tf.experimental.dlpack.from_dlpack(capsule)


def evaluation_batches(x: np.ndarray, y: np.ndarray, size: int, batch_size: int):
    """`(x[:size], y[:size])` in batches of `batch_size`, as a tf.data dataset built once: the
    batches `evaluate` makes of the arrays themselves, so the metrics are the same."""
    import tensorflow as tf

    key = (id(x), id(y), size, batch_size)
    kept = _batches.get(key)
    if kept is None or kept[0] is not x or kept[1] is not y:
        _drop_stale()
        data = tf.data.Dataset.from_tensor_slices((tensor(x)[:size], tensor(y)[:size]))
        kept = _batches[key] = (x, y, tf_data.untuned(data.batch(batch_size)))
    return kept[2]


def _drop_stale() -> None:
    """Forget the tensors and batches of arrays that no kept dataset holds any more."""
    alive = {id(a) for d in _datasets.values() for s in d.splits() for a in (s.x, s.y)}
    for key in [k for k, (array, _) in _tensors.items() if id(array) not in alive]:
        del _tensors[key]
    for key in [k for k, v in _batches.items() if id(v[0]) not in alive or id(v[1]) not in alive]:
        del _batches[key]


def _remember(cache: collections.OrderedDict, key, value, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def clear() -> None:
    """Forget everything kept (tests; a worker's memory between unrelated grids)."""
    _models.clear()
    _datasets.clear()
    _tensors.clear()
    _batches.clear()
    keras.utils.clear_session(free_memory=True)
