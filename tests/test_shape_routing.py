"""A worker keeps training on the model shape it traced last (`executors.Units`,
`packed.unit_shape`): the units are the same, only which worker takes which changes."""

from __future__ import annotations

import os
import time

from study.engine.execution.executors import ProcessExecutor, Units
from study.engine.studies import expand
from study.engine.training.packed import unit_shape
from tests.engine_fixtures import DATA_DIR


INITIALIZERS = ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal",
                "lecun_uniform", "random_normal", "random_uniform"]


def _study(activations, seeds=(0, 1)):
    # One unit per arm (its seeds packed); the activation changes the traced graph, the
    # initializer and the learning rate do not (graph_key).
    return expand({
        "name": "routing", "seeds": list(seeds), "data": {"dataset": "mnist", "n_train": 100},
        "model": {"hidden": [8]},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 50, "steps": 4},
        "zip": {"activation": activations,
                "initializer": [INITIALIZERS[i % len(INITIALIZERS)]
                                for i in range(len(activations))],
                "learning_rate": [0.01 * (i + 1) for i in range(len(activations))]},
    }).runs


def test_units_of_one_graph_have_one_shape_whatever_their_initializer():
    specs = _study(["relu", "relu", "tanh", "tanh"])
    arms = [[s for s in specs if s.arm == arm] for arm in dict.fromkeys(s.arm for s in specs)]
    assert [len(arm) for arm in arms] == [2, 2, 2, 2]
    shapes = [unit_shape(arm) for arm in arms]
    assert shapes[0] == shapes[1] != shapes[2] == shapes[3]
    assert unit_shape(arms[0][:1]) != shapes[0]  # another pack size is another trainer


def test_next_prefers_a_unit_of_the_shape_asked_for_and_else_the_first():
    specs = _study(["relu", "tanh", "relu", "tanh"])
    arms = [[s for s in specs if s.arm == arm] for arm in dict.fromkeys(s.arm for s in specs)]
    units = Units(specs)
    relu, tanh = unit_shape(arms[0]), unit_shape(arms[1])
    assert units.next(tanh) == arms[1]
    assert units.next(tanh) == arms[3]
    assert units.next(tanh) == arms[0]  # none of that shape left: the first
    units.first(arms[1])  # a follow-up goes first, whatever shape is asked for
    assert units.next(relu) == arms[1]
    assert units.next(relu) == arms[2]
    assert not units


def pid_work(unit, data_dir):
    """No training: finished records naming the worker that took the unit."""
    from study.engine.execution.executors import failed_record

    time.sleep(0.3)  # both workers are busy while units are handed out
    records = [failed_record(spec, "") for spec in unit]
    for record in records:
        record.status, record.error, record.metrics = "finished", None, {"pid": os.getpid()}
    return records


def test_each_worker_keeps_to_the_shape_it_started_with():
    # Arms of two graphs in an order that, handed out as they come, makes the workers switch
    # graph (and trace again) again and again.
    specs = _study(["relu", "tanh", "tanh", "relu"] * 4)
    records = list(ProcessExecutor(2, DATA_DIR, work=pid_work).map(specs))
    assert sorted(r.key for r in records) == sorted(s.key for s in specs)
    activation = {s.key: s.config["model"]["activation"] for s in specs}
    by_worker: dict[int, list[str]] = {}  # each worker's shapes, in the order it trained them
    for record in records:  # in the order they came back
        shapes = by_worker.setdefault(record.metrics["pid"], [])
        if not shapes or shapes[-1] != activation[record.key]:
            shapes.append(activation[record.key])
    # A worker changes shape at most once: when none of its own is left (a slow-starting
    # worker on a busy machine may leave the other to finish both shapes' last units).
    # Handed out in order, a worker here trains relu, tanh, tanh, relu, ...: six changes.
    assert all(len(shapes) <= 2 for shapes in by_worker.values()), by_worker
    assert {shapes[0] for shapes in by_worker.values()} == {"relu", "tanh"}, by_worker
