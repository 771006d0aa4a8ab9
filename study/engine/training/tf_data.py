"""tf.data pipelines as the engine builds them: untuned, and never rewritten.

tf.data autotunes a pipeline from a background thread that wakes up now and then; destroying
the pipeline's iterator waits for that thread. When both cores are busy (two workers), that
wait was ~1.2 s at the end of every `fit` with validation data, as long as the 2000 training
steps of an mnist_init run themselves (one worker pinned to one core: 2.67 s a fit with
autotuning, 1.3 s without). The engine's pipelines have nothing to tune - a map without
parallel calls and a fixed prefetch buffer, or batches of tensors already in memory - so the
elements, and every number trained from them, are the same without it: a full `make
experiments` stored the same 3,549 runs bit for bit (scripts/compare_databases.py) in 28 min 4 s
instead of 33 min 56 s, 55.0 instead of 66.9 minutes of worker time (2026-11-30).

Nor is a pipeline rewritten. The first iterator of a dataset "finalizes" it: if any graph
rewrite applies - tf.data's default static optimizations, or `make_deterministic`, which
TensorFlow adds whenever op determinism is on (`environment.enable_determinism`), whatever the
options say - the pipeline's graph is handed to Grappler with every tensor it holds or
captures as a placeholder, and Grappler fills a zero tensor of each placeholder's full shape.
For the training pipeline that is a second 157 MB of MNIST's training images (its map
captures the images' tensor, which shares the NumPy array's memory, `reuse.shared_tensor`),
allocated from TensorFlow's BFC allocator, which keeps the region for good: a worker's resident
memory grew by ~160 MB with its first single run on MNIST (tests/test_memory.py). So the
default optimizations are off, and `untuned` finalizes the dataset once with op determinism
switched off for that moment; TensorFlow keeps the finalized dataset, and every later
iterator (Keras's, each epoch, each evaluation) takes it as it is. The engine's pipelines have
nothing for either rewrite to change: `make_deterministic` turns parallel maps, interleaves
and the like into sequential ones, and they have none; the default rewrites would reorganise
how the same elements are made. Every number stays bit for bit the same (full studies'
databases compared with scripts/compare_databases.py, 2026-12-01).
"""

from __future__ import annotations


def untuned(dataset):
    """`dataset` with tf.data's autotuning and its static graph rewrites switched off, and
    finalized without the `make_deterministic` rewrite (see the module's docstring)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    dataset = dataset.with_options(options)
    _finalize_without_rewrites(dataset)
    return dataset


def _finalize_without_rewrites(dataset) -> None:
    """Make (and drop) one iterator of `dataset` with op determinism off, so that TensorFlow
    finalizes it without a graph rewrite; it keeps that finalized dataset for later iterators.
    Making an iterator reads no element: the pipeline starts at its first `next`."""
    from tensorflow.python.framework import config  # no public switch to turn it off

    if not config.is_op_determinism_enabled():
        iter(dataset)
        return
    config.disable_op_determinism()
    try:
        iter(dataset)
    finally:
        config.enable_op_determinism()
