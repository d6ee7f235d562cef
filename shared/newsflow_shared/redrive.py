"""Re-driving a dead letter: its original bytes go back to the topic of the stage that refused it.

Used by ``newsflow dlq redrive`` and by storage's web page. The record carries the
``newsflow-redrive`` header, so ingest passes it on even when it looks like an exact re-send.
"""

from __future__ import annotations

from collections.abc import Collection

from .contracts import DeadLetter
from .delivery import REDRIVE_HEADER, REDRIVEN_FROM_HEADER, TRACE_HEADER
from .errors import RejectedInput
from .sending import OutgoingRecord

RedriveRecord = OutgoingRecord
"""What to send to Kafka to give a dead letter another go: a record like any stage's output."""


def redriven_from(letter: DeadLetter) -> tuple[str, int, int] | None:
    """The identity of the older letter whose re-driven record ``letter`` is about, if it is about one."""
    value = letter.headers.get(REDRIVEN_FROM_HEADER)
    if value is None:
        return None
    try:
        topic, partition, offset = value.rsplit(":", 2)  # topic names hold no ":"
        return (topic, int(partition), int(offset)) if topic else None
    except ValueError:
        return None  # junk from another producer: the letter is an ordinary one


def redrive_record(letter: DeadLetter, *, inputs: Collection[str]) -> OutgoingRecord:
    """The original record, addressed to the topic it was consumed from, marked as re-driven.

    Only to one of the stages' ``inputs``: anyone who can write to the DLQ can write a letter naming any topic, and
    re-driven as it says, it put its bytes on ``articles.stored``, or (a topic that does not exist) failed the
    re-drive of every letter after it.
    """
    if letter.source_topic not in inputs:
        raise RejectedInput(
            f"the dead letter names {letter.source_topic[:200]!r} as where it came from, not one of the stages'"
            f" input topics ({', '.join(sorted(inputs))}): junk written to the DLQ, the topics renamed since, or"
            " this command's TOPIC_* settings not the pipeline's"
        )
    if letter.original_truncated and not letter.original:
        raise RejectedInput(
            "the dead letter holds nothing of the original (it was never read: its reason says why): push the article"
            " again from its source instead"
        )
    if letter.original_truncated:
        raise RejectedInput(
            f"the dead letter kept only {len(letter.original)} of {letter.original_size} bytes of the original: "
            "push the article again from its source instead"
        )
    headers = {name: value for name, value in letter.headers.items() if name == TRACE_HEADER}
    headers[REDRIVE_HEADER] = letter.stage
    headers[REDRIVEN_FROM_HEADER] = f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}"
    key = letter.original_key.encode() if letter.original_key is not None else None
    return OutgoingRecord(topic=letter.source_topic, key=key, value=letter.original, headers=headers)
