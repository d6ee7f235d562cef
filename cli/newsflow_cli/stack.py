"""Whatever the environment does not configure, started locally: Kafka, SQLite, the services."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType

from aiokafka.errors import KafkaError

from newsflow_shared import ServiceSettings, ensure_topics, settings_from_environment, wait_for_kafka
from newsflow_shared.db import upgrade
from newsflow_shared.settings import EXIT_CONFIG

from .local_kafka import KafkaUnavailable, LocalKafka, free_port, port_open
from .supervisor import SERVICES, Supervisor, process_names


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PipelineAlreadyThere(RuntimeError):
    """Services would start against a broker whose stages already have replicas, with a database of their own."""


@dataclass
class LocalStack:
    """Enter to start, exit to stop what was started. Configured parts (env vars) are used as they are."""

    workdir: Path | None = None
    services: bool = True
    replicas: dict[str, int] = field(default_factory=dict)
    api_port: int | None = None
    quiet_services: bool = False
    supervisor: Supervisor | None = None
    kafka: LocalKafka | None = None
    _temporary: Path | None = None

    async def __aenter__(self) -> LocalStack:
        if self.workdir is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="newsflow-"))
        workdir = self.workdir or self._temporary
        assert workdir is not None
        workdir.mkdir(parents=True, exist_ok=True)
        # Named by the caller, not made here: a broker and a database that may be a running pipeline's.
        given_kafka, given_database = (
            bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
            bool(os.environ.get("DATABASE_URL")),
        )
        try:
            if not given_kafka:
                self.kafka = LocalKafka.attach(workdir / "kafka")
                if self.kafka is None:
                    say(f"starting a local Kafka broker in {workdir / 'kafka'} …")
                    self.kafka = await asyncio.to_thread(
                        partial(LocalKafka(workdir / "kafka").start, tied_to_parent=True)
                    )
                os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.bootstrap_servers
                say(f"Kafka is serving on {self.kafka.bootstrap_servers}")
            if not os.environ.get("DATABASE_URL"):
                os.environ["DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'newsflow.db'}"
            settings = settings_from_environment(ServiceSettings)
            await wait_for_kafka(settings, say_waiting=True)  # a minute: say so on the way
            if self.services and given_kafka and not given_database:
                await self._refuse_to_split_a_running_pipeline(settings)
            await ensure_topics(settings)
            await upgrade(settings.database_url)
            if self.services:
                await self._start_services()
        except BaseException:
            await self.close()
            raise
        return self

    async def _refuse_to_split_a_running_pipeline(self, settings: ServiceSettings) -> None:
        """Raise :class:`PipelineAlreadyThere` where a stage to start here already has replicas on this broker.

        Started with a SQLite file of their own, they joined that pipeline's consumer groups: the local storage took
        some of its articles into a file that `process` then deleted, and ingest's memory of what it had seen split.
        """
        from newsflow_shared import kafka_clients

        from .status import group_members

        groups = [settings.group_id(service) for service in SERVICES if self.replicas.get(service, 1) > 0]
        admin = kafka_clients.admin(settings, client_id="newsflow-stack")
        try:
            await kafka_clients.connect(admin, settings)
            members = await group_members(admin, groups)
        except KafkaError as error:  # a new cluster's group coordinator still loading, say: as before this check
            say(f"warning: could not tell whether a pipeline already runs there ({type(error).__name__}); going on")
            return
        finally:
            await admin.close()
        if busy := {group: count for group, count in members.items() if count}:
            named = ", ".join(f"{group} has {count}" for group, count in busy.items())
            raise PipelineAlreadyThere(
                f"a pipeline already runs on {settings.kafka_bootstrap_servers} ({named} replica(s)); services"
                " started here with a database of their own (DATABASE_URL is not set) would take part of its work"
                " into it. `newsflow process --no-services` goes through the running pipeline; with DATABASE_URL set"
                " to its database, `newsflow run` adds replicas to it. (Replicas of a run stopped moments ago count"
                " until Kafka's session timeout drops them, seconds.)"
            )

    async def _start_services(self) -> None:
        overrides = {name: {"HEALTH_PORT": str(free_port())} for name in process_names(self.replicas)}
        api_port = self.api_port or _api_port()
        overrides["storage"]["STORAGE_API_PORT"] = str(api_port)
        for name in overrides:
            if name.startswith("storage-"):
                overrides[name]["STORAGE_API_PORT"] = str(free_port())
        self.supervisor = Supervisor(env={}, replicas=self.replicas, quiet=self.quiet_services)
        await self.supervisor.start(overrides)
        self.api_port = api_port

    async def close(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop(timeout=15.0)
            self.supervisor = None
        if self.kafka is not None and self.kafka.process is not None:
            await asyncio.to_thread(self.kafka.stop)
        self.kafka = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _api_port() -> int:
    """STORAGE_API_PORT when set; else 8080 when it is free, else any free port (a second stack beside the first)."""
    if given := os.environ.get("STORAGE_API_PORT"):
        if not (given.isascii() and given.isdecimal() and 0 < int(given) < 65536):
            print(f"error: STORAGE_API_PORT={given!r} is not a port from 1 to 65535", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG)
        return int(given)
    return free_port() if port_open(8080) else 8080


def use_local_stack(state: Path) -> str:
    """Point this command at the Kafka it should use, and say where that came from.

    ``KAFKA_BOOTSTRAP_SERVERS`` wins; else the broker ``newsflow run`` (or ``newsflow kafka start``)
    left running in ``state``, with its SQLite database; else Kafka's default address.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "KAFKA_BOOTSTRAP_SERVERS"
    running = LocalKafka.attach(state / "kafka")
    if running is None:
        return "the default address (no KAFKA_BOOTSTRAP_SERVERS, no local stack running)"
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = running.bootstrap_servers
    use_local_database(state)
    return f"the local stack in {state}"


def use_local_database(state: Path) -> None:
    """``DATABASE_URL``, where it is not set, to the SQLite database ``newsflow run`` keeps in ``state``, if any."""
    database = state / "newsflow.db"
    if not os.environ.get("DATABASE_URL") and database.exists():
        os.environ["DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"


async def reach_kafka(settings: ServiceSettings, origin: str, timeout: float = 10.0) -> None:
    """Raise :class:`KafkaUnavailable` with one clear sentence when the broker does not answer."""
    try:
        await wait_for_kafka(settings, timeout=timeout)
    except TimeoutError:
        servers = settings.kafka_bootstrap_servers
        protocol = settings.kafka_security_protocol
        if await asyncio.to_thread(_any_listening, servers):
            # A port that takes the connection and then says nothing Kafka understands: most often a broker that
            # wants TLS or SASL spoken to in plain text (or the other way round), which looks like a hang.
            raise KafkaUnavailable(
                f"something listens at {servers} (from {origin}) but did not answer as Kafka over {protocol} "
                f"within {timeout:.0f}s: if the broker wants TLS or SASL, set KAFKA_SECURITY_PROTOCOL (and "
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE, KAFKA_SSL_CA_FILE) to match it"
            ) from None
        raise KafkaUnavailable(
            f"no Kafka answers at {servers} (from {origin}) within {timeout:.0f}s: "
            "start the pipeline with `newsflow run`, or set KAFKA_BOOTSTRAP_SERVERS to your brokers"
        ) from None


def _any_listening(servers: str) -> bool:
    """Whether any of the bootstrap servers takes a TCP connection."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not port.isdigit():
            continue
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=1):
                return True
        except OSError:
            continue
    return False
