"""The data of a run, shared with the worker's other runs of the same data (`reuse`)."""

from __future__ import annotations

from study import data as datasets
from study.engine.studies.run_schema import RunConfig
from study.engine.training import reuse


def load_dataset(config: RunConfig, seed: int, data_dir=None) -> datasets.Dataset:
    """The run's data, shared with the worker's other runs of the same data (`reuse`), with
    the early-stopping split when `training.early_stopping.split` asks for one."""
    d = config.data
    stopping = early_stopping_size(config)
    # The split's size is part of the key: runs with and without a split hold other datasets.
    key = repr((d.model_dump_json(), seed if d.subset == "random" else None, str(data_dir),
                stopping))
    return reuse.dataset(key, lambda: _load_dataset(d, seed, data_dir, stopping))


def early_stopping_size(config: RunConfig) -> int | None:
    """The size of the run's early-stopping split, None when early stopping has none."""
    es = config.training.early_stopping if config.training is not None else None
    return None if es is None else es.split


def _load_dataset(d, seed: int, data_dir, stopping: int | None) -> datasets.Dataset:
    if d.dataset == "xor":
        return datasets.xor()
    if d.dataset == "xor_cloud":
        # The cloud is part of the problem, not of the seed: every seed sees the same points.
        return datasets.xor_cloud(d.cloud_points, d.cloud_noise, seed=0)
    mnist = datasets.mnist(d.n_train, subset_seed=seed if d.subset == "random" else None,
                           data_dir=data_dir, early_stopping_size=stopping)
    return datasets.with_target(mnist, d.target)
