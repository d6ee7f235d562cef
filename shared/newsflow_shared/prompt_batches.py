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
from aiokafka.errors import KafkaError
from faststream.kafka.subscriber.usecase import BatchSubscriber

_MOST_TURNS_A_SECOND = 100  # an idle stage with BATCH_TIMEOUT_MS=0 would otherwise spin


async def next_batch(
    consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int | None, max_bytes: int | None = None
) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The records waiting (at most ``max_records``), waiting up to ``timeout_ms`` for some; never sooner than
    ``timeout_ms`` (and 10 ms) when there are none.

    With ``max_bytes``, the first record is taken alone and the rest one at a time: see :func:`_up_to_bytes`.
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
    """Take more of what aiokafka holds, one record at a time, while the batch is under ``max_bytes``.

    A batch was ``BATCH_MAX_RECORDS`` records whatever their size, and compressed records of 32 MiB come many to a
    fetch: six such records to ingest held 850 MB at once (its Kubernetes limit was 512 MiB), and a backlog of the
    largest articles took storage past its own, again on every restart. aiokafka unpacks a fetch's record batches
    only as their records are taken, and a record's size is known only once it is: so one at a time (from its
    buffer, microseconds each), as asking for as many as fit were each as large as those seen let a small record
    followed by a flood of large ones through at once.
    """
    size = sum(_size(record) for record in records)
    while size < max_bytes and (max_records is None or len(records) < max_records):
        try:
            more = await consumer.getmany(timeout_ms=0, max_records=1)
        except KafkaError:
            # A partition's fetch error (an ACL changed, a corrupt record) is raised once the records before it are
            # taken: raised here, it would drop the records already in this batch, their positions passed. aiokafka
            # raises it again at the next ask.
            return
        if not more:
            return
        for record in chain.from_iterable(more.values()):
            records.append(record)
            size += _size(record)


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
