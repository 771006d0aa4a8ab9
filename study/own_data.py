"""Your own data: an `.npz` of arrays or a `.csv` table, read, checked and split.

    [data]
    dataset = "npz", path = "my_data.npz"      # x_train, y_train, x_test, y_test (+ x_val, y_val)
    dataset = "csv", path = "iris.csv", label = "species"      # features: the other numeric columns

What a file holds is read once and checked whole (`read`), before anything trains: every problem
is a `DataError` naming the file, the array or column, the value and what is allowed. A run
then takes its splits (`splits`):

- test: the file's `x_test`/`y_test` (npz), `test_path` (csv), or else a fixed `test_fraction`
  of the csv's rows, the same rows for every seed (drawn once with seed 0), so that every run
  is scored on the same held-out examples, as MNIST's test set is;

and a run takes the rest of its splits from the table (`study.own_splits`):

- validation: `x_val`/`y_val` when the npz has them, else `validation_fraction` of the training
  rows drawn by the run's seed, the same rows in every arm of a seed (the paired design);
- scaling (`scale = "standard" | "minmax" | "none"`) is fitted on the training rows alone and
  applied to every split, so nothing of the validation or test rows leaks into training.

Classification labels (integers or strings) become classes 0..k-1 in sorted order; the names
are stored with each run (artifact `classes`). `target = "value"` reads the label as a number
to regress on. Inputs of any shape are flattened to vectors for the MLP.

A run's key holds the file's fingerprint (`file_fingerprint`, a SHA-256 of its bytes), so an
edited file trains its runs again and an unchanged one is skipped. Imports NumPy only (pandas
when a csv is read).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.data import DataError

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_VALIDATION = ("x_val", "y_val")
# More distinct labels than this in a classification is almost always a numeric target read
# as classes: refused, with the way to regress on it.
MAX_CLASSES = 1000
TEST_SPLIT_SEED = 0  # csv without a test file: the held-out rows are the same for every run


@dataclass(frozen=True)
class Source:
    """Which file and how to read it: the `[data]` settings of an own data set."""

    dataset: str  # "npz" | "csv"
    path: str
    label: str | None = None
    features: tuple[str, ...] | None = None
    test_path: str | None = None
    test_fraction: float = 0.2
    regression: bool = False


@dataclass(frozen=True)
class Table:
    """A file's examples, checked: float32 inputs (n, width), labels as class indices (int32)
    or, for a regression, values (float32)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    classes: tuple[str, ...] | None  # None: a regression
    features: tuple[str, ...] | None  # a csv's input columns, in order

    @property
    def width(self) -> int:
        return self.x_train.shape[1]

    @property
    def num_classes(self) -> int:
        return 1 if self.classes is None else len(self.classes)


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 of the file's bytes (16 hex digits), or "missing"; read once per version of the
    file (its size and modification time) in a process."""
    try:
        stat = Path(path).stat()
    except OSError:
        return "missing"
    return _fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _fingerprint(resolved: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    try:
        with open(resolved, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "missing"
    return digest.hexdigest()[:16]


def read(source: Source) -> Table:
    """The checked contents of `source`'s file(s); a DataError for any problem."""
    fingerprints = tuple(file_fingerprint(p) for p in (source.path, source.test_path) if p)
    return _read(source, fingerprints)


@functools.lru_cache(maxsize=16)
def _read(source: Source, fingerprints: tuple[str, ...]) -> Table:
    # `fingerprints` keys the cache: an edited file is read again.
    for path in (source.path, source.test_path):
        if path and not Path(path).is_file():
            raise DataError(f"{path}: no such file" if not Path(path).exists()
                            else f"{path}: is not a file")
    if source.dataset == "npz":
        return _read_npz(source)
    return _read_csv(source)


# ----------------------------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------------------------


def _read_npz(source: Source) -> Table:
    path = source.path
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataError(f"{path}: not a readable .npz ({type(error).__name__}: {error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive of "
                        f"{', '.join(NPZ_ARRAYS)}")
    with archive:
        names = set(archive.files)
        missing = [name for name in NPZ_ARRAYS if name not in names]
        if missing:
            raise DataError(f"{path}: no array {', '.join(missing)} (it has "
                            f"{', '.join(sorted(names)) or 'none'}); an npz data set needs "
                            f"{', '.join(NPZ_ARRAYS)}, and optionally x_val and y_val")
        if (NPZ_VALIDATION[0] in names) != (NPZ_VALIDATION[1] in names):
            have, lack = (("x_val", "y_val") if "x_val" in names else ("y_val", "x_val"))
            raise DataError(f"{path}: has {have} but no {lack}: give both or neither (without "
                            f"them, validation_fraction of the training split validates)")
        try:
            arrays = {name: archive[name] for name in (*NPZ_ARRAYS, *NPZ_VALIDATION)
                      if name in names}
        except ValueError as error:  # an object array: never unpickled
            raise DataError(f"{path}: {error} (arrays of Python objects are refused: save "
                            f"numbers or strings)") from None
    splits = [("train", "x_train", "y_train"), ("test", "x_test", "y_test")]
    if "x_val" in arrays:
        splits.insert(1, ("validation", "x_val", "y_val"))
    inputs, labels = {}, {}
    width = None
    for split, x_name, y_name in splits:
        x, y = arrays[x_name], arrays[y_name]
        if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise DataError(f"{path}: {y_name} has shape {y.shape}; labels are one per example, "
                            f"shape (n,)")
        y = y.reshape(-1)
        if x.ndim < 1 or len(x) != len(y):
            raise DataError(f"{path}: {x_name} has {len(x) if x.ndim else 0} examples but "
                            f"{y_name} has {len(y)}: they must be as many")
        if len(x) == 0:
            raise DataError(f"{path}: the {split} split is empty ({x_name} has 0 examples)")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"{path}: {x_name} is {x.dtype}; inputs must be numbers")
        x = x.reshape(len(x), -1).astype(np.float32)
        if width is not None and x.shape[1] != width:
            raise DataError(f"{path}: {x_name} has {x.shape[1]} features per example (flattened) "
                            f"but x_train has {width}: every split needs the same shape")
        width = x.shape[1]
        _check_finite(x, f"{path}: {x_name}")
        inputs[split], labels[split] = x, y
    return _table(source, inputs, labels, features=None,
                  where={s: f"{path}: {y}" for s, _, y in splits})


# ----------------------------------------------------------------------------------------------
# csv
# ----------------------------------------------------------------------------------------------


def _read_csv(source: Source) -> Table:
    train = _csv_frame(source.path)
    columns = list(train.columns)
    label = source.label
    if label not in columns:
        raise DataError(f"{source.path}: no column {label!r} for data.label"
                        f"{_did_you_mean(label, columns)}; the columns are: "
                        f"{', '.join(map(str, columns))}")
    features = _feature_columns(source, train)
    frames = {"train": train}
    if source.test_path:
        test = _csv_frame(source.test_path)
        lacking = [c for c in (*features, label) if c not in test.columns]
        if lacking:
            raise DataError(f"{source.test_path}: no column {', '.join(map(repr, lacking))} "
                            f"(data.test_path must have the columns of {source.path})")
        frames["test"] = test
    inputs, labels, where = {}, {}, {}
    for split, frame in frames.items():
        path = source.path if split == "train" else source.test_path
        inputs[split] = _numeric(frame, features, path)
        labels[split] = _label_values(frame[label], label, path)
        where[split] = f"{path}: column {label!r}"
    if "test" not in frames:
        n = len(labels["train"])
        n_test = round(source.test_fraction * n)
        if n_test < 1 or n_test >= n:
            raise DataError(f"{source.path}: test_fraction = {source.test_fraction} of its {n} "
                            f"rows leaves {'no test' if n_test < 1 else 'no training'} rows: "
                            f"give more rows, another test_fraction, or a test_path")
        order = np.random.default_rng(TEST_SPLIT_SEED).permutation(n)
        test, kept = np.sort(order[:n_test]), np.sort(order[n_test:])
        inputs["test"], labels["test"] = inputs["train"][test], labels["train"][test]
        inputs["train"], labels["train"] = inputs["train"][kept], labels["train"][kept]
        where["test"] = where["train"]
    return _table(source, inputs, labels, features=tuple(features), where=where)


def _csv_frame(path: str):
    import pandas as pd  # only when a csv is read: the light commands never pay for it

    try:
        frame = pd.read_csv(path)
    except Exception as error:
        raise DataError(f"{path}: not a readable csv ({type(error).__name__}: "
                        f"{str(error).strip()})") from None
    if frame.empty:
        raise DataError(f"{path}: has no rows (a csv data set needs a header line and examples)")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _feature_columns(source: Source, frame) -> list[str]:
    columns = list(frame.columns)
    if source.features is None:  # every other numeric column
        features = [c for c in columns if c != source.label
                    and frame[c].dtype.kind in "biuf"]
        if not features:
            raise DataError(f"{source.path}: no numeric column besides the label "
                            f"{source.label!r}; the columns are: {', '.join(columns)}")
        return features
    for name in source.features:
        if name not in columns:
            raise DataError(f"{source.path}: no column {name!r} for data.features"
                            f"{_did_you_mean(name, columns)}; the columns are: "
                            f"{', '.join(columns)}")
        if name == source.label:
            raise DataError(f"{source.path}: column {name!r} is the label; it cannot also be "
                            f"a feature")
    return list(source.features)


def _numeric(frame, features: list[str], path: str) -> np.ndarray:
    for name in features:
        column = frame[name]
        if column.dtype.kind not in "biuf":
            import pandas as pd

            bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
            row, value = (bad.index[0], bad.iloc[0]) if len(bad) else (None, None)
            where = f" (row {row + 2} of the file: {value!r})" if row is not None else ""
            raise DataError(f"{path}: column {name!r} is not numeric{where}; features must "
                            f"be numbers (list the numeric ones in data.features)")
    x = frame[features].to_numpy(dtype=np.float64)
    _check_finite(x, f"{path}: features", names=features)
    return x.astype(np.float32)


def _label_values(column, name: str, path: str) -> np.ndarray:
    missing = column.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: column {name!r} is empty in {int(missing.sum())} row(s) (first: "
                        f"row {int(np.argmax(missing)) + 2} of the file); every example needs "
                        f"a label")
    return column.to_numpy()


# ----------------------------------------------------------------------------------------------
# labels and checks, both formats
# ----------------------------------------------------------------------------------------------


def _table(source: Source, inputs: dict, labels: dict, features, where: dict) -> Table:
    if source.regression:
        classes = None
        encoded = {split: _as_values(y, where[split]) for split, y in labels.items()}
    else:
        classes, encoded = _as_classes(labels, where, source)
    return Table(inputs["train"], encoded["train"], inputs["test"], encoded["test"],
                 inputs.get("validation"), encoded.get("validation"), classes, features)


def _as_values(y: np.ndarray, where: str) -> np.ndarray:
    try:
        values = y.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: target = \"value\" regresses on numbers; the labels are "
                        f"{y.dtype} (e.g. {y[0]!r})") from None
    _check_finite(values, where)
    return values.astype(np.float32)


def _as_classes(labels: dict, where: dict, source: Source):
    """Every split's labels as indices into the sorted classes of all splits."""
    kinds = {split: _label_kind(y) for split, y in labels.items()}
    if "mixed" in kinds.values() or len(set(kinds.values())) > 1:
        raise DataError(f"{source.path}: the labels are numbers in one split and text in "
                        f"another ({', '.join(f'{s}: {k}' for s, k in kinds.items())})")
    for split, y in labels.items():
        if kinds[split] == "number" and not np.all(np.isfinite(y.astype(np.float64))):
            raise DataError(f"{where[split]}: a label is NaN or infinite")
    found = np.unique(np.concatenate([np.asarray(y) for y in labels.values()]))
    trained = set(np.unique(labels["train"]).tolist())
    if len(found) > MAX_CLASSES:
        raise DataError(f"{where['train']}: {len(found):,} distinct labels, more classes than "
                        f"an output layer is given here (at most {MAX_CLASSES:,}); to predict "
                        f"the label as a number, set data.target = \"value\" (loss \"mse\")")
    if len(trained) < 2:
        raise DataError(f"{where['train']}: one class only ({_name(found[0])!r}) in the "
                        f"training split; a classification needs at least two")
    unseen = [_name(c) for c in found if c not in trained]
    if unseen:
        raise DataError(f"{source.path}: class(es) {', '.join(map(repr, unseen))} appear in the "
                        f"test or validation split but never in training")
    index = {value: i for i, value in enumerate(found.tolist())}
    encoded = {split: np.array([index[v] for v in np.asarray(y).tolist()], dtype=np.int32)
               for split, y in labels.items()}
    return tuple(_name(c) for c in found), encoded


def _label_kind(y: np.ndarray) -> str:
    if np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_:
        return "number"
    if y.dtype.kind in "US" or all(isinstance(v, str) for v in y.tolist()):
        return "text"
    return "mixed"


def _name(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _check_finite(x: np.ndarray, where: str, names: list[str] | None = None) -> None:
    """`names`: a csv's columns (its rows are counted as in the file: the header is row 1)."""
    bad = ~np.isfinite(x)
    if bad.any():
        row, *rest = np.argwhere(bad)[0]
        first = (f"row {int(row) + 2} of the file, column {names[rest[0]]!r}" if names
                 else f"example {int(row)}")
        raise DataError(f"{where}: {int(bad.sum())} value(s) are NaN, empty or infinite (first: "
                        f"{first}); inputs must be finite numbers")


def _did_you_mean(name, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
