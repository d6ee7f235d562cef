"""Talking to Kafka from the command line: pushing inputs and collecting their outcomes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from newsflow_shared import TRACE_HEADER, ServiceSettings, kafka_clients
from newsflow_shared.dead_letter import dead_letter
from newsflow_shared.delivery import Delivery
from newsflow_shared.errors import ArticleTooLarge

from .inputs import Input


@asynccontextmanager
async def producer(settings: ServiceSettings) -> AsyncIterator[AIOKafkaProducer]:
    client = kafka_clients.producer(
        settings,
        enable_idempotence=True,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        client_id="newsflow-cli",
        **settings.producer_options(),
    )
    await kafka_clients.connect(client, settings)
    try:
        yield client
    finally:
        await client.stop()


@dataclass
class PushSummary:
    sent: int = 0
    too_large: int = 0
    failed: list[str] = field(default_factory=list)


class TopicMissing(LookupError):
    """A topic a command reads or writes is not there: said in one line (exit 3), with how to make it."""


async def require_topics(settings: ServiceSettings, *topics: str, within: float = 5.0) -> None:
    """:func:`~newsflow_shared.kafka_clients.wait_for_topics` for a command: asked first, as a send to a missing topic
    waited 40 s for its metadata, logging a line a second, then raised; waited for a moment, as a topic just made may
    not have its leader yet; :class:`TopicMissing` with what to do when they are not there."""
    try:
        await kafka_clients.wait_for_topics(settings, timeout=within, topics=topics)
    except kafka_clients.TopicsNotListed as error:  # the broker away since the command reached it
        raise KafkaConnectionError(str(error)) from None
    except TimeoutError as error:
        raise TopicMissing(str(error)) from None


async def push(
    client: AIOKafkaProducer,
    settings: ServiceSettings,
    inputs: Iterable[Input],
    on_sent: Callable[[Input], None] = lambda _: None,
) -> PushSummary:
    """Send every input to the raw topic; one too big for Kafka goes to the DLQ whole-reasoned, not lost."""
    await require_topics(settings, settings.topic_raw, settings.topic_dlq)
    summary = PushSummary()
    pending: list[tuple[Input, asyncio.Future[Any]]] = []
    limit = settings.record_limit
    for item in inputs:
        headers = [(TRACE_HEADER, item.trace_id.encode())]
        if len(item.value) > limit:
            letter = dead_letter(
                Delivery(value=item.value, headers={TRACE_HEADER: item.trace_id}, topic=settings.topic_raw, offset=-1),
                stage="push",
                error=ArticleTooLarge(
                    f"{item.label} is {len(item.value) / 1_048_576:.1f} MiB, more than Kafka accepts "
                    f"({settings.kafka_max_message_bytes / 1_048_576:.0f} MiB, KAFKA_MAX_MESSAGE_BYTES); it was not pushed"
                ),
                attempts=1,
                max_original_bytes=64 * 1024,
                max_record_bytes=limit,
            )
            future = await client.send(settings.topic_dlq, letter.model_dump_json().encode(), headers=headers)
            summary.too_large += 1
        else:
            future = await client.send(settings.topic_raw, item.value, key=item.key, headers=headers)
        pending.append((item, future))
        if len(pending) >= 500:
            await _settle(pending, summary, on_sent)
    await _settle(pending, summary, on_sent)
    return summary


async def _settle(
    pending: list[tuple[Input, asyncio.Future[Any]]], summary: PushSummary, on_sent: Callable[[Input], None]
) -> None:
    for item, future in pending:
        try:
            await future
            summary.sent += 1
            on_sent(item)
        except Exception as error:
            summary.failed.append(f"{item.label}: {type(error).__name__}: {error}")
    pending.clear()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, asked of the broker when the consumer has no metadata for it.

    Not the consumer's own metadata refresh: once it is assigned partitions it refreshes only their topics, so a
    second topic never appeared, and each ask waited out all 50 tries. `newsflow status` then took 25 s a topic,
    minutes in all, whenever the dead-letter topic had letters to read first.
    """
    numbers = consumer.partitions_for_topic(topic)
    for _ in range(50):  # a busy broker can take a moment to list a topic it just created
        if numbers:
            break
        cluster = await consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(topic)
        if not numbers:
            await asyncio.sleep(0.1)
    return [TopicPartition(topic, number) for number in sorted(numbers or ())]


async def assign_at_first(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    """Assign ``partitions`` to ``consumer``, each at its first offset, surely.

    Not ``assign()`` then aiokafka's ``seek_to_beginning``: once assigned, the consumer starts finding its
    default start (the end) and fetching from there. That answer, landing after the seek, settled it at the
    end (a replay re-sent nothing, about once in 100 tries), and a fetch held at the end delayed the first
    records by ``KAFKA_FETCH_MAX_WAIT_MS``. Offsets asked for before the assignment, and set in the same step
    as it, leave neither.
    """
    starts = await consumer.beginning_offsets(partitions)
    consumer.assign(partitions)
    for partition in partitions:
        consumer.seek(partition, starts[partition])


class OutcomeWatcher:
    """Follows the stored, skipped and dead-letter topics from their current ends.

    With ``progress``, also the topics between the stages, so that an unanswered input's stage is known:
    their records come out as ``waiting:<stage>`` with an empty body.
    """

    def __init__(self, settings: ServiceSettings, *, progress: bool = False) -> None:
        self.settings = settings
        self.topics = {
            settings.topic_stored: "stored",
            settings.topic_skipped: "skipped",
            settings.topic_unsupported: "unsupported",
            settings.topic_dlq: "dead-letter",
        }
        if progress:
            self.topics |= {
                settings.topic_ingested: "waiting:cleanup",
                settings.topic_clean: "waiting:classify",
                settings.topic_enriched: "waiting:storage",
            }
        self.consumer = kafka_clients.consumer(
            settings,
            enable_auto_commit=False,
            max_partition_fetch_bytes=settings.kafka_max_message_bytes,
            fetch_max_bytes=settings.kafka_max_message_bytes * 2,
            client_id="newsflow-cli-watch",
        )

    async def start(self, from_beginning: bool = False) -> None:
        await require_topics(self.settings, *self.topics)  # a misspelt TOPIC_STORED: `tail` waited, silent, for ever
        await kafka_clients.connect(self.consumer, settings=self.settings)
        partitions = []
        for topic in self.topics:
            partitions += await topic_partitions(self.consumer, topic)
        if from_beginning:
            await assign_at_first(self.consumer, partitions)
        else:
            self.consumer.assign(partitions)
            await self.consumer.seek_to_end(*partitions)
            # Partitions a moment old refuse ListOffsets until their leader settles; aiokafka
            # retries on its own, so its error lines here would only alarm.
            fetcher_log = logging.getLogger("aiokafka.consumer.fetcher")
            level, fetcher_log.level = fetcher_log.level, logging.CRITICAL
            try:
                for partition in partitions:  # resolve the end now, before anything is pushed
                    await self.consumer.position(partition)
            finally:
                fetcher_log.setLevel(level)

    async def outcomes(self) -> AsyncIterator[tuple[str, str | None, dict[str, Any]]]:
        """(kind, trace id, record) for each outcome as it arrives."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers or ()}
                    kind = self.topics[partition.topic]
                    if kind.startswith("waiting:"):
                        yield kind, headers.get(TRACE_HEADER), {}
                        continue
                    # What no stage writes (bytes that are not UTF-8, a tombstone, a JSON list) is passed over: one
                    # record not UTF-8 ended `tail` and `process` with a traceback, and `tail --from-beginning`
                    # again each time until the topic's retention dropped it.
                    try:
                        body = json.loads(record.value) if record.value is not None else None
                    except ValueError:  # JSONDecodeError, UnicodeDecodeError
                        continue
                    if isinstance(body, dict):
                        yield kind, headers.get(TRACE_HEADER), body
            if not batches:
                yield "idle", None, {}

    async def stop(self) -> None:
        await self.consumer.stop()
