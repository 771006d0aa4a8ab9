"""What a run measures beyond its loss: gradient norms per layer, decision boundaries (at the
end, and at every logged step: `BoundaryFrames`), the gap."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from study import boundary_frames
from study.engine.training import models
from study.layers import Affine, ResidualBlock


def add_accuracy_gap(metrics: dict[str, Any]) -> None:
    """`accuracy_gap` = train_accuracy - val_accuracy: how much the model overfits; and
    `test_accuracy_gap` = train_accuracy - test_accuracy when the run saw the test split (a
    gap on images that chose nothing, not even an early-stopping checkpoint)."""
    train = metrics.get("train_accuracy")
    if train is None:
        return
    for split, name in (("val", "accuracy_gap"), ("test", "test_accuracy_gap")):
        if metrics.get(f"{split}_accuracy") is not None:
            metrics[name] = train - metrics[f"{split}_accuracy"]


DECISION_GRID = boundary_frames.FINAL_GRID  # points per axis of the final decision boundary


def decision_boundaries(logits_of, probabilities: bool = False) -> list[dict[str, Any]]:
    """P(class 1) of each network on a grid over the plane, for decision-boundary pictures.

    `logits_of(points)` returns logits of shape (networks, points, units) (or probabilities
    already, with `probabilities`). Each result holds
    the axes `x`, `y` and `probability[i][j]` at (x[j], y[i]), rounded to 3 decimals.
    """
    axis = boundary_frames.plane_axis(DECISION_GRID)
    p = boundary_frames.probability_of_class_1(
        keras.ops.convert_to_numpy(logits_of(boundary_frames.plane_points(DECISION_GRID))),
        probabilities)
    p = np.round(p.reshape(-1, DECISION_GRID, DECISION_GRID), 3)
    return [{"x": axis.tolist(), "y": axis.tolist(), "probability": grid.tolist()} for grid in p]


class BoundaryFrames:
    """P(class 1) of one or more networks on the frame grid, taken at logged steps
    (`training.record_boundaries`); one `boundary_steps` artifact per network.

    `outputs_of(points)` returns outputs of shape (networks, points, units), as for
    `decision_boundaries`. Frames are quantised when taken (study.boundary_frames), so a run of
    2000 steps holds kilobytes, not a float per point and step. The callers take no frame at a
    row whose loss is not finite (the run diverged); and a network whose boundary turns
    non-finite first (huge weights: a finite loss on the data, inf - inf somewhere on the
    plane) takes no further frame. Either way a network's frames are those of its logged steps
    up to where it diverged.
    """

    def __init__(self, outputs_of, networks: int = 1, probabilities: bool = False):
        self.outputs_of, self.probabilities = outputs_of, probabilities
        self.points = boundary_frames.plane_points(boundary_frames.FRAME_GRID)
        self.steps: list[list[int]] = [[] for _ in range(networks)]
        self.levels: list[list[np.ndarray]] = [[] for _ in range(networks)]
        self.ended = np.zeros(networks, dtype=bool)

    def take(self, step: int, networks=None) -> None:
        """Frames of the networks at `step` (of those indexed by `networks`; default all):
        call it with their weights as they are after that step."""
        size = boundary_frames.FRAME_GRID
        p = boundary_frames.probability_of_class_1(
            keras.ops.convert_to_numpy(self.outputs_of(self.points)), self.probabilities)
        p = p.reshape(-1, size, size)
        for index in range(len(self.steps)) if networks is None else networks:
            self.ended[index] |= not np.all(np.isfinite(p[index]))
            if not self.ended[index]:
                self.steps[index].append(step)
                self.levels[index].append(boundary_frames.quantise(p[index]))

    def artifact(self, network: int = 0) -> dict[str, Any] | None:
        """The `boundary_steps` artifact of one network; None if it has no frame."""
        if not self.steps[network]:
            return None
        return boundary_frames.encode(self.steps[network], np.stack(self.levels[network]))


def gradient_norms(compiled: models.Compiled, x, y) -> list[dict[str, Any]]:
    """`[{"layer": i, "name", "norm"}]`: ||dL/dW||_2 of each Affine layer's kernel W, in
    network order (the output layer last); a ResidualBlock is one entry, the norm over both its
    kernels, sqrt(||dL/dW1||^2 + ||dL/dW2||^2).

    L is the training loss on (x, y): the compiled loss of `model(x, training=True)` (dropout
    on, batch statistics) plus the weight penalties, as `fit` computes it. It is evaluated in a
    `keras.StatelessScope`, so no weight, batch-norm statistic or dropout seed moves: training
    afterwards is the same as without this call. Gradients by tf.GradientTape on TensorFlow,
    jax.grad on JAX; other backends are refused.
    """
    model = compiled.model
    layers = [(layer, [layer.kernel] if isinstance(layer, Affine)
               else [layer.inner_1.kernel, layer.inner_2.kernel])
              for layer in model.layers if isinstance(layer, (Affine, ResidualBlock))]
    trainable = model.trainable_variables
    position = {id(v): i for i, v in enumerate(trainable)}

    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(trainable, values))):
            return model.compute_loss(x, y, model(x, training=True), training=True)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        values = [tf.identity(v.value) for v in trainable]
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = loss_of(values)
        gradients = tape.gradient(loss, values)
    elif backend == "jax":
        import jax

        gradients = jax.grad(loss_of)([v.value for v in trainable])
    else:
        raise NotImplementedError(f"record_gradients needs the tensorflow or jax backend, not "
                                  f"{backend!r}")
    norms = []
    for i, (layer, kernels) in enumerate(layers, start=1):
        squares = sum(np.sum(np.square(keras.ops.convert_to_numpy(
            gradients[position[id(k)]]).astype(np.float64))) for k in kernels)
        norms.append({"layer": i, "name": layer.name, "norm": float(np.sqrt(squares))})
    return norms
