"""Storage under failure: killed mid-batch, and its database down for a while. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsflow_cli.inputs import Input
from newsflow_cli.kafka_io import OutcomeWatcher
from newsflow_cli.replay import replay_stored
from newsflow_shared.db import make_engine
from newsflow_shared.db.tables import article_topics, articles

from .harness import Pipeline, article, isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


def batch(count: int, prefix: str) -> list[Input]:
    return [
        article(
            id=f"{prefix}-{i}",
            title=f"Council vote {i}",
            text=f"The city council approved spending plan {i} after a long debate.",
        )
        for i in range(count)
    ]


async def row_count(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(articles))).scalar_one()
    finally:
        await engine.dispose()


async def stored_events(pipeline: Pipeline) -> list[str]:
    """Ids announced on the stored topic so far, from its beginning."""
    watcher = OutcomeWatcher(pipeline.settings)
    await watcher.start(from_beginning=True)
    ids = []
    try:
        async for kind, _, record in watcher.outcomes():
            if kind == "idle":
                return ids
            if kind == "stored":
                ids.append(record["id"])
    finally:
        await watcher.stop()
    return ids


async def test_same_articles_three_times_with_storage_killed_in_between(
    kafka_bootstrap: str, fresh_postgres: str
) -> None:
    # Ingest's re-send filter off: every copy travels the whole way, so storage itself must not double.
    # Small batches, so the kill lands between commits with more to come.
    pipeline = Pipeline(
        isolated_env(kafka_bootstrap, fresh_postgres) | {"INGEST_DEDUPE": "false", "BATCH_MAX_RECORDS": "100"}
    )
    await pipeline.start()
    assert pipeline.supervisor is not None
    count = 1000
    try:
        push = asyncio.create_task(pipeline.run(batch(count, "kill")))
        while await row_count(fresh_postgres) < 100:  # storage is mid-stream
            await asyncio.sleep(0.05)
        await pipeline.supervisor.kill("storage")
        await pipeline.supervisor.start_one("storage")
        results = await push
        assert {kind for kind, _ in results.values()} == {"stored"}
        for _ in range(2):
            again = await pipeline.run(batch(count, "kill"))
            assert {kind for kind, _ in again.values()} == {"stored"}
            assert {record["revision"] for _, record in again.values()} == {1}

        assert await row_count(fresh_postgres) == count
        announced = await stored_events(pipeline)
        assert set(announced) == {f"kill-{i}" for i in range(count)}
        assert len(announced) >= 3 * count  # at least once: a killed batch may be announced twice
        engine = make_engine(fresh_postgres)
        async with engine.connect() as connection:
            complete = await connection.execute(
                select(func.count()).select_from(articles).where(articles.c.language == "en", articles.c.text != "")
            )
            with_topics = await connection.execute(select(func.count(func.distinct(article_topics.c.article_id))))
            assert complete.scalar_one() == count
            assert with_topics.scalar_one() == count
        await engine.dispose()

        # A replay reprocesses every article; unchanged enrichment leaves the rows as they are.
        assert await replay_stored(pipeline.settings, "classify", None) == count
        deadline = asyncio.get_running_loop().time() + 120
        while len(await stored_events(pipeline)) < len(announced) + count:
            assert asyncio.get_running_loop().time() < deadline, "the replay was not stored in time"
            await asyncio.sleep(0.5)
        assert await row_count(fresh_postgres) == count
    finally:
        await pipeline.stop()


async def test_database_outage_pauses_storage_and_loses_nothing(
    kafka_bootstrap: str, own_postgres: tuple[dict[str, str], str]
) -> None:
    env, url = own_postgres
    script = str(ROOT / "deploy/local/postgres.sh")
    pipeline = Pipeline(isolated_env(kafka_bootstrap, url))
    await pipeline.start()
    assert pipeline.supervisor is not None
    try:
        before = await pipeline.run(batch(20, "before"))
        assert {kind for kind, _ in before.values()} == {"stored"}

        await asyncio.to_thread(subprocess.run, [script, "stop"], env=env, check=True)
        during = asyncio.create_task(pipeline.run(batch(20, "during")))
        await asyncio.sleep(8)
        assert not during.done()
        assert pipeline.supervisor.exited() == {}, "storage must wait for its database, not crash"

        await asyncio.to_thread(subprocess.run, [script, "start"], env=env, check=True, capture_output=True)
        results = await during
        assert {kind for kind, _ in results.values()} == {"stored"}
        assert await row_count(url) == 40
    finally:
        await pipeline.stop()
