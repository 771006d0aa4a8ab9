"""tf.data pipelines as the engine builds them: with autotuning off.

tf.data autotunes a pipeline from a background thread that wakes up now and then; destroying
the pipeline's iterator waits for that thread. When both cores are busy (two workers), that
wait was ~1.2 s at the end of every `fit` with validation data, as long as the 2000 training
steps of an mnist_init run themselves (one worker pinned to one core: 2.67 s a fit with
autotuning, 1.3 s without). The engine's pipelines have nothing to tune - a map without
parallel calls and a fixed prefetch buffer, or batches of tensors already in memory - so the
elements, and every number trained from them, are the same without it: a full `make
experiments` stored the same 3,549 runs bit for bit (scripts/compare_databases.py) in 28 min 4 s
instead of 33 min 56 s, 55.0 instead of 66.9 minutes of worker time (2026-11-30).
"""

from __future__ import annotations


def untuned(dataset):
    """`dataset` with tf.data's autotuning switched off."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
