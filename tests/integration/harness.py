"""The pipeline as users run it, for tests: the four services as processes on a real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import OutcomeWatcher, producer, push
from newsflow_cli.local_kafka import free_port
from newsflow_cli.supervisor import Supervisor
from newsflow_shared import ServiceSettings, ensure_topics
from newsflow_shared.db import upgrade


def isolated_env(bootstrap: str, database_url: str) -> dict[str, str]:
    """Topic and group names of their own, so tests sharing a broker never see each other's messages."""
    run = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "KAFKA_GROUP_PREFIX": f"test-{run}",
        "TOPIC_PARTITIONS": "3",
        "BATCH_TIMEOUT_MS": "100",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("raw", "ingested", "clean", "enriched", "stored", "skipped", "unsupported", "dlq"):
        env[f"TOPIC_{name.upper()}"] = f"{run}.articles.{name}"
    return env


@dataclass
class Pipeline:
    env: dict[str, str]
    replicas: dict[str, int] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    api_port: int = 0
    # Each process's environment overrides, by process name: its HEALTH_PORT serves /health, /ready, /metrics.
    ports: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def settings(self) -> ServiceSettings:
        return ServiceSettings(**{k.lower(): v for k, v in self.env.items()})

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await upgrade(self.settings.database_url)
        self.api_port = free_port()
        overrides = {
            name: {"HEALTH_PORT": str(free_port()), "STORAGE_API_PORT": str(free_port())}
            for service in ("ingest", "cleanup", "classify", "storage")
            for name in [service, *(f"{service}-{i + 1}" for i in range(1, self.replicas.get(service, 1)))]
        }
        overrides["storage"]["STORAGE_API_PORT"] = str(self.api_port)
        self.ports = overrides
        self.supervisor = Supervisor(env=self.env, replicas=self.replicas, quiet=False)
        await self.supervisor.start(overrides)

    def metrics_url(self, service: str) -> str:
        """Where ``service``'s Prometheus metrics are (storage serves them on its API port)."""
        port = self.api_port if service == "storage" else self.ports[service]["HEALTH_PORT"]
        return f"http://127.0.0.1:{port}/metrics"

    async def stop(self) -> None:
        if self.supervisor:
            await self.supervisor.stop()

    async def run(self, inputs: list[Input], timeout: float = 240.0) -> dict[str, tuple[str, dict[str, Any]]]:
        """Push ``inputs`` and wait for an outcome per input: trace id -> (kind, record)."""
        settings = self.settings
        watcher = OutcomeWatcher(settings)
        await watcher.start()
        results: dict[str, tuple[str, dict[str, Any]]] = {}
        wanted = {i.trace_id for i in inputs}
        try:
            async with producer(settings) as client:
                summary = await push(client, settings, inputs)
            assert not summary.failed, summary.failed

            async def collect() -> None:
                async for kind, trace, record in watcher.outcomes():
                    if trace in wanted and trace not in results:
                        results[trace] = (kind, record)
                    if len(results) == len(wanted):
                        return

            await asyncio.wait_for(collect(), timeout)
        finally:
            await watcher.stop()
        return results


async def first_with_id(watcher: OutcomeWatcher, ids: set[str]) -> tuple[str, dict[str, Any]]:
    """The first outcome (stored, dead letter, ...) for one of ``ids`` that ``watcher`` sees."""
    async for kind, _, record in watcher.outcomes():
        if kind != "idle" and (record.get("id") in ids or record.get("article_id") in ids):
            return kind, record
    raise AssertionError("the watcher stopped")


def article(**fields: Any) -> Input:
    return Input(label=str(fields.get("id", "article")), value=json.dumps(fields, ensure_ascii=False).encode())
