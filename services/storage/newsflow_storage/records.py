"""Mapping between the contracts and the rows: plain functions."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from newsflow_shared import EnrichedArticle, StoredArticle
from newsflow_shared.contracts import AS_STORED
from newsflow_shared.db.engine import as_utc


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
        "published_at": as_utc(article.published_at) if article.published_at else None,
        "metadata": data["metadata"],
        "removed": data["removed"],
        "lineage": data["lineage"],
        "content_hash": article.content_hash,
        "arrived_text": article.arrived_text,
        "enrichment_hash": digest or enrichment_hash(article),
        "revision": revision,
        "received_at": as_utc(article.received_at),
        "stored_at": stored_at,
        "updated_at": now,
    }


def from_row(row: Any) -> StoredArticle:
    m = row._mapping
    return StoredArticle.model_validate(
        dict(
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
            published_at=as_utc(m["published_at"]) if m["published_at"] else None,
            metadata=m["metadata"],
            removed=m["removed"],
            lineage=m["lineage"],
            content_hash=m["content_hash"],
            arrived_text=m["arrived_text"],
            received_at=as_utc(m["received_at"]),
            stored_at=as_utc(m["stored_at"]),
            revision=m["revision"],
        ),
        context=AS_STORED,
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
