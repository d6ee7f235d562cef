"""A CPU-time budget per record: the work runs in a child process that is killed when a record overruns.

A thread cannot be stopped from outside in Python, and a pathological page can keep an HTML
parser or a regular expression busy for minutes, or crash it. So the work for each record runs
in one long-lived child process: the parent hands it a batch at once, the child answers record by
record, and the parent watches its CPU time (from ``/proc``, so time spent waiting for a core does
not count against the record). A record over budget, or one the child dies on, fails alone with a
reason; the child is started again for the rest.

The whole batch goes over in one message because a child that sleeps between records, waiting for
the next, wakes each time on whichever core is free, its caches cold: cleanup's own work on an
article took ~40 % more CPU in the child than in a loop, and each hand-over cost both sides a wake-up.
For the same reason the parent does not wake for each answer: it looks every few milliseconds and takes
all that has come, then checks the budget of the record the child is on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from .errors import OverBudget

log = logging.getLogger(__name__)
State = TypeVar("State")
Item = TypeVar("Item")
Result = TypeVar("Result")

_DRAIN_EVERY = 0.005  # seconds: a batch's last result waits at most this long
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class WorkerDied(RuntimeError):
    """The child process exited while working on a record (a crash in native code, or a kill)."""


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process's main thread, from /proc/<pid>/task/<pid>/stat.

    The main thread is the one that works on records. Work the record waits for in another thread is
    not counted: cleanup runs lingua there (``newsflow_cleanup.language``), so that loading its models
    once is not charged to the headline that happened to need them first. Only bounded work belongs
    there (lingua reads text under ``LANGUAGE_SHORT_TEXT_CHARS``).
    """
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime: fields 14 and 15 of stat


def _serve(connection: Connection, make_state: Callable[[], Any], work: Callable[[Any, Any], Any]) -> None:
    state = make_state()
    connection.send(("ready", None))
    while True:
        try:
            items = connection.recv()
        except EOFError:  # the parent is gone, however it ended: so is the work
            return
        if items is None:
            return
        for item in items:
            try:
                outcome = work(state, item)
            except Exception as error:  # the result, or the exception: the parent decides what it means
                outcome = error
            # Sent along: the parent counts the next record's share from it. The clock of this (the main) thread is the
            # one the parent reads from /proc, which truncates it to ticks, but asking the kernel directly costs 0.4 µs
            # against 14 for reading /proc each record.
            spent = time.thread_time()
            try:
                message = pickle.dumps((outcome, spent))
            except Exception as error:  # an exception that does not pickle (pydantic's, say) travels as text
                message = pickle.dumps((RuntimeError(f"{type(outcome).__name__}: {outcome} ({error})"), spent))
            connection.send_bytes(message)


class BudgetedWorker(Generic[State, Item, Result]):
    """Runs ``work(state, item)`` in a child process, at most ``cpu_seconds`` of CPU per item.

    ``make_state`` and ``work`` must be importable module-level functions: the child is spawned
    afresh, not forked from a process with threads and an event loop.
    """

    def __init__(
        self,
        make_state: Callable[[], State],
        work: Callable[[State, Item], Result],
        *,
        cpu_seconds: float,
        name: str,
    ) -> None:
        self.make_state = make_state
        self.work = work
        self.cpu_seconds = cpu_seconds
        self.name = name
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # one batch at a time through the one child

    def start(self) -> None:
        """Start the child now (its models load there), rather than with the first batch."""
        with self._lock:
            self._started()

    def map(self, items: list[Item], on_progress: Callable[[], None] = lambda: None) -> list[Result | Exception]:
        """Each item's result, or the exception it raised; blocking (call it from a worker thread).

        ``on_progress`` is called from this thread as records come back: a batch of records that each use most of
        their budget takes many minutes, and the stage's liveness must see it moving."""
        with self._lock:
            outcomes: list[Result | Exception] = []
            while len(outcomes) < len(items):
                outcomes += self._batch(items[len(outcomes) :], on_progress)
                on_progress()
            return outcomes

    def _batch(self, items: list[Item], on_progress: Callable[[], None]) -> list[Result | Exception]:
        """The items' outcomes, up to and including the first that stopped the child (then it is started anew)."""
        connection, process = self._started()
        assert process.pid is not None
        start = _cpu_seconds(process.pid)  # the child is idle: what it spends from here is the first item's
        connection.send(items)
        outcomes: list[Result | Exception] = []
        while len(outcomes) < len(items):
            if connection.poll(0):
                try:
                    outcome, start = pickle.loads(connection.recv_bytes())
                except (EOFError, OSError) as error:
                    self._kill()
                    return [
                        *outcomes,
                        WorkerDied(f"{self.name}'s worker process died on this record ({type(error).__name__})"),
                    ]
                outcomes.append(outcome)
                on_progress()
                continue
            if _cpu_seconds(process.pid) - start > self.cpu_seconds:
                if connection.poll(0):
                    continue  # the record ended just now: the next one's share starts from its end
                self._kill()
                return [
                    *outcomes,
                    OverBudget(
                        f"{self.name} spent more than {self.cpu_seconds:g} s of CPU time on this record and stopped "
                        f"it (the budget is {self.name.upper()}_RECORD_CPU_SECONDS)"
                    ),
                ]
            if not process.is_alive():
                code = process.exitcode
                self._kill()
                return [*outcomes, WorkerDied(f"{self.name}'s worker process died on this record (exit code {code})")]
            # Sleeping, then taking what has come, rather than waking as each record's result arrives: a wake-up
            # per record cost both processes more than the record's hand-over itself (bench/cleanup.py).
            time.sleep(_DRAIN_EVERY)
        return outcomes

    def _started(self) -> tuple[Connection, BaseProcess]:
        if self._process is not None and self._process.is_alive() and self._connection is not None:
            return self._connection, self._process
        self._kill()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve, args=(child_end, self.make_state, self.work), name=f"{self.name}-worker", daemon=True
        )
        process.start()
        child_end.close()
        kind, _ = parent_end.recv()  # waits for the child's state (models) to load
        assert kind == "ready"
        self._process, self._connection = process, parent_end
        log.info("%s worker process %s is ready", self.name, process.pid)
        return parent_end, process

    def _kill(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def close(self) -> None:
        """Ask the child to finish, then make sure it has."""
        with self._lock:
            if self._connection is not None and self._process is not None and self._process.is_alive():
                try:
                    self._connection.send(None)
                    self._process.join(5)
                except OSError:
                    pass
            self._kill()
