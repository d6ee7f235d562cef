"""Running the four services as local processes, with their logs prefixed by service."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field

from newsflow_shared.lifecycle import PARENT_PID_VARIABLE

SERVICES = ("ingest", "cleanup", "classify", "storage")


def process_names(replicas: dict[str, int]) -> list[str]:
    """One name per process to start: the service for its first replica, ``service-N`` for its N-th. A service
    missing from ``replicas`` runs once."""
    return [
        service if replica == 0 else f"{service}-{replica + 1}"
        for service in SERVICES
        for replica in range(replicas.get(service, 1))
    ]


def service_of(name: str) -> str:
    """The service a process name from :func:`process_names` runs."""
    return name.split("-")[0]


def threads_per_replica(replicas: int, cores: int | None = None) -> int:
    """Torch threads for each of ``replicas`` classify processes on this machine's cores (those this process may use).

    Left to itself, each replica starts a thread per core, so N replicas run N threads per core. A replica's threads
    meet after every kernel, and one of them pushed off its core by another replica's stalls all the others.
    """
    if not cores:
        # The cores this process may use where the platform says (Linux), else the machine's.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // replicas)


_COLOURS = {"ingest": "36", "cleanup": "35", "classify": "33", "storage": "32", "kafka": "34"}


@dataclass
class Supervisor:
    """Starts each service with ``python -m newsflow_<service>``; stops them all with SIGTERM."""

    env: dict[str, str]
    replicas: dict[str, int] = field(default_factory=dict)
    quiet: bool = False
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)
    # The last lines of each service's log, kept even when quiet: what to show when one dies.
    _tails: dict[str, deque[str]] = field(default_factory=dict)

    _overrides: dict[str, dict[str, str]] = field(default_factory=dict)

    async def start(self, overrides: dict[str, dict[str, str]] | None = None) -> None:
        self._overrides = overrides or {}
        for name in process_names(self.replicas):
            await self.start_one(name)

    def service_env(self, name: str) -> dict[str, str]:
        """The environment ``name`` (a service, or ``service-N`` for a replica) starts with."""
        env = {
            **os.environ,
            **self.env,
            **self._overrides.get(name, {}),
            "PYTHONUNBUFFERED": "1",
            PARENT_PID_VARIABLE: str(os.getpid()),  # the service dies with us, however we end
        }
        replicas = self.replicas.get("classify", 1)
        if service_of(name) == "classify" and replicas > 1 and not env.get("CLASSIFY_THREADS"):
            env["CLASSIFY_THREADS"] = str(threads_per_replica(replicas))
        return env

    async def start_one(self, name: str) -> None:
        """Start (or start again) one process; ``name`` is a service, or ``service-N`` for a replica."""
        service = service_of(name)
        env = self.service_env(name)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"newsflow_{service}",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self._pumps.append(asyncio.create_task(self._pump(name, process)))

    async def kill(self, name: str) -> None:
        """SIGKILL: the process dies mid-batch, as in a crash or an OOM kill."""
        process = self.processes[name]
        process.kill()
        await process.wait()

    async def _pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        colour = _COLOURS.get(service_of(name), "0")
        prefix = f"\x1b[{colour}m{name:>10} |\x1b[0m " if sys.stderr.isatty() else f"{name:>10} | "
        tail = self._tails.setdefault(name, deque(maxlen=30))
        async for line in process.stdout:
            text = line.decode(errors="replace")
            tail.append(text)
            if not self.quiet:
                sys.stderr.write(prefix + text)

    def last_lines(self, name: str) -> list[str]:
        """The last lines ``name`` logged."""
        return list(self._tails.get(name, ()))

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.returncode is not None}

    async def wait_any(self) -> tuple[str, int]:
        waits = {asyncio.create_task(p.wait()): name for name, p in self.processes.items()}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        task = done.pop()
        return waits[task], task.result()

    async def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM lets each service finish and commit its batch; SIGKILL after ``timeout``."""
        for process in self.processes.values():
            if process.returncode is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, process in self.processes.items():
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                sys.stderr.write(f"{name} did not stop in {timeout:.0f}s; killing it\n")
                process.kill()
                await process.wait()
        for pump in self._pumps:
            pump.cancel()
