"""The 2-D test functions an optimizer path walks (task "optimizer_path"), in one table.

Each function is written once over an array module `ops`: NumPy (float64, for tests and the
report's contours) or `keras.ops` (what `fit` trains on), so the two cannot drift apart.
Beside it: the analytic gradient in NumPy (checked against finite differences by the tests),
the global minimum, and a default start and plotting range with where they come from.

This module imports no Keras: the run schema and the report read the table without loading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Surface:
    name: str
    formula: str                          # for titles, in the report's plain notation
    value: Callable[..., Any]             # value(x, y, ops=np) -> f(x, y)
    gradient: Callable[..., tuple]        # gradient(x, y) -> (df/dx, df/dy), NumPy
    minimum: tuple[float, float] | None   # the global minimum; None: the function has none
    start: tuple[float, float]            # a default start (`source` says whose)
    x_range: tuple[float, float]          # the plotting window
    y_range: tuple[float, float]
    source: str

    @property
    def centre(self) -> tuple[float, float]:
        """What the path's distance is measured to: the minimum, or (0, 0) where there is none
        (the saddle's stationary point)."""
        return self.minimum if self.minimum is not None else (0.0, 0.0)


def bowl(x, y, ops=np):
    """f(x, y) = x² + y²: every direction alike."""
    return x ** 2 + y ** 2


def bowl_gradient(x, y):
    """∇f = (2x, 2y)."""
    return 2 * x, 2 * y


def anisotropic_bowl(x, y, ops=np):
    """f(x, y) = x²/20 + y²: a valley 20 times steeper across (y) than along (x).

    Written as (1/20)·x², the factor first, as the task has always computed it: x²/20 rounds
    differently in float32, and the stored paths must not move by a bit.
    """
    return (1 / 20) * x ** 2 + y ** 2


def anisotropic_bowl_gradient(x, y):
    """∇f = (x/10, 2y)."""
    return x / 10, 2 * y


def rosenbrock(x, y, ops=np):
    """f(x, y) = (1 − x)² + 100(y − x²)²: a curved, flat-bottomed valley along y = x²."""
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_gradient(x, y):
    """∂f/∂x = −2(1 − x) − 400x(y − x²), ∂f/∂y = 200(y − x²)."""
    return -2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)


def saddle(x, y, ops=np):
    """f(x, y) = x² − y²: a minimum along x, a maximum along y; unbounded below."""
    return x ** 2 - y ** 2


def saddle_gradient(x, y):
    """∇f = (2x, −2y)."""
    return 2 * x, -2 * y


def beale(x, y, ops=np):
    """f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²."""
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
            + (2.625 - x + x * y ** 3) ** 2)


def beale_gradient(x, y):
    """With a = 1.5 − x + xy, b = 2.25 − x + xy², c = 2.625 − x + xy³:
    ∂f/∂x = 2a(y − 1) + 2b(y² − 1) + 2c(y³ − 1), ∂f/∂y = 2a·x + 2b·2xy + 2c·3xy²."""
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y ** 2, 2.625 - x + x * y ** 3
    return (2 * a * (y - 1) + 2 * b * (y ** 2 - 1) + 2 * c * (y ** 3 - 1),
            2 * a * x + 4 * b * x * y + 6 * c * x * y ** 2)


def rastrigin(x, y, ops=np):
    """f(x, y) = 20 + Σ_{v ∈ (x, y)} (v² − 10 cos 2πv): a bowl covered in local minima."""
    return (20 + x ** 2 - 10 * ops.cos(2 * math.pi * x)
            + y ** 2 - 10 * ops.cos(2 * math.pi * y))


def rastrigin_gradient(x, y):
    """∂f/∂v = 2v + 20π sin 2πv for v = x, y."""
    return (2 * x + 20 * math.pi * np.sin(2 * math.pi * x),
            2 * y + 20 * math.pi * np.sin(2 * math.pi * y))


_DLFS = ("DLFS 6.1.7 (ch06/optimizer_compare_naive.py): start (-7, 2), plotted over "
         "[-10, 10] x [-5, 5]")

SURFACES = {s.name: s for s in [
    Surface("bowl", "x² + y²", bowl, bowl_gradient, (0.0, 0.0), (-7.0, 2.0),
            (-10.0, 10.0), (-5.0, 5.0), _DLFS),
    Surface("anisotropic_bowl", "x²/20 + y²", anisotropic_bowl, anisotropic_bowl_gradient,
            (0.0, 0.0), (-7.0, 2.0), (-10.0, 10.0), (-5.0, 5.0), _DLFS),
    Surface("rosenbrock", "(1 − x)² + 100(y − x²)²", rosenbrock, rosenbrock_gradient,
            (1.0, 1.0), (-1.2, 1.0), (-2.0, 2.0), (-1.0, 3.0),
            "Rosenbrock (1960); start (-1.2, 1) as in More, Garbow & Hillstrom (1981), "
            "the window the usual picture of the banana valley"),
    Surface("saddle", "x² − y²", saddle, saddle_gradient, None, (-1.5, 0.01),
            (-2.0, 2.0), (-2.0, 2.0),
            "no standard start: ours. On y = 0 the gradient's y part is exactly 0, so the "
            "start is a little off that line, to show whether an optimizer escapes"),
    Surface("beale", "Beale's function", beale, beale_gradient, (3.0, 0.5), (1.0, 1.0),
            (-4.5, 4.5), (-4.5, 4.5),
            "Beale (1958); start (1, 1) as in More, Garbow & Hillstrom (1981); window the "
            "domain [-4.5, 4.5]² of Surjanovic & Bingham's library of test functions"),
    Surface("rastrigin", "20 + Σ(v² − 10 cos 2πv)", rastrigin, rastrigin_gradient,
            (0.0, 0.0), (-4.5, 4.0), (-5.12, 5.12), (-5.12, 5.12),
            "Rastrigin (1974); window the usual domain [-5.12, 5.12]²; no standard start: "
            "ours, several local minima away from the global one"),
]}


# Functions whose values over the window span orders of magnitude (Rosenbrock's walls reach
# 10^4 around a valley floor near 0): evenly spaced contour levels would all crowd the walls.
LOG_LEVELS = ("rosenbrock", "beale")


def contour_grid(surface: Surface, points: int = 200) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray, np.ndarray]:
    """`(xs, ys, f, levels)` over the surface's window: the mesh, the values and `CONTOURS`
    levels, geometric for LOG_LEVELS (from just above the window's lowest value), else even."""
    xs, ys = np.meshgrid(np.linspace(*surface.x_range, points),
                         np.linspace(*surface.y_range, points))
    f = surface.value(xs, ys)
    if surface.name in LOG_LEVELS:
        low = max(float(f.min()), 1e-5 * float(f.max()))
        levels = np.geomspace(low, float(f.max()), CONTOURS + 2)[1:-1]
    else:
        levels = np.linspace(float(f.min()), float(f.max()), CONTOURS + 2)[1:-1]
    return xs, ys, f, levels


CONTOURS = 12
