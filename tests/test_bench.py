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
              "raw_after_ms": 1.0, "raw_pair_ms": 0.9, "arm_start_up_s": 0.05, "micro": [
                  {"what": "raw_call", "ms": (1.0, 0.9, 1.1), "ratio": (1.25, 1.2, 1.3)},
                  {"what": "raw_loop", "ms": (0.8, 0.7, 0.9), "ratio": (1.0, 1.0, 1.0)},
                  {"what": "packed_8", "ms": (0.6, 0.55, 0.65), "ratio": (0.75, 0.7, 0.8)}],
              "engine": {"runs": 32, "packs": 4, "steps": 2000, "jobs": 2,
                         "wall_seconds": 40.0, "all_in_ms": 1.1, "wall_ms": 2.5,
                         "steady_ms": 0.9, "pack_step_ms": 0.7, "set_up_per_arm_s": 0.3,
                         "once_per_shape_s": 4.5},
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
    assert "- engine all-in, steady, <= 1.3x the raw step: 1.12x, met" in text  # floor.section
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
    assert "first pack, its data and trace, included) | 1.100 | 1.38 |" in page
    assert "not a worker's first | 0.900 | 1.12 |" in page
    assert "2000 and 200 steps | 0.700 | 0.87 |" in page  # 0.7 / 0.8 in floats
    assert "TensorFlow import included) | 2.500 | 3.12 |" in page
    assert "32 runs (4 arms sharing a model shape" in page and "x 8 seeds" in page
    assert "costs 4.5 s more" in page
    assert "Peak memory per worker: 900, 850 MB (driver 300 MB)" in page
    assert "| raw step re-timed after the engine run (the machine's drift) | 1.000 | 1.25 |" \
        in page
    assert "the engine's 2 workers) | 0.900 | 1.12 |" in page
    assert ("- engine all-in, steady, <= 1.3x the raw step: 1.12x, met (0.90x the raw step "
            "re-timed after it); 1.00x the raw step of two processes at once; with each "
            "worker's first pack 1.38x") in page
    assert "8 seeds' batch plans, 0.05 s (timed alone" in page
    assert "a pack's fixed cost is 0.30 s" in page
    assert "- per-arm start-up < 0.5 s: met (0.05 s an arm; 4.5 s once per shape)" in page
    assert "- peak memory per worker <= 1 GB: met" in page


def test_the_floor_bars_fail_when_the_figures_are_over_them():
    page = floor_page(engine={"steady_ms": 1.05}, arm_start_up_s=0.6,
                      worker_peaks_mb=[1100.0, 700.0])
    assert "- engine all-in, steady, <= 1.3x the raw step: 1.31x, NOT met (1.05x" in page
    assert "- per-arm start-up < 0.5 s: NOT met (0.60 s an arm)" in page
    assert "- peak memory per worker <= 1 GB: NOT met" in page


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


def engine_rows(arm, started_at, wall_time, runs=2):
    return [{"arm": arm, "seed": seed, "status": "finished", "wall_time": wall_time,
             "started_at": f"2026-01-01T00:00:{started_at:02d}Z", "finished_at": "-"}
            for seed in range(runs)]


def test_engine_costs_separate_the_step_an_arms_set_up_and_a_workers_first_pack():
    # Two runs each: a steady run costs 0.2 s set-up share + steps x 1 ms (packs of 2: 0.4 s
    # an arm); a worker's first pack 3 s more (1.5 s a run).
    def study(steps):
        steady = 0.2 + steps * 0.001
        return [*engine_rows("b", 0, steady + 1.5), *engine_rows("a", 0, steady + 1.5),
                *engine_rows("c", 9, steady), *engine_rows("d", 12, steady)]

    costs = floor.engine_costs(study(2000), study(200), steps=2000, short_steps=200, jobs=2,
                               wall_seconds=20.0)
    assert costs["pack_step_ms"] == pytest.approx(1.0)
    assert costs["set_up_per_arm_s"] == pytest.approx(0.4)
    assert costs["once_per_shape_s"] == pytest.approx(3.0)
    assert costs["steady_ms"] == pytest.approx(2.2 / 2000 * 1000)
    assert costs["all_in_ms"] == pytest.approx((8 * 2.2 + 4 * 1.5) * 1000 / 16000)
    assert costs["wall_ms"] == pytest.approx(20.0 * 2 * 1000 / 16000)
    assert (costs["runs"], costs["packs"]) == (8, 4)
    assert [p["arm"] for p in floor.packs_of(study(200))] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="more than 2 packs"):
        floor.engine_costs(study(2000)[:4], study(200), steps=2000, short_steps=200, jobs=2,
                           wall_seconds=1.0)


def test_the_floor_study_is_valid_and_its_arms_share_one_traced_model(tmp_path):
    from study.engine.studies.expansion import load_study
    from study.engine.training.graph_key import graph_key
    from study.engine.training.packed import packs, unit_shape

    for steps in (floor.ENGINE_STEPS, floor.SHORT_STEPS):
        study = load_study(floor.write_study(tmp_path, steps), light=True)
        assert len(study.runs) == floor.ENGINE_SEEDS * 4
        assert {spec.arm for spec in study.runs} == {f"initializer={name}"
                                                     for name in floor.ENGINE_ARMS}
        t = study.runs[0].run_config.training
        assert (t.steps, t.log_every, t.batch_size, t.sampling) == (
            steps, 200, 128, "with_replacement")
        assert len({graph_key(spec.run_config) for spec in study.runs}) == 1
        units = packs(study.runs)  # each arm one pack, all of one shape
        assert [len(unit) for unit in units] == [floor.ENGINE_SEEDS] * 4
        assert len({unit_shape(unit) for unit in units}) == 1


def test_the_packed_step_is_the_engines_trainer_on_each_seeds_own_batches():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the bench trains on TensorFlow")
    import tensorflow as tf

    from study.engine.training.packed_minibatch import Trainer

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((256, 784), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, 256).astype(np.int32))
    trainer, plan = floor_steps.engine_pack(3, 256, steps=4)
    assert isinstance(trainer, Trainer) and trainer.runs == 3
    before = trainer.network.kernels()[0].numpy()
    losses = trainer.train_epoch((x, y), plan, 0, 4)[0].numpy()
    assert not np.array_equal(trainer.network.kernels()[0].numpy(), before)  # it trained
    assert len(set(losses.tolist())) == 3  # each slice its own seed's weights and batches


def test_an_arms_start_up_is_timed_on_the_kept_trainer_of_its_shape(monkeypatch):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the bench trains on TensorFlow")
    from study.engine.training import packed_minibatch

    restored = []
    take_state = packed_minibatch.Trainer.take_state

    def counting(self, fresh):
        restored.append(take_state(self, fresh))
        return restored[-1]

    monkeypatch.setattr(packed_minibatch.Trainer, "take_state", counting)
    seconds = floor_steps.arm_start_up_seconds(2, 300, steps=10, repeats=3)
    assert 0 < seconds < 60
    assert restored == [True, True, True]  # each timed arm restored the kept trainer


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
