"""Newsflow's metrics count what really happened to the records, through the in-memory broker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from newsflow_ingest.app import create_app as create_ingest
from newsflow_ingest.settings import IngestSettings
from newsflow_shared import CleanArticle, DeadLetter, Emit, IngestedArticle, Topics
from newsflow_shared.db import make_engine
from newsflow_shared.health import watch_of
from newsflow_shared.metrics import StageMetrics, outcome_of
from newsflow_shared.settings import ServiceSettings
from tests.unit.test_handlers import capture

TOPICS: Topics = ServiceSettings().topics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_ingest_counts_each_outcome_and_its_batches(tmp_path) -> None:
    settings = IngestSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    app = create_ingest(settings)
    spy = capture(app.broker, settings.topic_ingested, settings.topic_skipped, settings.topic_dlq)
    async with TestKafkaBroker(app.broker), app.lifespan_context():
        await app.broker.publish(b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw)
        await app.broker.publish(b"not json at all", settings.topic_raw)
        await app.broker.publish(b'{"id": "a1", "title": "T", "text": "Body"}', settings.topic_raw)
        await app.broker.publish(b'{"id": "a2", "text": 5}', settings.topic_raw)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            exposition = (await client.get("/metrics")).text

    letters = [DeadLetter.model_validate_json(body) for topic, body, _ in spy if topic == settings.topic_dlq]
    watch = watch_of(app.broker)
    assert watch is not None
    registry = watch.metrics.registry  # FastStream's metrics and ours: one registry, one /metrics
    stage = {"stage": "ingest"}
    assert sample(registry, "newsflow_records_total", outcome="passed", error_class="", **stage) == 1
    assert sample(registry, "newsflow_records_total", outcome="skipped", error_class="", **stage) == 1
    dead = {letter.error for letter in letters}
    assert len(letters) == 2
    for error in dead:
        expected = sum(letter.error == error for letter in letters)
        assert (
            sample(registry, "newsflow_records_total", outcome="dead_lettered", error_class=error, **stage) == expected
        )
    # One record per in-memory batch: four batches of one.
    assert sample(registry, "newsflow_batch_size_records_count", **stage) == 4
    assert sample(registry, "newsflow_batch_size_records_sum", **stage) == 4
    assert sample(registry, "newsflow_batch_duration_seconds_count", **stage) == 4
    # Ingest remembers what it passed on: one write transaction for the batch that passed a1.
    assert sample(registry, "newsflow_db_write_seconds_count", **stage) == 1
    assert 'newsflow_records_total{error_class="",outcome="passed",stage="ingest"} 1.0' in exposition
    assert "faststream_received_messages_total" in exposition


def test_outcome_of_each_kind_of_output() -> None:
    clean = CleanArticle(id="x", title="T", text="Body", content_hash="h", language="en", language_confidence=1.0)
    duplicate = clean.model_copy(update={"duplicate_of": "y", "duplicate_score": 0.9})
    letter = DeadLetter(
        stage="cleanup",
        error="EmptyArticle",
        reason="nothing left",
        original=b"",
        original_size=0,
        source_topic="t",
        source_partition=0,
        source_offset=1,
        attempts=1,
    )
    assert outcome_of(Emit(TOPICS.clean, clean, "x"), TOPICS) == ("passed", "")
    assert outcome_of(Emit(TOPICS.clean, duplicate, "x"), TOPICS) == ("duplicate", "")
    assert outcome_of(Emit(TOPICS.unsupported, clean, "x"), TOPICS) == ("unsupported", "")
    assert outcome_of(Emit(TOPICS.skipped, clean, "x"), TOPICS) == ("skipped", "")
    assert outcome_of(letter, TOPICS) == ("dead_lettered", "EmptyArticle")
    assert outcome_of(Emit(TOPICS.ingested, IngestedArticle(id="x", text="b", content_hash="h"), "x"), TOPICS) == (
        "passed",
        "",
    )


def test_inference_time_is_observed_once_per_article() -> None:
    metrics = StageMetrics("classify")
    metrics.inference_time(8, 0.4)
    assert sample(metrics.registry, "newsflow_inference_seconds_per_article_count") == 8
    assert abs(sample(metrics.registry, "newsflow_inference_seconds_per_article_sum") - 0.4) < 1e-9


async def test_a_transaction_cancelled_mid_statement_raises_the_cancellation(tmp_path) -> None:
    """The write timer's rollback hook read the invalidated connection's info and raised PendingRollbackError in
    place of the CancelledError: a shutdown in the middle of a batch's write looked like a failing record."""
    StageMetrics("test", CollectorRegistry())  # installs the hooks on every engine
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    counting = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 20000000) SELECT count(*) FROM r"
    )

    written = asyncio.Event()

    async def long_write() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
            written.set()
            await connection.execute(text(counting))

    try:
        task = asyncio.create_task(long_write())
        await written.wait()
        await asyncio.sleep(0.1)  # into the statement, which runs for seconds
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with engine.connect() as connection:  # the pool still serves, and nothing was committed
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    finally:
        await engine.dispose()
