"""Ensembles: members trained one after another, scored by their averaged prediction."""

from __future__ import annotations

import numpy as np

from study import data as datasets
from study.engine.results.store import RunRecord
from study.engine.studies.run_schema import RunConfig
from study.engine.training import models
from study.engine.training.fit import evaluation_splits, fit_member, reused_member, seed_member


# Member j of an ensemble trains with seed + MEMBER_SEED_STRIDE * j: a prime stride, far from
# the seeds 0, 1, 2, ... of a study, so no member repeats another run's seed.
MEMBER_SEED_STRIDE = 100_003


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member j: seed + 100_003 j (member 0 is the run itself)."""
    return seed + MEMBER_SEED_STRIDE * member


def train_ensemble(config: RunConfig, dataset: datasets.Dataset, seed: int,
              first: models.Compiled, record: RunRecord) -> None:
    """Train members 1..k-1 and replace the split metrics by the ensemble's.

    Member j is the run with `member_seed(seed, j)` (its weights, batch order, dropout masks and
    shifts; the data, also a random subset, are the run's); member 0 is the run itself, whose
    history, `epochs`, `steps`, `params` and `best_*` the record keeps. The ensemble predicts
    p = (1/k) sum_j p_j, the mean of the members' class probabilities (softmax, or the sigmoid
    for binary_cross_entropy; the digit's value for target "value"). Metrics `{split}_accuracy`
    and `{split}_loss` are p's: the loss is -mean log p[y] for cross-entropy losses and the mean
    squared error for "mse" (no weight penalty in either). `member_val_accuracy_mean` is the
    mean of the members' own validation accuracies. A diverged member makes the run diverged,
    without ensemble metrics.
    """
    t = config.training
    splits = {name: datasets.Split(split.x[:size], split.y[:size])
              for name, (split, size) in evaluation_splits(dataset, t.evaluate_test).items()}
    outputs = {name: [_predict(first, config, split.x)] for name, split in splits.items()}
    for j in range(1, t.ensemble):
        seed_member(config, member_seed(seed, j))
        member = reused_member(config, dataset, member_seed(seed, j))
        if fit_member(member, config, dataset, member_seed(seed, j)).diverged:
            record.status = "diverged"
            for name in splits:  # member 0's alone would pass for the ensemble's
                record.metrics.pop(f"{name}_loss"), record.metrics.pop(f"{name}_accuracy")
            record.metrics["diverged_member"] = j
            return
        for name, split in splits.items():
            outputs[name].append(_predict(member, config, split.x))
    for name, split in splits.items():
        loss, accuracy = _score(np.mean(outputs[name], axis=0), split.y, config)
        record.metrics[f"{name}_loss"], record.metrics[f"{name}_accuracy"] = loss, accuracy
    record.metrics["member_val_accuracy_mean"] = float(np.mean(
        [_score(p, dataset.validation.y, config)[1] for p in outputs["val"]]))


def _predict(compiled: models.Compiled, config: RunConfig, x) -> np.ndarray:
    """Class probabilities (n, classes) in float64, or the predicted values (n,) ("value")."""
    out = compiled.model.predict(x, batch_size=1000, verbose=0).astype(np.float64)
    loss = config.training.loss
    if compiled.regression:
        return out[:, 0]
    if loss == "binary_cross_entropy":
        p = 1 / (1 + np.exp(-out[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if loss == "cross_entropy":
        z = np.exp(out - out.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return out  # mse on a digit: the network ends in a softmax


def _score(prediction: np.ndarray, labels: np.ndarray, config: RunConfig) -> tuple[float, float]:
    """`(loss, accuracy)` of probabilities (or values) against integer labels, as in `_predict`:
    values: mean (v - y)^2 and the share with round(v) == y; probabilities: -mean log p[y]
    (cross-entropy losses) or mean over samples and classes of (p - onehot(y))^2 ("mse"), and
    the share whose largest probability is the label's."""
    if prediction.ndim == 1:
        return (float(np.mean((prediction - labels) ** 2)),
                float(np.mean(np.round(prediction) == labels)))
    if config.training.loss == "mse":
        loss = np.mean((prediction - np.eye(prediction.shape[1])[labels]) ** 2)
    else:
        loss = -np.mean(np.log(prediction[np.arange(len(labels)), labels]))
    return float(loss), float(np.mean(np.argmax(prediction, axis=1) == labels))
