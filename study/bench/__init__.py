"""`study bench`: the speed figures of the project, measured in one run on this machine and
written to reports/bench.md (and bench.json, the raw numbers), then printed.

Parts (`--parts`, all by default; a part measured again replaces only its own section):
- `optimizers`: ms per step of each of our optimizers and its Keras built-in on the MNIST
  network, interleaved repeats (study.bench.steps); the bar is a median ratio of 1.05.
- `floor`: ms per MNIST run-step from the raw compiled step (one TensorFlow thread) through
  packed steps and Keras `fit` to the engine's all-in cost and per-arm start-up, each as a
  ratio to the raw step (study.bench.floor); bars: all-in <= 1.3x raw, start-up < 0.5 s.
- `xor`: runs per second of the seed's XOR net trained the naive way (one `fit` of 2000 epochs
  per run) and the engine's way (`study run experiments/xor.toml --jobs 2`: packed runs,
  process start and compilation included).
- `linear`: mnist_init with 1, 2 and 4 seeds (21, 42, 84 runs) at --jobs 2: seconds per run
  should not grow with the number of runs.
- `quick`, `full`: `study run experiments/*.toml [--quick]` with --jobs 1 and --jobs 2 in a fresh
  database each: wall time, the speed-up of two jobs, peak memory of the driver and of each
  worker, and (full) each study's share of the worker time. `full` takes about an hour and a
  half (both job counts).
Timed commands run in child processes, one at a time; nothing else should run meanwhile.
"""

from __future__ import annotations

import datetime as _dt
import glob
import json
import platform
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from study.bench import floor

PARTS = ("optimizers", "floor", "xor", "linear", "quick", "full")
RATIO_BAR = 1.05


def run(parts: list[str], out: Path | str = "reports", *, data_dir: str | None = None,
        repeats: int = 15, steps: int = 300, log: Callable[[str], None] | None = None) -> Path:
    """Measure `parts`, merge them into out/bench.json, write out/bench.md; its path."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "bench.json"
    results: dict[str, Any] = json.loads(store.read_text("utf-8")) if store.exists() else {}
    results["machine"] = machine()
    page = out / "bench.md"
    for part in parts:  # written after each part: a failure later keeps what was measured
        log(f"bench: {part} ...")
        measured = MEASURE[part](data_dir=data_dir, repeats=repeats, steps=steps, log=log)
        results[part] = {"date": _now(), **measured}
        store.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        page.write_text(markdown(results), encoding="utf-8")
    return page


def machine() -> dict[str, Any]:
    import keras

    from study.engine.training.environment import cpu_name

    memory_kb = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            memory_kb = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        pass
    import tensorflow as tf

    return {"cpu": cpu_name(), "memory_gb": round(memory_kb / 2**20, 1),
            "python": platform.python_version(), "keras": keras.__version__,
            "tensorflow": tf.__version__}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- parts ------------------------------------------------------------------------------------

def _optimizers(*, data_dir, repeats, steps, log, **_) -> dict[str, Any]:
    from study import data
    from study.engine.execution.executors import threads_per_job
    from study.bench import steps as step_bench

    mnist = data.mnist(10_000, data_dir=data_dir)
    timings = step_bench.measure(mnist.train.x, mnist.train.y, repeats=repeats, steps=steps)
    summary = step_bench.summarise(timings, RATIO_BAR)
    return {"repeats": repeats, "steps": steps, "threads": threads_per_job(2),
            "rows": summary.to_dict("records")}


def _xor(*, data_dir, log, **_) -> dict[str, Any]:
    from study.bench import wall

    naive = wall.naive_xor_seconds()
    log(f"bench: naive XOR run {naive:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        engine = wall.timed_study_run(["experiments/xor.toml", "--jobs", 2,
                                       "--db", Path(folder) / "xor.db"])
    wall.check(engine)
    return {"naive_seconds_per_run": naive, "engine_seconds": engine.seconds,
            "engine_runs": engine.runs}


def _linear(*, data_dir, log, **_) -> dict[str, Any]:
    from study.bench import wall

    text = Path("experiments/mnist_init.toml").read_text("utf-8")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seeds in (1, 2, 4):
            # the first `seeds = N` is the top-level key (TOML puts those before any table)
            variant, count = re.subn(r"(?m)^seeds = \d+$", f"seeds = {seeds}", text, count=1)
            if count != 1:
                raise RuntimeError("experiments/mnist_init.toml: no 'seeds = N' line")
            path = Path(folder) / f"mnist_init_{seeds}.toml"
            path.write_text(variant, encoding="utf-8")
            timed = wall.timed_study_run([path, "--jobs", 2, "--db", Path(folder) / f"{seeds}.db",
                                          *_data_args(data_dir)])
            wall.check(timed)
            log(f"bench: mnist_init x {seeds} seeds: {timed.runs} runs in {timed.seconds:.0f} s")
            rows.append({"seeds": seeds, "runs": timed.runs, "seconds": timed.seconds,
                         "seconds_per_run": timed.seconds / timed.runs})
    return {"study": "mnist_init", "jobs": 2, "rows": rows}


def _whole(quick: bool) -> Callable[..., dict[str, Any]]:
    def measure(*, data_dir, log, **_) -> dict[str, Any]:
        from study.bench import wall

        files = sorted(glob.glob("experiments/*.toml"))
        rows, shares = [], {}
        with tempfile.TemporaryDirectory() as folder:
            for jobs in (1, 2):
                db = Path(folder) / f"jobs{jobs}.db"
                timed = wall.timed_study_run([*files, "--jobs", jobs, "--db", db,
                                              *(["--quick"] if quick else []),
                                              *_data_args(data_dir)])
                wall.check(timed)
                log(f"bench: {'quick' if quick else 'full'} --jobs {jobs}: {timed.runs} runs "
                    f"in {timed.seconds / 60:.1f} min")
                rows.append({"jobs": jobs, "runs": timed.runs, "seconds": timed.seconds,
                             "driver_peak_mb": timed.driver_peak_mb,
                             "worker_peaks_mb": timed.worker_peaks_mb})
                if jobs == 2:
                    shares = _worker_minutes(db)
        return {"rows": rows, "worker_minutes_by_study": shares}
    return measure


def _data_args(data_dir) -> list[str]:
    return ["--data-dir", data_dir] if data_dir else []


def _worker_minutes(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT study, SUM(wall_time) FROM runs GROUP BY study "
                                  "ORDER BY 2 DESC").fetchall()
    return {study: seconds / 60 for study, seconds in rows}


MEASURE: dict[str, Callable[..., dict[str, Any]]] = {
    "optimizers": _optimizers, "floor": floor.measure, "xor": _xor, "linear": _linear,
    "quick": _whole(quick=True), "full": _whole(quick=False),
}


# --- the page ---------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    lines = ["# Benchmarks", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('memory_gb', '?')} GB; Python "
             f"{m.get('python', '?')}, Keras {m.get('keras', '?')}, TensorFlow "
             f"{m.get('tensorflow', '?')}, CPU only. Written by `make bench` (`study bench`); "
             "each section says when it was measured.", ""]
    for part in PARTS:
        if part in results:
            lines += SECTIONS[part](results[part]) + [""]
    missing = [p for p in PARTS if p not in results]
    if missing:
        lines += [f"Not measured yet: {', '.join(missing)} (`study bench --parts "
                  f"{','.join(missing)}`).", ""]
    return "\n".join(lines)


def _optimizers_section(r: dict[str, Any]) -> list[str]:
    lines = [f"## Optimizers: ms per step, ours vs Keras ({r['date']})", "",
             f"The MNIST network 784-100x4-10 (ReLU), batch 128, steps_per_execution 100, "
             f"{r['threads']} TensorFlow thread(s) (as in a worker of --jobs 2); {r['repeats']} "
             f"interleaved repeats of {r['steps']} steps. Median [quartiles]; the ratio is "
             f"ours / Keras per repeat; bar: median ratio <= {RATIO_BAR}.", "",
             "| optimizer | ours ms/step | Keras ms/step | ratio | within 1.05 |",
             "|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['optimizer']} | {_mq(row['ours_ms'])} | {_mq(row['keras_ms'])} | "
                     f"{_mq(row['ratio'], 3)} | {'yes' if row['within_bar'] else 'no'} |")
    return lines


def _xor_section(r: dict[str, Any]) -> list[str]:
    naive_rate = 1 / r["naive_seconds_per_run"]
    engine_rate = r["engine_runs"] / r["engine_seconds"]
    return [f"## XOR: runs per second ({r['date']})", "",
            "| way | runs | seconds | runs/s |", "|---|---|---|---|",
            f"| naive: one `fit(epochs=2000, batch_size=4)` per run | 1 | "
            f"{r['naive_seconds_per_run']:.1f} | {naive_rate:.3f} |",
            f"| engine: `study run experiments/xor.toml --jobs 2` (start-up and compilation "
            f"included) | {r['engine_runs']} | {r['engine_seconds']:.1f} | {engine_rate:.1f} |",
            "", f"The engine is {engine_rate / naive_rate:,.0f}x the naive rate; bar: the xor "
            f"grid (at least 500 runs of 2000 steps) under 30 s: "
            f"{'met' if r['engine_seconds'] < 30 else 'NOT met'}."]


def _linear_section(r: dict[str, Any]) -> list[str]:
    lines = [f"## Cost per run as the grid grows ({r['date']})", "",
             f"{r['study']} with 1, 2 and 4 seeds per arm, --jobs {r['jobs']}, fresh database; "
             "the wall time includes starting the workers, so the cost of the added runs (the "
             "slope from the row above) is the figure to compare.", "",
             "| seeds | runs | seconds | seconds per run | seconds per added run |",
             "|---|---|---|---|---|"]
    previous = None
    for row in r["rows"]:
        slope = ("-" if previous is None else
                 f"{(row['seconds'] - previous['seconds']) / (row['runs'] - previous['runs']):.2f}")
        lines.append(f"| {row['seeds']} | {row['runs']} | {row['seconds']:.1f} | "
                     f"{row['seconds_per_run']:.2f} | {slope} |")
        previous = row
    return lines


def _whole_section(title: str) -> Callable[[dict[str, Any]], list[str]]:
    def section(r: dict[str, Any]) -> list[str]:
        lines = [f"## {title} ({r['date']})", "",
                 "| jobs | runs | wall time | driver peak RSS | worker peak RSS |",
                 "|---|---|---|---|---|"]
        for row in r["rows"]:
            workers = (", ".join(f"{w:,.0f}" for w in row["worker_peaks_mb"]) + " MB"
                       if row["worker_peaks_mb"] else "none: runs in the driver")
            lines.append(f"| {row['jobs']} | {row['runs']} | {_clock(row['seconds'])} | "
                         f"{row['driver_peak_mb']:,.0f} MB | {workers} |")
        by_jobs = {row["jobs"]: row["seconds"] for row in r["rows"]}
        if 1 in by_jobs and 2 in by_jobs:
            lines += ["", f"--jobs 2 is {by_jobs[1] / by_jobs[2]:.2f}x faster than --jobs 1."]
        shares = r.get("worker_minutes_by_study") or {}
        if shares:
            total = sum(shares.values())
            lines += ["", "Worker time by study (--jobs 2): " + ", ".join(
                f"{study} {minutes:.1f} min ({minutes / total:.0%})"
                for study, minutes in shares.items()) + "."]
        return lines
    return section


SECTIONS = {"optimizers": _optimizers_section, "floor": floor.section, "xor": _xor_section,
            "linear": _linear_section,
            "quick": _whole_section("`study run experiments/*.toml --quick`"),
            "full": _whole_section("`study run experiments/*.toml` (the full studies)")}


def _mq(values, digits: int = 2) -> str:
    median, q1, q3 = values
    return f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s"


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"--parts: unknown part(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(PARTS)}")
    return parts

