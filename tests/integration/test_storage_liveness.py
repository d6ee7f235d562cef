"""Storage's liveness does not depend on its database: an outage fails readiness, not liveness, so Kubernetes
waits instead of restarting storage in a loop; when the database is back, storage catches up by itself."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from newsflow_cli.kafka_io import producer
from newsflow_shared import ensure_topics
from newsflow_storage.app import create_app as create_storage
from newsflow_storage.settings import StorageSettings
from tests.unit.test_storage import article

from .harness import isolated_env
from .test_operations import records_in, samples, total
from .test_storage_resilience import ROOT, row_count

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
STALL = 2.0


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def send(settings: StorageSettings, ids: list[str]) -> None:
    async with producer(settings) as client:
        for article_id in ids:
            body = article(article_id).model_dump_json().encode()
            await client.send_and_wait(settings.topic_enriched, body, key=article_id.encode())


@pytest.fixture
def said() -> Iterator[_Kept]:
    """What FastStream's logging of storage's broker lets through."""
    kept = _Kept()
    logger = logging.getLogger("newsflow.storage.broker")
    logger.addHandler(kept)
    yield kept
    logger.removeHandler(kept)


async def test_database_outage_fails_readiness_not_liveness(
    kafka_bootstrap: str,
    own_postgres: tuple[dict[str, str], str],
    said: _Kept,
) -> None:
    env, url = own_postgres
    script = str(ROOT / "deploy/local/postgres.sh")
    values = isolated_env(kafka_bootstrap, url) | {"HEALTH_STALL_SECONDS": str(STALL)}
    settings = StorageSettings(**{k.lower(): v for k, v in values.items()})
    await ensure_topics(settings)
    app = create_storage(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://storage") as client,
    ):

        async def probes() -> tuple[httpx.Response, httpx.Response]:
            return await client.get("/health"), await client.get("/ready")

        await send(settings, [f"before-{i}" for i in range(5)])
        deadline = time.monotonic() + 60
        while await row_count(url) < 5 or (await client.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, (await client.get("/ready")).json()
            await asyncio.sleep(0.25)

        await asyncio.to_thread(subprocess.run, [script, "stop"], env=env, check=True)
        await send(settings, [f"during-{i}" for i in range(5)])
        await asyncio.sleep(STALL * 4)  # well past HEALTH_STALL_SECONDS with records waiting
        health, ready = await probes()
        # Each retry was the stage's one warning, and FastStream's traceback of the re-raise (143 lines) as well.
        tracebacks = [r.getMessage() for r in said.records if r.exc_info and r.levelno >= logging.INFO]
        assert not tracebacks, tracebacks
        assert health.status_code == 200, health.json()
        assert health.json()["lag"], "records wait meanwhile"
        assert sum(health.json()["lag"].values()) == 5
        assert ready.status_code == 503
        assert any("database" in problem for problem in ready.json()["problems"])

        await asyncio.to_thread(subprocess.run, [script, "start"], env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while True:
            health, ready = await probes()
            if ready.status_code == 200 and not sum(health.json()["lag"].values()):
                break
            assert health.status_code == 200, health.json()
            assert time.monotonic() < deadline, ready.json()
            await asyncio.sleep(0.5)
        assert await row_count(url) == 10
        # Counted as announced on articles.stored (a batch retried during the outage is counted once it went out).
        passed = total(samples((await client.get("/metrics")).text), "newsflow_records_total", outcome="passed")
        assert passed == await records_in(settings, settings.topic_stored)
        assert passed >= 10
        # The web page's reader of the DLQ is watched as its own "stage": its lag (none here) and its progress.
        found = samples((await client.get("/metrics")).text)
        side = [
            labels
            for name, labels in found
            if name == "newsflow_consumer_lag_records" and ("stage", "storage-dlq") in labels
        ]
        assert side, "the DLQ reader's partitions have lag series"
        assert total(found, "newsflow_consumer_lag_records", stage="storage-dlq") == 0
        assert total(found, "newsflow_consumer_last_progress_timestamp_seconds", stage="storage-dlq") > time.time() - 60
