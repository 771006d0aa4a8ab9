"""The progress display's ETA (`study.engine.execution.runner.Progress`, `eta_seconds`): estimated per kind of
run (study, arm) from what runs of that kind cost, not from the mean of every run so far.

Runs are simulated: records with chosen wall times, a fake clock advanced by them (for the true
remaining time and for the old elapsed-based formula). Nothing trains here.
"""

from __future__ import annotations

import io
import re

import pytest

from study.engine.execution import runner
from study.engine.results.store import RunRecord, Store
from study.engine.studies import RunSpec

ETA = re.compile(r"\| ETA (?:(\d+):(\d\d):(\d\d)|unknown)$")


def spec(study: str, arm: str, seed: int) -> RunSpec:
    return RunSpec(study=study, key=f"{study}|{arm}|{seed}", seed=seed, arm=arm, overrides={},
                   config={})


def record(spec_: RunSpec, wall_time: float, status: str = "finished") -> RunRecord:
    return RunRecord(key=spec_.key, study=spec_.study, arm=spec_.arm, seed=spec_.seed,
                     status=status, config={}, overrides={}, started_at="", finished_at="",
                     wall_time=wall_time, metrics={"val_accuracy": 0.5})


def printed_eta(progress: runner.Progress) -> float | None:
    """The ETA of the last line written, in seconds (None for "ETA unknown")."""
    line = progress.stream.getvalue().splitlines()[-1]
    match = ETA.search(line)
    assert match, line
    if match[1] is None:
        return None
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def mixed_grid():
    """10 XOR-like runs (0.05 s on average) and 10 MNIST-like ones (3 s), in two studies."""
    xor = [(spec("xor", "optimizer=adam", s), 0.04 if s % 2 else 0.06) for s in range(10)]
    mnist = [(spec("mnist", "width=64", s), 2.8 if s % 2 == 0 else 3.2) for s in range(10)]
    return xor, mnist


def test_the_eta_of_a_mixed_grid_follows_the_kinds_of_the_remaining_runs():
    xor, mnist = mixed_grid()
    order = xor[:8] + mnist[:3] + xor[8:] + mnist[3:]
    progress = runner.Progress([s for s, _ in order], 1, io.StringIO())
    clock = FakeClock()  # a serial run: one run after another
    for done, (spec_, seconds) in enumerate(order[:11], start=1):
        clock.now += seconds
        progress.finished(record(spec_, seconds))
    remaining = [seconds for _, seconds in order[11:]]  # 2 XOR runs, 7 MNIST runs
    truth = sum(remaining)
    old = clock() / done * len(remaining)  # the mean of every run so far (the replaced rule)

    hand = 2 * (sum(s for _, s in xor[:8]) / 8) + 7 * (sum(s for _, s in mnist[:3]) / 3)
    assert progress.eta() == pytest.approx(hand)
    assert abs(progress.eta() - truth) < 1.0  # 20.6 s against 21.3 s
    assert abs(printed_eta(progress) - truth) < 1.5  # printed in whole seconds
    assert abs(old - truth) > 10.0  # the old rule: 7.5 s
    assert progress.stream.getvalue().splitlines()[-1].startswith(
        "[11/20] mnist | width=64 | seed 2 | val_accuracy=0.5000 | 2.8 s | ETA 0:00:")

    # From there to the end, never more than a run's worth off.
    for spec_, seconds in order[11:]:
        clock.now += seconds
        remaining.pop(0)
        progress.finished(record(spec_, seconds))
        assert abs(progress.eta() - sum(remaining)) <= 3.2
    assert progress.eta() == 0 and printed_eta(progress) == 0


def test_the_eta_is_unknown_until_every_remaining_study_has_a_timed_run():
    xor, mnist = mixed_grid()
    wide = [spec("mnist", "width=128", s) for s in range(2)]
    progress = runner.Progress([s for s, _ in xor[:3]] + [s for s, _ in mnist[:2]] + wide, 1,
                               io.StringIO())
    for spec_, seconds in xor[:3]:
        progress.finished(record(spec_, seconds))
        assert progress.eta() is None and printed_eta(progress) is None
    assert progress.stream.getvalue().splitlines()[-1].endswith("| 0.1 s | ETA unknown")

    progress.finished(record(mnist[0][0], 3.0))
    # width=64 has a run: its 1 remaining costs 3 s; width=128 has none and borrows the
    # study's mean (3 s) for its 2.
    assert progress.eta() == pytest.approx(3 * 3.0)
    assert printed_eta(progress) == 9

    # A failed run is no basis (it may have failed at once): still borrowed from width=64.
    progress.finished(record(wide[0], 0.0, status="failed"))
    assert progress.eta() == pytest.approx(2 * 3.0)
    progress.finished(record(wide[1], 5.0))
    assert progress.eta() == pytest.approx(3.0)  # width=64's last run


def test_stored_wall_times_give_a_basis_from_the_first_record():
    xor, mnist = mixed_grid()
    stored = {("mnist", "width=64"): (30.0, 10),   # e.g. an interrupted earlier `study run`
              ("other", "width=64"): (999.0, 1)}   # another study's arm of the same name
    progress = runner.Progress([s for s, _ in xor + mnist], 1, io.StringIO(), stored=stored)
    progress.finished(record(*xor[0]))
    assert progress.eta() == pytest.approx(9 * 0.06 + 10 * 3.0)
    assert printed_eta(progress) == 31

    # Stored and new runs of the arm are pooled: (30 + 5) / 11 per MNIST run.
    progress.finished(record(mnist[0][0], 5.0))
    assert progress.eta() == pytest.approx(9 * 0.06 + 9 * 35.0 / 11)

    # Stored runs of another arm of the study are the study's basis for a new arm.
    other = runner.Progress([spec("other", "width=32", 0), spec("xor", "a", 0)], 1,
                            io.StringIO(), stored=stored)
    other.finished(record(spec("xor", "a", 0), 0.05))
    assert other.eta() == pytest.approx(999.0)


def test_runs_added_mid_way_enter_the_total_and_the_estimate():
    first = [spec("search", "lr=0.1, round=1", 0), spec("search", "lr=1, round=1", 0)]
    progress = runner.Progress(first, 1, io.StringIO())
    for s in first:
        progress.finished(record(s, 2.0 if "0.1" in s.arm else 4.0))
    assert progress.eta() == 0

    stage = [spec("search", "lr=0.3, round=final", seed) for seed in range(3)]
    progress.add(stage)  # what runner.execute does with a search's next stage
    assert progress.eta() == pytest.approx(3 * 3.0)  # a new arm: the study's mean
    progress.finished(record(stage[0], 6.0))
    assert progress.stream.getvalue().splitlines()[-1].startswith("[3/5] search")
    assert progress.eta() == pytest.approx(2 * 6.0)  # now its own arm's mean
    assert printed_eta(progress) == 12


def test_jobs_share_the_remaining_work_but_no_run_is_split():
    xor, mnist = mixed_grid()
    specs = [s for s, _ in xor + mnist]
    etas = {}
    for jobs in (1, 2):
        progress = runner.Progress(specs, jobs, io.StringIO())
        for spec_, seconds in xor[:5] + mnist[:5]:
            progress.finished(record(spec_, seconds))
        etas[jobs] = progress.eta()
    assert etas[1] == pytest.approx(5 * 0.052 + 5 * 2.96)  # the means of the first five
    assert etas[2] == pytest.approx(etas[1] / 2)

    # The last run cannot go faster for a second worker: its own mean, not half of it.
    progress = runner.Progress(specs[:12], 2, io.StringIO())
    for spec_, seconds in xor + mnist[:1]:
        progress.finished(record(spec_, seconds))
    assert progress.eta() == pytest.approx(2.8)


def test_the_store_gives_each_arms_stored_wall_time(tmp_path):
    with Store(tmp_path / "r.db") as store:
        for s, seconds, status in [(spec("a", "x", 0), 2.0, "finished"),
                                   (spec("a", "x", 1), 1.0, "diverged"),
                                   (spec("a", "x", 2), 9.0, "failed"),
                                   (spec("a", "y", 0), 4.0, "finished"),
                                   (spec("b", "x", 0), 5.0, "finished")]:
            store.write(record(s, seconds, status))
        assert store.wall_times(["a"]) == {("a", "x"): (3.0, 2), ("a", "y"): (4.0, 1)}
        assert store.wall_times(["a", "b", "c"])[("b", "x")] == (5.0, 1)
        assert store.wall_times([]) == {}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_tqdm_bar_with_the_counts_and_the_eta_and_no_line_per_run():
    specs = [spec("xor", "optimizer=adam", s) for s in range(3)]
    progress = runner.Progress(specs, 1, Terminal(), skipped=5)
    assert type(progress._bar).__module__.startswith("tqdm")
    progress.finished(record(specs[0], 0.5))
    progress.finished(record(specs[1], 0.5, status="diverged"))
    failed = record(specs[2], 0.5, status="failed")
    failed.error = "ValueError: boom"
    progress.finished(failed)
    progress.close()
    shown = progress.stream.getvalue()
    assert "\033[K" not in shown and "[1/3]" not in shown  # tqdm's bar, not the old line
    assert "3/3 runs |" in shown
    assert "5 skipped, 1 diverged, 1 failed" in shown
    assert "ETA 0:00:00" in shown  # ours (per kind of run), not tqdm's rate-based one
    assert "xor | optimizer=adam | seed 2\n    failed: ValueError: boom\n" in shown


def test_a_bar_class_given_is_used_and_show_false_shows_nothing():
    import tqdm

    specs = [spec("xor", "a", s) for s in range(2)]
    progress = runner.Progress(specs, 1, io.StringIO(), bar=tqdm.tqdm)  # as study.run does
    progress.finished(record(specs[0], 0.1))
    progress.add([spec("xor", "b", 0)])  # a search's next stage grows the total
    progress.finished(record(specs[1], 0.1))
    progress.close()
    assert "2/3 runs |" in progress.stream.getvalue()

    quiet = runner.Progress(specs, 1, Terminal(), bar=tqdm.tqdm, show=False)
    for s in specs:
        quiet.finished(record(s, 0.1))
    quiet.close()
    assert quiet.stream.getvalue() == "" and quiet.eta() == 0
