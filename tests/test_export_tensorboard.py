"""`study export tensorboard DIR`: every scalar and hparam of a small database, read back with
TensorBoard's own reader (`EventAccumulator`) and its HParams protos and compared with the
database as plain SQLite gives it; the layout, byte-for-byte repeatability, a refused second
export, bad input (exit 2, a message naming the value, no traceback), and no TensorFlow import.

The database: two tiny XOR studies, 16 runs in ~15 s. `xor-export` has 4 failed runs (a constant
initializer that cannot fill its kernel), 2 diverged (lr 1000) and 2 finished; its axes are a
number, a string and an argument table (dict). `xor-mixed` varies a list (`hidden`) and a bool.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.engine_fixtures import ROOT, run_study, study_env, xor_study

EXPORT = ("from study.cli import main\n"
          "rc = main(['export', 'tensorboard', OUT, '--db', DB])\n"
          "import sys\n"
          "print('RC', rc)\n"
          "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))\n")
STUDIES = ("xor-export", "xor-mixed")


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("db")
    a = xor_study(folder / "a.toml", "xor-export", seeds=2,
                  zip={"initializer": ["constant", "glorot_uniform"],
                       "initializer_args": [{"value": [1.0, 2.0, 3.0]}, {}]},
                  grid={"learning_rate": [1000.0, 0.05]}, model={"activation": "leaky_relu"},
                  optimizer="sgd", log_every=2)
    b = xor_study(folder / "b.toml", "xor-mixed", seeds=[0, 3],
                  grid={"hidden": [[4], [5, 4]], "evaluate_test": [True, False]})
    db = folder / "results.db"
    result = run_study(a, b, "--db", db, cwd=folder)
    assert result.returncode == 1, result.stderr  # the four failed runs
    assert "10 finished, 2 diverged, 4 failed" in result.stdout, result.stdout
    return db


@pytest.fixture(scope="module")
def exported(database, tmp_path_factory) -> Path:
    """The export, by the command in a fresh process that must not import TensorFlow."""
    out = tmp_path_factory.mktemp("tb") / "out"
    code = f"OUT, DB = {str(out)!r}, {str(database)!r}\n{EXPORT}"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=study_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "RC 0" in result.stdout, (result.stdout, result.stderr)
    assert "HEAVY []" in result.stdout, result.stdout[-500:]
    return out


def stored_runs(db: Path) -> dict[str, dict]:
    """key -> the run's row (overrides and metrics decoded) with its history rows, by SQLite."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        runs = {r["key"]: {**dict(r), "overrides": json.loads(r["overrides"]),
                           "metrics": json.loads(r["metrics"]), "history": []}
                for r in connection.execute("SELECT * FROM runs")}
        for row in connection.execute("SELECT * FROM history ORDER BY run_key, epoch"):
            runs[row["run_key"]]["history"].append(dict(row))
    finally:
        connection.close()
    return runs


def expected_scalars(run: dict) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, float32 value)]: every history column but run_key and step at the row's
    step, None left out; each numeric final metric as final/<name> at the last logged step."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in run["history"]:
        for column, value in row.items():
            if column not in ("run_key", "step") and value is not None:
                out.setdefault(column, []).append((row["step"], np.float32(value)))
    last = run["history"][-1]["step"] if run["history"] else 0
    for name, value in run["metrics"].items():
        if value is not None:
            out[f"final/{name}"] = [(last, np.float32(value))]
    return out


def expected_hparams(runs: list[dict]) -> dict[str, dict]:
    """key -> hparam -> (kind, value): the varied settings under their full paths plus arm,
    seed and status; lists and tables as compact JSON; a study's mixed-type hparam as text."""
    raw = {r["key"]: {**r["overrides"], "arm": r["arm"], "seed": r["seed"],
                      "status": r["status"]} for r in runs}
    kinds: dict[str, set] = {}
    for values in raw.values():
        for name, value in values.items():
            kinds.setdefault(name, set()).add(
                "bool" if isinstance(value, bool) else "number"
                if isinstance(value, (int, float)) else "str" if isinstance(value, str)
                else "json")
    out = {}
    for key, values in raw.items():
        out[key] = {}
        for name, value in values.items():
            if kinds[name] == {"bool"}:
                out[key][name] = ("bool_value", value)
            elif kinds[name] == {"number"}:
                out[key][name] = ("number_value", float(value))
            else:
                out[key][name] = ("string_value", value if isinstance(value, str) else
                                  json.dumps(value, separators=(",", ":"), sort_keys=True))
    return out


def accumulate(folder: Path) -> ea.EventAccumulator:
    accumulator = ea.EventAccumulator(str(folder), size_guidance={
        ea.SCALARS: 0, ea.TENSORS: 0, ea.COMPRESSED_HISTOGRAMS: 0, ea.HISTOGRAMS: 0,
        ea.IMAGES: 0, ea.AUDIO: 0})
    return accumulator.Reload()


def plugin_data(accumulator: ea.EventAccumulator, tag: str) -> plugin_data_pb2.HParamsPluginData:
    content = accumulator.PluginTagToContent(hparams_metadata.PLUGIN_NAME)[tag]
    return plugin_data_pb2.HParamsPluginData.FromString(content)


def test_every_scalar_and_hparam_of_every_run_reads_back_as_stored(database, exported):
    runs = stored_runs(database)
    leaves = {p.parent for p in exported.rglob("events.out.tfevents.*")}
    checked = {"runs": 0, "scalars": 0, "hparams": 0}
    for study in STUDIES:
        study_runs = [r for r in runs.values() if r["study"] == study]
        hparams = expected_hparams(study_runs)
        arm_folders: dict[str, set] = {}
        for run in study_runs:
            # DIR/<study>/<arm>/seed=<seed>-<key>/: one folder per run, one per arm
            (folder,) = [f for f in leaves if f.name == f"seed={run['seed']}-{run['key']}"]
            assert folder.parent.parent == exported / study
            arm_folders.setdefault(folder.parent.name, set()).add(run["arm"])
            leaves.remove(folder)
            accumulator = accumulate(folder)

            scalars = expected_scalars(run)
            assert sorted(accumulator.Tags()["scalars"]) == sorted(scalars), run["key"]
            for tag, points in scalars.items():
                read = [(e.step, np.float32(e.value)) for e in accumulator.Scalars(tag)]
                assert read == points, (run["key"], tag)
                checked["scalars"] += len(points)
            start = datetime.fromisoformat(run["started_at"]).timestamp()
            if run["history"]:  # each row at the run's start + its elapsed time
                times = [e.wall_time for e in accumulator.Scalars("time")]
                assert times == pytest.approx([start + r["time"] for r in run["history"]],
                                              abs=1e-6)

            info = plugin_data(accumulator, hparams_metadata.SESSION_START_INFO_TAG)
            start_info = info.session_start_info
            assert start_info.group_name == run["key"]
            assert start_info.start_time_secs == start
            read = {name: (value.WhichOneof("kind"), getattr(value, value.WhichOneof("kind")))
                    for name, value in start_info.hparams.items()}
            assert read == hparams[run["key"]], run["key"]
            checked["hparams"] += len(read)
            checked["runs"] += 1
        assert all(len(arms) == 1 for arms in arm_folders.values()), arm_folders
        _check_experiment_config(exported / study, study_runs, hparams)
        leaves.remove(exported / study)
    assert leaves == set()  # no folder beyond one per run and one per study
    assert checked["runs"] == 16
    statuses = {r["status"] for r in runs.values()}
    assert statuses == {"finished", "diverged", "failed"}
    print(f"verified {checked}")
    assert checked["scalars"] > 500 and checked["hparams"] == 8 * 6 + 8 * 5


def _check_experiment_config(folder: Path, runs: list[dict], hparams: dict[str, dict]) -> None:
    accumulator = accumulate(folder)
    assert accumulator.Tags()["scalars"] == []
    experiment = plugin_data(accumulator, hparams_metadata.EXPERIMENT_TAG).experiment
    domains = {}
    for info in experiment.hparam_infos:
        kind = {1: "string_value", 2: "bool_value", 3: "number_value"}[info.type]
        domains[info.name] = (kind, sorted(getattr(v, v.WhichOneof("kind"))
                                           for v in info.domain_discrete.values))
    wanted: dict[str, tuple[str, set]] = {}
    for values in hparams.values():
        for name, (kind, value) in values.items():
            wanted.setdefault(name, (kind, set()))[1].add(value)
    assert domains == {name: (kind, sorted(values)) for name, (kind, values) in wanted.items()}
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {m.name.group for m in experiment.metric_infos} == {""}  # in the run's own folder
    assert metrics == {f"final/{name}" for r in runs for name, v in r["metrics"].items()
                       if v is not None}


def test_the_hparams_cover_failed_diverged_lists_tables_and_bools(database):
    runs = stored_runs(database)
    hparams = expected_hparams(list(runs.values()))
    kinds = {(name, kind) for values in hparams.values() for name, (kind, _) in values.items()}
    assert {("training.learning_rate", "number_value"), ("model.initializer", "string_value"),
            ("model.initializer_args", "string_value"), ("model.hidden", "string_value"),
            ("training.evaluate_test", "bool_value"), ("seed", "number_value"),
            ("status", "string_value")} <= kinds
    failed = [r for r in runs.values() if r["status"] == "failed"]
    assert failed and all(not r["history"] for r in failed)  # exported with hparams alone


def test_one_database_gives_the_same_files_byte_for_byte(database, exported, tmp_path):
    from study.export.tensorboard import export

    export(database, tmp_path / "again")
    files = sorted(p.relative_to(exported) for p in exported.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again")
                           for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert all((exported / f).read_bytes() == (tmp_path / "again" / f).read_bytes()
               for f in files)
    assert len(files) == 16 + 2


def test_one_study_alone_then_the_other_beside_it(database, tmp_path):
    out = tmp_path / "out"
    first = _export(out, "--db", database, "--study", "xor-mixed")
    assert first.returncode == 0, first.stderr
    assert [p.name for p in out.iterdir()] == ["xor-mixed"]
    assert "xor-mixed: 8 runs (8 finished)" in first.stdout
    second = _export(out, "--db", database, "--study", "xor-export")
    assert second.returncode == 0, second.stderr
    assert "xor-export: 8 runs (2 diverged, 4 failed, 2 finished)" in second.stdout
    assert sorted(p.name for p in out.iterdir()) == ["xor-export", "xor-mixed"]


# --- bad input -----------------------------------------------------------------------------------

def _export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", "export", "tensorboard",
                           *map(str, args)], cwd=ROOT, env=study_env(), capture_output=True,
                          text=True, timeout=120)


def _refused(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_an_export_into_a_folder_that_holds_one_is_refused_and_left_alone(database, exported):
    before = {p: p.read_bytes() for p in exported.rglob("*") if p.is_file()}
    again = _export(exported, "--db", database, "--study", "xor-mixed")
    _refused(again, f"{exported / 'xor-mixed'}: already holds an export of study 'xor-mixed'",
             "remove it")
    assert {p: p.read_bytes() for p in exported.rglob("*") if p.is_file()} == before


def test_an_unknown_study_gets_a_did_you_mean(database, tmp_path):
    result = _export(tmp_path / "out", "--db", database, "--study", "xor-exprt")
    _refused(result, f"{database}: 'xor-exprt' is not a study of this database; did you mean "
                     f"'xor-export'? (its studies: xor-export, xor-mixed)")
    assert not (tmp_path / "out").exists()


def test_a_missing_or_foreign_database_and_a_file_for_dir_are_refused(database, tmp_path):
    _refused(_export(tmp_path / "out", "--db", tmp_path / "none.db"),
             f"{tmp_path / 'none.db'}: no such results database")
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 100)
    _refused(_export(tmp_path / "out", "--db", text),
             f"{text}: not a readable study results database")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    _refused(_export(tmp_path / "out", "--db", other), f"{other}: not a study results database")
    _refused(_export(tmp_path / "out", "--db", tmp_path), f"{tmp_path}: is a folder")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _refused(_export(a_file, "--db", database), f"{a_file}: is a file, not a folder")
    _refused(_export(a_file / "below", "--db", database), f"{a_file / 'below'}: cannot create")
    assert not (tmp_path / "out").exists()


# --- names and domains, without a database ------------------------------------------------------

def test_folder_names_are_safe_and_unique():
    from study.export.tensorboard import MAX_NAME, safe_name, unique_names

    assert safe_name('hidden=[5,4], activation="relu"') == "hidden=_5_4_activation=_relu"
    assert safe_name("../..") == "_" and safe_name("") == "_"
    assert safe_name(".hidden") == "hidden" and safe_name("a/b\\c:d") == "a_b_c_d"
    names = unique_names(["lr=[1]", "lr=(1)", "Adam", "adam", "sgd", "x" * 200])
    assert names[4] == "sgd"
    assert len(set(n.lower() for n in names)) == 6  # distinct even on a case-blind disk
    assert names[0].startswith("lr=_1-") and names[2].startswith("Adam-")
    assert len(names[5]) == MAX_NAME + 9


def test_domains_mixed_types_become_text_and_many_numbers_an_interval():
    from study.export.runs import StoredRun
    from study.export.tensorboard import MAX_DISCRETE_NUMBERS, domains, study_hparams

    runs = [StoredRun(f"k{i}", "s", f"arm{i}", i, "finished", "2026-01-01T00:00:00Z",
                      {"model.batch_norm": [False, "keras", None][i % 3],
                       "training.learning_rate": 10.0 ** -i, "model.hidden": [i]}, {})
            for i in range(MAX_DISCRETE_NUMBERS + 1)]
    hparams = study_hparams(runs)
    assert [hparams[f"k{i}"]["model.batch_norm"] for i in range(3)] == ["false", "keras", "null"]
    assert hparams["k2"]["model.hidden"] == "[2]" and hparams["k2"]["seed"] == 2.0
    by_name = {h.name: h.domain for h in domains(hparams)}
    assert by_name["model.batch_norm"].values == ["false", "keras", "null"]
    rate = by_name["training.learning_rate"]  # 21 distinct numbers: an interval
    assert (rate.min_value, rate.max_value) == (10.0 ** -MAX_DISCRETE_NUMBERS, 1.0)
    assert by_name["status"].values == ["finished"]
    assert (by_name["seed"].min_value, by_name["seed"].max_value) == (0.0, 20.0)
    assert [type(by_name[n]).__name__ for n in ("arm", "model.hidden")] == ["Discrete"] * 2


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_an_export_stopped_midway_leaves_no_half_written_study(database, tmp_path, monkeypatch,
                                                               error):
    from study.export import ExportError
    from study.export import tensorboard

    calls = []

    def failing(folder, wall_time, events):
        calls.append(folder)
        if len(calls) == 3:
            raise error
        write_events(folder, wall_time, events)

    write_events = tensorboard.write_events
    monkeypatch.setattr(tensorboard, "write_events", failing)
    with pytest.raises(ExportError if isinstance(error, OSError) else KeyboardInterrupt) as info:
        tensorboard.export(database, tmp_path / "out", ["xor-mixed"])
    if isinstance(error, OSError):
        assert str(info.value) == (f"{tmp_path / 'out' / 'xor-mixed'}: cannot write the export "
                                   f"([Errno 28] No space left on device)")
    assert list((tmp_path / "out").iterdir()) == []  # neither the study nor its hidden draft
