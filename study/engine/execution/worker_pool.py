"""A pool of worker processes in which one worker's death costs only the item it was working on.

`concurrent.futures.ProcessPoolExecutor` breaks as a whole when any worker dies (`kill -9`, the
kernel's out-of-memory killer, a signal): every item in flight or waiting fails with it. This
pool keeps each worker apart instead:

- Each worker is a `multiprocessing` process (spawn context: a fresh interpreter, so a fresh
  TensorFlow) with its own duplex pipe to the driver. It gets one item at a time, calls
  `work(item, *args)`, sends the result back and waits for the next item. It ignores Ctrl-C
  (the driver decides what an interrupt means) and ends as soon as the driver does, even after
  `kill -9` of the driver, which closes no pipe cleanly (`_exit_with_parent`).
- The driver waits with `multiprocessing.connection.wait` on every worker's pipe and on every
  process sentinel at once. A reply is read before a death is believed, so a worker that sent
  its result and then died loses nothing. A worker that died without replying is reaped; its
  item comes back as an `Outcome` whose `died` says how ("killed by signal 9, SIGKILL",
  "exit code 1"), and the other workers go on undisturbed.
- A fresh worker takes a dead one's place when the next item is submitted to that slot, so a
  death with nothing left to do starts nothing, and a death between items (idle) fails nothing.
- `close()` (also on leaving a `with` block, by an exception, Ctrl-C or a generator closed
  early) terminates the workers still busy, closes the idle ones' pipes (they exit at end of
  file) and joins them all.

An exception raised by `work` is not a death: it is sent back and raised in the driver, with the
worker's traceback as its cause, as `concurrent.futures` does.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

JOIN_TIMEOUT_S = 30  # for a worker to exit after its pipe closed (TensorFlow takes a moment)


@dataclass
class Outcome:
    """What became of a submitted item: its `result`, or why its worker `died` without one."""

    item: Any
    result: Any = None
    died: str | None = None  # "killed by signal 9, SIGKILL", "exit code 1"
    pid: int | None = None  # the worker process that had the item


class RemoteTraceback(Exception):
    """The worker's traceback, attached as the cause of an exception raised by `work`."""

    def __str__(self) -> str:
        return self.args[0]


class _Slot:
    """One worker's place in the pool: its process, the driver's end of its pipe, its item."""

    def __init__(self, index: int):
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.item: Any = None
        self.busy = False


class WorkerPool:
    """`size` spawned worker processes, each calling `work(item, *args)` on one item at a time.

    `initializer(*initargs)` runs in each worker when it starts. `work` and the initializer
    must be picklable (module-level functions), as must items, args and results.
    """

    def __init__(self, size: int, work: Callable[..., Any], args: tuple = (),
                 initializer: Callable[..., None] | None = None, initargs: tuple = ()):
        if size < 1:
            raise ValueError(f"a pool needs at least one worker; got {size}")
        self._context = multiprocessing.get_context("spawn")
        self._target_args = (work, tuple(args), initializer, tuple(initargs))
        self._slots = [_Slot(i) for i in range(size)]

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def busy(self) -> int:
        """Items submitted whose outcome has not been returned yet."""
        return sum(slot.busy for slot in self._slots)

    @property
    def has_room(self) -> bool:
        return any(not slot.busy for slot in self._slots)

    def free_place(self) -> int:
        """The place (index) of the first free worker."""
        return next(slot.index for slot in self._slots if not slot.busy)

    def submit(self, item: Any, place: int | None = None) -> None:
        """Hand `item` to a free worker, the one at `place` if given (started now if its slot
        is empty or its process dead)."""
        slot = (next(slot for slot in self._slots if not slot.busy) if place is None
                else self._slots[place])
        if slot.busy:
            raise ValueError(f"the worker at place {place} is busy")
        if slot.process is not None and not slot.process.is_alive():
            self._reap(slot)  # died between items: nothing of ours was lost
        if slot.process is None:
            self._start(slot)
        slot.item, slot.busy = item, True
        try:
            slot.conn.send(item)
        except OSError:
            # It died just now, before taking the item: start another and give it the item.
            self._reap(slot)
            self._start(slot)
            slot.conn.send(item)

    def wait(self) -> list[Outcome]:
        """Block until at least one busy worker replies or dies; their outcomes (empty if no
        worker is busy). A worker that dies idle is reaped on the way, silently."""
        outcomes: list[Outcome] = []
        while not outcomes and self.busy:
            live = [slot for slot in self._slots if slot.process is not None]
            ready = set(multiprocessing.connection.wait(
                [slot.conn for slot in live] + [slot.process.sentinel for slot in live]))
            for slot in live:
                if slot.conn in ready or slot.process.sentinel in ready:
                    outcome = self._collect(slot)
                    if outcome is not None:
                        outcomes.append(outcome)
        return outcomes

    def pids(self) -> list[int]:
        """The live workers' process ids, in the order of their places in the pool."""
        return [slot.process.pid for slot in self._slots
                if slot.process is not None and slot.process.is_alive()]

    def close(self) -> None:
        """Terminate busy workers, let idle ones exit at end of file; join them all."""
        started = [slot for slot in self._slots if slot.process is not None]
        for slot in started:
            if slot.busy:
                slot.process.terminate()
            slot.conn.close()
        for slot in started:
            slot.process.join(JOIN_TIMEOUT_S)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.process.close()
            slot.process, slot.conn, slot.item, slot.busy = None, None, None, False

    # --- inside ---------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, *self._target_args),
                                        name=f"study-worker-{slot.index}", daemon=True)
        process.start()
        theirs.close()  # the worker holds the only other end: its death is end of file here
        slot.process, slot.conn = process, ours

    def _collect(self, slot: _Slot) -> Outcome | None:
        """The slot's reply if there is one; else its worker ended: reap it, and if it had an
        item, that item's outcome says how the worker died."""
        pid = slot.process.pid
        if slot.conn.poll():
            try:
                kind, value = slot.conn.recv()
            except (EOFError, OSError):
                pass  # end of file (or half a message): the worker died
            else:
                item, slot.item, slot.busy = slot.item, None, False
                if kind == "raised":
                    error, remote = value
                    raise error from RemoteTraceback(remote)
                return Outcome(item, result=value, pid=pid)
        code = self._reap(slot)
        if not slot.busy:
            return None
        item, slot.item, slot.busy = slot.item, None, False
        return Outcome(item, died=describe_exit(code), pid=pid)

    def _reap(self, slot: _Slot) -> int | None:
        process = slot.process
        process.join(JOIN_TIMEOUT_S)  # it has ended, or is ending: its pipe is closed
        if process.is_alive():
            process.kill()
            process.join()
        code = process.exitcode
        process.close()
        slot.conn.close()
        slot.process = slot.conn = None
        return code


def describe_exit(code: int | None) -> str:
    """A process's exit code in words: "killed by signal 9, SIGKILL", "exit code 1"."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-code}, {name}"
    return f"exit code {code}"


# --- the worker process --------------------------------------------------------------------------

def _serve(conn, work, args, initializer, initargs) -> None:
    """A worker's life: items in, results out, until the driver closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the driver decides
    _exit_with_parent()
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return  # the pool closed
        try:
            reply = ("done", work(item, *args))
        except BaseException as error:  # noqa: BLE001 - raised in the driver instead
            reply = ("raised", _portable(error))
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as error:  # an odd result
            conn.send(("raised", _portable(error)))


def _portable(error: BaseException) -> tuple[BaseException, str]:
    """The exception and its traceback text, the exception replaced if it cannot be pickled."""
    text = "".join(traceback.format_exception(error))
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return error, text


def _exit_with_parent() -> None:
    """End this worker when the driver dies, even by `kill -9` (which runs no cleanup).

    A worker busy training would read its pipe's end of file only after the item; it watches
    the parent instead, and holds no TensorFlow's worth of memory for a driver that is gone.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
