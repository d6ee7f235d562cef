"""Turning a failed record into a :class:`DeadLetter` a person can act on."""

from __future__ import annotations

from .contracts import DeadLetter
from .delivery import Delivery
from .reasons import explain


def dead_letter(
    delivery: Delivery,
    *,
    stage: str,
    error: BaseException,
    attempts: int,
    article_id: str | None = None,
    max_original_bytes: int,
) -> DeadLetter:
    """Build the record for ``articles.dlq``; the original bytes are kept whole unless beyond the topic's limit."""
    original = delivery.value
    truncated = len(original) > max_original_bytes
    return DeadLetter(
        stage=stage,
        error=type(error).__name__,
        reason=explain(error),
        article_id=article_id,
        original=original[:max_original_bytes] if truncated else original,
        original_size=len(original),
        original_truncated=truncated,
        original_key=delivery.key.decode("utf-8", "replace") if delivery.key is not None else None,
        headers=delivery.headers,
        source_topic=delivery.topic,
        source_partition=delivery.partition,
        source_offset=delivery.offset,
        attempts=attempts,
    )
