"""Turning a failed record into a :class:`DeadLetter` a person can act on."""

from __future__ import annotations

from .contracts import DeadLetter
from .delivery import TRACE_HEADER, Delivery
from .reasons import explain

KEPT_CHARACTERS = 1_024
"""What is kept of a key, an id, a header's name and its value when the record's own left its original no room."""
KEPT_HEADERS = 32
REASON_CHARACTERS = 2_000
"""A reason's longest: one that quotes what it refused (a value, a driver's message) is cut there. A person reads a
sentence, and a reason of megabytes made the letter itself too large for Kafka, replaced by one about its size."""
READABLE_REASON_CHARACTERS = REASON_CHARACTERS + 64
"""The longest reason :func:`readable_reason` gives: the cut text, then room for how long it was."""


def dead_letter(
    delivery: Delivery,
    *,
    stage: str,
    error: BaseException,
    attempts: int,
    article_id: str | None = None,
    max_original_bytes: int,
    max_record_bytes: int | None = None,
) -> DeadLetter:
    """Build the record for ``articles.dlq``: the original bytes whole, unless beyond ``max_original_bytes`` or the room
    the letter has within ``max_record_bytes`` (its JSON, its key and its trace header, as the stage sends it).

    A producer can put megabytes in a record's key and headers, and the letter carries them twice (in its body and as
    its own key). A letter that Kafka refuses would fail its batch each time it is tried, and hold the partition: so
    when they leave the original less than half its room, the key, id and headers keep their first ``KEPT_CHARACTERS``
    (and the first ``KEPT_HEADERS`` headers, the trace id's first), and the original what room is left. Either cut
    marks the letter ``original_truncated``: it cannot be re-driven as it arrived. At the smallest
    ``KAFKA_MAX_MESSAGE_BYTES`` (1 MiB) the cut names take at most ~420 KB, written as JSON's six-byte escapes.
    """
    original = delivery.value
    letter = DeadLetter(
        stage=stage,
        error=type(error).__name__,
        reason=readable_reason(explain(error)),
        article_id=article_id,
        original=b"",
        original_size=len(original),
        original_key=delivery.key.decode("utf-8", "replace") if delivery.key is not None else None,
        headers=delivery.headers,
        source_topic=delivery.topic,
        source_partition=delivery.partition,
        source_offset=delivery.offset,
        attempts=attempts,
    )
    room = _room_for_original(letter, max_record_bytes)
    if len(original) <= min(room, max_original_bytes):
        return letter.model_copy(update={"original": original})
    if room < max_original_bytes // 2:  # the key and headers took the room: keep their start
        letter = letter.model_copy(update=_cut_names(letter))
        room = _room_for_original(letter, max_record_bytes)
    kept = original[: max(min(room, max_original_bytes), 0)]
    return letter.model_copy(update={"original": kept, "original_truncated": True})


def readable_reason(reason: str) -> str:
    """``reason`` whole, or its first REASON_CHARACTERS and how long it was."""
    if len(reason) <= REASON_CHARACTERS:
        return reason
    return f"{reason[:REASON_CHARACTERS]}… (cut; {len(reason):,} characters in all)"


def _room_for_original(letter: DeadLetter, max_record_bytes: int | None) -> int:
    """How many bytes of the original fit, base64 in the letter's JSON, beside what the letter already holds."""
    if max_record_bytes is None:
        return 1 << 62
    taken = (
        len(letter.model_dump_json().encode())
        + len((letter.article_id or letter.original_key or "").encode())  # the letter's own key
        + len(letter.headers.get(TRACE_HEADER, "").encode())  # the one header it is sent with
    )
    return (max_record_bytes - taken) // 4 * 3  # base64: four characters for three bytes


def _cut_names(letter: DeadLetter) -> dict[str, object]:
    trace = {TRACE_HEADER: letter.headers[TRACE_HEADER]} if TRACE_HEADER in letter.headers else {}
    kept = list({**trace, **letter.headers}.items())[:KEPT_HEADERS]
    return {
        "article_id": letter.article_id[:KEPT_CHARACTERS] if letter.article_id else letter.article_id,
        "original_key": letter.original_key[:KEPT_CHARACTERS] if letter.original_key else letter.original_key,
        "headers": {name[:KEPT_CHARACTERS]: value[:KEPT_CHARACTERS] for name, value in kept},
    }
