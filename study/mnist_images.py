"""MNIST's images as the engine trains on them: float32 in [0, 1], flat, each made once.

A split's images are rows of one of the file's two uint8 arrays (training file, test file),
cast and divided by 255. `scaled_rows` makes the float32 rows of a range once per process and
hands the same array to every later dataset that asks for that range while one still holds
it: datasets that differ only in their target (digits, parity, value: the same images) share
every split, and any two MNIST datasets share their validation and test splits. Before, each
dataset held its own copies: a worker of output_and_loss, whose arms differ in their target,
held the 219 MB of images twice and, while loading a third, three times (~1.5 GB at its peak).
A seeded random subset (`subset = "random"`) is gathered into an array of its own
(`gathered_rows`), as before.

The process keeps only a weak reference, to the buffer every view of the rows holds
(`_made`), so a worker that drops its MNIST datasets gets the memory back. Arrays start on an
ALIGNMENT-byte boundary, so TensorFlow can hold them without copying (`reuse.shared_tensor`).
Every pixel is the same float32 value it was (pixel / 255 whichever array holds it).
"""

from __future__ import annotations

import weakref

import numpy as np

ALIGNMENT = 64  # bytes: what TensorFlow needs to hold a NumPy buffer without copying it
_made: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # key -> buffer


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose buffer starts on an ALIGNMENT-byte boundary,
    so that a worker's TensorFlow tensor of it can share its memory (`reuse.tensor`) instead
    of holding a second copy of the 157 MB of training images."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return _aligned_view(np.empty(size + ALIGNMENT, dtype=np.uint8), shape, dtype)


def _aligned_view(buffer: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    offset = -buffer.ctypes.data % ALIGNMENT
    return buffer[offset:offset + size].view(dtype).reshape(shape)


def scaled_rows(key, images: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of the uint8 `images` (`key` names the array: file, version, which
    of its two), flat float32 / 255: made the first time, then the same array while anything
    holds it."""
    shape = (stop - start, int(np.prod(images.shape[1:])))
    buffer = _made.get((key, start, stop))
    if buffer is not None:
        return _aligned_view(buffer, shape, np.float32)
    x = _scaled(images[start:stop], shape)
    _made[(key, start, stop)] = x.base  # the uint8 buffer every view of x keeps alive
    return x


def gathered_rows(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Rows `indices` of the uint8 `images`, flat float32 / 255, in an array of their own."""
    return _scaled(images[indices], (len(indices), int(np.prod(images.shape[1:]))))


def _scaled(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    x = aligned_empty(shape, np.float32)
    x[...] = images.reshape(shape)  # the cast astype(np.float32) makes
    x /= np.float32(255)  # in place: a second 150 MB temporary buys nothing
    return x
