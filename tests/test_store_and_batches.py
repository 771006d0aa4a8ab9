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
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="another program"):
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
