"""BATCH_LINGER_MS on a real broker: a batch sent in one request over many partitions is consumed as one batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from newsflow_shared import ServiceSettings, ensure_topics
from newsflow_shared.broker import LingeringConsumer

from .harness import isolated_env, started_ingest

pytestmark = pytest.mark.kafka


async def _send_one_request(settings: ServiceSettings, topic: str, count: int) -> None:
    """``count`` keyed records in one produce request, spread over the topic's partitions as a stage sends them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, f"{i}".encode(), key=f"key-{i}".encode()) for i in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _consumer(settings: ServiceSettings, topic: str, linger_ms: int) -> LingeringConsumer:
    consumer = LingeringConsumer(
        topic,
        linger_ms=linger_ms,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.kafka_group_prefix}-linger-{linger_ms}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    return consumer


async def test_a_lingering_batch_takes_the_whole_request_and_keeps_each_partition_in_order(
    kafka_bootstrap: str,
) -> None:
    env = isolated_env(kafka_bootstrap, "sqlite+aiosqlite:///unused.db") | {"TOPIC_PARTITIONS": "6"}
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    topic = settings.topic_ingested
    consumer = await _consumer(settings, topic, linger_ms=200)
    try:
        assert await consumer.getmany(timeout_ms=300) == {}  # nothing came: it does not linger
        await _send_one_request(settings, topic, 60)
        batch = await consumer.getmany(timeout_ms=10_000, max_records=100)
        values = {tp: [int(r.value) for r in records] for tp, records in batch.items()}
        assert sum(len(v) for v in values.values()) == 60, "one request over six partitions: one batch"
        assert len(values) == 6
        assert all(v == sorted(v) for v in values.values())  # each partition's records in the order sent

        await _send_one_request(settings, topic, 30)
        first = await consumer.getmany(timeout_ms=10_000, max_records=10)
        assert sum(len(v) for v in first.values()) == 10, "never more than max_records"
        rest: list[Any] = []
        deadline = time.monotonic() + 10
        while len(rest) < 20 and time.monotonic() < deadline:
            rest += [r for records in (await consumer.getmany(timeout_ms=500)).values() for r in records]
        assert len(rest) == 20, "what a lingering batch did not take is the next batch's"
    finally:
        await consumer.stop()


async def test_every_service_consumer_lingers_by_the_setting(kafka_bootstrap: str) -> None:
    _, app, watch = await started_ingest(kafka_bootstrap, BATCH_LINGER_MS="7")
    try:
        consumers = [subscriber.consumer for subscriber in watch.subscribers]
        assert consumers
        assert all(isinstance(c, LingeringConsumer) and c._linger == 0.007 for c in consumers)
    finally:
        await app.broker.stop()
