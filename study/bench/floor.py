"""The `floor` part of `study bench`: how far the engine's cost per MNIST run-step is from the
barest compiled step of the same network, measured in one run on this machine (issue 18).

Three measurements, one after the other:

1. In a child process whose TensorFlow has one intra-op and one inter-op thread (what a worker
   of `--jobs 2` has on two cores): the raw compiled step (called from Python, and looped in
   the graph), the packed step of R = 8 and 11 stacked networks per run-step, and Keras `fit`
   with steps_per_execution 100 and 1 (`floor_steps`), interleaved repeats.
2. The engine: a study of four arms that share a model shape (their initializers differ) x 8
   seeds, each arm one pack, run by `study run --jobs 2` (`wall.timed_study_run`) with 2000
   and with 200 steps a run, then the runs tables read back (`engine_costs`).
3. The raw step once more (a child again), to show how far the shared machine drifted between
   the raw step and the engine, which cannot be interleaved.

Everything is reported in ms per run-step and as a ratio to the raw step (the lower of the
called and the in-graph-loop medians), with the issue's bars: engine all-in (steady) <= 1.3x
raw, per-arm start-up < 0.5 s (or paid once per model shape), peak memory per worker <= 1 GB.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PACKS = (8, 11)
REPEATS = 5  # interleaved repeats of the micro-measurements (fewer if --repeats is lower)
MICRO_TRAIN_IMAGES = 50_000  # the packed step's batches are drawn from the engine's train split
ENGINE_STEPS, SHORT_STEPS, ENGINE_SEEDS, ENGINE_JOBS = 2000, 200, 8, 2
# Four arms of one model shape: two packs per worker, the first paying the worker's data and
# trace (once per shape), the second only what every arm pays.
ENGINE_ARMS = ("he_normal", "glorot_normal", "lecun_normal", "he_uniform")
ALL_IN_BAR, START_UP_BAR_S, MEMORY_BAR_MB = 1.3, 0.5, 1024
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "OMP_NUM_THREADS": "1"}
MICRO_NAMES = {
    "raw_call": "raw step: one `tf.function` step called from Python, fixed batch",
    "raw_loop": "raw step: K steps in a `tf.range` loop in one `tf.function`, fixed batch",
    **{f"packed_{r}": f"packed: {r} networks stacked, each its own batch (gathered), per "
                      f"run-step" for r in PACKS},
    "fit_100": "Keras `fit`, steps_per_execution 100, tf.data in memory",
    "fit_1": "Keras `fit`, steps_per_execution 1",
}


def measure(*, data_dir=None, repeats: int = REPEATS, steps: int = 300, log=print,
            **_) -> dict[str, Any]:
    """The part's results (bench.json's "floor"): micro summaries, engine costs, memory."""
    from study.bench import wall

    repeats = min(repeats, REPEATS)
    micro = micro_in_child({"n_train": MICRO_TRAIN_IMAGES, "repeats": repeats, "steps": steps,
                            "packs": list(PACKS), "data_dir": data_dir,
                            "start_up": ENGINE_SEEDS, "start_up_steps": ENGINE_STEPS})
    summary = summarise(micro["rows"])
    log(f"bench: floor raw step {summary['raw_ms']:.3f} ms ({summary['raw']})")
    with tempfile.TemporaryDirectory() as folder:
        runs, seconds = {}, {}
        for steps in (ENGINE_STEPS, SHORT_STEPS):
            study = write_study(Path(folder), steps)
            db = Path(folder) / f"floor_{steps}.db"
            timed = wall.timed_study_run([study, "--jobs", ENGINE_JOBS, "--db", db,
                                          *(["--data-dir", data_dir] if data_dir else [])])
            wall.check(timed)
            runs[steps], seconds[steps] = read_runs(db), timed.seconds
            if steps == ENGINE_STEPS:
                peaks, driver_peak = timed.worker_peaks_mb, timed.driver_peak_mb
        engine = engine_costs(runs[ENGINE_STEPS], runs[SHORT_STEPS], steps=ENGINE_STEPS,
                              short_steps=SHORT_STEPS, jobs=ENGINE_JOBS,
                              wall_seconds=seconds[ENGINE_STEPS])
    log(f"bench: floor engine {engine['runs']} runs in {seconds[ENGINE_STEPS]:.0f} s, all-in "
        f"{engine['all_in_ms']:.3f} ms per run-step")
    # The engine is timed after the raw step, not interleaved with it: the raw step once more
    # shows how far the shared machine drifted in between.
    raw_only = {"n_train": 10_000, "repeats": repeats, "steps": steps, "packs": [],
                "fit": False, "data_dir": data_dir}
    after = micro_in_child(raw_only)
    # The engine's workers share the machine: two raw steps at once, one a core, as they do.
    pair = micro_in_children(raw_only, copies=ENGINE_JOBS)
    return {"repeats": repeats, "steps": steps, "threads": micro["threads"],
            "raw_after_ms": summarise(after["rows"])["raw_ms"],
            "raw_pair_ms": statistics.mean(summarise(m["rows"])["raw_ms"] for m in pair),
            "arm_start_up_s": micro["arm_start_up_s"],
            "fit_steps_per_execution": micro["fit_steps_per_execution"], **summary,
            "engine": engine, "worker_peaks_mb": peaks, "driver_peak_mb": driver_peak}


def micro_in_child(spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """`floor_steps.main(spec)` in a child process with one TensorFlow thread."""
    env = {**os.environ, **ONE_THREAD, "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "study.bench.floor_steps", json.dumps(spec)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench: floor's micro-measurements ended with {done.returncode}:\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def micro_in_children(spec: dict[str, Any], copies: int,
                      timeout: float = 900) -> list[dict[str, Any]]:
    """`micro_in_child(spec)` in `copies` child processes at once."""
    env = {**os.environ, **ONE_THREAD, "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    children = [subprocess.Popen([sys.executable, "-m", "study.bench.floor_steps",
                                  json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"bench: floor's micro-measurements ended with "
                               f"{child.returncode}:\n{err[-2000:]}")
        results.append(json.loads(lines[-1]))
    return results


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median [quartiles] ms per run-step of each measurement, and its ratio to the raw step
    taken per repeat (timed seconds apart at most) then summarised the same way. The raw step
    is whichever of raw_call and raw_loop has the lower median."""
    by_name: dict[str, dict[int, float]] = {}
    for row in rows:
        by_name.setdefault(row["what"], {})[row["repeat"]] = row["ms_per_run_step"]
    medians = {name: float(np.median(list(times.values()))) for name, times in by_name.items()}
    raw = min(("raw_call", "raw_loop"), key=medians.__getitem__)
    micro = []
    for name, times in by_name.items():
        ratios = [ms / by_name[raw][repeat] for repeat, ms in times.items()
                  if repeat in by_name[raw]]
        micro.append({"what": name, "ms": quartiles(list(times.values())),
                      "ratio": quartiles(ratios)})
    return {"raw": raw, "raw_ms": medians[raw], "micro": micro}


def quartiles(values) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(median), float(q1), float(q3)


# --- the engine measurement -------------------------------------------------------------------

STUDY = """# Written by `study bench --parts floor` (study/bench/floor.py): the engine's cost per
# MNIST run-step. Arms that differ only in the initializer, so they share one traced model.
name = "bench_floor"
question = "What does one MNIST run-step cost through the engine?"
seeds = {seeds}

[data]
dataset = "mnist"

[model]
hidden = [100, 100, 100, 100]
activation = "relu"

[training]
optimizer = "sgd"
learning_rate = 0.01
batch_size = 128
steps = {steps}
log_every = 200
loss = "cross_entropy"
history_validation_size = 2000
sampling = "with_replacement"

[grid]
initializer = {arms}
"""


def write_study(folder: Path, steps: int = ENGINE_STEPS) -> Path:
    path = folder / f"bench_floor_{steps}.toml"
    path.write_text(STUDY.format(seeds=ENGINE_SEEDS, steps=steps,
                                 arms=json.dumps(list(ENGINE_ARMS))), encoding="utf-8")
    return path


def read_runs(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(
            "SELECT arm, seed, status, started_at, finished_at, wall_time FROM runs")]


def packs_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's packs (one per arm: its seeds trained together), in the order they
    started: `seconds` (the pack's time: the sum of its runs' shares) and `runs`."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault(row["arm"], []).append(row)
    packs = [{"arm": arm, "started_at": min(r["started_at"] for r in runs),
              "seconds": sum(r["wall_time"] for r in runs), "runs": len(runs)}
             for arm, runs in arms.items()]
    return sorted(packs, key=lambda p: (p["started_at"], p["arm"]))


def engine_costs(rows: list[dict[str, Any]], short_rows: list[dict[str, Any]], *, steps: int,
                 short_steps: int, jobs: int, wall_seconds: float) -> dict[str, Any]:
    """The engine's costs per run-step from the runs' rows of two runs of the study, with
    `steps` and `short_steps` steps a run (arm, started_at, wall_time; each arm one pack).

    Runs do not record their worker; the pool hands one pack to each free worker, in order, so
    the `jobs` earliest-started packs are each worker's first (it loads the data and traces the
    shape), the others steady: the shape's trainer is kept and restored.

    - all-in: the summed wall_time of the runs / (runs x steps), everything a worker spent on
      them included;
    - steady: the same over the steady packs only (a pack's set-up, its history and final
      evaluations included);
    - wall: the command's wall clock x jobs / (runs x steps), process start and TensorFlow's
      import included;
    - per arm (pack) set-up, seconds: from the steady packs of both runs, a pack's time is
      set-up + runs x steps x step, solved for the two step counts;
    - once per shape and worker, seconds: a first pack's time minus a steady pack's.
    """
    long_packs, short_packs = packs_of(rows), packs_of(short_rows)
    if min(len(long_packs), len(short_packs)) <= jobs:
        raise ValueError(f"each run of the study needs more than {jobs} packs (arms) for a "
                         "steady one")

    def steady(packs):
        kept = packs[jobs:]
        return statistics.mean(p["seconds"] / p["runs"] for p in kept)  # seconds per run

    long_run, short_run = steady(long_packs), steady(short_packs)
    step_s = (long_run - short_run) / (steps - short_steps)
    runs_per_pack = statistics.mean(p["runs"] for p in long_packs[jobs:])
    first = statistics.mean(p["seconds"] for p in long_packs[:jobs])
    run_steps = len(rows) * steps
    return {
        "runs": len(rows), "packs": len(long_packs), "steps": steps, "jobs": jobs,
        "wall_seconds": wall_seconds,
        "all_in_ms": sum(row["wall_time"] for row in rows) * 1000 / run_steps,
        "steady_ms": long_run * 1000 / steps,
        "wall_ms": wall_seconds * jobs * 1000 / run_steps,
        "pack_step_ms": step_s * 1000,
        "set_up_per_arm_s": (long_run - steps * step_s) * runs_per_pack,
        "once_per_shape_s": first - long_run * runs_per_pack,
    }


# --- the page ---------------------------------------------------------------------------------

def start_up_verdict(set_up_per_arm_s: float, once_per_shape_s: float) -> str:
    """'met' if an arm's set-up is under the bar (what a worker pays once per model shape is
    reported beside it: the issue's alternative)."""
    if set_up_per_arm_s < START_UP_BAR_S:
        return f"met ({set_up_per_arm_s:.2f} s an arm; {once_per_shape_s:.1f} s once per shape)"
    return f"NOT met ({set_up_per_arm_s:.2f} s an arm)"


def section(r: dict[str, Any]) -> list[str]:
    raw, e = r["raw_ms"], r["engine"]
    seeds = e["runs"] // e["packs"]
    lines = [f"## The floor: ms per MNIST run-step, raw compiled step to engine ({r['date']})",
             "",
             f"784-100x4-10 ReLU, He-normal, SGD lr 0.01, batch 128, sparse cross-entropy from "
             f"the logits, float32. Micro-measurements in one child process with "
             f"{r['threads']['intra_op']} intra-op and {r['threads']['inter_op']} inter-op "
             f"TensorFlow thread(s), as a worker of --jobs 2 has: {r['repeats']} interleaved "
             f"repeats of {r['steps']} steps after warm-up, median [quartiles]; a ratio is "
             f"taken per repeat. The raw step is the lower of the two raw medians "
             f"({r['raw']}). The engine: `study run` of {e['runs']} runs ({e['packs']} arms "
             f"sharing a model shape, their initializers differing, x {seeds} seeds, each arm "
             f"one pack) of {e['steps']} steps, --jobs {e['jobs']}, history every 200 steps on "
             f"2,000 validation images, final metrics on train, validation and test included; "
             f"its ratios are to the raw median.",
             "",
             "| what | ms per run-step | ratio to raw step |", "|---|---|---|"]
    for row in r["micro"]:
        lines.append(f"| {MICRO_NAMES.get(row['what'], row['what'])} | {_mq(row['ms'], 3)} | "
                     f"{_mq(row['ratio'], 2)} |")
    for label, ms in (("engine all-in: the runs' summed wall_time / run-steps (each worker's "
                       "first pack, its data and trace, included)", e["all_in_ms"]),
                      ("engine steady: the same over the packs that were not a worker's first",
                       e["steady_ms"]),
                      ("engine's packed step alone, from the steady packs of 2000 and 200 steps",
                       e["pack_step_ms"]),
                      (f"engine wall clock x {e['jobs']} / run-steps (process start, "
                       f"TensorFlow import included)", e["wall_ms"])):
        lines.append(f"| {label} | {ms:.3f} | {ms / raw:.2f} |")
    after = r.get("raw_after_ms")
    if after:
        lines.append(f"| raw step re-timed after the engine run (the machine's drift) | "
                     f"{after:.3f} | {after / raw:.2f} |")
    pair = r.get("raw_pair_ms")
    if pair:
        lines.append(f"| raw step, two processes at once (both cores busy, as the engine's "
                     f"{e['jobs']} workers) | {pair:.3f} | {pair / raw:.2f} |")
    peaks = r["worker_peaks_mb"]
    memory = max(peaks) if peaks else float("nan")
    steady_met = e["steady_ms"] / raw <= ALL_IN_BAR
    start_up = r.get("arm_start_up_s", e["set_up_per_arm_s"])
    lines += ["", f"Per-arm start-up (what an arm pays that a steady run of it does not): "
                  f"restoring the kept trainer to the arm's fresh state and making its "
                  f"{seeds} seeds' batch plans, {start_up:.2f} s (timed alone, median). A "
                  f"steady pack's time is its set-up plus runs x steps x the packed step; "
                  f"solved from the steady packs of the study run with {e['steps']} and "
                  f"with {SHORT_STEPS} steps, a pack's fixed cost is "
                  f"{e['set_up_per_arm_s']:.2f} s (the start-up, and the final evaluations "
                  f"every run pays). A worker's first pack of the shape costs "
                  f"{e['once_per_shape_s']:.1f} s more (loading MNIST, tracing).",
              f"Peak memory per worker: {', '.join(f'{p:,.0f}' for p in peaks) or 'none'} MB "
              f"(driver {r['driver_peak_mb']:,.0f} MB).", "",
              f"- engine all-in, steady, <= {ALL_IN_BAR}x the raw step: "
              f"{e['steady_ms'] / raw:.2f}x, {'met' if steady_met else 'NOT met'}"
              + (f" ({e['steady_ms'] / after:.2f}x the raw step re-timed after it)"
                 if after else "")
              + (f"; {e['steady_ms'] / pair:.2f}x the raw step of two processes at once"
                 if pair else "")
              + f"; with each worker's first pack {e['all_in_ms'] / raw:.2f}x",
              f"- per-arm start-up < {START_UP_BAR_S} s: "
              f"{start_up_verdict(start_up, e['once_per_shape_s'])}",
              f"- peak memory per worker <= {MEMORY_BAR_MB / 1024:.0f} GB: "
              f"{'met' if memory <= MEMORY_BAR_MB else 'NOT met'}"]
    return lines


def _mq(values, digits: int) -> str:
    median, q1, q3 = values
    return f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"
