"""The data of a run, shared with the worker's other runs of the same data (`reuse`)."""

from __future__ import annotations

from study import data as datasets
from study import own_data, own_splits
from study.engine.studies import data_files
from study.engine.studies.run_schema import OWN_DATASETS, RunConfig
from study.engine.training import reuse


def load_dataset(config: RunConfig, seed: int, data_dir=None) -> datasets.Dataset:
    """The run's data, shared with the worker's other runs of the same data (`reuse`), with
    the early-stopping split when `training.early_stopping.split` asks for one."""
    d = config.data
    stopping = early_stopping_size(config)
    # The split's size is part of the key: runs with and without a split hold other datasets.
    # Own data: the validation rows are drawn by the seed, and an edited file is another
    # dataset (its fingerprint: a stat, the hash cached per version of the file). MNIST needs
    # none here: `changed_data` has checked the file against the run's key before it loads.
    own = d.dataset in OWN_DATASETS
    key = repr((d.model_dump_json(), seed if d.subset == "random" or own else None,
                str(data_dir), stopping,
                data_files.fingerprint(config.model_dump(mode="json")) if own else None))
    return reuse.dataset(key, lambda: _load_dataset(d, seed, data_dir, stopping))


def early_stopping_size(config: RunConfig) -> int | None:
    """The size of the run's early-stopping split, None when early stopping has none."""
    es = config.training.early_stopping if config.training is not None else None
    return None if es is None else es.split


def own_data_description(config: RunConfig, dataset: datasets.Dataset) -> dict:
    """What a run on your own data trained on, stored with it (artifact "data"): the classes
    in the order of the network's outputs, the csv's input columns, each split's size."""
    table = data_files.table(config)
    return {"classes": None if table.classes is None else list(table.classes),
            "features": None if table.features is None else list(table.features),
            "train": len(dataset.train), "validation": len(dataset.validation),
            "test": len(dataset.test), "scale": config.data.scale}


def changed_data(config: dict, expected: str | None, data_dir=None) -> str | None:
    """Why the data a run was planned on (its key's fingerprint) is not the data found now, or
    None: an edited file between planning and training must not be stored under the old key."""
    found = data_files.fingerprint(config, data_dir, light=True)
    if found == expected:
        return None
    return (f"the data changed after the study was planned (fingerprint {expected}, now "
            f"{found}): run the study again to train on the new data")


def _load_dataset(d, seed: int, data_dir, stopping: int | None) -> datasets.Dataset:
    if d.dataset in OWN_DATASETS:
        table = own_data.read(data_files.source_of(d))
        return own_splits.splits(table, seed, d.validation_fraction, d.scale, name=d.dataset)
    if d.dataset == "xor":
        return datasets.xor()
    if d.dataset == "xor_cloud":
        # The cloud is part of the problem, not of the seed: every seed sees the same points.
        return datasets.xor_cloud(d.cloud_points, d.cloud_noise, seed=0)
    mnist = datasets.mnist(d.n_train, subset_seed=seed if d.subset == "random" else None,
                           data_dir=data_dir, early_stopping_size=stopping)
    datasets.forget_file_arrays()
    return datasets.with_target(mnist, d.target)
