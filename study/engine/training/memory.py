"""Give back what a run allocated, so a worker's thousandth run costs what its first did.

Two things outlive a Keras run on TensorFlow unless removed:

1. TensorFlow's gradient registry. Each trace of a train step that goes through
   `tf.custom_gradient` (Keras's optimizer does, via the replica context's `all_reduce`)
   registers a gradient function named `CustomGradient-<uid>` in a global registry that is
   never emptied; the function's closure holds the traced FuncGraph, and with it ~1,000
   graph operations per run (tensorflow/tensorflow#97697; keras-team/tf-keras#898 proposes
   the same purge in `clear_session`). The registry entries are needed only while the step
   is being traced, so the ones a run added are dropped when it ends.
2. Reference cycles (model <-> trainer <-> data iterator) holding the run's tensors, among
   them a copy of the training array: without a collection a worker grew by ~170 MB per
   MNIST run. A full `gc.collect()` after each run frees them; the objects alive when the
   first run starts (TensorFlow's and Keras's modules, ~400,000) are frozen out of the
   collector (`gc.freeze`), so later collections scan only what runs made (~10 ms, not ~0.2 s
   growing to ~2 s as the registry leaked). Frozen before the first run, not after it: a
   frozen object is never collected, and after the first run the worker keeps its model or
   packed trainer (`reuse`, `packed_minibatch`), a web of reference cycles holding its traced
   graphs. Frozen, that first model stayed in memory for the worker's life after the next
   shape replaced it (tests/test_memory.py); at 20 layers, tens of MB.

The Keras session (its global state, and TensorFlow's cache of instantiated kernels) is cleared
only after a run that traced a new function. A run on a kept model traces nothing, and clearing
the kernel cache made its next call instantiate, and optimise, the traced train and test
functions again: ~0.2 s a run on mnist_hparam_search's network (a worker pinned to one core:
fit 0.40 s with the clear, 0.19 s without), more on deeper ones.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

import keras

_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"
_frozen = False


@contextlib.contextmanager
def released_after_run() -> Iterator[None]:
    """Run the body, then clear the gradient functions the body registered and the garbage
    it left, and, if it traced anything, the Keras session. The first time, freeze what is
    alive before the body."""
    _freeze_survivors_once()
    registry = _gradient_registry()
    before = _custom_gradient_names(registry)
    functions = _traced_function_names()
    try:
        yield
    finally:
        if _traced_function_names() - functions:
            keras.utils.clear_session(free_memory=False)
        for name in _custom_gradient_names(registry) - before:
            del registry[name]
        gc.collect()


def _gradient_registry() -> dict:
    """TensorFlow's global gradient registry, name -> entry ({} on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return {}
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry  # private: TensorFlow has no way to unregister


def _traced_function_names() -> set[str]:
    """The functions TensorFlow's eager context holds ({} on other backends): a run that
    traced nothing new (on a kept model: `reuse`) adds none."""
    if keras.backend.backend() != "tensorflow":
        return set()
    from tensorflow.python.eager import context

    return set(context.context().list_function_names())


def _custom_gradient_names(registry: dict) -> set[str]:
    return {name for name in registry if name.startswith(_CUSTOM_GRADIENT_PREFIX)}


def _freeze_survivors_once() -> None:
    """Before the process's first run: collect, then freeze what is left (modules, mostly)."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
