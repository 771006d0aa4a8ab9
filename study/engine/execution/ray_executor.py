"""`study run ... --executor ray`: each pending work unit a Ray task, on a cluster or a local Ray.

The driver stays what it is with local jobs (study.runner): it decides which runs are pending
from the store before anything is dispatched, and writes each record that comes back in its own
transaction, so a lost worker, a killed driver or a restarted cluster loses no finished run and
repeats none. A task gets a list of run specs (plain dataclasses of dicts) and returns plain
records; nothing Keras crosses the wire. On the worker, `study.engine.training.packed.train_pack` seeds each
run, switches TensorFlow's op determinism on and releases the run's memory (the Keras session
with it); the task's environment limits TensorFlow to the CPUs the task asked for.

Failures: a task whose worker process died (killed, out of memory, its node lost) is submitted
once more; if it dies again its runs are stored as `failed` with the reason, and the next
`study run` tries them again. An exception inside a task is not retried (a run's own errors are
already stored as `failed` records by the worker; anything else is a bug to see).

Ray's own retries are off (`max_retries=0`) so that this policy, and its record, are ours.

Connecting (`RayExecutor.connect`, which the command calls once the plan has pending runs and
before anything is dispatched): `--address HOST:PORT` is checked first with a plain TCP connect
of a few seconds, so a cluster that is not there is reported at once as `RayConnectionError`,
with how to start one (the command prints it and exits 2, nothing stored), instead of Ray's
retries for minutes and a traceback. A malformed address is a `ValueError` before anything opens.

A head on this machine's loopback (`127.x.x.x`, `localhost`, `::1`): Ray replaces a localhost
address - in `ray.init(address=...)`, in its `_node_ip_address` and in `ray start
--node-ip-address` alike - with the machine's address on its default route, so the driver looked
for a loopback head at the machine's other address. Ray keeps loopback addresses in its
single-machine mode, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, read when Ray is imported: the
executor sets it before importing Ray for such an address (the driver's node address is then
the local raylet's, 127.0.0.1), and the head needs it too, or it is not on loopback either (the
message for an unreachable address shows the command). As Ray does for a local cluster it finds
itself, but never for an explicit address, the driver also turns token authentication on
(`RAY_AUTH_MODE=token`, unless set) if this machine has a token (`ray start --head` writes
`~/.ray/auth_token`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from study.engine.execution.executors import FollowUp, Units, failed_record, work
from study.engine.results.store import RunRecord
from study.engine.studies.expansion import RunSpec

INSTALL_HINT = ('--executor ray needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.40")')
ATTEMPTS = 2  # a unit whose worker died is retried once
REACH_TIMEOUT_S = 3.0  # the TCP check of --address before Ray is asked to join it
LOCALHOST = "127.0.0.1"  # what Ray makes of `localhost` and `::1` in its single-machine mode
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps loopback addresses
AUTH_TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # besides ~/.ray/auth_token


class RayUnavailable(RuntimeError):
    """Ray is not installed."""


class RayConnectionError(RuntimeError):
    """The cluster at --address cannot be reached or joined, or has not the resources that
    --resources asks of each task; the message says what to do."""


def parse_address(text: str) -> tuple[str, int]:
    """`--address HOST:PORT` (an IPv6 host in brackets: `[::1]:6379`) -> (host, port)."""
    host, colon, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 host without brackets: its port cannot be told apart
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address must be HOST:PORT, such as 127.0.0.1:6379 or "
                         f"10.0.0.5:6379 (or 'auto', the cluster `ray start` started on this "
                         f"machine); got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """127.x.x.x, ::1 or localhost: a head on this machine, reachable from it alone."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_hint(address: str | None) -> str:
    """How to start the cluster that `--address` names: on this machine's loopback if its host
    is a loopback one, else a head and its nodes (and the loopback way, to try it here)."""
    host, port = parse_address(address) if address and address != "auto" else ("", 6379)
    here = (f"{SINGLE_MACHINE}=0 ray start --head --node-ip-address=127.0.0.1 --port={port}")
    if host and is_loopback(host):
        return (f"Start one on this machine, on loopback only, with\n  {here}\n"
                f"({SINGLE_MACHINE}=0 keeps Ray from swapping 127.0.0.1 for the machine's "
                f"address), then run again with --address 127.0.0.1:{port}.")
    return (f"Start one with\n  ray start --head --port={port}        (on the head node)\n"
            f"  ray start --address=HEAD_IP:{port}    (on every other node)\n"
            f"then run again with --address HEAD_IP:{port}. On this machine alone: {here}, "
            f"then --address 127.0.0.1:{port}. Without --address, --executor ray starts a "
            f"local Ray of its own.")


def parse_resources(text: str | None) -> dict[str, float]:
    """`--resources '{"GPU": 1}'` -> {"GPU": 1.0}: what each task asks of the cluster."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--resources must be a JSON object such as '{{\"GPU\": 1}}'; "
                         f"got {text!r} ({error.msg})") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and v >= 0 for k, v in value.items()):
        raise ValueError(f"--resources must map resource names to non-negative numbers, "
                         f"such as '{{\"GPU\": 1}}'; got {text!r}")
    return {k: float(v) for k, v in value.items()}


class RayExecutor:
    """Sends work units to Ray: the cluster at `address`, or a local instance of `jobs` CPUs."""

    def __init__(self, jobs: int | None = None, address: str | None = None,
                 resources: dict[str, float] | None = None,
                 data_dir: str | Path | None = None,
                 work: Callable[[list[RunSpec], Any], list[RunRecord]] = work):
        # `HOST:PORT` checked before anything is opened (ValueError); `auto` left to Ray.
        self.host_port = parse_address(address) if address and address != "auto" else None
        self.loopback = self.host_port is not None and is_loopback(self.host_port[0])
        if self.loopback:
            host, port = self.host_port
            if host.lower() in ("localhost", "::1"):  # as Ray reads them on one machine
                self.host_port = (LOCALHOST, port)
            address = f"{self.host_port[0]}:{port}"
            _keep_ray_on_this_machine(os.environ)  # before Ray is imported: it reads them then
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RayUnavailable(INSTALL_HINT) from None
        self.address, self.work = address, work
        self.resources = dict(resources or {})
        self.cpus_per_task = self.resources.pop("CPU", 1.0)
        self.gpus_per_task = self.resources.pop("GPU", 0.0)
        self.jobs = jobs or os.cpu_count() or 1
        # Workers may run elsewhere: give them the data folder as an absolute path.
        self.data_dir = str(Path(data_dir or "data").resolve())
        self._started_here = False

    def connect(self):
        """Join the cluster at `address`, or start the local Ray, now (a no-op once connected);
        returns the `ray` module. Raises RayConnectionError if the cluster cannot be reached."""
        import ray

        if ray.is_initialized():
            return ray
        threads = str(max(1, int(self.cpus_per_task)))
        runtime_env = {"env_vars": {"TF_NUM_INTRAOP_THREADS": threads,
                                    "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads,
                                    "TF_CPP_MIN_LOG_LEVEL": "2",
                                    "STUDY_NO_KERAS_DOWNLOAD": "1"}}
        if not self.address:
            ray.init(num_cpus=self.jobs, runtime_env=runtime_env, include_dashboard=False,
                     log_to_driver=False)
        else:
            self._check_reachable(ray)
            try:
                ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False)
            except (ConnectionError, RuntimeError, ray.exceptions.RayError) as error:
                raise RayConnectionError(self._cannot_join(error)) from None
        self._started_here = True
        try:
            self._check_resources(ray)
        except RayConnectionError:
            ray.shutdown()
            self._started_here = False
            raise
        return ray

    def _check_resources(self, ray) -> None:
        """A task asking for more of a resource than the whole cluster has would wait forever
        (Ray only logs that it is infeasible): refuse such --resources before any dispatch."""
        asked = {"CPU": self.cpus_per_task, "GPU": self.gpus_per_task, **self.resources}
        has = ray.cluster_resources()
        short = sorted(name for name, amount in asked.items() if amount > has.get(name, 0.0))
        if short:
            where = f"the Ray cluster at {self.address}" if self.address else "the local Ray"
            raise RayConnectionError(
                "each task asks for " + ", ".join(f"{n} {asked[n]:g}" for n in short) +
                f" (--resources), but {where} has only " +
                ", ".join(f"{n} {has.get(n, 0.0):g}" for n in short) +
                ". Ask for less, or start the nodes with more (`ray start --resources`).")

    def _check_reachable(self, ray) -> None:
        """Fail in seconds, not after Ray's minutes of retries, when nothing listens there (or
        when a Ray imported too early would look for a loopback head elsewhere)."""
        if self.host_port is None:  # `auto`: Ray looks for the cluster itself, and says so
            return
        if self.loopback and not is_loopback(ray.util.get_node_ip_address()):
            raise RayConnectionError(
                f"Ray was imported in this process before --address {self.address} was "
                f"given, so it would look for the head at {ray.util.get_node_ip_address()}; "
                f"set {SINGLE_MACHINE}=0 in the environment before Ray is imported.")
        try:
            socket.create_connection(self.host_port, timeout=REACH_TIMEOUT_S).close()
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise RayConnectionError(f"no Ray cluster answers at {self.address} ({reason}).\n"
                                     f"{start_hint(self.address)}") from None

    def _cannot_join(self, error: BaseException) -> str:
        causes = []
        while error is not None and error not in causes:
            causes.append(error)
            error = error.__cause__ or error.__context__
        text = "\n".join(str(cause) for cause in causes)
        if "InvalidAuthToken" in text or "AuthenticationError" in text:
            return (f"the Ray cluster at {self.address} refused this driver's authentication "
                    f"token. Give the driver the cluster's token (RAY_AUTH_MODE=token, and the "
                    f"token in ~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH).")
        return (f"cannot join the Ray cluster at {self.address}: {_first_line(causes[-1])}\n"
                f"Is it a Ray head of the same Ray version (`ray status --address "
                f"{self.address}` on its machine)? {start_hint(self.address)}")

    def map(self, specs: Iterable[RunSpec],
            follow_up: FollowUp | None = None) -> Iterator[RunRecord]:
        ray = self.connect()
        task = ray.remote(self.work).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
            resources=self.resources or None, max_retries=0)
        waiting = Units(specs)
        capacity = max(1, int(ray.cluster_resources().get("CPU", self.jobs) // self.cpus_per_task))
        in_flight = 2 * capacity  # as with local jobs: follow-ups wait behind at most this many
        pending: dict[Any, tuple[list[RunSpec], int]] = {}
        try:
            while waiting or pending:
                while waiting and len(pending) < in_flight:
                    unit = waiting.next()
                    pending[task.remote(unit, self.data_dir)] = (unit, 1)
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                unit, attempt = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    records = [failed_record(spec, f"error in the Ray task: {error.cause!r}")
                               for spec in unit]
                except ray.exceptions.RayError as error:  # the worker or its node died
                    if attempt < ATTEMPTS:
                        pending[task.remote(unit, self.data_dir)] = (unit, attempt + 1)
                        continue
                    reason = f"Ray worker died {attempt} times (retried once): {_first_line(error)}"
                    records = [failed_record(spec, reason) for spec in unit]
                for record in records:
                    yield record
                    waiting.first(follow_up(record) if follow_up else [])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if self._started_here:
                ray.shutdown()
                self._started_here = False


def _keep_ray_on_this_machine(environ) -> None:
    """For a loopback --address: Ray's single-machine mode (loopback addresses kept as they
    are), and its token authentication when this machine has a token, as Ray itself does for
    a local cluster it finds."""
    environ[SINGLE_MACHINE] = "0"
    has_token = (any(environ.get(name) for name in AUTH_TOKEN_SOURCES)
                 or (Path.home() / ".ray" / "auth_token").exists())
    if has_token and "RAY_AUTH_MODE" not in environ:
        environ["RAY_AUTH_MODE"] = "token"


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    # Ray nests tracebacks in some messages: then their last line is the reason.
    line = (lines[-1] if lines and "Traceback" in lines[0] else lines[0]) if lines else ""
    return f"{type(error).__name__}: {line}"
