"""A run's splits of your own data (`study.own_data.Table`): validation rows drawn by the
seed when the file has none, and scaling fitted on the training rows alone."""

from __future__ import annotations

import numpy as np

from study.data import DataError, Dataset, Split
from study.own_data import Table

VALIDATION_STREAM = 11  # default_rng([seed, 11]): apart from the batches' [seed, pass] streams


def splits(table: Table, seed: int, validation_fraction: float, scale: str,
           name: str = "own") -> Dataset:
    """The run's train, validation and test splits of `table`, scaled on the training rows."""
    x_train, y_train = table.x_train, table.y_train
    if table.x_val is not None:
        x_val, y_val = table.x_val, table.y_val
    else:
        n = len(y_train)
        n_val = validation_rows(n, validation_fraction)
        order = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(n)
        val, kept = np.sort(order[:n_val]), np.sort(order[n_val:])
        x_val, y_val, x_train, y_train = x_train[val], y_train[val], x_train[kept], y_train[kept]
    transform = scaling(x_train, scale)
    return Dataset(name, Split(transform(x_train), y_train), Split(transform(x_val), y_val),
                   Split(transform(table.x_test), table.y_test),
                   num_classes=table.num_classes, input_shape=(table.width,))


def validation_rows(n: int, fraction: float) -> int:
    """How many of `n` training rows validate; a DataError if a side would be empty."""
    n_val = round(fraction * n)
    if n_val < 1 or n_val >= n:
        raise DataError(f"validation_fraction = {fraction} of {n} training rows leaves "
                        f"{'no validation' if n_val < 1 else 'no training'} rows: give more "
                        f"rows, another validation_fraction, or x_val/y_val")
    return n_val


def scaling(x_train: np.ndarray, scale: str):
    """The function that scales inputs with statistics of the training rows alone."""
    if scale == "standard":
        center = x_train.mean(axis=0)
        spread = x_train.std(axis=0)
    elif scale == "minmax":
        center = x_train.min(axis=0)
        spread = x_train.max(axis=0) - center
    else:
        return lambda x: x
    spread = np.where(spread > 0, spread, 1.0)  # a constant feature stays constant (0)
    return lambda x: ((x - center) / spread).astype(np.float32)
