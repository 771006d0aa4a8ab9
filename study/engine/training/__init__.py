"""A run -> a record, inside a worker.

    run          train_run: one run's flow, never raising (failed / diverged records)
    datasets     the run's data, shared across a worker's runs
    models       the Keras network from the run's layer list, loss, optimizer
    batches      the seeded batch plan, augmentation shifts, the tf.data pipeline
    tf_data      the engine's tf.data pipelines: no autotuning (~1 s a run), no rewrites (a copy)
    fit          fit on the plan, history rows, final metrics
    probes       gradient norms per layer, decision boundaries, accuracy gap
    ensemble     members trained one after another, scored by their mean prediction
    tasks        activation histograms and optimizer paths (no classifier training)
    packed       work units: which runs pack together (kinds of pack), their model shape
                 (routing), and the seeds of a small full-batch XOR arm in one compiled loop
    packed_minibatch  the seeds of an MNIST arm as one stacked model, each its own batches
    packed_paths the seeds of an optimizer path walked in one compiled loop
    stacked      the networks of several runs as one (weights stacked on a run axis)
    reuse        what a worker keeps between runs (compiled models, datasets, tensors)
    graph_key    which runs share a traced model (initializer, learning rate, L1/L2 factor aside)
    memory       what a run gives back when it ends
    environment  versions, CPU, determinism, error descriptions
"""
