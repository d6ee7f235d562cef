"""Mapping between the contracts and the rows: plain functions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from newsflow_shared import EnrichedArticle, StoredArticle


def enrichment_hash(article: EnrichedArticle) -> str:
    """What makes a new revision: new content, or a new producer (a stage or model version, or its settings).

    The topics themselves are left out on purpose: the same text through the same model can come
    back with scores a hair apart (reduced precision, other padding in another batch), which may
    reorder two close topics. That is noise of one producer, not a new enrichment.
    """
    payload = article.model_dump(
        mode="json", include={"content_hash", "title", "text", "language", "duplicate_of", "author"}
    )
    payload["producers"] = [(step.stage, step.version, step.model, step.details) for step in article.lineage]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def to_row(
    article: EnrichedArticle, *, revision: int, stored_at: datetime, now: datetime, digest: str | None = None
) -> dict[str, Any]:
    data = article.model_dump(mode="json")
    return {
        "id": article.id,
        "title": article.title,
        "text": article.text,
        "language": article.language,
        "language_confidence": article.language_confidence,
        "topics": data["topics"],
        "duplicate_of": article.duplicate_of,
        "duplicate_score": article.duplicate_score,
        "source": article.source,
        "url": article.url,
        "author": article.author,
        "published_at": utc(article.published_at),
        "metadata": data["metadata"],
        "removed": data["removed"],
        "lineage": data["lineage"],
        "content_hash": article.content_hash,
        "enrichment_hash": digest or enrichment_hash(article),
        "revision": revision,
        "received_at": utc(article.received_at),
        "stored_at": stored_at,
        "updated_at": now,
    }


def utc(value: datetime | None) -> datetime | None:
    """Every stored time is UTC: SQLite keeps no offset, so one must be fixed before writing."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back without their offset; every time Newsflow writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def from_row(row: Any) -> StoredArticle:
    m = row._mapping
    return StoredArticle(
        id=m["id"],
        title=m["title"],
        text=m["text"],
        language=m["language"],
        language_confidence=m["language_confidence"],
        topics=m["topics"],
        duplicate_of=m["duplicate_of"],
        duplicate_score=m["duplicate_score"],
        source=m["source"],
        url=m["url"],
        author=m["author"],
        published_at=_aware(m["published_at"]),
        metadata=m["metadata"],
        removed=m["removed"],
        lineage=m["lineage"],
        content_hash=m["content_hash"],
        received_at=_aware(m["received_at"]),
        stored_at=_aware(m["stored_at"]),
        revision=m["revision"],
    )


def enrichment_snapshot(article: EnrichedArticle) -> dict[str, Any]:
    """What a revision records: the result of enrichment and who produced it."""
    return article.model_dump(
        mode="json",
        include={
            "title",
            "language",
            "language_confidence",
            "topics",
            "duplicate_of",
            "duplicate_score",
            "lineage",
            "content_hash",
        },
    )
