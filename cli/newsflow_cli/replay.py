"""Reprocessing: send stored or raw articles through the pipeline again, e.g. after a model upgrade.

Replayed messages carry the ``newsflow-replay`` header, so ingest does not skip them
as exact re-sends. Storage then updates each article whose enrichment changed (its
revision grows and the old enrichment stays in the history) and leaves the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import ValidationError
from rich.markup import escape

from newsflow_shared import (
    REPLAY_HEADER,
    TRACE_HEADER,
    CleanArticle,
    IngestedArticle,
    ServiceSettings,
    StoredArticle,
    kafka_clients,
)
from newsflow_shared.contracts import listed_removals
from newsflow_shared.db import make_engine
from newsflow_shared.readable_records import UnreadBatch
from newsflow_shared.reasons import describe_validation_error
from newsflow_storage.repository import ArticleRepository

from .common import err
from .kafka_io import assign_at_first, producer, require_topics, topic_partitions

Stage = Literal["cleanup", "classify"]


def as_input_to(stage: Stage, article: StoredArticle) -> IngestedArticle | CleanArticle:
    """The stored article as the message ``stage`` consumes; lineage keeps only what came before that stage.

    Cleanup gets the body as it arrived (``arrived_text``), not the clean text: given that, it recorded the clean text
    as what arrived and nothing removed, and storage overwrote both, the only copies of the original. The byline goes
    with it (found on a page that is not sent again). Rows stored before ``arrived_text`` was kept send their text.
    """
    keep = {"ingest"} if stage == "cleanup" else {"ingest", "cleanup"}
    lineage = [step for step in article.lineage if step.stage in keep]
    if stage == "cleanup":
        return IngestedArticle(
            **article.model_dump(include=set(IngestedArticle.model_fields) - {"lineage", "text"}),
            text=article.arrived_text if article.arrived_text is not None else article.text,
            lineage=lineage,
        )
    fields = article.model_dump(include=set(CleanArticle.model_fields) - {"lineage", "removed"})
    # Listed within today's bounds: a row stored before them may list any number of removals, which classify refuses.
    return CleanArticle(**fields, removed=listed_removals(article.removed), lineage=lineage)


async def replay_stored(
    settings: ServiceSettings,
    stage: Stage,
    ids: list[str] | None,
    on_sent: Callable[[int], None] = lambda _: None,
    skipped: list[str] | None = None,
    missing: list[str] | None = None,
) -> int:
    """Publish stored articles to the input topic of ``stage``; return how many. The ids of rows that today's
    contract refuses (stored before a check they fail) go to ``skipped``, each said on the way; ``ids`` that are not
    stored go to ``missing`` (a mistyped id "replayed 0 articles" and exited 0)."""
    skipped = [] if skipped is None else skipped
    found: set[str] = set()
    topic = settings.topic_ingested if stage == "cleanup" else settings.topic_clean
    contract = "IngestedArticle" if stage == "cleanup" else "CleanArticle"
    run = uuid.uuid4().hex
    engine = make_engine(settings.database_url)
    sent = 0
    try:
        async with producer(settings) as client:
            async for batch in ArticleRepository(engine).scan(ids):
                futures = []
                for article in batch:
                    found.add(article.id)
                    try:
                        message = as_input_to(stage, article)
                    except ValueError as error:  # a row stored before a check it fails (ValidationError too)
                        why = (
                            describe_validation_error(error, contract)
                            if isinstance(error, ValidationError)
                            else str(error)
                        )
                        err.print(f"[yellow]not replayed:[/] {escape(article.id)}: {escape(why)}")
                        skipped.append(article.id)
                        continue
                    headers = [(REPLAY_HEADER, run.encode()), ("content-type", b"application/json")]
                    futures.append(
                        await client.send(
                            topic, message.model_dump_json().encode(), key=article.id.encode(), headers=headers
                        )
                    )
                for future in futures:
                    await future
                sent += len(futures)
                on_sent(len(batch))
    finally:
        await engine.dispose()
    if ids and missing is not None:
        missing.extend(i for i in dict.fromkeys(ids) if i not in found)
    return sent


async def replay_raw(
    settings: ServiceSettings, since: datetime | None, on_sent: Callable[[int], None] = lambda _: None
) -> int:
    """Re-publish what arrived on the raw topic (since ``since``) up to its current end; return how many."""
    run = uuid.uuid4().hex
    consumer = kafka_clients.consumer(
        settings,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.kafka_max_message_bytes,
        fetch_max_bytes=settings.kafka_max_message_bytes * 2,
    )
    await kafka_clients.connect(consumer, settings)
    sent = 0
    try:
        await require_topics(settings, settings.topic_raw)
        partitions = await topic_partitions(consumer, settings.topic_raw)
        ends = await consumer.end_offsets(partitions)
        if since is None:
            await assign_at_first(consumer, partitions)
        else:
            # Asked for before the assignment and set in the same step: see assign_at_first.
            starts = await consumer.offsets_for_times({p: int(since.timestamp() * 1000) for p in partitions})
            consumer.assign(partitions)
            for partition in partitions:
                found = starts.get(partition)
                consumer.seek(partition, found.offset if found else ends[partition])
        pending = {p for p in partitions if await consumer.position(p) < ends[p]}
        async with producer(settings) as client:
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=500)
                futures = []
                for partition, records in batches.items():
                    for record in records:
                        if record.offset >= ends[partition]:
                            continue
                        if isinstance(record.value, UnreadBatch):  # it would go as an empty record: say why not
                            err.print(
                                f"[yellow]not replayed[/] {partition.partition}:{record.offset}: {escape(record.value.reason)}"
                            )
                            continue
                        headers = [(k, v) for k, v in record.headers or () if k != REPLAY_HEADER]
                        if not any(k == TRACE_HEADER for k, _ in headers):
                            headers.append((TRACE_HEADER, uuid.uuid4().hex.encode()))
                        headers.append((REPLAY_HEADER, run.encode()))
                        futures.append(
                            await client.send(settings.topic_raw, record.value, key=record.key, headers=headers)
                        )
                    if await consumer.position(partition) >= ends[partition]:
                        pending.discard(partition)
                for future in futures:
                    await future
                sent += len(futures)
                on_sent(len(futures))
    finally:
        await consumer.stop()
    return sent
