"""A batch of the biggest articles ingest lets through is answered once: cleanup's event loop keeps its consumer's
heartbeats going while the batch is fingerprinted and its short lines looked up, so its group never drops it and
hands the batch over again, and no statement outgrows what the database takes."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from newsflow_cli.kafka_io import producer
from newsflow_shared import IngestedArticle, ServiceSettings, ensure_topics

from .harness import isolated_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

ARTICLES = 30  # ~57 MB: one or two fetches of cleanup's 64 MiB
WORDS = 330_000  # ~1.9 MB of text, just under INGEST_MAX_BYTES
SHORT_LINES = 40_000  # ~1.7 MB of distinct one-line paragraphs


def distinct_words(count: int) -> list[IngestedArticle]:
    """Articles of ~1.9 MB of made-up words, each in an order of its own: ~300,000 distinct word pairs apiece, the
    most a fingerprint has to hash for an article of that size."""
    rng = random.Random(7)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(WORDS)]
    articles = []
    for index in range(count):
        rng.shuffle(words)
        articles.append(
            IngestedArticle(id=f"big-{index}", text=" ".join(words), source="Wire", content_hash=f"big-{index}")
        )
    return articles


def short_lines(count: int) -> list[IngestedArticle]:
    """Articles of 40,000 distinct short paragraphs (a list, a table): each one a candidate for learned boilerplate.
    One value per line in a statement failed the batch (asyncpg takes 32,767, SQLite 32,766 by default)."""
    rng = random.Random(11)
    return [
        IngestedArticle(
            id=f"big-{index}",
            text="\n\n".join(
                f"Row {line}: {rng.getrandbits(48):x} {rng.getrandbits(48):x}." for line in range(SHORT_LINES)
            ),
            source="Lists",
            content_hash=f"big-{index}",
        )
        for index in range(count)
    ]


@pytest.mark.parametrize("big_articles", [distinct_words, short_lines])
async def test_a_batch_of_the_biggest_articles_is_answered_once(
    kafka_bootstrap: str, tmp_path: Path, big_articles: Callable[[int], list[IngestedArticle]]
) -> None:
    env = isolated_env(kafka_bootstrap, f"sqlite+aiosqlite:///{tmp_path}/newsflow.db")
    settings = ServiceSettings(**{k.lower(): v for k, v in env.items()})
    await ensure_topics(settings)
    async with producer(settings) as client:
        for article in big_articles(ARTICLES):
            await client.send_and_wait(
                settings.topic_ingested, article.model_dump_json().encode(), key=article.id.encode()
            )

    log = tmp_path / "cleanup.log"
    with log.open("wb") as output:
        cleanup = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "newsflow_cleanup",
            env={**os.environ, **env, "LOG_LEVEL": "INFO"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    consumer = AIOKafkaConsumer(
        settings.topic_clean,
        settings.topic_dlq,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"watch-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_bytes=128 * 1024 * 1024,
        max_partition_fetch_bytes=64 * 1024 * 1024,
    )
    answers: dict[str, int] = {}
    dead_lettered: list[str] = []
    await consumer.start()
    try:
        deadline = time.monotonic() + 420
        all_answered_at: float | None = None
        # Every article answered, then 30 s more: a batch handed over again would be answered again by then.
        while all_answered_at is None or time.monotonic() < all_answered_at + 30:
            assert time.monotonic() < deadline, f"answered {len(answers)} of {ARTICLES}; see {log}"
            assert cleanup.returncode is None, log.read_text(errors="replace")[-3000:]
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    key = record.key.decode() if record.key else "?"
                    answers[key] = answers.get(key, 0) + 1
                    if record.topic == settings.topic_dlq:
                        dead_lettered.append(f"{key}: {record.value[:300]!r}")
            if all_answered_at is None and len(answers) >= ARTICLES:
                all_answered_at = time.monotonic()
    finally:
        await consumer.stop()
        cleanup.terminate()
        await asyncio.wait_for(cleanup.wait(), 30)

    lines = log.read_text(errors="replace")
    assert "session expired" not in lines.lower(), "the group dropped cleanup's consumer while it worked"
    assert "splitting it to find the record that fails" not in lines, "a batch of valid articles failed"
    assert sorted(answers) == sorted(f"big-{index}" for index in range(ARTICLES))
    assert set(answers.values()) == {1}, {key: count for key, count in answers.items() if count > 1}
    assert not dead_lettered, dead_lettered
