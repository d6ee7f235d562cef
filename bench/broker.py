"""The broker's CPU per article for the pipeline's own traffic, without the services: settings side by side.

    .venv/bin/python bench/broker.py [--articles 1000] [--rate 40] [--rounds 2] [--jit] [--jvm NAME=FLAGS]

In the whole pipeline the broker's share is a millisecond or two per article beside a model that costs 15-130, and
the machine's drift hides what a setting does to it. Here the same traffic crosses a real broker with nothing else
running: five hops as the pipeline makes them (raw, ingested, clean, enriched, stored; the last one read by a
watcher), each message of the size our contracts give a 1,300-character article, sent in bursts of 64 at ``--rate``
articles a second (classify's batches at the model's pace), consumed in batches and committed after each as the
services do, produced with the services' producer settings. Only the broker's CPU is counted (from ``/proc``): per
article, and per second while the hops' consumers wait. Variants run in turns, each on topics of its own, so drift
falls on all of them alike. ``--jit`` runs a second broker with Kafka's own JVM flags (full JIT) beside the local
one (the quick compiler only), and ``--jvm`` one with any other flags; turns alternate between the brokers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).parent))
from _common import process_cpu, table, written_articles

from newsflow_cli.local_kafka import LocalKafka
from newsflow_shared import CleanArticle, EnrichedArticle, IngestedArticle, ServiceSettings, StoredArticle
from newsflow_shared.contracts import Lineage, TopicScore
from newsflow_shared.topics import ensure_topics

HOPS = ("raw", "ingested", "clean", "enriched", "stored")
BURST = 64
# Kafka's own start script's flags (kafka-run-class.sh), as an operator's broker runs: the full JIT.
KAFKA_DEFAULT_JVM = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
# Every record of the pipeline carries these headers (its content type and its trace).
HEADERS = [("content-type", b"application/json"), ("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01")]


def messages(count: int) -> list[list[bytes]]:
    """Each hop's message for ``count`` articles: what the contracts make of our written articles' first 1,300
    characters (the clean, enriched and stored ones carry the text twice: ``text`` and ``arrived_text``)."""
    texts = [t[:1300] for t in written_articles()]
    now = datetime.now(UTC)
    hops: list[list[bytes]] = [[] for _ in HOPS]
    for i in range(count):
        text, article_id = texts[i % len(texts)], f"{uuid.uuid4().hex[:8]}-{i}"
        lineage = [Lineage(stage=stage, version="0.1.0", at=now) for stage in ("ingest", "cleanup", "classify")]
        base = {"id": article_id, "title": "Report", "content_hash": "0" * 64, "received_at": now}
        clean = {**base, "text": text, "arrived_text": text, "language": "en", "language_confidence": 0.99}
        topics = [TopicScore(code=f"medtop:{n:02d}000000", label="a topic", score=0.5) for n in (4, 11, 16)]
        hops[0].append(json.dumps({"id": article_id, "title": "Report", "text": text}).encode())
        hops[1].append(IngestedArticle(**base, text=text, lineage=lineage[:1]).model_dump_json().encode())
        hops[2].append(CleanArticle(**clean, lineage=lineage[:2]).model_dump_json().encode())
        hops[3].append(EnrichedArticle(**clean, lineage=lineage, topics=topics).model_dump_json().encode())
        hops[4].append(StoredArticle(**clean, lineage=lineage, topics=topics).model_dump_json().encode())
    return hops


@dataclass
class Variant:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)  # ServiceSettings fields (their env names, lower case)


async def hop(
    settings: ServiceSettings, source: str, target: str | None, payloads: list[bytes], seen: asyncio.Queue[int]
) -> None:
    """One stage: batches of ``source`` in, the next hop's message for each record out, then a commit."""
    bootstrap = settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{source}.group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.consumer_options(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings.producer_options()) if target else None
    await consumer.start()
    if producer:
        await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=settings.batch_timeout_ms, max_records=settings.batch_max_records)
            records = [record for part in batch.values() for record in part]
            if not records:
                continue
            if producer and target:
                sent = [
                    await producer.send(target, payloads[int(r.key or b"0")], key=r.key, headers=HEADERS)
                    for r in records
                ]
                await asyncio.gather(*sent)
            await consumer.commit()
            seen.put_nowait(len(records))
    finally:
        await consumer.stop()
        if producer:
            await producer.stop()


async def turn(
    bootstrap: str, pid: int | None, variant: Variant, hops: list[list[bytes]], rate: float
) -> dict[str, float]:
    """One variant on fresh topics: the broker's idle CPU with the hops connected, then its CPU per article.

    With no ``pid`` nothing is measured (an empty result): the traffic only crosses the broker.
    """

    def broker_cpu() -> float:
        return process_cpu(pid) if pid else 0.0

    run = uuid.uuid4().hex[:8]
    topics = {f"topic_{name}": f"bench-broker-{run}.{name}" for name in HOPS}
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, **topics, **variant.settings)
    await ensure_topics(settings)
    names = [topics[f"topic_{name}"] for name in HOPS]
    done: asyncio.Queue[int] = asyncio.Queue()
    batches: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in HOPS[1:]]
    tasks = [
        asyncio.create_task(hop(settings, names[i], names[i + 1], hops[i + 1], batches[i]))
        for i in range(len(HOPS) - 1)
    ]
    tasks.append(asyncio.create_task(hop(settings, names[-1], None, [], done)))
    source = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings.producer_options())
    await source.start()
    try:
        idle = 0.0
        if pid:
            await asyncio.sleep(8)  # groups joined, the fetches waiting
            idle_from, idle_began = process_cpu(pid), time.perf_counter()
            await asyncio.sleep(10)
            idle = (process_cpu(pid) - idle_from) * 1000 / (time.perf_counter() - idle_began)
        count = len(hops[0])
        cpu_from, began = broker_cpu(), time.perf_counter()
        for start in range(0, count, BURST):
            sent = [
                await source.send(names[0], hops[0][i], key=str(i).encode(), headers=HEADERS)
                for i in range(start, min(count, start + BURST))
            ]
            await asyncio.gather(*sent)
            await asyncio.sleep(max(0.0, began + (start + BURST) / rate - time.perf_counter()))
        stored = 0
        while stored < count:
            stored += await asyncio.wait_for(done.get(), timeout=120)
        seconds = time.perf_counter() - began
        spent = (broker_cpu() - cpu_from) * 1000
        sizes = [queue.qsize() for queue in batches]
        if not pid:
            return {}
        return {
            "per article": spent / count,
            "idle ms/s": idle,
            "beyond idle per article": (spent - idle * seconds) / count,
            "rate": count / seconds,
            "batch": statistics.mean(count / max(1, n) for n in sizes),
        }
    finally:
        await source.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def warm_up(bootstrap: str, articles: int = 2000, rate: float = 200.0) -> None:
    """The pipeline's traffic across the broker once, unmeasured, before anything is.

    A fresh broker's JVM compiles its hot paths in its first minutes: measured then, three runs of the pipeline in a
    row put the broker at 0.76, 0.64 and 0.57 ms per article. A production broker has long been warm.
    """
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a new broker's first requests are retried: nothing to report
    try:
        await turn(bootstrap, None, Variant("warm-up"), messages(articles), rate)
    finally:
        quiet.setLevel(level)


def start_broker(jvm_flags: str | None = None) -> LocalKafka:
    """The local broker as ``newsflow run`` starts it, or with other JVM flags (the broker reads them from the
    environment, as Kafka's start scripts do)."""
    flags = {"KAFKA_JVM_PERFORMANCE_OPTS": jvm_flags} if jvm_flags else {}
    with mock.patch.dict(os.environ, flags):
        return LocalKafka(Path(tempfile.mkdtemp(prefix="newsflow-bench-broker-"))).start()


async def run(args: argparse.Namespace, variants: list[Variant]) -> None:
    others = ([("full JIT", KAFKA_DEFAULT_JVM)] if args.jit else []) + [
        (name, flags) for name, _, flags in (spec.partition("=") for spec in args.jvm)
    ]
    brokers = {"local broker": start_broker()} | {name: start_broker(flags) for name, flags in others}
    try:
        hops = messages(args.articles)
        pids = {name: broker.process.pid for name, broker in brokers.items() if broker.process}
        print(
            "bytes per article, each hop uncompressed:",
            ", ".join(f"{n} {len(h[0]):,}" for n, h in zip(HOPS, hops, strict=True)),
        )
        for broker in brokers.values():
            await warm_up(broker.bootstrap_servers, rate=args.rate * 5)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for variant in variants:
                for name, broker in brokers.items():
                    if name != "local broker" and variant.settings:
                        continue  # the other brokers run the default settings only
                    result = await turn(broker.bootstrap_servers, pids[name], variant, hops, args.rate)
                    results.setdefault((variant.name, name), []).append(result)
                    print(
                        f"  round {round_ + 1}, {variant.name} on the {name}: {result['per article']:.2f} ms per"
                        f" article, idle {result['idle ms/s']:.0f} ms/s, {result['rate']:.0f} articles/s",
                        flush=True,
                    )
        rows = []
        for (variant_name, broker_name), turns in results.items():
            medians = {key: statistics.median(t[key] for t in turns) for key in turns[0]}
            rows.append(
                [
                    variant_name,
                    broker_name,
                    f"{medians['per article']:.2f} ({', '.join(format(t['per article'], '.2f') for t in turns)})",
                    f"{medians['beyond idle per article']:.2f}",
                    f"{medians['idle ms/s']:.0f}",
                    f"{medians['rate']:.0f}",
                    f"{medians['batch']:.0f}",
                ]
            )
        table(
            f"The broker's CPU for the pipeline's traffic: {args.articles} articles at {args.rate:g}/s, five hops,"
            f" median of {args.rounds} turns",
            ["variant", "broker", "ms per article (turns)", "beyond idle", "idle ms/s", "articles/s", "batch"],
            rows,
        )
    finally:
        for broker in brokers.values():
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=40.0, help="articles per second into the first hop")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jit", action="store_true", help="also a broker with Kafka's own JVM flags")
    parser.add_argument(
        "--jvm",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="also a broker with these JVM flags in place of the local broker's, e.g."
        " 'serial=-XX:+UseSerialGC -XX:TieredStopAtLevel=1' (repeatable)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="settings to run beside the defaults (env names), e.g. none:KAFKA_COMPRESSION=none",
    )
    args = parser.parse_args()
    if unnamed := [spec for spec in args.jvm if not spec.partition("=")[2].strip()]:
        parser.error(f"--jvm takes NAME=FLAGS: no flags in {unnamed}")  # not the local broker under another name
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a new topic's first offsets fetch is retried
    variants = [Variant("defaults")]
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        pairs = (item.split("=", 1) for item in assignments.split(",") if item)
        variants.append(Variant(name, {key.lower(): value for key, value in pairs}))
    asyncio.run(run(args, variants))


if __name__ == "__main__":
    main()
