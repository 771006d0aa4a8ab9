"""Train one run: data, model, fit with a seeded batch order, final metrics, a plain record.

Reproducibility: the run's seed fixes the initial weights (see `models`), the dropout
masks, the training subset (with `subset = "random"`), the batch order, which is drawn from
`numpy.random.default_rng([seed, pass])` independently of the model, so every arm of one seed
sees the same batches, and the shifts of data augmentation (`default_rng([seed, 5])`, as
independent of the model). TensorFlow's op determinism is switched on, so the same config and
seed give bit-identical metrics on the CPU.

Options of a run beyond one plain fit: `training.ensemble` trains several members and scores
their averaged prediction (`_ensemble`); `training.record_gradients` records the gradient's
norm per layer before the first step (`gradient_norms`); `training.record_boundaries` (xor,
xor_cloud) the decision boundary after every logged step (`BoundaryFrames`; a diverged run
keeps the frames of its rows before the loss turned non-finite, none if that was the first;
with an ensemble they are member 0's, like the history).

A run never raises: an exception becomes a `failed` record with its message, and a loss that
turns NaN or infinite stops the run as `diverged`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import keras

from study import boundary_frames
from study.engine.results.store import RunRecord, now_iso
from study.engine.studies.expansion import RunSpec
from study.data import DataError
from study.engine.studies.run_schema import OWN_DATASETS, RunConfig
from study.engine.training import memory, reuse
from study.engine.training.datasets import changed_data, load_dataset, own_data_description
from study.engine.training.ensemble import train_ensemble
from study.engine.training.environment import describe_error, enable_determinism, versions
from study.engine.training.fit import (final_metrics, first_batch, fit_member,
                                       gradient_metrics, reused_member, seed_member)
from study.engine.training.probes import (BoundaryFrames, add_accuracy_gap, decision_boundaries,
                                          gradient_norms)
from study.engine.training.tasks import activation_histograms, optimizer_path


def train_run(spec: RunSpec, data_dir: str | Path | None = None) -> RunRecord:
    start = time.perf_counter()
    record = blank_record(spec)
    try:
        if changed := changed_data(spec.config, spec.data_fingerprint, data_dir):
            raise DataError(changed)
        with memory.released_after_run():
            train_config(spec.run_config, spec.seed, data_dir, record)
    except Exception as error:  # one run's failure must not stop the grid
        reuse.forget_models()
        record.status = "failed"
        record.error = describe_error(error)
    record.finished_at = now_iso()
    record.wall_time = time.perf_counter() - start
    return record


def train_together(specs: list[RunSpec], fill: Callable[[list[RunRecord], float], object],
                   alone: Callable[[RunSpec], RunRecord],
                   on_failure: Callable[[], None] | None = None) -> list[RunRecord]:
    """The records of `specs` trained as one pack by `fill(records, start)`, which fills the
    blank records in place; each record's `wall_time` is its share of the pack's time. If
    `fill` raises (one run's bad argument, say), `on_failure()` runs and then each run trains
    `alone` (`train_run`), failing alone if it must: one run's problem fails no other."""
    start = time.perf_counter()
    records = [blank_record(spec) for spec in specs]
    try:
        with memory.released_after_run():
            fill(records, start)
    except Exception as error:
        if on_failure is not None:
            on_failure()
        # Said, not hidden: the runs still store what they get alone, but a pack that keeps
        # failing costs its time twice and would otherwise look like a slow study.
        print(f"study: a pack of {len(specs)} runs of {specs[0].study} failed "
              f"({type(error).__name__}: {error}); training each run alone", file=sys.stderr,
              flush=True)
        return [alone(spec) for spec in specs]
    finished_at, share = now_iso(), (time.perf_counter() - start) / len(specs)
    for record in records:
        record.finished_at, record.wall_time = finished_at, share
    return records


def blank_record(spec: RunSpec, error: str | None = None) -> RunRecord:
    """The record of `spec` before it has run: status failed, started and finished now."""
    now = now_iso()
    return RunRecord(key=spec.key, study=spec.study, arm=spec.arm, seed=spec.seed,
                     status="failed", config=spec.config, overrides=spec.overrides,
                     started_at=now, finished_at=now, wall_time=0.0, error=error,
                     versions=versions())


def train_config(config: RunConfig, seed: int, data_dir, record: RunRecord) -> None:
    enable_determinism()
    if config.task == "activation_histograms":
        keras.utils.set_random_seed(seed)
        activation_histograms(config, seed, record)
        return
    if config.task == "optimizer_path":
        keras.utils.set_random_seed(seed)
        optimizer_path(config, seed, record)
        return
    seed_member(config, seed)
    dataset = load_dataset(config, seed, data_dir)
    if config.data.dataset in OWN_DATASETS:
        record.artifacts["data"] = own_data_description(config, dataset)
    t = config.training
    compiled = reused_member(config, dataset, seed)
    if t.record_gradients:
        norms = gradient_norms(compiled, *first_batch(config, dataset, seed, compiled))
        record.artifacts["gradient_norms"] = norms
    frames = (BoundaryFrames(lambda points: predict(compiled, points),
                             probabilities=t.loss == "mse")
              if t.record_boundaries else None)
    history = fit_member(compiled, config, dataset, seed, frames)

    record.history = history.rows
    record.status = "diverged" if history.diverged else "finished"
    record.metrics = final_metrics(compiled, dataset, t.evaluate_test, history)
    if t.record_gradients:
        record.metrics.update(gradient_metrics(norms))
    if config.data.dataset == "xor_cloud" and not history.diverged:
        record.artifacts["decision_boundary"] = decision_boundaries(
            lambda points: predict(compiled, points),
            probabilities=t.loss == "mse")[0]  # the MSE model ends in its softmax
    if frames is not None and (artifact := frames.artifact()) is not None:
        record.artifacts[boundary_frames.ARTIFACT] = artifact
    if t.ensemble > 1 and not history.diverged:  # last: the members may reuse compiled's model
        train_ensemble(config, dataset, seed, compiled, record)
    add_accuracy_gap(record.metrics)


def predict(compiled, points):
    """The model's outputs on `points`, shaped (1, points, units): one network."""
    return compiled.model.predict(points, verbose=0)[None]
