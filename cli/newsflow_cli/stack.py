"""Whatever the environment does not configure, started locally: Kafka, SQLite, the services."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from newsflow_shared import ServiceSettings, ensure_topics, wait_for_kafka
from newsflow_shared.db import upgrade

from .local_kafka import LocalKafka, free_port
from .supervisor import SERVICES, Supervisor


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        try:
            if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
                self.kafka = LocalKafka.attach(workdir / "kafka")
                if self.kafka is None:
                    say(f"starting a local Kafka broker in {workdir / 'kafka'} …")
                    self.kafka = await asyncio.to_thread(LocalKafka(workdir / "kafka").start)
                os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.bootstrap_servers
                say(f"Kafka is serving on {self.kafka.bootstrap_servers}")
            if not os.environ.get("DATABASE_URL"):
                os.environ["DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'newsflow.db'}"
            settings = ServiceSettings()
            await wait_for_kafka(settings)
            await ensure_topics(settings)
            await upgrade(settings.database_url)
            if self.services:
                await self._start_services()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start_services(self) -> None:
        overrides: dict[str, dict[str, str]] = {}
        for service in SERVICES:
            for replica in range(self.replicas.get(service, 1)):
                name = service if replica == 0 else f"{service}-{replica + 1}"
                overrides[name] = {"HEALTH_PORT": str(free_port())}
        api_port = self.api_port or int(os.environ.get("STORAGE_API_PORT", "8080"))
        overrides["storage"]["STORAGE_API_PORT"] = str(api_port)
        for name in overrides:
            if name.startswith("storage-"):
                overrides[name]["STORAGE_API_PORT"] = str(free_port())
        self.supervisor = Supervisor(env={}, replicas=self.replicas, quiet=self.quiet_services)
        await self.supervisor.start(overrides)
        self.api_port = api_port

    async def close(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
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
