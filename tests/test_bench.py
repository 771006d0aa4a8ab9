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
from study.bench import steps, wall
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
    bench.run(["xor", "linear", "quick"], tmp_path, log=lambda _: None)
    first = json.loads((tmp_path / "bench.json").read_text())
    page = bench.run(["optimizers"], tmp_path, log=lambda _: None)
    merged = json.loads((tmp_path / "bench.json").read_text())
    assert calls == ["xor", "linear", "quick", "optimizers"]
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
    assert "unknown part(s) fast; choose from optimizers, xor, linear, quick, full" in result.stderr
    assert "Traceback" not in result.stderr
