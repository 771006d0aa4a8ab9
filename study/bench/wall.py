"""Wall time and memory of whole commands, and of the naive way to train XOR.

`timed_study_run` runs `study run ...` as a child process into a fresh database and watches its
process tree: every 0.2 s it reads each descendant's peak resident set (`VmHWM` in
/proc/PID/status, the kernel's high-water mark, so a peak between two looks is not missed; the
last look before a process ends can miss at most its final 0.2 s). The driver is the child
itself; a worker is a descendant started by multiprocessing's `spawn_main` (multiprocessing's
resource tracker, also a descendant, is not counted).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = re.compile(r"study: (\d+) finished, (\d+) diverged, (\d+) failed")


@dataclass
class Timed:
    command: list[str]
    seconds: float
    returncode: int
    runs: int  # finished + diverged + failed, from the command's summary line
    failed: int
    driver_peak_mb: float
    worker_peaks_mb: list[float] = field(default_factory=list)
    output: str = ""


def check(timed: Timed) -> None:
    """Raise if the timed command failed or stored failed runs: its figures would mislead."""
    if timed.returncode != 0 or timed.failed:
        raise RuntimeError(f"bench: {' '.join(map(str, timed.command))} ended with "
                           f"{timed.returncode} ({timed.failed} failed runs):\n"
                           f"{timed.output[-2000:]}")


def timed_study_run(args: list[str], cwd: Path | str | None = None) -> Timed:
    command = [sys.executable, "-m", "study", "run", *map(str, args)]
    env = {**os.environ, "STUDY_NO_KERAS_DOWNLOAD": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, float] = {}
    watcher = threading.Thread(target=_watch, args=(process, peaks), daemon=True)
    watcher.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    match = SUMMARY.search(output or "")
    counts = [int(g) for g in match.groups()] if match else [0, 0, 0]
    driver = peaks.pop(process.pid, 0.0)
    return Timed(command, seconds, process.returncode, sum(counts), counts[2], driver,
                 sorted(peaks.values(), reverse=True), output)


def _watch(process: subprocess.Popen, peaks: dict[int, float]) -> None:
    while process.poll() is None:
        workers = [pid for pid in _descendants(process.pid) if b"spawn_main" in _cmdline(pid)]
        for pid in [process.pid, *workers]:
            peak = _peak_mb(pid)
            if peak is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), peak)
        time.sleep(0.2)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _peak_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def naive_xor_seconds(epochs: int = 2000, seed: int = 0) -> float:
    """One run of the seed's 2-5-4-1 sigmoid XOR net the way a Keras tutorial trains it: one
    `model.fit(x, y, epochs=2000, batch_size=4)` on the four points. Seconds, compile included."""
    import keras

    from study import data

    keras.utils.set_random_seed(seed)
    xor = data.xor()
    start = time.perf_counter()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5, "sigmoid"),
                              keras.layers.Dense(4, "sigmoid"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xor.train.x, xor.train.y.astype("float32"), epochs=epochs, batch_size=4, verbose=0)
    seconds = time.perf_counter() - start
    keras.utils.clear_session(free_memory=True)
    return seconds
