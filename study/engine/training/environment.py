"""What a run records of where it ran, and TensorFlow's determinism switch."""

from __future__ import annotations

import functools
import os
import platform
import traceback
from pathlib import Path

import keras
import numpy as np

import study


_DETERMINISM_ON = False


def enable_determinism() -> None:
    global _DETERMINISM_ON
    if not _DETERMINISM_ON and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    _DETERMINISM_ON = True


def versions() -> dict[str, str]:
    backend = keras.backend.backend()
    backend_module = __import__({"tensorflow": "tensorflow", "jax": "jax"}.get(backend, backend))
    return {"study": study.__version__, "keras": keras.__version__, "backend": backend,
            "backend_version": getattr(backend_module, "__version__", "?"),
            "numpy": np.__version__, "python": platform.python_version(), "cpu": cpu_name()}


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The processor's model name and core count (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model} x {os.cpu_count()}"


def describe_error(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(error).__name__}: {error} (at {where})"
