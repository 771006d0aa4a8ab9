"""`study bench`: the summaries, the page, the merging of parts and the timing of commands.

Speed itself is not asserted here (the machine is shared and noisy): `make bench` measures it.
These tests check that what the page says is computed right from what was measured.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from study import bench
from study.bench import floor, floor_steps, steps, wall
from tests.engine_fixtures import study_env, xor_study


def test_ratios_are_paired_per_repeat_and_summarised_by_median_and_quartiles():
    # ours is 1.02x, 1.10x and 1.00x Keras's in repeats 0, 1, 2 (Keras's times drift a lot)
    keras_ms = [1.0, 2.0, 4.0]
    ours_ms = [1.02, 2.2, 4.0]
    rows = [{"optimizer": "adam", "implementation": impl, "repeat": r, "ms_per_step": ms}
            for impl, times in (("ours", ours_ms), ("keras", keras_ms))
            for r, ms in enumerate(times)]
    (summary,) = steps.summarise(pd.DataFrame(rows), bar=1.05).to_dict("records")
    assert summary["repeats"] == 3
    assert summary["ratio"] == pytest.approx((1.02, 1.01, 1.06))  # median, quartiles of ratios
    assert summary["ours_ms"] == pytest.approx((2.2, 1.61, 3.1))
    assert summary["within_bar"] is True
    # not the ratio of the medians (2.2 / 2.0 = 1.1), which mixes repeats timed apart
    assert summary["ours_ms"][0] / summary["keras_ms"][0] == pytest.approx(1.1)


def test_every_registry_optimizer_is_timed_against_its_keras_built_in():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the bench trains on TensorFlow")
    names = [name for name, _, _ in steps.optimizer_pairs()]
    assert names == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    rng = np.random.default_rng(0)
    x, y = rng.random((512, 784), dtype=np.float32), rng.integers(0, 10, 512).astype(np.int32)
    timings = steps.measure(x, y, repeats=2, steps=4)
    assert len(timings) == 6 * 2 * 2
    assert list(dict.fromkeys(timings["optimizer"])) == names
    assert (timings["ms_per_step"] > 0).all()
    # interleaved: both sides of every pair are timed in every repeat
    assert timings.groupby(["optimizer", "repeat"]).size().eq(2).all()


FAKE = {
    "optimizers": {"repeats": 3, "steps": 10, "threads": 1, "rows": [
        {"optimizer": "adam", "repeats": 3, "ours_ms": (1.5, 1.4, 1.6),
         "keras_ms": (1.45, 1.4, 1.5), "ratio": (1.03, 1.0, 1.05), "within_bar": True}]},
    "xor": {"naive_seconds_per_run": 40.0, "engine_seconds": 20.0, "engine_runs": 720},
    "linear": {"study": "mnist_init", "jobs": 2, "rows": [
        {"seeds": 1, "runs": 21, "seconds": 42.0, "seconds_per_run": 2.0},
        {"seeds": 2, "runs": 42, "seconds": 73.5, "seconds_per_run": 1.75}]},
    "floor": {"repeats": 5, "steps": 300, "threads": {"intra_op": "1", "inter_op": "1"},
              "fit_steps_per_execution": 100, "raw": "raw_loop", "raw_ms": 0.8,
              "raw_after_ms": 1.0, "micro": [
                  {"what": "raw_call", "ms": (1.0, 0.9, 1.1), "ratio": (1.25, 1.2, 1.3)},
                  {"what": "raw_loop", "ms": (0.8, 0.7, 0.9), "ratio": (1.0, 1.0, 1.0)},
                  {"what": "packed_8", "ms": (0.6, 0.55, 0.65), "ratio": (0.75, 0.7, 0.8)}],
              "engine": {"runs": 16, "steps": 2000, "jobs": 2, "wall_seconds": 40.0,
                         "all_in_ms": 1.0, "wall_ms": 2.5, "steady_ms": 0.9,
                         "start_up_s": {"initializer=he_normal": 0.3,
                                        "initializer=glorot_normal": 0.1}},
              "worker_peaks_mb": [900.0, 850.0], "driver_peak_mb": 300.0},
    "quick": {"rows": [{"jobs": 1, "runs": 144, "seconds": 200.0, "driver_peak_mb": 500.0,
                        "worker_peaks_mb": []},
                       {"jobs": 2, "runs": 144, "seconds": 110.0, "driver_peak_mb": 400.0,
                        "worker_peaks_mb": [1500.0, 1400.0]}],
              "worker_minutes_by_study": {"mnist_init": 3.0, "xor": 1.0}},
}


def test_a_part_measured_again_replaces_only_its_section(tmp_path, monkeypatch):
    calls = []

    def fake(part):
        def measure(**_):
            calls.append(part)
            return FAKE[part]
        return measure

    monkeypatch.setattr(bench, "MEASURE", {part: fake(part) for part in FAKE})
    monkeypatch.setattr(bench, "machine", lambda: {"cpu": "test cpu x 2"})
    bench.run(["xor", "floor", "linear", "quick"], tmp_path, log=lambda _: None)
    first = json.loads((tmp_path / "bench.json").read_text())
    page = bench.run(["optimizers"], tmp_path, log=lambda _: None)
    merged = json.loads((tmp_path / "bench.json").read_text())
    assert calls == ["xor", "floor", "linear", "quick", "optimizers"]
    assert merged["xor"] == first["xor"]  # kept, with its own date
    text = page.read_text()
    assert "| adam | 1.50 [1.40, 1.60] | 1.45 [1.40, 1.50] | 1.030 [1.000, 1.050] | yes |" in text
    assert "| engine: `study run experiments/xor.toml --jobs 2`" in text and "36.0" in text
    assert "The engine is 1,440x the naive rate" in text and "under 30 s: met" in text
    assert "| 1 | 21 | 42.0 | 2.00 | - |" in text
    assert "| 2 | 42 | 73.5 | 1.75 | 1.50 |" in text  # (73.5 - 42) / 21
    assert "--jobs 2 is 1.82x faster than --jobs 1." in text
    assert "mnist_init 3.0 min (75%)" in text
    assert "| 2 | 144 | 1 min 50 s | 400 MB | 1,500, 1,400 MB |" in text
    assert "| 1 | 144 | 3 min 20 s | 500 MB | none: runs in the driver |" in text
    assert "- engine all-in <= 1.3x the raw step: 1.25x, met" in text  # floor.section's
    assert text.index("## Optimizers") < text.index("## The floor") < text.index("## XOR")
    assert "Not measured yet: full" in text


def test_a_timed_study_run_counts_runs_and_sees_every_worker(tmp_path):
    study = xor_study(tmp_path / "xor.toml", seeds=2, steps=10, log_every=10)
    timed = wall.timed_study_run([study, "--jobs", 2, "--db", tmp_path / "r.db"], cwd=tmp_path)
    assert timed.returncode == 0, timed.output
    assert (timed.runs, timed.failed) == (4, 0)
    assert timed.driver_peak_mb > 50  # Python with the study package loaded
    assert len(timed.worker_peaks_mb) == 2 and min(timed.worker_peaks_mb) > 50  # TensorFlow each
    assert timed.seconds > 0


def test_unknown_parts_are_refused_with_the_choices():
    result = subprocess.run([sys.executable, "-m", "study", "bench", "--parts", "optimizers,fast"],
                            capture_output=True, text=True, env=study_env(), timeout=120)
    assert result.returncode == 2
    assert ("unknown part(s) fast; choose from optimizers, floor, xor, linear, quick, full"
            in result.stderr)
    assert "Traceback" not in result.stderr


# --- the floor part ---------------------------------------------------------------------------

def floor_page(**changes) -> str:
    result = {**FAKE["floor"], "date": "2026-01-02 03:04 UTC"}
    result["engine"] = {**result["engine"], **changes.pop("engine", {})}
    return "\n".join(floor.section({**result, **changes}))


def test_the_floor_section_states_each_cost_as_a_ratio_to_the_raw_step_and_judges_the_bars():
    page = floor_page()
    assert "(2026-01-02 03:04 UTC)" in page and "1 intra-op and 1 inter-op" in page
    assert "The raw step is the lower of the two raw medians (raw_loop)" in page
    assert ("| raw step: K steps in a `tf.range` loop in one `tf.function`, fixed batch | "
            "0.800 [0.700, 0.900] | 1.00 [1.00, 1.00] |") in page
    assert "| 0.600 [0.550, 0.650] | 0.75 [0.70, 0.80] |" in page  # packed, per repeat
    assert "| engine all-in: the runs' summed wall_time / run-steps | 1.000 | 1.25 |" in page
    assert "not first of its arm on a worker | 0.900 | 1.12 |" in page
    assert "TensorFlow import included) | 2.500 | 3.12 |" in page
    assert "minus the steady run's 1.80 s" in page  # 0.9 ms x 2000 steps
    assert "initializer=he_normal +0.30 s, initializer=glorot_normal +0.10 s" in page
    assert "Peak memory per worker: 900, 850 MB (driver 300 MB)" in page
    assert "| raw step re-timed after the engine run (the machine's drift) | 1.000 | 1.25 |" \
        in page
    assert ("- engine all-in <= 1.3x the raw step: 1.25x, met (1.00x the raw step re-timed "
            "after it)") in page
    assert "- per-arm start-up < 0.5 s: met" in page
    assert "- peak memory per worker <= 1 GB: met" in page
    assert "x 8 seeds) of 2000 steps" in page


def test_the_floor_bars_fail_when_the_figures_are_over_them():
    page = floor_page(engine={"all_in_ms": 1.05, "start_up_s": {"a": 0.1, "b": 0.6}},
                      worker_peaks_mb=[1100.0, 700.0])
    assert "- engine all-in <= 1.3x the raw step: 1.31x, NOT met (1.05x" in page
    assert "- per-arm start-up < 0.5 s: NOT met" in page
    assert "- peak memory per worker <= 1 GB: NOT met" in page
    assert (floor.start_up_verdict({"a": 7.5, "b": 0.1, "c": 0.2})
            == "met, paid once per model shape")
    assert floor.start_up_verdict({"a": 0.49, "b": 0.1}) == "met"
    assert floor.start_up_verdict({"a": 0.7}) == "NOT met"  # one arm: no second to show it


def test_the_floor_summary_takes_the_lower_raw_step_and_pairs_ratios_per_repeat():
    times = {"raw_call": [1.0, 2.0, 1.0], "raw_loop": [0.5, 1.6, 0.9], "fit_1": [1.0, 3.2, 1.8]}
    rows = [{"what": what, "repeat": r, "ms_per_run_step": ms}
            for what, values in times.items() for r, ms in enumerate(values)]
    summary = floor.summarise(rows)
    assert (summary["raw"], summary["raw_ms"]) == ("raw_loop", 0.9)  # median 0.9 < 1.0
    by_what = {row["what"]: row for row in summary["micro"]}
    assert by_what["fit_1"]["ms"] == pytest.approx((1.8, 1.4, 2.5))
    assert by_what["fit_1"]["ratio"] == pytest.approx((2.0, 2.0, 2.0))  # 2x in every repeat
    assert by_what["raw_call"]["ratio"][0] == pytest.approx(1.25)  # of 2, 2 / 1.6, 1 / 0.9


def engine_row(arm, seed, started_at, wall_time):
    return {"arm": arm, "seed": seed, "status": "finished", "wall_time": wall_time,
            "started_at": f"2026-01-01T00:00:{started_at:02d}Z", "finished_at": "-"}


def test_engine_costs_take_each_arms_first_runs_on_the_workers_as_its_start_up():
    rows = [engine_row("a", 1, 0, 10.0), engine_row("a", 0, 0, 9.0),  # tie: seed 0 first
            engine_row("a", 2, 10, 3.0), engine_row("a", 3, 10, 2.0), engine_row("a", 4, 13, 2.2),
            engine_row("b", 0, 15, 2.5), engine_row("b", 2, 16, 2.4),  # tie: seed 1 first
            engine_row("b", 1, 16, 2.1), engine_row("b", 3, 18, 2.1)]
    costs = floor.engine_costs(rows, steps=1000, jobs=2, wall_seconds=20.0)
    # steady: the median of a's 3.0, 2.0, 2.2 and b's 2.4, 2.1 (b's firsts: seeds 0 and 1)
    assert costs["steady_ms"] == pytest.approx(2.2)
    assert costs["start_up_s"] == pytest.approx({"a": 9.5 - 2.2, "b": 2.3 - 2.2})
    assert list(costs["start_up_s"]) == ["a", "b"]  # in the order the arms started
    assert costs["all_in_ms"] == pytest.approx(sum(r["wall_time"] for r in rows) / 9)
    assert costs["wall_ms"] == pytest.approx(20.0 * 2 * 1000 / 9000)
    assert costs["runs"] == 9
    with pytest.raises(ValueError, match="more than 2 runs"):
        floor.engine_costs(rows[:2], steps=1000, jobs=2, wall_seconds=1.0)


def test_the_floor_study_is_valid_and_its_arms_share_one_traced_model(tmp_path):
    from study.engine.studies.expansion import load_study
    from study.engine.training.graph_key import graph_key

    study = load_study(floor.write_study(tmp_path), light=True)
    assert len(study.runs) == floor.ENGINE_SEEDS * 2
    assert {spec.arm for spec in study.runs} == {"initializer=he_normal",
                                                 "initializer=glorot_normal"}
    t = study.runs[0].run_config.training
    assert (t.steps, t.log_every, t.batch_size, t.sampling) == (2000, 200, 128, "with_replacement")
    assert len({graph_key(spec.run_config) for spec in study.runs}) == 1


def test_the_packed_step_trains_every_slice_on_its_own_batch_as_one_network_would():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the bench trains on TensorFlow")
    import tensorflow as tf

    rng = np.random.default_rng(0)
    networks, batch, sizes = 3, 16, (20, 8, 6, 10)
    x = rng.random((64, 20), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    packed = floor_steps.PackedNetworks.he_normal(networks, sizes=sizes, seed=1)
    before = [v.numpy() for v in packed.variables]
    indices = rng.integers(0, 64, (1, networks, batch)).astype(np.int32)
    losses = packed.train(tf.constant(x), tf.constant(y), tf.constant(indices)).numpy()
    for r in range(networks):
        model = floor_steps.keras_network(hidden=sizes[1:-1], n_in=sizes[0])
        model.set_weights([w[r] for w in before])
        step, _ = floor_steps.raw_steps(model)
        loss = step(x[indices[0, r]], y[indices[0, r]])
        assert losses[r] == pytest.approx(float(loss), rel=1e-5)
        for mine, theirs in zip(packed.variables, model.get_weights()):
            np.testing.assert_allclose(mine.numpy()[r], theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(losses[0], losses[1])  # their batches differ


def test_the_micro_measurements_time_every_way_in_every_repeat():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the bench trains on TensorFlow")
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 784), dtype=np.float32), rng.integers(0, 10, 256).astype(np.int32)
    rows = floor_steps.measure(x, y, repeats=2, steps=3, packs=(2,))
    names = ["raw_call", "raw_loop", "packed_2", "fit_100", "fit_1"]
    assert [row["what"] for row in rows] == [n for n in names for _ in range(2)]
    assert all(row["ms_per_run_step"] > 0 for row in rows)


def test_the_micro_measurements_run_in_a_child_with_one_tensorflow_thread():
    measured = floor.micro_in_child({"n_train": 300, "repeats": 2, "steps": 2, "packs": [2],
                                     "fit": False}, timeout=300)
    assert measured["threads"] == {"intra_op": "1", "inter_op": "1"}
    assert measured["fit_steps_per_execution"] == 2  # the largest divisor of 2 up to 100
    assert [row["what"] for row in measured["rows"]] == [
        "raw_call", "raw_call", "raw_loop", "raw_loop", "packed_2", "packed_2"]
