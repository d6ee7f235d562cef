"""A stage's Kafka client CPU per record, publishing and consuming: what it was and what it is, side by side.

    .venv/bin/python bench/kafka_client.py [--batches 40] [--consume 3840] [--rounds 6] [--batch 64]

Publishing: ``Stage.publish`` hands a batch's outputs straight to the aiokafka producer FastStream started
(``newsflow_shared.sending``); before, it sent each through ``broker.publish`` and FastStream's telemetry and
Prometheus middlewares, as it still does when spans are recorded. Consuming: FastStream's telemetry middleware is on
a service's broker only when spans are recorded; before, it read every record's trace context and baggage. Each is
run here in alternating turns against a real broker, with the pipeline's own messages (clean articles of 1,300
characters with their trace headers, keyed by article id), beside plain aiokafka (and, for publishing, aiokafka's
batch interface, tried and not kept, and the encoding alone). This process's CPU only: the broker's is
``bench/broker.py``'s."""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))
from _common import kafka, table, written_articles
from aiokafka.consumer import fetcher
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from newsflow_shared import CleanArticle, Delivery, Emit, ServiceSettings, Stage, ensure_topics, kafka_clients
from newsflow_shared import stage as stage_module
from newsflow_shared.contracts import Lineage
from newsflow_shared.delivery import TRACE_HEADER
from newsflow_shared.prompt_batches import take_records_promptly as promptly
from newsflow_shared.sending import producer_of
from newsflow_shared.stage import Output

PARTITIONER = DefaultPartitioner()


def outputs(settings: ServiceSettings, count: int) -> list[Emit]:
    """Clean articles as cleanup publishes them: text and arrived text of 1,300 characters, lineage, trace headers."""
    texts = [t[:1300] for t in written_articles()]
    now = datetime.now(UTC)
    made = []
    for n in range(count):
        text, article_id = texts[n % len(texts)], f"{uuid.uuid4().hex[:8]}-{n}"
        article = CleanArticle(
            id=article_id,
            title="Report",
            content_hash="0" * 64,
            received_at=now,
            text=text,
            arrived_text=text,
            language="en",
            language_confidence=0.99,
            lineage=[Lineage(stage=stage, version="0.1.0", at=now) for stage in ("ingest", "cleanup")],
        )
        headers = {TRACE_HEADER: uuid.uuid4().hex, "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"}
        made.append(Emit(settings.topic_clean, article, article_id, headers))
    return made


def services_stage(settings: ServiceSettings, name: str, *, telemetry: bool) -> Stage:
    """A stage as a service builds it; ``telemetry`` puts FastStream's telemetry middleware on its broker, as every
    service had it before spans were made optional (now only when they are recorded)."""
    with mock.patch("newsflow_shared.broker.recording", return_value=telemetry):
        return Stage.for_service(settings, name)


async def publishing(args: argparse.Namespace, settings: ServiceSettings) -> dict[str, list[float]]:
    before, now = (services_stage(settings, "cleanup", telemetry=t) for t in (True, False))
    for stage in (before, now):
        await stage.broker.connect()
    producer = producer_of(now.broker)
    assert producer is not None
    batch = outputs(settings, args.batch)

    async def batch_builders() -> None:
        every = sorted(await producer.partitions_for(settings.topic_clean))
        builders: dict[int, BatchBuilder] = {}
        for output in batch:
            record = now.encode(output)
            record_headers = [(k, v.encode()) for k, v in record.headers.items()]
            partition = PARTITIONER(record.key, every, every)
            builder = builders.get(partition) or builders.setdefault(partition, producer.create_batch())
            assert builder.append(key=record.key, value=record.value, timestamp=None, headers=record_headers)
        sent = [await producer.send_batch(b, settings.topic_clean, partition=p) for p, b in builders.items()]
        await asyncio.gather(*sent)

    async def encode_only() -> None:
        for output in batch:
            now.encode(output)

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "FastStream publish, telemetry and Prometheus middlewares (before)": lambda: before._publish_each(
            [(output, before.encode(output)) for output in batch]
        ),
        "aiokafka send, one record a call (Stage.publish)": lambda: now.publish(batch),
        "aiokafka BatchBuilder, one per partition (not kept)": batch_builders,
        "encoding alone (model_dump_json)": encode_only,
    }
    for variant in variants.values():  # connections, metadata, the first batches' allocations
        for _ in range(3):
            await variant()
    cpu_ms: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            started = time.process_time()
            for _ in range(args.batches):
                await variant()
            cpu_ms[name].append((time.process_time() - started) * 1000 / (args.batches * args.batch))
    for stage in (before, now):
        await stage.broker.stop()
    return cpu_ms


async def consuming(args: argparse.Namespace, settings: ServiceSettings) -> dict[str, list[float]]:
    """Each turn a new consumer group reads ``--consume`` records of the topic the publishing turns filled, in batches
    of ``--batch``, committing after each; its CPU is counted from its first batch on (joining the group left out)."""
    records = args.consume

    async def fast_parser_alone() -> float:
        """As ``plain``, with aiokafka's own fetched-records class: before records whose header names are not UTF-8
        were read again by the tolerant parser (newsflow_shared.readable_records)."""
        with (
            mock.patch.object(kafka_clients, "read_every_header_name", return_value=None),
            mock.patch.object(fetcher, "MemoryRecords", MemoryRecords),
        ):
            return await plain()

    async def plain() -> float:
        consumer = kafka_clients.consumer(
            settings,
            settings.topic_clean,
            group_id=f"plain-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=settings.kafka_max_message_bytes,
            **settings.consumer_options(),
        )
        await consumer.start()
        seen, started = 0, 0.0
        while seen < records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=args.batch)
            if not started and batch:
                started = time.process_time()
                continue
            seen += sum(len(part) for part in batch.values())
            await consumer.commit()
        spent = time.process_time() - started
        await consumer.stop()
        return spent * 1000 / seen

    async def through_stage(telemetry: bool) -> float:
        group = settings.model_copy(update={"kafka_group_prefix": f"stage-{uuid.uuid4().hex}"})
        stage = services_stage(group, "storage", telemetry=telemetry)
        seen, started, finished = 0, 0.0, asyncio.Event()

        async def handler(deliveries: list[Delivery]) -> list[Output]:
            nonlocal seen, started
            if not started:
                started = time.process_time()
            else:
                seen += len(deliveries)
            if seen >= records:
                finished.set()
            return []

        stage.consume(settings.topic_clean, handler)
        await stage.broker.start()
        await finished.wait()
        spent = time.process_time() - started
        await stage.broker.stop()
        return spent * 1000 / seen

    async def stage_unbounded() -> float:
        """Batches of BATCH_MAX_RECORDS in one ``getmany``, as before BATCH_MAX_BYTES (one record, then the rest)."""
        with mock.patch.object(stage_module, "take_records_promptly", lambda subscriber, _: promptly(subscriber)):
            return await through_stage(False)

    variants: dict[str, Callable[[], Awaitable[float]]] = {
        "aiokafka getmany and commit, nothing else": plain,
        "the same with aiokafka's own record reading (before readable_records)": fast_parser_alone,
        "Stage.consume, with FastStream's telemetry middleware (before)": lambda: through_stage(True),
        "Stage.consume, batches bounded in records only (before)": stage_unbounded,
        "Stage.consume (now)": lambda: through_stage(False),
    }
    cpu_ms: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            cpu_ms[name].append(await variant())
    return cpu_ms


async def run(args: argparse.Namespace) -> None:
    with kafka() as bootstrap:
        settings = ServiceSettings(
            kafka_bootstrap_servers=bootstrap,
            kafka_group_prefix=f"bench-{uuid.uuid4().hex}",
            batch_max_records=args.batch,
        )
        await ensure_topics(settings)
        published = await publishing(args, settings)
        consumed = await consuming(args, settings)
    show(f"published ({args.rounds} turns of {args.batches} batches of {args.batch})", published)
    show(f"consumed ({args.rounds} turns of {args.consume} records in batches of {args.batch})", consumed)


def show(what: str, cpu_ms: dict[str, list[float]]) -> None:
    base = statistics.median(next(iter(cpu_ms.values())))
    rows = [
        [
            name,
            f"{statistics.median(values):.3f}",
            f"{min(values):.3f}-{max(values):.3f}",
            f"{statistics.median(values) / base:.2f}",
        ]
        for name, values in cpu_ms.items()
    ]
    table(f"CPU ms per record {what}, this process", ["how", "median", "range", "× first"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches per turn")
    parser.add_argument("--batch", type=int, default=64, help="records per batch (classify's BATCH_MAX_RECORDS)")
    parser.add_argument("--consume", type=int, default=64 * 60, help="records each consuming turn reads")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a new topic's first produce is retried
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
