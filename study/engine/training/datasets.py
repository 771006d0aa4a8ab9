"""The data of a run, shared with the worker's other runs of the same data (`reuse`)."""

from __future__ import annotations

from study import data as datasets
from study.engine.studies.run_schema import RunConfig
from study.engine.training import reuse


def load_dataset(config: RunConfig, seed: int, data_dir=None) -> datasets.Dataset:
    """The run's data, shared with the worker's other runs of the same data (`reuse`)."""
    d = config.data
    key = repr((d.model_dump_json(), seed if d.subset == "random" else None, str(data_dir)))
    return reuse.dataset(key, lambda: _load_dataset(d, seed, data_dir))


def _load_dataset(d, seed: int, data_dir) -> datasets.Dataset:
    if d.dataset == "xor":
        return datasets.xor()
    if d.dataset == "xor_cloud":
        # The cloud is part of the problem, not of the seed: every seed sees the same points.
        return datasets.xor_cloud(d.cloud_points, d.cloud_noise, seed=0)
    mnist = datasets.mnist(d.n_train, subset_seed=seed if d.subset == "random" else None,
                           data_dir=data_dir)
    return datasets.with_target(mnist, d.target)
