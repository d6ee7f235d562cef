"""A pipeline stage: consume a topic in batches, handle, publish, dead-letter, and only then commit.

This is the delivery guarantee of every service, and its isolation of bad records, written once:

1. A batch of records is consumed with auto-commit off.
2. The service's handler turns the records into outputs (:class:`Emit`) and dead letters
   (:class:`~newsflow_shared.contracts.DeadLetter`) for records it can tell are bad.
3. Every output is encoded and checked against ``KAFKA_MAX_MESSAGE_BYTES``, sent with the
   idempotent producer, and all acknowledgements (acks=all) are awaited.
4. Only then does FastStream commit the offsets.

When a step fails, :func:`~newsflow_shared.failures.fault_of` says whose fault it is:

- **the record's** (the database refuses its data, its output cannot be encoded or is too big,
  a recursion, a bug): the batch is split in halves until the record is alone; it is tried
  ``MAX_ATTEMPTS`` times, then dead-lettered with the reason. The rest of the batch goes on.
- **the environment's** (broker or database away, time-outs, deadlocks): if Kafka and the
  database still answer a probe, the failure only *looks* temporary, so it is treated like the
  record's own after ``MAX_ATTEMPTS`` tries. If they do not answer, or the database says it cannot write
  at all (a full disk, read-only, out of connections: its reads still answer), the stage backs off and rewinds
  the batch, without limit: it is redelivered, never lost. Downstream writes are idempotent by
  article id, so a redelivery never stores an article twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from .broker import make_broker, told
from .contracts import DeadLetter
from .dead_letter import dead_letter
from .delivery import REPLAY_HEADER, TRACE_HEADER, Delivery
from .errors import BatchNotUnpacked, DeadLetterRefused, OutputTooLarge, RejectedInput
from .failures import Fault, fault_of, store_cannot_write
from .health import StageWatch
from .logs import configure_logging
from .metrics import StageMetrics
from .prompt_batches import take_records_promptly
from .sending import OutgoingRecord, producer_of, send_all
from .settings import ServiceSettings
from .tracing import TRACE_CONTEXT_HEADERS, continuing, recording

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Emit:
    """One message a handler wants published, keyed by article id."""

    topic: str
    message: BaseModel
    key: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def following(cls, delivery: Delivery, topic: str, message: BaseModel, key: str) -> Emit:
        """An output that carries the trace id of the record it came from."""
        inherited = (TRACE_HEADER, REPLAY_HEADER, *TRACE_CONTEXT_HEADERS)
        headers = {name: delivery.headers[name] for name in inherited if name in delivery.headers}
        return cls(topic=topic, message=message, key=key, headers=headers)


Output = Emit | DeadLetter
BatchHandler = Callable[[list[Delivery]], Awaitable[list[Output]]]


Probe = Callable[[], Awaitable[object]]


class Stage:
    """Wires a batch handler to a topic with at-least-once delivery, per-record isolation and a dead-letter topic."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: ServiceSettings,
        *,
        name: str,
        keyed_by_article: bool = True,
        metrics: StageMetrics | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.name = name
        # After ingest the Kafka key is the article id: a dead letter can name its article even when unreadable.
        self.keyed_by_article = keyed_by_article
        self._failures_in_a_row = 0
        self._probes: dict[str, Probe] = {}
        # Metrics, lag and the probes' verdicts (health.py, metrics.py).
        self.metrics = metrics if metrics is not None else StageMetrics(name)
        self.watch = StageWatch(broker, settings, self.metrics)

    @classmethod
    def for_service(cls, settings: ServiceSettings, name: str, **options: Any) -> Stage:
        """A service's logging, broker and stage, all from its settings: the first line of every ``create_app``."""
        configure_logging(name, settings.log_level, settings.log_format)
        metrics = StageMetrics(name)
        return cls(make_broker(settings, name, metrics.registry), settings, name=name, metrics=metrics, **options)

    def depends_on(self, name: str, probe: Probe) -> None:
        """Register what besides Kafka the stage needs (e.g. the database): asked when a failure looks temporary."""
        self._probes[name] = probe

    def consume(
        self,
        topic: str,
        handler: BatchHandler,
        *,
        on_published: Callable[[list[Output]], Awaitable[None]] | None = None,
        side: str | None = None,
        **subscriber_options: Any,
    ) -> None:
        """Register ``handler`` for batches of ``topic`` in this service's consumer group.

        ``on_published`` runs after Kafka acknowledged the outputs and before the
        commit: the place to record state that must never run ahead of Kafka.
        ``side`` names a side subscription (ingest and storage reading the DLQ): it gets the same delivery and
        isolation, but the stage's metrics, lag and liveness are about its main topic; the side reader's own lag
        and progress are exported under that name, and its loop is part of liveness.
        """

        async def on_batch(message: KafkaMessage) -> None:
            deliveries = [Delivery.from_record(record) for record in message.raw_message]
            started = self.watch.batch_started() if side is None else 0.0
            try:
                outputs = await self.settle(deliveries, handler, on_published)
            except Exception as error:
                delay = self._next_delay()
                if side is None:
                    self.watch.batch_failed(error, retry_in=delay)
                await self._back_off(error, len(deliveries), delay)
                told(error)
                raise  # NACK: the batch is rewound and redelivered
            self._failures_in_a_row = 0
            if side is None:
                self.watch.batch_succeeded(deliveries, outputs, started)
            else:
                self.watch.side_progressed(side)

        options: dict[str, Any] = {
            "group_id": self.settings.group_id(self.name),
            "batch": True,
            "max_records": self.settings.batch_max_records,
            "batch_timeout_ms": self.settings.batch_timeout_ms,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "max_partition_fetch_bytes": self.settings.kafka_max_message_bytes,
            "fetch_max_bytes": self.settings.kafka_max_message_bytes * 2,
            **self.settings.consumer_options(),
            "decoder": _no_decoding,
            "parser": _tolerant_headers,
            # Our handlers answer by publishing their outputs. Without this FastStream also sent an empty reply to
            # any topic a record's ``reply_to`` header named, and a reply it could not send rewound the batch
            # (outputs already sent) again and again.
            "no_reply": True,
            "title": f"{self.name}:{topic}",
        }
        options.update(subscriber_options)
        subscriber = self.broker.subscriber(topic, **options)
        take_records_promptly(subscriber, self.settings.batch_max_bytes)
        subscriber(on_batch)
        if side is None:
            self.watch.attach(subscriber)
        else:
            self.watch.attach_side(side, subscriber)

    def read_dead_letters(self, reader: str, handler: BatchHandler) -> None:
        """A side reader of the DLQ (``reader`` names it): a consumer group of its own, same isolation.

        Ingest reads it to forget what later stages refused; storage keeps a copy for its web page. Its lag and
        progress are metrics of ``<stage>-<reader>`` (the stuck and lag alerts see it), and a loop of it that ended
        fails liveness: behind or dead, ingest would skip re-pushed articles and the page would go stale unseen.
        """
        self.consume(
            self.settings.topic_dlq,
            handler,
            side=f"{self.name}-{reader}",
            group_id=self.settings.group_id(f"{self.name}-{reader}"),
            title=f"{self.name}-{reader}:{self.settings.topic_dlq}",
        )

    def _unread_batches_first(self, handler: BatchHandler) -> BatchHandler:
        """``handler``, given only records it can read (:meth:`settle` asks for it when a batch holds any other): a
        record that stands for a compressed batch that was not unpacked (:mod:`.unpacking`) is dead-lettered with
        why, and its batch's records are committed past with it.

        On the DLQ (a side reader) such a record stays where it is, said in the log, as a letter that cannot be read
        does: a letter about it would be read by the same reader.
        """

        async def handling(deliveries: list[Delivery]) -> list[Output]:
            letters: list[Output] = []
            for delivery in deliveries:
                if delivery.unread is None:
                    continue
                letter = self.reject(delivery, BatchNotUnpacked(delivery.unread.reason))
                if delivery.topic == self.settings.topic_dlq:
                    log.error(
                        "could not read dead letters at %s[%d]: %s", delivery.topic, delivery.partition, letter.reason
                    )
                else:  # nothing of it was read: what it held is the batch, as it came
                    update = {"original_truncated": True, "original_size": delivery.unread.packed_size}
                    letters.append(letter.model_copy(update=update))
            readable = [delivery for delivery in deliveries if delivery.unread is None]
            return letters + (await handler(readable) if readable else [])

        return handling

    async def settle(
        self,
        deliveries: list[Delivery],
        handler: BatchHandler,
        on_published: Callable[[list[Output]], Awaitable[None]] | None = None,
    ) -> list[Output]:
        """Answer every record of ``deliveries``: published, or dead-lettered with a reason; return what was sent.

        Raises only for a failure of the environment (Kafka or a dependency does not answer),
        so that the caller rewinds the batch and tries it again later.
        """
        if any(delivery.unread is not None for delivery in deliveries):
            handler = self._unread_batches_first(handler)
        failures = 0
        while True:
            try:
                outputs = await handler(deliveries)
                await self.publish(outputs)
                if on_published is not None:
                    await on_published(outputs)
                return outputs
            except Exception as error:
                failures += 1
                fault = fault_of(error)
                if fault is Fault.ENVIRONMENT and (store_cannot_write(error) or not await self.environment_answers()):
                    raise
                if len(deliveries) > 1 and (fault is Fault.RECORD or failures >= self.settings.max_attempts):
                    log.warning(
                        "a batch of %d failed (%s: %s); splitting it to find the record that fails",
                        len(deliveries),
                        type(error).__name__,
                        _short(error),
                    )
                    middle = len(deliveries) // 2
                    first = await self.settle(deliveries[:middle], handler, on_published)
                    return first + await self.settle(deliveries[middle:], handler, on_published)
                if len(deliveries) == 1 and (
                    isinstance(error, RejectedInput) or failures >= self.settings.max_attempts
                ):
                    return [await self._give_up(deliveries[0], error, failures, fault)]
                await asyncio.sleep(min(2.0, 0.1 * 2**failures))

    async def _give_up(self, delivery: Delivery, error: BaseException, attempts: int, fault: Fault) -> DeadLetter:
        if not isinstance(error, RejectedInput):
            log.error(
                "giving up on %s[%d]@%d after %d attempts",
                delivery.topic,
                delivery.partition,
                delivery.offset,
                attempts,
                exc_info=error,
            )
        if fault is Fault.ENVIRONMENT:
            error = RejectedInput(
                f"failed {attempts} times with an error that looks temporary while Kafka and the database "
                f"answered, so it is this record's own: {type(error).__name__}: {_short(error)}"
            )
        letter = self.reject(delivery, error, attempts=attempts)
        if delivery.topic == self.settings.topic_dlq:
            # A side reader of the DLQ (ingest forgetting, storage keeping copies) failed on a dead letter:
            # it stays on the DLQ as it is, and dead-lettering it again would feed the reader its own failure.
            log.error(
                "could not process dead letter %s[%d]@%d: %s",
                delivery.topic,
                delivery.partition,
                delivery.offset,
                letter.reason,
            )
            return letter
        try:
            await self.publish([letter])
        except Exception as refusal:
            if fault_of(refusal) is Fault.ENVIRONMENT and not await self.environment_answers():
                raise  # Kafka is away: the batch waits for it
            raise DeadLetterRefused(
                f"Kafka answers but did not take the dead letter of {delivery.topic}[{delivery.partition}]@"
                f"{delivery.offset} ({letter.error}): {type(refusal).__name__}: {_short(refusal)}. The record stays"
                f" unanswered and its batch is tried again; if this repeats, check that {self.settings.topic_dlq}"
                " takes records of KAFKA_MAX_MESSAGE_BYTES (its max.message.bytes) and that this service may write"
                " to it"
            ) from refusal
        return letter

    async def environment_answers(self) -> bool:
        """Whether Kafka and every registered dependency answer now."""
        try:
            if not await self.broker.ping(timeout=5.0):
                return False
            for probe in self._probes.values():
                await asyncio.wait_for(probe(), 10.0)
        except Exception as error:
            log.warning("the environment does not answer: %s: %s", type(error).__name__, _short(error))
            return False
        return True

    def encode(self, output: Output) -> OutgoingRecord:
        """The record an output is sent as (its headers with the content type), checked against what Kafka accepts."""
        if isinstance(output, DeadLetter):
            topic, key, body, headers = (
                self.settings.topic_dlq,
                output.article_id or output.original_key,
                output.model_dump_json().encode(),
                {k: v for k, v in output.headers.items() if k == TRACE_HEADER},
            )
        else:
            topic, key, body, headers = (
                output.topic,
                output.key,
                output.message.model_dump_json().encode(),
                output.headers,
            )
        limit = self.settings.record_limit
        if len(body) > limit:
            raise OutputTooLarge(
                f"the {type(output.message if isinstance(output, Emit) else output).__name__} for {topic} is "
                f"{len(body) / 1_048_576:.1f} MiB, more than Kafka accepts "
                f"({limit / 1_048_576:.1f} MiB with KAFKA_MAX_MESSAGE_BYTES)"
            )
        return OutgoingRecord(topic, key.encode() if key else None, body, {**JSON_HEADERS, **headers})

    async def publish(self, outputs: Iterable[Output]) -> None:
        """Send all outputs and wait until Kafka acknowledged every one of them.

        They go straight to the aiokafka producer FastStream started (:mod:`.sending`), each with
        the trace context its input carried (:meth:`Emit.following`): without a tracer that is all FastStream's
        telemetry middleware would write. When spans are recorded (``OTEL_*``), and on FastStream's in-memory test
        broker, each goes through ``broker.publish`` and its middlewares instead, for a span per hop.
        """
        encoded = []
        for output in outputs:
            if isinstance(output, DeadLetter):
                log.warning(
                    "dead-lettered %s from %s[%d]@%d: %s",
                    output.article_id or "message",
                    output.source_topic,
                    output.source_partition,
                    output.source_offset,
                    output.reason,
                )
            encoded.append((output, self.encode(output)))  # all checked before any is sent
        producer = None if recording() else producer_of(self.broker)
        if producer is not None:
            await send_all(producer, (record for _, record in encoded))
        else:
            await self._publish_each(encoded)
        self.metrics.count_published(record.topic for _, record in encoded)

    async def _publish_each(self, encoded: list[tuple[Output, OutgoingRecord]]) -> None:
        """Through FastStream's ``publish``, one record a call, all awaited together."""
        pending = []
        for output, record in encoded:
            with continuing(output.headers, f"{self.name} {record.topic}"):  # one article's hops stay in one trace
                pending.append(
                    await self.broker.publish(
                        record.value, record.topic, key=record.key, headers=record.headers, no_confirm=True
                    )
                )
        # FastStream's in-memory test broker delivers at once and hands back no future.
        confirmations = [p for p in pending if p is not None]
        if confirmations:
            await asyncio.gather(*confirmations)

    def reject(
        self, delivery: Delivery, error: BaseException, *, attempts: int = 1, article_id: str | None = None
    ) -> DeadLetter:
        """The dead letter for ``delivery``; keeps the original bytes up to what the DLQ topic accepts."""
        if article_id is None and self.keyed_by_article and delivery.key:
            article_id = delivery.key.decode("utf-8", "replace")
        return dead_letter(
            delivery,
            stage=self.name,
            error=error,
            attempts=attempts,
            article_id=article_id,
            # base64 grows by a third; leave room for the rest of the record.
            max_original_bytes=int(self.settings.kafka_max_message_bytes * 0.7),
            max_record_bytes=self.settings.record_limit,
        )

    def decode_each(self, deliveries: list[Delivery], model: type[M]) -> tuple[list[tuple[Delivery, M]], list[Output]]:
        """Parse every record as ``model``: the readable ones with their record, and dead letters for the rest."""
        valid: list[tuple[Delivery, M]] = []
        rejected: list[Output] = []
        for delivery in deliveries:
            try:
                valid.append((delivery, delivery.decode(model)))
            except RejectedInput as error:
                rejected.append(self.reject(delivery, error))
        return valid, rejected

    def _next_delay(self) -> float:
        self._failures_in_a_row += 1
        return min(30.0, 0.5 * 2 ** min(self._failures_in_a_row - 1, 6))

    async def _back_off(self, error: BaseException, size: int, delay: float) -> None:
        if isinstance(error, DeadLetterRefused):
            log.error("batch of %d failed: %s; retrying it in %.1fs, nothing is committed", size, error, delay)
        else:
            log.warning(
                "batch of %d failed (%s: %s) and Kafka or the database does not answer (or cannot write); retrying"
                " it in %.1fs, nothing is committed",
                size,
                type(error).__name__,
                _short(error),
                delay,
            )
        await asyncio.sleep(delay)


def _short(error: BaseException) -> str:
    return (str(error).strip() or "no message")[:300]


async def _tolerant_headers(records: tuple[Any, ...], original_parser: Callable[..., Awaitable[Any]]) -> Any:
    """Header values that are not UTF-8 (or are null) would fail FastStream's parser for the whole batch, and
    the batch would be retried for ever: a producer's odd header must not block a partition."""
    return await original_parser(tuple(_with_text_headers(record) for record in records))


def _with_text_headers(record: Any) -> Any:
    headers = record.headers or ()
    if all(value is not None and _is_utf8(value) for _, value in headers):
        return record
    safe = tuple((name, (value or b"").decode("utf-8", "replace").encode()) for name, value in headers)
    return dataclasses.replace(record, headers=safe)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _no_decoding(message: Any) -> None:
    """Handlers read raw records: decoding is theirs, so one bad record cannot fail the whole batch."""
    return None
