"""A batch subscriber that takes records as soon as they come, even just after an idle spell.

FastStream's Kafka batch subscriber asks aiokafka for records with ``getmany(timeout_ms=BATCH_TIMEOUT_MS)``, and
when that comes back empty it sleeps ``BATCH_TIMEOUT_MS`` more before asking again (faststream 0.7,
``BatchSubscriber.get_msg``): the sleep keeps the loop from spinning when aiokafka returns early, during a
rebalance. But ``getmany`` already waited the whole timeout when nothing came, so records that arrive during the
sleep wait up to another 200 ms, at every stage that had gone idle. In the pipeline benchmark that was the start
and the end of every burst: the cores idle while each stage in turn slept (``bench/classify.py``).

:func:`take_records_promptly` keeps the guard and drops the wait: an empty answer is followed by a sleep only for
what is left of the timeout, so an idle loop still turns at most once per ``BATCH_TIMEOUT_MS``.
"""

from __future__ import annotations

from asyncio import sleep
from itertools import chain
from time import monotonic
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream.kafka.subscriber.usecase import BatchSubscriber

_MOST_TURNS_A_SECOND = 100  # an idle stage with BATCH_TIMEOUT_MS=0 would otherwise spin


async def next_batch(
    consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int | None, max_bytes: int | None = None
) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The records waiting (at most ``max_records``), waiting up to ``timeout_ms`` for some; never sooner than
    ``timeout_ms`` (and 10 ms) when there are none.

    With ``max_bytes``, records of large values are taken a few at a time: see :func:`_up_to_bytes`.
    """
    started = monotonic()
    batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=1 if max_bytes else max_records)
    if not batches:
        # aiokafka answered early (a rebalance, or BATCH_TIMEOUT_MS=0): do not ask again at once, nor more than
        # _MOST_TURNS_A_SECOND times a second.
        rest = max(timeout_ms / 1000, 1 / _MOST_TURNS_A_SECOND) - (monotonic() - started)
        if rest > 0:
            await sleep(rest)
        return ()
    records = list(chain.from_iterable(batches.values()))
    if max_bytes:
        await _up_to_bytes(consumer, records, max_records, max_bytes)
    return tuple(records)


async def _up_to_bytes(
    consumer: AIOKafkaConsumer, records: list[ConsumerRecord[Any, Any]], max_records: int | None, max_bytes: int
) -> None:
    """Take more of what aiokafka holds, as many at a time as fit ``max_bytes`` were each the largest yet.

    A batch was ``BATCH_MAX_RECORDS`` records whatever their size, and compressed records of 32 MiB come many to a
    fetch: six such records to ingest held 850 MB at once (its Kubernetes limit is 512 MiB), and a backlog of the
    largest articles took storage past its own, again on every restart. aiokafka unpacks a fetch's records only as
    they are taken, so those left stay compressed in its buffer. Records of a few kilobytes still come in two asks.
    A flood of large records is bounded; small records followed by many large ones can still pass the bound.
    """
    size = largest = 0
    for record in records:
        size += _size(record)
        largest = max(largest, _size(record))
    while max_records is None or len(records) < max_records:
        fits = (max_bytes - size) // max(largest, 1)
        if fits < 1:
            return
        more = await consumer.getmany(
            timeout_ms=0, max_records=fits if max_records is None else min(fits, max_records - len(records))
        )
        if not more:
            return
        for record in chain.from_iterable(more.values()):
            records.append(record)
            size += _size(record)
            largest = max(largest, _size(record))


def _size(record: ConsumerRecord[Any, Any]) -> int:
    return len(record.value or b"") + len(record.key or b"")


def take_records_promptly(subscriber: object, max_bytes: int | None = None) -> None:
    """Make a FastStream Kafka batch subscriber fetch with :func:`next_batch`; any other subscriber is left as is
    (FastStream's in-memory test broker never runs the fetch loop)."""
    if not isinstance(subscriber, BatchSubscriber):
        return

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        return await next_batch(consumer, subscriber.batch_timeout_ms, subscriber.max_records, max_bytes)

    subscriber.get_msg = get_msg  # type: ignore[method-assign]
