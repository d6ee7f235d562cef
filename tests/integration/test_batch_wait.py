"""A stage's batch wait (``BATCH_TIMEOUT_MS``) sets how often an idle stage wakes, never how long a record waits.

Why the default could go from 200 ms to 1,000: the consumer's ``getmany`` returns as soon as a fetch brings records,
so a record sent while a stage waits is taken at once. Checked on real Kafka, with the services' consumer options.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.admin import NewTopic

from newsflow_shared import ServiceSettings, kafka_clients
from newsflow_shared.prompt_batches import next_batch

pytestmark = pytest.mark.kafka

WAIT_MS = 8000  # far longer than any answer below may take


async def test_a_record_sent_mid_wait_is_taken_at_once(kafka_bootstrap: str) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, batch_timeout_ms=WAIT_MS)
    topic = f"batch-wait-{uuid.uuid4().hex[:8]}"
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    consumer = kafka_clients.consumer(
        settings, topic, group_id=f"g-{topic}", auto_offset_reset="earliest", **settings.consumer_options()
    )
    producer = kafka_clients.producer(settings)
    await consumer.start()
    await producer.start()
    try:
        # Idle first: one whole wait with nothing to take, as a stage between bursts (the group joins meanwhile).
        started = time.monotonic()
        assert await next_batch(consumer, WAIT_MS, 100) == ()
        assert time.monotonic() - started >= WAIT_MS / 1000 - 0.1

        async def send_soon() -> float:
            await asyncio.sleep(1.0)
            await producer.send_and_wait(topic, b"an article")
            return time.monotonic()

        sending = asyncio.create_task(send_soon())
        batch = await next_batch(consumer, WAIT_MS, 100)
        taken = time.monotonic()
        sent = await sending
    finally:
        await producer.stop()
        await consumer.stop()

    assert [record.value for record in batch] == [b"an article"]
    # Taken when the broker answered the consumer's held fetch, not when the 8 s wait ran out.
    assert taken - sent < 1.5, f"the record waited {taken - sent:.2f} s in a stage waiting {WAIT_MS} ms"
