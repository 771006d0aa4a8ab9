"""Decision boundaries over the plane: the grid, P(class 1), and the per-step frames' encoding.

A run of the 2-D datasets (xor, xor_cloud) with `training.record_boundaries = true` stores
artifact `boundary_steps`: P(class 1) on a FRAME_GRID x FRAME_GRID grid over
[-0.5, 1.5]^2 at every logged step (each history row's step), as one compact value

    {"steps": [20, 40, ...], "x": axis, "y": axis, "dtype": "uint8", "encoding": "delta",
     "shape": [n_steps, G, G], "data": base64(zlib(uint8 bytes))}

with p quantised to round(p * 255) (1/510 at worst, far below what a picture shows) and, as
"delta" says, each frame stored as its difference from the one before (mod 256; the first as
it is): a boundary moves little between logged steps, so the differences are mostly zeros and
compress to half the size of the frames themselves. Frame k, row i, column j is P(class 1)
at (x[j], y[i]) after step steps[k], laid out as the final `decision_boundary` artifact (41 x
41, 3 decimals, unchanged). The history has no row at step 0, so neither do the frames; a
diverged run's frames end before it diverged. `decode` turns the value back into arrays for
the report.

NumPy only: the report reads these functions without importing Keras or TensorFlow.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np

PLANE = (-0.5, 1.5)  # the square around XOR's four corners and their noise, on both axes
FINAL_GRID = 41      # points per axis of the final `decision_boundary` artifact
# Points per axis of the per-step frames: 21 (steps of 0.1). The xor study's 900 runs x 100
# frames then add 5.8 MB to the database; at 41 they would add 15.5 MB (measured: README, "What
# the studies found", xor_cloud).
FRAME_GRID = 21
LEVELS = 255         # p is stored as round(p * LEVELS) in a uint8
ARTIFACT = "boundary_steps"


def plane_axis(size: int) -> np.ndarray:
    """The `size` coordinates of one axis of the grid over PLANE (float32, as the network
    sees them)."""
    return np.linspace(*PLANE, size, dtype=np.float32)


def plane_points(size: int) -> np.ndarray:
    """(size * size, 2) points (x, y) of the grid, row by row: point i * size + j is
    (axis[j], axis[i])."""
    axis = plane_axis(size)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def probability_of_class_1(outputs, probabilities: bool = False) -> np.ndarray:
    """P(class 1), float64, from a network's outputs of shape (..., units): one unit is a
    logit (sigmoid), more are logits of a softmax, or probabilities already with
    `probabilities` (the MSE models end in their softmax)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if probabilities:
        return outputs[..., 1]
    if outputs.shape[-1] == 1:
        with np.errstate(over="ignore"):  # exp(-logit) overflows to inf: p = 0, as it should
            return 1 / (1 + np.exp(-outputs[..., 0]))
    z = np.exp(outputs - outputs.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True))[..., 1]


def quantise(probability) -> np.ndarray:
    """uint8 levels round(p * 255) of probabilities in [0, 1]."""
    p = np.asarray(probability, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError("a boundary frame must be finite (a diverged network has none)")
    return np.round(np.clip(p, 0.0, 1.0) * LEVELS).astype(np.uint8)


def encode(steps: list[int], levels: np.ndarray, size: int = FRAME_GRID) -> dict[str, Any]:
    """The `boundary_steps` artifact of frames `levels` (uint8, (len(steps), size, size))."""
    levels = np.asarray(levels)
    if levels.dtype != np.uint8 or levels.shape != (len(steps), size, size):
        raise ValueError(f"frames must be uint8 of shape {(len(steps), size, size)}, got "
                         f"{levels.dtype} {levels.shape}")
    # The axis to 6 decimals: -0.45, not float32's -0.44999998807907104, in every run's value.
    axis = [round(float(v), 6) for v in plane_axis(size)]
    differences = np.diff(levels, axis=0, prepend=np.zeros((1, size, size), np.uint8))
    return {"steps": [int(s) for s in steps], "x": axis, "y": axis, "dtype": "uint8",
            "encoding": "delta", "shape": list(levels.shape),
            "data": base64.b64encode(zlib.compress(differences.tobytes(), 9)).decode("ascii")}


def decode_levels(artifact: dict[str, Any]) -> np.ndarray:
    """The stored uint8 levels, shape (steps, G, G)."""
    if artifact.get("dtype") != "uint8" or artifact.get("encoding") != "delta":
        raise ValueError(f"unknown boundary frames: dtype {artifact.get('dtype')!r}, encoding "
                         f"{artifact.get('encoding')!r}")
    raw = zlib.decompress(base64.b64decode(artifact["data"]))
    differences = np.frombuffer(raw, dtype=np.uint8).reshape(artifact["shape"])
    return np.cumsum(differences, axis=0, dtype=np.uint8)  # uint8 arithmetic wraps mod 256


def decode(artifact: dict[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """`(steps, x, y, probability)` of a `boundary_steps` artifact: probability[k, i, j] is
    P(class 1) at (x[j], y[i]) after step steps[k], float64 in [0, 1] (to within 1/510)."""
    probability = decode_levels(artifact).astype(np.float64) / LEVELS
    return (list(artifact["steps"]), np.asarray(artifact["x"], dtype=np.float64),
            np.asarray(artifact["y"], dtype=np.float64), probability)
