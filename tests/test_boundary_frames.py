"""Decision boundaries at every logged step (`training.record_boundaries`, study.boundary_frames).

Weights per step are not stored, so a frame is checked against the run trained again for
exactly that many steps: training is deterministic (op determinism, the same full batches in
order, the same steps per compiled call since log_every is kept), so the network after k steps
of the long run is bit for bit the network of the run of k steps, and its forward pass on the
grid, quantised the same way, must equal frame k exactly. A frame taken a row late or early,
or from another run of a pack, differs.
"""

import copy
import time

import keras
import numpy as np
import pytest

from study import boundary_frames
from study.engine.studies import ConfigError, expand
from study.engine.training import packed
from study.engine.training.datasets import load_dataset
from study.engine.training.fit import build_member, fit_member
from study.engine.training.run import blank_record, train_run

BASE = {
    "name": "frames", "seeds": [0, 1, 2],
    "data": {"dataset": "xor"},
    "model": {"hidden": [3], "activation": "tanh", "initializer": "glorot_uniform"},
    "training": {"optimizer": "adam", "learning_rate": 0.1, "batch_size": 4, "steps": 30,
                 "log_every": 10, "loss": "binary_cross_entropy", "record_boundaries": True},
}
LOGGED = [10, 20, 30]


def _specs(steps=30, model=None, **training):
    raw = copy.deepcopy(BASE)
    raw["model"].update(model or {})
    raw["training"].update(steps=steps, **training)
    return expand(raw).runs


def _frames(record):
    steps, x, y, probability = boundary_frames.decode(record.artifacts["boundary_steps"])
    assert steps == [row["step"] for row in record.history]
    return steps, np.round(probability * boundary_frames.LEVELS).astype(np.uint8)


def _levels(outputs):
    """Quantised P(class 1) of outputs (networks, points, units) on the frame grid."""
    size = boundary_frames.FRAME_GRID
    p = boundary_frames.probability_of_class_1(keras.ops.convert_to_numpy(outputs))
    return boundary_frames.quantise(p.reshape(-1, size, size))


def _grid():
    return boundary_frames.plane_points(boundary_frames.FRAME_GRID)


def test_encode_and_decode_round_trip():
    rng = np.random.default_rng(0)
    size = 5
    p = rng.random((3, size, size))
    p[0, 0, 0], p[0, 0, 1] = 0.0, 1.0
    artifact = boundary_frames.encode([10, 20, 30], boundary_frames.quantise(p), size=size)
    assert artifact["shape"] == [3, size, size] and artifact["dtype"] == "uint8"
    assert isinstance(artifact["data"], str)
    steps, x, y, decoded = boundary_frames.decode(artifact)
    assert steps == [10, 20, 30]
    np.testing.assert_allclose(x, boundary_frames.plane_axis(size), atol=1e-7)
    np.testing.assert_array_equal(y, x)
    assert list(x) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert decoded.dtype == np.float64 and decoded.shape == p.shape
    assert np.abs(decoded - p).max() <= 0.5 / 255 + 1e-12  # round(p * 255) / 255
    assert decoded[0, 0, 0] == 0.0 and decoded[0, 0, 1] == 1.0
    np.testing.assert_array_equal(boundary_frames.decode_levels(artifact),
                                  boundary_frames.quantise(p))
    # Frames stored as differences: any jump between levels, up or down, wraps back exactly.
    levels = rng.integers(0, 256, (6, 21, 21)).astype(np.uint8)
    levels[1], levels[2] = 255, 0
    np.testing.assert_array_equal(
        boundary_frames.decode_levels(boundary_frames.encode(list(range(6)), levels)), levels)


def test_encode_refuses_frames_of_the_wrong_shape_or_non_finite_values():
    with pytest.raises(ValueError, match="uint8 of shape"):
        boundary_frames.encode([1], np.zeros((2, 21, 21), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        boundary_frames.quantise([0.5, np.nan])


def test_single_run_frames_are_the_network_after_each_logged_step():
    long = train_run(_specs()[1])
    assert long.status == "finished", long.error
    steps, frames = _frames(long)
    assert steps == LOGGED and frames.shape == (3, 21, 21)
    for index, k in enumerate(LOGGED):
        spec = _specs(k)[1]
        config = spec.run_config
        keras.utils.clear_session()
        keras.utils.set_random_seed(spec.seed)
        dataset = load_dataset(config, spec.seed)
        compiled = build_member(config, dataset, spec.seed)
        fit_member(compiled, config, dataset, spec.seed)  # without frames
        expected = _levels(compiled.model.predict(_grid(), verbose=0)[None])[0]
        np.testing.assert_array_equal(frames[index], expected, err_msg=f"step {k}")
    assert len({f.tobytes() for f in frames}) == 3  # the boundary moves: the check has teeth


def test_packed_frames_are_each_runs_network_after_each_logged_step():
    long = [blank_record(spec) for spec in _specs()]
    packed._train_pack(_specs(), long, time.perf_counter())
    frames = [_frames(record)[1] for record in long]
    for index, k in enumerate(LOGGED):
        short = _specs(k)  # the same pack (the seeds 0, 1, 2) trained for k steps
        keras.utils.clear_session()
        network = packed._train_pack(short, [blank_record(s) for s in short], time.perf_counter())
        expected = _levels(network(_grid()))
        for run in range(len(short)):
            np.testing.assert_array_equal(frames[run][index], expected[run],
                                          err_msg=f"seed {run}, step {k}")
    # The seeds draw different boundaries: a frame from another run of the pack would show.
    assert len({f[-1].tobytes() for f in frames}) == 3


def test_packed_frames_match_the_single_run_path():
    specs = _specs()
    for spec, record in zip(specs, packed.train_pack(specs)):
        alone = train_run(spec)
        mine, theirs = _frames(record)[1], _frames(alone)[1]
        # The two paths compute the same network up to float32 rounding: a probability next
        # to a rounding boundary may land one level (1/255) apart.
        assert np.abs(mine.astype(int) - theirs.astype(int)).max() <= 1


def test_frames_are_left_out_of_the_key_when_off_and_change_nothing_trained():
    on, off = _specs()[0], _specs(record_boundaries=False)[0]
    assert "record_boundaries" not in off.config["training"]  # keys of older runs unchanged
    assert on.key != off.key
    with_frames, without = train_run(on), train_run(off)
    assert "boundary_steps" not in without.artifacts
    assert with_frames.metrics == without.metrics

    def rows(record):
        return [{k: v for k, v in row.items() if k != "time"} for row in record.history]

    assert rows(with_frames) == rows(without)


# SGD on a ReLU net with a learning rate growing 1e6x (1e8x) every 10 steps: the loss grows
# with the weights for a few rows, then overflows. With 1e8 the boundary's logits overflow
# (inf - inf on the plane) a row before the loss on the four points does.
@pytest.mark.parametrize("path", ["single", "packed"])
@pytest.mark.parametrize("learning_rate, growth, frames_before_the_last_finite_row", [
    (0.1, 1e6, 0), (1.0, 1e8, 1)])
def test_a_diverged_run_keeps_the_frames_before_it_diverged(
        path, learning_rate, growth, frames_before_the_last_finite_row):
    specs = _specs(100, {"activation": "relu"}, optimizer="sgd", learning_rate=learning_rate,
                   schedule={"kind": "exponential", "decay_steps": 10, "decay_rate": growth})
    records = (packed.train_pack(specs) if path == "packed"
               else [train_run(spec) for spec in specs])
    for record in records:
        assert record.status == "diverged", record.error
        finite = [row["step"] for row in record.history if np.isfinite(row["loss"])]
        assert len(finite) == len(record.history) - 1 >= 3
        steps = boundary_frames.decode(record.artifacts["boundary_steps"])[0]
        assert steps == finite[:len(finite) - frames_before_the_last_finite_row]


@pytest.mark.parametrize("data, task", [
    ({"dataset": "mnist", "n_train": 100}, None),
    ({"dataset": "gaussian"}, "activation_histograms"),
])
def test_the_setting_is_refused_for_other_datasets(data, task):
    raw = copy.deepcopy(BASE)
    raw["data"] = data
    raw["training"]["loss"] = "cross_entropy"
    if task:
        raw["task"] = task
    with pytest.raises(ConfigError) as error:
        expand(raw)
    assert ("record_boundaries draws the decision boundary over the plane: it applies only to "
            "the 2-D datasets 'xor' / 'xor_cloud', not " in str(error.value))
