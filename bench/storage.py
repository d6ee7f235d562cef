"""Storage benchmark: rows/s written through Kafka into SQLite and PostgreSQL, and query latency at 100,000 articles.

    .venv/bin/python bench/storage.py [--rows 20000] [--corpus 100000]

Uses KAFKA_BOOTSTRAP_SERVERS or starts a local broker; PostgreSQL from DATABASE_URL_POSTGRES or
deploy/local/postgres.sh. Each database gets a fresh schema. Prints one table per measure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from _common import LANGUAGES, SOURCES, TOP_LEVEL, WORDS, kafka, table, text_of, unique_topics, wait_healthy

from newsflow_cli.local_kafka import free_port
from newsflow_cli.supervisor import Supervisor
from newsflow_shared import EnrichedArticle, Lineage, ServiceSettings, TopicScore, ensure_topics
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.tables import articles
from newsflow_storage.repository import ArticleRepository

ROOT = Path(__file__).parents[1]


def synthetic(index: int, rng: random.Random, prefix: str) -> EnrichedArticle:
    codes = rng.sample(TOP_LEVEL, 2)
    return EnrichedArticle(
        id=f"{prefix}-{index}",
        title=" ".join(rng.choice(WORDS) for _ in range(7)).capitalize(),
        text=text_of(rng, 2000),
        language=rng.choice(LANGUAGES),
        language_confidence=0.99,
        source=rng.choice(SOURCES),
        published_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=index),
        content_hash=uuid.uuid4().hex,
        topics=[TopicScore(code=codes[0], label="a", score=0.8), TopicScore(code=codes[1], label="b", score=0.1)],
        lineage=[Lineage(stage="classify", version="bench", model="bench")],
    )


async def postgres_database() -> str:
    base = os.environ.get("DATABASE_URL_POSTGRES")
    if not base:
        base = subprocess.run(
            [str(ROOT / "deploy/local/postgres.sh"), "start"], capture_output=True, text=True, check=True
        ).stdout.strip()
    url = make_url(base)
    name = f"newsflow_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port, database=url.database
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def count_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(articles))).scalar_one()
    finally:
        await engine.dispose()


async def write_through_kafka(bootstrap: str, database_url: str, rows: int) -> float:
    """Pre-load ``rows`` enriched articles on the topic, start storage, time until every row is in."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **unique_topics(),
    }
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    await upgrade(database_url)
    rng = random.Random(7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks="all")
    await producer.start()
    futures = [
        await producer.send(
            settings.topic_enriched, synthetic(i, rng, "w").model_dump_json().encode(), key=f"w-{i}".encode()
        )
        for i in range(rows)
    ]
    await asyncio.gather(*futures)
    await producer.stop()

    supervisor = Supervisor(env=env, replicas={"ingest": 0, "cleanup": 0, "classify": 0, "storage": 1}, quiet=True)
    await supervisor.start({"storage": {"STORAGE_API_PORT": str(free_port())}})
    try:
        while await count_rows(database_url) == 0:
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        first = await count_rows(database_url)
        while (done := await count_rows(database_url)) < rows:
            await asyncio.sleep(0.2)
        return (done - first) / (time.perf_counter() - started)
    finally:
        await supervisor.stop()


async def query_latency(database_url: str, corpus: int) -> tuple[float, dict[str, list[float]]]:
    """Fill to ``corpus`` articles through the repository, then time API searches over HTTP."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    repository = ArticleRepository(engine)
    rng = random.Random(11)
    started = time.perf_counter()
    for start in range(0, corpus, 1000):
        await repository.store([synthetic(i, rng, "q") for i in range(start, min(start + 1000, corpus))])
    fill_rate = corpus / (time.perf_counter() - started)
    if not database_url.startswith("sqlite"):
        # What autovacuum does within minutes of a bulk load: without statistics the planner may
        # pick a GIN scan plus sort for a word found in every article (100+ ms instead of 5).
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()

    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "STORAGE_API_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "KAFKA_BOOTSTRAP_SERVERS": os.environ["BENCH_KAFKA"],
        **unique_topics(),
    }
    await ensure_topics(ServiceSettings(**{k.lower(): v for k, v in env.items()}))
    supervisor = Supervisor(env=env, replicas={"ingest": 0, "cleanup": 0, "classify": 0, "storage": 1}, quiet=True)
    await supervisor.start()
    queries = {
        "q (one word)": lambda r: {"q": r.choice(WORDS)},
        "q (two words)": lambda r: {"q": f"{r.choice(WORDS)} {r.choice(WORDS)}"},
        "topic": lambda r: {"topic": r.choice(TOP_LEVEL)},
        "q + topic": lambda r: {"q": r.choice(WORDS), "topic": r.choice(TOP_LEVEL)},
        "language + source": lambda r: {"language": r.choice(LANGUAGES), "source": r.choice(SOURCES)},
        "date range": lambda r: {"from": "2026-01-20", "to": "2026-01-25"},
        "by id": None,
    }
    timings: dict[str, list[float]] = {name: [] for name in queries}
    try:
        await wait_healthy(port, timeout=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            qrng = random.Random(3)
            for name, make in queries.items():
                for i in range(120):
                    path, params = (
                        (f"/articles/q-{qrng.randrange(corpus)}", None) if make is None else ("/articles", make(qrng))
                    )
                    begin = time.perf_counter()
                    response = await client.get(path, params=params)
                    elapsed = (time.perf_counter() - begin) * 1000
                    response.raise_for_status()
                    if i >= 20:  # the first calls warm caches
                        timings[name].append(elapsed)
    finally:
        await supervisor.stop()
    return fill_rate, timings


def p(values: list[float], q: float) -> str:
    return f"{statistics.quantiles(values, n=100)[int(q) - 1]:.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--corpus", type=int, default=100_000)
    args = parser.parse_args()
    with kafka() as bootstrap:
        os.environ["BENCH_KAFKA"] = bootstrap
        databases = {
            "SQLite": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='newsflow-bench-')}/bench.db",
            "PostgreSQL": await postgres_database(),
        }
        write_rows = [
            [name, args.rows, f"{await write_through_kafka(bootstrap, url, args.rows):.0f}"]
            for name, url in databases.items()
        ]
        table(
            "Storage writes through Kafka (storage service alone with its default batch size, ~2 KB articles)",
            ["database", "rows", "rows/s"],
            write_rows,
        )

        query_rows = []
        for name in databases:
            url = {
                "SQLite": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='newsflow-bench-')}/query.db",
                "PostgreSQL": await postgres_database(),
            }[name]
            fill, timings = await query_latency(url, args.corpus)
            for query, values in timings.items():
                query_rows.append([name, query, p(values, 50), p(values, 95), p(values, 99)])
            query_rows.append([name, f"(filled at {fill:.0f} rows/s)", "", "", ""])
        table(
            f"API latency at {args.corpus:,} stored articles, ms over HTTP (100 calls each, limit 50)",
            ["database", "query", "p50", "p95", "p99"],
            query_rows,
        )


if __name__ == "__main__":
    asyncio.run(main())
