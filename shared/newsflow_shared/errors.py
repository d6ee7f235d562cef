"""Newsflow's exception tree, drawn once::

    NewsflowError
     ├── RejectedInput        the message itself is bad: dead-letter it at once, never retry
     │    ├── MalformedMessage    not UTF-8, not JSON, not a JSON object
     │    ├── InvalidArticle      JSON of the wrong shape or types
     │    ├── ArticleTooLarge     over the configured size limit
     │    ├── OutputTooLarge      what a stage made of it is more than Kafka accepts
     │    ├── OverBudget          it took more CPU time than a record may
     │    ├── BatchNotUnpacked    it came in a compressed batch too large unpacked (a bomb), or not valid
     │    └── EmptyArticle        nothing of substance left after cleanup
     ├── TemporaryFailure     the world is bad (database down, broker away): retry, never dead-letter
     ├── DeadLetterRefused    Kafka answers but refused a dead letter (the DLQ's size limit, an ACL): hold, say so
     └── KafkaSecurityError   Kafka refused the login, or TLS failed: a setting is wrong, retrying cannot help

Anything else a stage raises is sorted by :mod:`newsflow_shared.failures`: a failure of Kafka or
the database is retried without limit; anything else is the record's own, tried a few times, then
dead-lettered with its class name and reason, so one odd article never blocks a partition.
"""

from __future__ import annotations


class NewsflowError(Exception):
    """Base of every error Newsflow raises on purpose."""


class RejectedInput(NewsflowError):
    """The message can never succeed; ``reason`` says why in words a person understands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedMessage(RejectedInput):
    """The bytes are not a UTF-8 JSON object."""


class InvalidArticle(RejectedInput):
    """A JSON object that does not match the contract."""


class ArticleTooLarge(RejectedInput):
    """Bigger than the stage accepts."""


class OutputTooLarge(RejectedInput):
    """What a stage made of the record is bigger than Kafka accepts: sending it again fails the same way."""


class OverBudget(RejectedInput):
    """The record took more CPU time than ``*_RECORD_CPU_SECONDS`` allows: it would again."""


class BatchNotUnpacked(RejectedInput):
    """The record stands for a compressed record batch that was not unpacked (:mod:`newsflow_shared.unpacking`)."""


class EmptyArticle(RejectedInput):
    """No text of substance."""


class TemporaryFailure(NewsflowError):
    """Retry later: the input is fine, something it depends on is not."""


class DeadLetterRefused(NewsflowError):
    """Kafka answers but refused a record's dead letter: the record cannot be answered, so its batch is held (never
    committed past it) and tried again, and the log names the DLQ topic's setting or permission to fix."""


class KafkaSecurityError(NewsflowError):
    """Kafka refused the login or the TLS handshake failed; the message names the likely setting to fix."""


class TopicsRefused(NewsflowError):
    """Kafka refused to create topics (too few brokers for the replication factor, a limit, an ACL): each topic with
    the broker's reason. Topic-init must fail on it: with automatic creation off, the pipeline would wait for ever."""


def first_line(error: BaseException, limit: int) -> str:
    """The first line of ``error``'s message, at most ``limit`` characters: a driver's message can run to pages.

    A time-out without words of its own (asyncpg's connect, asyncio's) is "no answer in time": "TimeoutError: " was
    all a command said of a database that accepted and never answered."""
    line = (str(error).strip().splitlines() or [""])[0][:limit]
    return line or ("no answer in time" if isinstance(error, TimeoutError) else "")
