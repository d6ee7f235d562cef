"""One consumed Kafka record, detached from the client library."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidArticle, MalformedMessage
from .readable_records import UnreadBatch
from .reasons import describe_validation_error, json_problem

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

TRACE_HEADER = "newsflow-trace-id"
"""Set by whoever pushes an article (or by ingest), carried on every hop and into the DLQ."""

REPLAY_HEADER = "newsflow-replay"
"""Set by ``newsflow replay``: the article is reprocessed on purpose, so ingest does not skip it as a re-send."""

REDRIVE_HEADER = "newsflow-redrive"
"""Set on a dead letter sent back to its stage (``newsflow dlq redrive``): like a replay, never skipped as a re-send."""

REDRIVEN_FROM_HEADER = "newsflow-redriven-from"
"""Set on a re-driven record: where the record its dead letter was about had been (``topic:partition:offset``, the
letter's identity). Refused again, its new letter carries it, so a re-drive sends that newer letter and not the
older one again: without storage's copy of the DLQ to mark what was re-driven, every run re-sent the letters of all
the runs before it, and a cause not yet fixed doubled them each time."""

M = TypeVar("M", bound=BaseModel)


def trace_id_of(topic: str, partition: int, offset: int) -> str:
    """The trace id of a record whose producer set none, made from where it sits in Kafka: every output and dead
    letter of it carries one, and a retry or a redelivery after a crash carries the same one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafka:{topic}/{partition}/{offset}").hex


@dataclass(frozen=True, slots=True)
class Delivery:
    """A record as it arrived: bytes, key, headers and where it came from."""

    value: bytes
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    topic: str = ""
    partition: int = 0
    offset: int = 0
    unread: UnreadBatch | None = None
    """Set on the record that stands for a compressed batch that was not unpacked: its ``reason`` says why, and which
    records it held."""

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> Delivery:  # type: ignore[type-arg]
        """The record as it arrived, with a trace id if its producer set none (:func:`trace_id_of`)."""
        headers = {name: (raw or b"").decode("utf-8", "replace") for name, raw in (record.headers or ())}
        if TRACE_HEADER not in headers:
            headers[TRACE_HEADER] = trace_id_of(record.topic, record.partition, record.offset)
        return cls(
            value=record.value or b"",
            key=record.key,
            headers=headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            unread=record.value if isinstance(record.value, UnreadBatch) else None,
        )

    @property
    def trace_id(self) -> str | None:
        return self.headers.get(TRACE_HEADER)

    @property
    def is_replay(self) -> bool:
        """Reprocessed on purpose (a replay or a re-driven dead letter): never skipped as a re-send."""
        return REPLAY_HEADER in self.headers or REDRIVE_HEADER in self.headers

    def decode(self, model: type[M]) -> M:
        """Parse the value as ``model``; raise :class:`RejectedInput` with a readable reason if it is not one."""
        try:
            return model.model_validate_json(self.value)
        except ValidationError as error:
            # Diagnose only on failure: the happy path parses the JSON once.
            problem = json_problem(self.value)
            if problem:
                raise MalformedMessage(problem) from None
            raise InvalidArticle(describe_validation_error(error, model.__name__)) from error
