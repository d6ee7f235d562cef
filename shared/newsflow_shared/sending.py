"""Sending a stage's outputs with the aiokafka producer FastStream started, past FastStream's publish.

A stage publishes a batch's outputs together and waits for all of them. FastStream's ``broker.publish`` takes each
record through its telemetry and Prometheus middlewares and a publish command before aiokafka's ``send``: 0.16-0.30 ms
of CPU a record on our machines, against 0.08-0.14 for ``send`` alone in the same runs (``bench/kafka_client.py``). An
article is published four times on its way to storage, so that was 0.35-0.65 ms of the pipeline's CPU per article.
aiokafka's batch interface (a ``BatchBuilder`` per partition) measured only 10-14 % below ``send`` and would partition
by hand, so ``send`` it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

__all__ = ["OutgoingRecord", "producer_of", "queue_all", "send_all"]


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One encoded record: what Kafka stores, nothing left to serialise but the header values' UTF-8."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def producer_of(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The aiokafka producer FastStream started for ``broker``; ``None`` before it connected and for FastStream's
    in-memory test broker, whose publish delivers to its subscribers and must be used.

    FastStream 0.7 keeps the producer it builds (with our idempotence, acks, batching and compression settings) behind
    private attributes and offers no public handle on it. Sharing it keeps one producer, one connection and one
    producer id per service; ``tests/integration/test_sending.py`` fails if an upgrade moves it.
    """
    state = getattr(broker.config.producer, "_producer", None)
    if not state:  # FastStream's "not connected" state is falsy (and raises for .producer)
        return None
    producer = getattr(state, "producer", None)
    return producer if isinstance(producer, AIOKafkaProducer) else None


async def send_all(producer: AIOKafkaProducer, records: Iterable[OutgoingRecord]) -> None:
    """Queue every record, then return when Kafka acknowledged all of them; raises what the producer raises.

    The producer's linger gathers the queued records into one request per broker, and its default partitioner puts
    each keyed record in its key's partition, so an article stays in its partition on every hop.
    """
    await asyncio.gather(*await queue_all(producer, records))


async def queue_all(producer: AIOKafkaProducer, records: Iterable[OutgoingRecord]) -> list[asyncio.Future[Any]]:
    """Queue every record and return each one's acknowledgement to await: for a caller that must know which of them
    Kafka took when not all were (a re-drive marks those, and gives the others back)."""
    return [
        await producer.send(
            record.topic,
            record.value,
            key=record.key,
            headers=[(name, value.encode()) for name, value in record.headers.items()],
        )
        for record in records
    ]
