import os

# Keras reads the backend once, at import; the Makefile sets it, a bare `pytest` gets TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same seeds and an empty Keras session."""
    # free_memory=False skips a gc.collect() that costs ~0.3 s per test and frees nothing we need.
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield
