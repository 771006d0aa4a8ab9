"""`study run --executor ray`: the same results as local jobs, on a local Ray and on a head
started on this machine's loopback; a dead worker retried once; clear messages for what cannot
work (no Ray, bad options, a cluster that is not there, resources it has not); --resources
reaching each task. The first two tests start a local Ray instance (2 CPUs), the loopback tests
a head of 2 CPUs; `make test` installs the `ray` extra, so they run in CI.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from tests.dependencies import require_module
from tests.engine_fixtures import (DATA_DIR, ROOT, Started, history_table, mnist_study,
                                   run_study, runs_table, summary, xor_study)


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

    from study.engine.execution import runner
    from study.engine.execution.ray_executor import RayExecutor
    from study.engine.results.store import Store

    study = xor_study(tmp_path / "xor.toml", seeds=2, grid={"learning_rate": [0.05, 0.1, 0.2]})
    marker = str(tmp_path / "died-once")

    def dying(unit, data_dir):
        import os

        from study.engine.execution.executors import work

        rate = unit[0].config["training"]["learning_rate"]
        if rate == 0.2 or (rate == 0.1 and not os.path.exists(marker)):
            open(marker, "w").close() if rate == 0.1 else None
            os._exit(1)  # the worker process dies mid-task, as under `kill -9`
        return work(unit, data_dir)

    with Store(tmp_path / "r.db") as store:
        plan = runner.plan([study], store)
        executor = RayExecutor(jobs=2, data_dir=DATA_DIR, work=dying)
        counts = runner.execute(plan, store, executor,
                                runner.Progress(plan.pending, 2, io.StringIO())).counts
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
    (["--executor", "ray", "--address", "127.0.0.1"], "--address must be HOST:PORT"),
    (["--executor", "ray", "--address", "127.0.0.1:port"], "--address must be HOST:PORT"),
])
def test_bad_ray_options_are_refused_with_a_message(tmp_path, args, message):
    study = xor_study(tmp_path / "xor.toml")
    result = run_study(study, *args, "--db", tmp_path / "r.db", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


def test_an_address_nobody_listens_on_is_refused_with_how_to_start_a_cluster(tmp_path):
    # One run stored first; then the same study with one more run, sent to a loopback port
    # nobody listens on: exit 2 before anything is dispatched, the stored run untouched.
    require_module("ray", "--executor ray needs Ray: pip install -e '.[ray]'")
    stored = xor_study(tmp_path / "one.toml", seeds=[0], grid={"optimizer": ["sgd"]})
    study = xor_study(tmp_path / "two.toml", seeds=[0], grid={"optimizer": ["sgd", "adam"]})
    db = tmp_path / "r.db"
    first = run_study(stored, "--db", db, "--jobs", 1, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = runs_table(db)
    assert len(before) == 1

    (port,) = free_ports(1)
    result = run_study(study, "--db", db, "--executor", "ray", "--address", f"127.0.0.1:{port}",
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.stderr
    assert "ray start --head --node-ip-address=127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert runs_table(db) == before  # nothing stored as failed, nothing lost


def test_a_head_on_this_machines_loopback_stores_the_same_results_as_jobs_1(tmp_path):
    require_module("ray", "--executor ray needs Ray: pip install -e '.[ray]'")
    study = xor_study(tmp_path / "xor.toml", seeds=[0, 5], grid={"optimizer": ["sgd", "adam"]})
    (tmp_path / "one").mkdir()
    (tmp_path / "head").mkdir()
    serial = run_study(study, "--db", tmp_path / "one.db", "--jobs", 1, cwd=tmp_path / "one")
    assert serial.returncode == 0, serial.stderr
    with loopback_head() as port:
        result = run_study(study, "--db", tmp_path / "head.db", "--executor", "ray",
                           "--address", f"127.0.0.1:{port}", cwd=tmp_path / "head")
    assert result.returncode == 0, result.stderr
    assert f"Ray at 127.0.0.1:{port}" in result.stderr
    assert summary(result.stdout)["finished"] == summary(serial.stdout)["finished"] == 4

    one, head = runs_table(tmp_path / "one.db"), runs_table(tmp_path / "head.db")
    assert set(one) == set(head) and len(one) == 4
    for key in one:
        assert (one[key]["status"], one[key]["metrics"]) == (head[key]["status"],
                                                             head[key]["metrics"]), key
    assert history_table(tmp_path / "one.db") == history_table(tmp_path / "head.db")


# A driver of its own (Ray must be imported after --address is given, so not in pytest's
# process): each task writes the resources Ray assigned it and its TensorFlow thread count.
DRIVER = """
import io, json, sys
from study.engine.execution import runner
from study.engine.execution.executors import work
from study.engine.execution.ray_executor import RayExecutor
from study.engine.results.store import Store

study, db, address, resources, out = sys.argv[1:]

def reporting(unit, data_dir):
    import os
    import ray
    with open(os.path.join(out, unit[0].key), "w") as file:
        json.dump({"assigned": ray.get_runtime_context().get_assigned_resources(),
                   "threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}, file)
    return work(unit, data_dir)

with Store(db) as store:
    plan = runner.plan([study], store)
    executor = RayExecutor(address=address, resources=json.loads(resources), work=reporting)
    counts = runner.execute(plan, store, executor,
                            runner.Progress(plan.pending, 2, io.StringIO())).counts
print(json.dumps(counts))
"""


def test_resources_reach_each_task_on_the_cluster_at_the_address(tmp_path):
    # The head has 2 CPUs and 2 of a resource "marker": tasks asking for CPU 2 and marker 1
    # are assigned exactly that (and TensorFlow 2 threads); asking for marker 3, more than
    # the cluster has, is refused before any run instead of waiting forever.
    require_module("ray", "--executor ray needs Ray: pip install -e '.[ray]'")
    study = xor_study(tmp_path / "xor.toml", seeds=[0, 5], grid={"optimizer": ["sgd", "adam"]})
    (tmp_path / "tasks").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with loopback_head(resources={"marker": 2}) as port:
        address = f"127.0.0.1:{port}"
        driven = subprocess.run(
            [sys.executable, "-c", DRIVER, str(study), str(tmp_path / "r.db"), address,
             json.dumps({"CPU": 2, "marker": 1}), str(tmp_path / "tasks")],
            env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        refused = run_study(study, "--db", tmp_path / "refused.db", "--executor", "ray",
                            "--address", address, "--resources", '{"marker": 3}', cwd=tmp_path)
    assert driven.returncode == 0, driven.stderr[-3000:]
    assert json.loads(driven.stdout.splitlines()[-1])["finished"] == 4
    reports = [json.loads(path.read_text()) for path in (tmp_path / "tasks").iterdir()]
    assert reports and all(r == {"assigned": {"CPU": 2.0, "marker": 1.0}, "threads": "2"}
                           for r in reports), reports
    assert refused.returncode == 2, refused.stderr
    assert (f"each task asks for marker 3 (--resources), but the Ray cluster at {address} "
            f"has only marker 2.") in refused.stderr
    assert "Traceback" not in refused.stderr
    assert runs_table(tmp_path / "refused.db") == {}


# --- a Ray head of our own, on loopback ------------------------------------------------------

HEAD_TAG = "STUDY_TEST_RAY_HEAD"  # in the environment of every process of the head we start


def free_ports(count: int) -> list[int]:
    """Loopback ports free at the moment of asking (the OS's choice: others rarely collide)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def loopback_head(resources: dict[str, float] | None = None):
    """`ray start --head` on 127.0.0.1 only (2 CPUs), its workers able to import this checkout;
    yields its port. Stopped afterwards by killing exactly the processes it started - each one
    carries a tag in its environment, inherited by the workers too - not with `ray stop`, which
    stops every Ray process of the machine, another test's or another user's included."""
    port, client_port, agent_port = free_ports(3)  # fixed defaults (10001, 52365) could collide
    tag = uuid.uuid4().hex
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix sockets live there
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update({HEAD_TAG: tag, "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})  # else its node address is not loopback
    try:
        started = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
             "--node-ip-address=127.0.0.1", f"--port={port}",
             f"--ray-client-server-port={client_port}",
             f"--dashboard-agent-listen-port={agent_port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
             *([f"--resources={json.dumps(resources)}"] if resources else [])],
            env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield port
    finally:
        _kill_tagged(tag)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _kill_tagged(tag: str, timeout: float = 30) -> None:
    marker = f"{HEAD_TAG}={tag}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid in _pids() if marker in _environment(pid)]
        if not pids:
            return
        for pid in pids:  # a raylet may still start a worker: kill again until none is left
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    raise AssertionError(f"processes of the test's Ray head still alive: {pids}")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]


def _environment(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return file.read().split(b"\0")
    except OSError:  # gone, or not ours to read
        return []
