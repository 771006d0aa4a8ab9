"""`study run --executor ray`: the same results as local jobs, a dead worker retried once, and
clear messages for what cannot work. The first two tests start a local Ray instance (2 CPUs);
`make test` installs the `ray` extra, so they run in CI.
"""

from __future__ import annotations

import io
import json
import os

import pytest

from tests.engine_fixtures import (DATA_DIR, Started, history_table, mnist_study, run_study,
                                   runs_table, summary, xor_study)


def test_a_local_ray_stores_the_same_results_as_jobs_1(tmp_path):
    xor = xor_study(tmp_path / "xor.toml", seeds=[0, 5], grid={"optimizer": ["sgd", "adam"]})
    mnist = mnist_study(tmp_path / "mnist.toml", seeds=1)  # sgd and adam
    (tmp_path / "one").mkdir()
    (tmp_path / "ray").mkdir()
    serial = Started(xor, mnist, "--db", tmp_path / "one.db", "--data-dir", DATA_DIR,
                     "--jobs", 1, cwd=tmp_path / "one")
    try:
        assert serial.wait() == 0, serial.stderr
    finally:
        serial.kill()
    result = run_study(xor, mnist, "--db", tmp_path / "ray.db", "--data-dir", DATA_DIR,
                       "--executor", "ray", "--jobs", 2, cwd=tmp_path / "ray")
    assert result.returncode == 0, result.stderr
    assert "a local Ray of 2 CPUs" in result.stderr
    assert summary(result.stdout)["finished"] == summary(serial.stdout)["finished"] == 6

    one, ray_ = runs_table(tmp_path / "one.db"), runs_table(tmp_path / "ray.db")
    assert set(one) == set(ray_) and len(one) == 6
    for key in one:
        assert (one[key]["status"], one[key]["metrics"]) == (ray_[key]["status"],
                                                             ray_[key]["metrics"]), key
    assert history_table(tmp_path / "one.db") == history_table(tmp_path / "ray.db")


def test_a_dead_worker_is_retried_once_then_its_runs_are_stored_as_failed(tmp_path):
    # Three arms of two packed seeds: learning rate 0.05 trains; 0.1's worker dies the first
    # time only (so the retry finishes it); 0.2's worker dies every time (so it fails).
    import ray

    from study import runner
    from study.ray_executor import RayExecutor
    from study.store import Store

    study = xor_study(tmp_path / "xor.toml", seeds=2, grid={"learning_rate": [0.05, 0.1, 0.2]})
    marker = str(tmp_path / "died-once")

    def dying(unit, data_dir):
        import os

        from study.executors import work

        rate = unit[0].config["training"]["learning_rate"]
        if rate == 0.2 or (rate == 0.1 and not os.path.exists(marker)):
            open(marker, "w").close() if rate == 0.1 else None
            os._exit(1)  # the worker process dies mid-task, as under `kill -9`
        return work(unit, data_dir)

    with Store(tmp_path / "r.db") as store:
        plan = runner.plan([study], store)
        executor = RayExecutor(jobs=2, data_dir=DATA_DIR, work=dying)
        counts = runner.execute(plan, store, executor,
                                runner.Progress(len(plan.pending), 2, io.StringIO())).counts
    assert not ray.is_initialized()  # the local instance it started is shut down
    assert (counts["finished"], counts["failed"]) == (4, 2)
    rows = runs_table(tmp_path / "r.db")
    by_rate = {}
    for row in rows.values():
        rate = json.loads(row["config"])["training"]["learning_rate"]
        by_rate.setdefault(rate, []).append(row)
    assert {r["status"] for r in by_rate[0.05]} == {r["status"] for r in by_rate[0.1]} == {
        "finished"}
    for row in by_rate[0.2]:
        assert row["status"] == "failed"
        assert "Ray worker died 2 times (retried once)" in row["error"], row["error"]
    assert os.path.exists(marker)


def test_without_ray_installed_the_executor_says_how_to_install_it(tmp_path):
    hide = tmp_path / "no-ray" / "ray"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    study = xor_study(tmp_path / "xor.toml")
    env = {"PYTHONPATH": str(hide.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = run_study(study, "--executor", "ray", "--db", tmp_path / "r.db", cwd=tmp_path,
                       env=env)
    assert result.returncode == 2
    assert 'pip install -e ".[ray]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


@pytest.mark.parametrize("args, message", [
    (["--executor", "ray", "--resources", "{GPU: 1}"], "--resources must be a JSON object"),
    (["--executor", "ray", "--resources", '{"GPU": -1}'], "non-negative numbers"),
    (["--address", "10.0.0.5:6379"], "--address and --resources go with --executor ray"),
])
def test_bad_ray_options_are_refused_with_a_message(tmp_path, args, message):
    study = xor_study(tmp_path / "xor.toml")
    result = run_study(study, *args, "--db", tmp_path / "r.db", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
