"""The store's one-transaction-per-run promise, and the seeded batch order of the trainer."""

import math
import sqlite3

import numpy as np
import pytest

from study.engine.results.store import RunRecord, Store, StoreError
from study.engine.training.batches import batch_plan


def _record(key="k1", status="finished", **extra):
    return RunRecord(key=key, study="s", arm="base", seed=0, status=status,
                     config={"a": 1}, overrides={}, started_at="t0", finished_at="t1",
                     wall_time=1.0, metrics={"val_accuracy": 0.5, "nan": float("nan")},
                     history=[{"epoch": 1, "step": 10, "loss": float("inf"), "time": 0.1}],
                     artifacts={"weights": np.arange(3)}, **extra)


def test_a_run_is_written_whole_and_non_finite_values_become_null(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.write(_record())
        rows = store.query("SELECT status, metrics FROM runs")
        assert rows[0]["status"] == "finished"
        assert '"nan": null' in rows[0]["metrics"]
        assert store.query("SELECT loss FROM history")[0]["loss"] is None
        assert store.query("SELECT value FROM artifacts")[0]["value"] == "[0, 1, 2]"


def test_a_failing_write_leaves_nothing_behind(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.write(_record("kept"))
        broken = _record("broken")
        broken.artifacts = {"bad": object()}  # not JSON: fails after the runs row is inserted
        with pytest.raises(TypeError):
            store.write(broken)
        assert [r["key"] for r in store.query("SELECT key FROM runs")] == ["kept"]
        assert store.query("SELECT COUNT(*) AS n FROM history WHERE run_key = 'broken'")[0]["n"] == 0


def test_rewriting_a_run_replaces_it_and_its_history(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.write(_record(status="failed", error="boom"))
        store.write(_record(status="finished"))
        assert store.statuses(["k1", "other"]) == {"k1": "finished"}
        assert store.query("SELECT COUNT(*) AS n FROM history")[0]["n"] == 1


def test_unknown_status_is_refused(tmp_path):
    with Store(tmp_path / "r.db") as store, pytest.raises(ValueError, match="status"):
        store.write(_record(status="done"))


def test_not_a_database_and_a_newer_schema_are_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 1000)
    with pytest.raises(StoreError, match="notes.txt: not a usable study database"):
        Store(text)
    assert text.read_text() == "hello " * 1000
    newer = tmp_path / "newer.db"
    Store(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(newer)


@pytest.mark.parametrize(("n", "batch", "steps"), [(10, 4, 7), (4, 4, 20), (300, 100, 9)])
def test_batch_plan_visits_every_sample_once_per_pass(n, batch, steps):
    indices, starts, ends = batch_plan(n, batch, steps, seed=3)
    per_pass = math.ceil(n / batch)
    assert len(starts) == len(ends) == steps
    batches = [indices[a:b] for a, b in zip(starts, ends)]
    for p in range(steps // per_pass):
        visited = np.concatenate(batches[p * per_pass:(p + 1) * per_pass])
        assert sorted(visited) == list(range(n))  # a permutation: no batch straddles passes
    assert all(1 <= len(b) <= batch for b in batches)


def test_batch_plan_depends_on_the_seed_alone():
    first = batch_plan(50, 8, 30, seed=1)
    again = batch_plan(50, 8, 30, seed=1)
    other = batch_plan(50, 8, 30, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    # a longer run starts with the same batches as a shorter one (same stream, cut later)
    longer = batch_plan(50, 8, 60, seed=1)
    assert np.array_equal(longer[0][:first[0].size], first[0])


def test_each_pass_draws_its_own_permutation():
    # Pass p is default_rng([seed, p]).permutation(n): a new order every pass, not the first
    # pass's order again (which would make every epoch see the same batches).
    n, batch = 12, 4
    indices, starts, _ = batch_plan(n, batch, 3 * 5, seed=7)
    passes = indices[:5 * n].reshape(5, n)
    for p in range(5):
        assert np.array_equal(passes[p], np.random.default_rng([7, p]).permutation(n))
    assert len({tuple(order) for order in passes}) == 5
    assert starts[3] == n  # step 3 opens pass 1


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path):
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("CREATE TABLE posts (text TEXT)")
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match=r"app\.db: an SQLite database of another program "
                                         r"\(tables: posts, users\)"):
        Store(foreign)
    assert foreign.read_bytes() == before
    with sqlite3.connect(foreign) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


def test_a_database_from_before_the_opposite_p_values_gets_them_and_keeps_its_claims(tmp_path):
    # The claims table as schema version 1 first had it: no p_opposite columns.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE claims (study TEXT NOT NULL, claim_id TEXT NOT NULL, text TEXT NOT NULL,
                kind TEXT NOT NULL, metric TEXT NOT NULL, arm TEXT NOT NULL, baseline TEXT,
                n INTEGER NOT NULL, statistic REAL, p_value REAL, p_adjusted REAL, effect REAL,
                estimate TEXT NOT NULL, verdict TEXT NOT NULL, evaluated_at TEXT NOT NULL,
                PRIMARY KEY (study, claim_id));
            INSERT INTO claims VALUES ('old', 'c', 't', 'better', 'm', '{}', '{}', 6, 21, 0.0156,
                0.0312, 1.0, '{}', 'supported', 'then');""")
    with Store(old) as store:
        (kept,) = store.query("SELECT * FROM claims")
        assert (kept["p_adjusted"], kept["p_opposite"], kept["p_opposite_adjusted"]) == (
            0.0312, None, None)
        row = {"study": "new", "claim_id": "c", "text": "t", "kind": "better", "metric": "m",
               "arm": {}, "baseline": {}, "n": 7, "statistic": 28.0, "p_value": 1 / 128,
               "p_adjusted": 2 / 128, "p_opposite": 1.0, "p_opposite_adjusted": 1.0,
               "effect": 1.0, "estimate": {"difference_low": "-inf"}, "verdict": "supported",
               "evaluated_at": "now"}
        store.write_claims("new", [row])
        (new,) = store.query("SELECT * FROM claims WHERE study = 'new'")
        assert (new["p_opposite"], new["p_opposite_adjusted"]) == (1.0, 1.0)
        assert new["estimate"] == '{"difference_low": "-inf"}'
    Store(old).close()  # opening it again changes nothing


def test_statuses_answers_for_every_key_beyond_sqlites_parameter_limit(tmp_path):
    store = Store(tmp_path / "s.db")
    keys = [f"k{i:04d}" for i in range(1234)]
    for i, key in enumerate(keys):
        store.write(_record(key=key, status=("finished", "diverged", "failed")[i % 3]))
    got = store.statuses([*keys, "not stored"])
    assert len(got) == 1234 and "not stored" not in got
    assert got["k1233"] == "finished" and got["k1000"] == "diverged" and got["k0002"] == "failed"


def test_diverged_and_finished_runs_are_not_trained_again_failed_ones_are(tmp_path):
    from study.engine.execution.runner import plan

    study = tmp_path / "tiny.toml"
    study.write_text('name = "tiny"\nseeds = 3\n[data]\ndataset = "xor"\n'
                     '[training]\nsteps = 4\nbatch_size = 4\n', encoding="utf-8")
    store = Store(tmp_path / "s.db")
    first = plan([study], store)
    assert len(first.pending) == 3
    for spec, status in zip(first.pending, ("finished", "diverged", "failed")):
        store.write(_record(key=spec.key, status=status))
    again = plan([study], store)
    assert [s.key for s in again.pending] == [first.pending[2].key]  # only the failed one
    assert len(plan([study], store, rerun=True).pending) == 3


def test_the_run_count_of_the_engine_tests_fails_loudly_on_a_broken_file(tmp_path):
    # Tests assert "nothing was stored" with run_count == 0: a file that is not a database, or
    # is corrupt, must raise, not pass for an empty one.
    from tests.engine_fixtures import run_count

    assert run_count(tmp_path / "missing.db") == 0
    sqlite3.connect(tmp_path / "empty.db").close()
    assert run_count(tmp_path / "empty.db") == 0  # no runs table yet
    store = Store(tmp_path / "s.db")
    store.write(_record())
    store.close()
    assert run_count(tmp_path / "s.db") == 1
    (tmp_path / "junk.db").write_bytes(b"not a database at all, " * 200)
    with pytest.raises(sqlite3.DatabaseError):
        run_count(tmp_path / "junk.db")


def test_a_run_is_stored_as_plain_sorted_json_and_reads_back(tmp_path):
    record = _record(versions={"study": "1.0", "keras": "3.0"})
    record.overrides = {"training.optimizer": "adam", "model.hidden": (4, 2)}
    record.config = {"training": {"steps": np.int64(5), "lr": np.float32(0.5)}, "data": {}}
    with Store(tmp_path / "r.db") as store:
        store.write(record)
        (row,) = store.query("SELECT * FROM runs")
    # sorted keys: the stored copy of a configuration reads the same however it was built
    assert row["config"] == '{"data": {}, "training": {"lr": 0.5, "steps": 5}}'
    assert row["overrides"] == '{"model.hidden": [4, 2], "training.optimizer": "adam"}'
    assert row["versions"] == '{"keras": "3.0", "study": "1.0"}'
    assert row["metrics"] == '{"nan": null, "val_accuracy": 0.5}'
    assert (row["key"], row["study"], row["arm"], row["seed"], row["status"]) == (
        "k1", "s", "base", 0, "finished")
    assert (row["started_at"], row["finished_at"], row["wall_time"], row["error"]) == (
        "t0", "t1", 1.0, None)


def test_non_finite_numbers_become_null_wherever_they_are_stored():
    from study.engine.results.store import _json

    assert _json({"a": [1.5, float("nan"), float("-inf")], 2: (float("inf"),)}) == \
        '{"2": [null], "a": [1.5, null, null]}'
    assert _json(np.array([0.5, np.nan])) == "[0.5, null]"
    assert _json(np.float64("inf")) == "null" and _json(np.int32(3)) == "3"
    assert _json({"nested": {"deep": [np.float32(np.nan)]}}) == '{"nested": {"deep": [null]}}'
    assert _json(None) == "null" and _json("text") == '"text"' and _json(True) == "true"


def test_history_keeps_every_column_and_nulls_the_non_finite(tmp_path):
    history = [{"epoch": 0, "step": 0, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.8,
                "val_accuracy": 0.4, "learning_rate": 0.1, "time": 0.0},
               {"epoch": 1, "step": 10, "loss": float("nan"), "accuracy": np.float32(0.75),
                "val_loss": float("-inf"), "time": 1.5}]
    with Store(tmp_path / "r.db") as store:
        store.write(_record())  # an earlier attempt
        record = _record()
        record.history = history
        store.write(record)
        rows = store.query("SELECT epoch, step, loss, accuracy, val_loss, val_accuracy, "
                           "learning_rate, time FROM history WHERE run_key = ? ORDER BY epoch",
                           ["k1"])
    assert [tuple(r) for r in rows] == [(0, 0, 0.7, 0.5, 0.8, 0.4, 0.1, 0.0),
                                        (1, 10, None, 0.75, None, None, None, 1.5)]


def test_claims_store_non_finite_or_missing_numbers_as_null(tmp_path):
    numbers = ("statistic", "p_value", "p_adjusted", "p_opposite", "p_opposite_adjusted",
               "effect")
    text = {"study": "s", "text": "t", "kind": "better", "metric": "m", "arm": {"a": 1},
            "baseline": None, "n": 3, "estimate": {"low": 1.0}, "verdict": "inconclusive",
            "evaluated_at": "now"}
    rows = [{**text, "claim_id": "inf", **{c: float("inf") for c in numbers}},
            {**text, "claim_id": "missing"},
            {**text, "claim_id": "finite", **{c: np.float64(i / 8) for i, c in enumerate(numbers)}}]
    with Store(tmp_path / "r.db") as store:
        store.write_claims("s", rows)
        got = {r["claim_id"]: r for r in store.query("SELECT * FROM claims")}
        assert all(got["inf"][c] is None and got["missing"][c] is None for c in numbers)
        assert [got["finite"][c] for c in numbers] == [i / 8 for i in range(6)]
        assert (got["finite"]["arm"], got["finite"]["baseline"], got["finite"]["estimate"]) == (
            '{"a": 1}', "null", '{"low": 1.0}')
        store.write_claims("s", rows[:1])  # the study's verdicts are replaced, not added to
        store.write_claims("other", [{**rows[1], "study": "other"}])
        assert sorted((r["study"], r["claim_id"]) for r in store.query("SELECT * FROM claims")) \
            == [("other", "missing"), ("s", "inf")]


def test_a_study_is_stored_with_its_definition_and_run_keys(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.write_study("s", "experiments/s.toml", True, {"seeds": 2, "name": "s"}, ["k2", "k1"])
        store.write_study("s", "experiments/s.toml", False, {"name": "s"}, ["k1"])  # replaces
        (row,) = store.query("SELECT * FROM studies")
    assert (row["name"], row["source"], row["quick"], row["definition"], row["run_keys"]) == (
        "s", "experiments/s.toml", 0, '{"name": "s"}', '["k1"]')
    assert row["updated_at"].endswith("Z")


def test_timestamps_are_utc_whatever_the_local_time_zone(monkeypatch):
    import datetime
    import time

    from study.engine.results.store import now_iso

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+5:30 all year
    time.tzset()
    try:
        stamp = now_iso()
        utc = datetime.datetime.now(datetime.timezone.utc)
    finally:
        monkeypatch.undo()
        time.tzset()
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((utc - parsed).total_seconds()) < 5
    assert len(stamp) == 20


def test_query_binds_its_parameters_and_leaves_later_reads_plain(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.write(_record("a"))
        store.write(_record("b", status="diverged"))
        assert [r["key"] for r in store.query("SELECT key FROM runs WHERE status = ?",
                                              ("diverged",))] == ["b"]
        assert store.statuses(["a", "b"]) == {"a": "finished", "b": "diverged"}


def test_a_statement_outside_a_transaction_is_committed_at_once(tmp_path):
    # Transactions are explicit: nothing is left open (and locked) between them.
    with Store(tmp_path / "r.db") as store:
        store.write(_record("a"))
        store.query("UPDATE runs SET status = 'failed' WHERE key = ?", ["a"])
        with sqlite3.connect(tmp_path / "r.db", timeout=0.1) as other:
            assert other.execute("SELECT status FROM runs").fetchall() == [("failed",)]
            other.execute("DELETE FROM runs")  # no lock is held by the store
        assert store.statuses(["a"]) == {}


def test_a_new_database_is_made_in_missing_folders_and_opens_again(tmp_path):
    path = tmp_path / "new" / "deeper" / "r.db"
    Store(path).close()
    with Store(path) as store:  # its schema version recorded: opening it again is fine
        assert [tuple(r) for r in store.query("SELECT * FROM meta")] == [("schema_version", "1")]


def test_a_database_that_cannot_be_created_says_where(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"file/r\.db: cannot create the database \("):
        Store(blocker / "r.db")


def test_writers_wait_for_each_other_up_to_the_timeout(tmp_path):
    # A second `study run` on the same database queues behind the first's transaction
    # (default: a minute) rather than failing at once.
    with Store(tmp_path / "r.db") as store:
        assert store.query("PRAGMA busy_timeout")[0][0] == 60_000
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        assert store.query("PRAGMA foreign_keys")[0][0] == 1
    with Store(tmp_path / "r.db", timeout_s=0.25) as store:
        assert store.query("PRAGMA busy_timeout")[0][0] == 250


def test_wall_times_sum_the_done_runs_of_each_arm(tmp_path):
    with Store(tmp_path / "r.db") as store:
        for key, study, arm, status, seconds in [
                ("1", "a", "x", "finished", 1.0), ("2", "a", "x", "diverged", 2.5),
                ("3", "a", "x", "failed", 100.0), ("4", "a", "y", "finished", 4.0),
                ("5", "b", "x", "finished", 8.0), ("6", "c", "x", "finished", 16.0)]:
            record = _record(key, status=status)
            record.study, record.arm, record.wall_time = study, arm, seconds
            store.write(record)
        assert store.wall_times(["a", "b", "a"]) == {("a", "x"): (3.5, 2), ("a", "y"): (4.0, 1),
                                                     ("b", "x"): (8.0, 1)}
        assert store.wall_times(iter(["b"])) == {("b", "x"): (8.0, 1)}
        assert store.wall_times([]) == {}
        # beyond SQLite's limit on bound parameters: a study on each side of a batch's edge
        for key, study in [("7", "s0499"), ("8", "s0500"), ("9", "s1000")]:
            record = _record(key)
            record.study = study
            store.write(record)
        many = [f"s{i:04d}" for i in range(1100)]
        assert store.wall_times(many) == {(s, "base"): (1.0, 1) for s in ("s0499", "s0500",
                                                                         "s1000")}
