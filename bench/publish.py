"""A stage's CPU per record published: FastStream's publish against aiokafka's send, side by side.

    .venv/bin/python bench/publish.py [--batches 40] [--rounds 6] [--batch 64]

``Stage.publish`` hands a batch's outputs straight to the aiokafka producer FastStream started
(``newsflow_shared.sending``); with spans recorded it sends each through ``broker.publish`` and FastStream's
telemetry and Prometheus middlewares instead. Both run here in alternating turns against a real broker, with the
pipeline's own messages (clean articles of 1,300 characters, each with its trace headers, keyed by article id), and
the process's CPU per record is printed for each, beside aiokafka's batch interface (one ``BatchBuilder`` per
partition, tried and not kept) and the encoding alone. This process's CPU only: the broker's is
``bench/broker.py``'s.
"""

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

sys.path.insert(0, str(Path(__file__).parent))
from _common import kafka, table, written_articles
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from newsflow_shared import CleanArticle, Emit, ServiceSettings, Stage, ensure_topics
from newsflow_shared.contracts import Lineage
from newsflow_shared.delivery import TRACE_HEADER
from newsflow_shared.sending import producer_of
from newsflow_shared.stage import JSON_HEADERS

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


async def run(args: argparse.Namespace) -> None:
    with kafka() as bootstrap:
        settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, kafka_group_prefix=f"bench-{uuid.uuid4().hex}")
        await ensure_topics(settings)
        stage = Stage.for_service(settings, "cleanup")  # the services' broker: its telemetry and Prometheus middlewares
        await stage.broker.connect()
        producer = producer_of(stage.broker)
        assert producer is not None
        batch = outputs(settings, args.batch)

        async def one_by_one() -> None:
            await stage._publish_each([(output, stage.encode(output)) for output in batch])

        async def batch_builders() -> None:
            every = sorted(await producer.partitions_for(settings.topic_clean))
            builders: dict[int, BatchBuilder] = {}
            for output in batch:
                _, key, body, headers = stage.encode(output)
                record_headers = [(k, v.encode()) for k, v in {**JSON_HEADERS, **headers}.items()]
                partition = PARTITIONER(key.encode(), every, every)
                builder = builders.get(partition) or builders.setdefault(partition, producer.create_batch())
                assert builder.append(key=key.encode(), value=body, timestamp=None, headers=record_headers)
            sent = [await producer.send_batch(b, settings.topic_clean, partition=p) for p, b in builders.items()]
            await asyncio.gather(*sent)

        async def encode_only() -> None:
            for output in batch:
                stage.encode(output)

        variants: dict[str, Callable[[], Awaitable[None]]] = {
            "FastStream publish, one record a call (before; now with spans on)": one_by_one,
            "aiokafka send, one record a call (Stage.publish)": lambda: stage.publish(batch),
            "aiokafka BatchBuilder, one per partition": batch_builders,
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
        await stage.broker.stop()

    base = statistics.median(cpu_ms[next(iter(variants))])
    rows = [
        [
            name,
            f"{statistics.median(values):.3f}",
            f"{min(values):.3f}-{max(values):.3f}",
            f"{statistics.median(values) / base:.2f}",
        ]
        for name, values in cpu_ms.items()
    ]
    table(
        f"CPU ms per record published, this process ({args.rounds} turns of {args.batches} batches of {args.batch})",
        ["how", "median", "range", "× first"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches per turn")
    parser.add_argument("--batch", type=int, default=64, help="records per batch (classify's BATCH_MAX_RECORDS)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a new topic's first produce is retried
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
