"""Storage's copy of ``articles.dlq``: what the web page's pipeline view lists, counts and re-drives.

Contract: :meth:`DeadLetterStore.keep` is idempotent by the refused record's place (source topic,
partition, offset), so a redelivered batch of dead letters adds no row. A re-driven letter keeps its
row, marked with ``redriven_at``; if its stage refuses it again, that is a new record at a new offset.
A letter an operator sets aside (nothing to re-drive: junk input, or an article pushed again from its
source) is marked with ``set_aside_at`` and no longer waits. Settled letters, re-driven or set aside,
are deleted :func:`prune`'s ``keep`` after they were settled; a waiting letter is kept until it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, Select, and_, delete, func, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from newsflow_shared import DeadLetter, Delivery, RejectedInput, ServiceSettings, TemporaryFailure
from newsflow_shared.db.engine import as_utc, dialect_insert, is_sqlite, minute_of, utc_period
from newsflow_shared.db.tables import dead_letters
from newsflow_shared.dead_letter import READABLE_REASON_CHARACTERS, readable_reason
from newsflow_shared.stage import Output
from newsflow_shared.topics import topic_config

log = logging.getLogger(__name__)
REDRIVE_AT_ONCE = 10_000
"""The most letters one click re-drives: their originals are read and sent while the operator waits."""
REDRIVE_CLAIM = timedelta(minutes=15)
"""How long a re-drive holds its letters before they wait again, should it never finish: far longer than sending
``REDRIVE_AT_ONCE`` takes, even to a slow Kafka."""
PRUNE_AT_ONCE = 5_000
"""Rows one statement deletes: a long delete would hold SQLite's only writer from the articles."""


@dataclass(frozen=True, slots=True)
class Kind:
    """Dead letters that failed the same way: one stage, one error class."""

    stage: str
    error: str
    waiting: int
    redriven: int
    set_aside: int
    last_reason: str


class DeadLetterStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = dialect_insert(engine)

    async def keep(self, letters: list[DeadLetter]) -> None:
        """Insert what is new; a letter already kept is left as it is (with its ``redriven_at``)."""
        if not letters:
            return
        rows = [_to_row(letter) for letter in letters]
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    self._insert(dead_letters).on_conflict_do_nothing(
                        index_elements=["source_topic", "source_partition", "source_offset"]
                    ),
                    rows,
                )
        except (OperationalError, InterfaceError, DBAPIError, OSError) as error:
            raise TemporaryFailure(f"the database is not reachable or refused the dead letters: {error}") from error

    async def recent(self, limit: int = 50, *, stage: str | None = None, error: str | None = None) -> list[Any]:
        """Newest first, without the original bytes and headers (:meth:`letter` has them): what the pipeline page
        lists. A letter keeps a record's headers whole when they fit Kafka's limit, and 50 letters of a million small
        headers each were gigabytes to read for a page that shows none of them."""
        columns = [
            _shown_reason() if c.name == "reason" else c
            for c in dead_letters.c
            if c.name not in ("original", "headers")
        ]
        statement = select(*columns).order_by(dead_letters.c.failed_at.desc(), dead_letters.c.id.desc()).limit(limit)
        if stage is not None:
            statement = statement.where(dead_letters.c.stage == stage)
        if error is not None:
            statement = statement.where(dead_letters.c.error == error)
        async with self.engine.connect() as connection:
            return list(await connection.execute(statement))

    @staticmethod
    def kinds_statement() -> Select[Any]:
        """Counts of each (stage, error), all of them read from the index ``ix_dead_letters_kind``."""
        return (
            select(
                dead_letters.c.stage,
                dead_letters.c.error,
                func.count(),
                func.count(dead_letters.c.redriven_at),
                func.count(dead_letters.c.set_aside_at),
                func.max(dead_letters.c.id),
            )
            .group_by(dead_letters.c.stage, dead_letters.c.error)
            .order_by(dead_letters.c.stage, dead_letters.c.error)
        )

    async def kinds(self) -> list[Kind]:
        """Each (stage, error) with how many wait for a re-drive, how many were re-driven and how many set aside."""
        statement = self.kinds_statement()
        async with self.engine.connect() as connection:
            rows = list(await connection.execute(statement))
            reasons = dict(
                (
                    await connection.execute(
                        select(dead_letters.c.id, _shown_reason()).where(dead_letters.c.id.in_([r[5] for r in rows]))
                    )
                ).all()
            )
        return [
            Kind(stage, error, total - done - aside, done, aside, reasons.get(last, ""))
            for stage, error, total, done, aside, last in rows
        ]

    async def per_minute(self, since: datetime) -> dict[str, dict[datetime, int]]:
        """Dead letters per stage and minute since ``since`` (minutes without any are left out).

        Counted by the database: read row by row, a flood of bad input (300,000 letters in the hour) held storage's
        event loop for 2 s at each view of the pipeline page, just when someone looks at it.
        """
        minute = utc_period(dead_letters.c.failed_at, "minute", sqlite=is_sqlite(self.engine))
        statement = (
            select(dead_letters.c.stage, minute, func.count())
            .where(dead_letters.c.failed_at >= since)
            .group_by(dead_letters.c.stage, minute)
        )
        counts: dict[str, dict[datetime, int]] = {}
        async with self.engine.connect() as connection:
            for stage, stamp, count in await connection.execute(statement):
                counts.setdefault(stage, {})[minute_of(stamp)] = count
        return counts

    async def letter(self, letter_id: int) -> DeadLetter | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(dead_letters).where(dead_letters.c.id == letter_id))).first()
        return _from_row(row) if row is not None else None

    async def waiting_ids(self, stage: str, error: str, limit: int = REDRIVE_AT_ONCE) -> list[int]:
        """The letters of one kind neither re-driven nor set aside yet, oldest first."""
        statement = (
            select(dead_letters.c.id)
            .where(dead_letters.c.stage == stage, dead_letters.c.error == error, _waiting())
            .order_by(dead_letters.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).scalars())

    async def rows_at(self, places: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], tuple[int, bool]]:
        """The row of each refused record's place (source topic, partition, offset) kept here: its id, and whether it
        is settled (re-driven or set aside). ``newsflow dlq redrive`` reads the DLQ topic; this is how it and the web
        page know of each other's re-drives."""
        found: dict[tuple[str, int, int], tuple[int, bool]] = {}
        place = tuple_(dead_letters.c.source_topic, dead_letters.c.source_partition, dead_letters.c.source_offset)
        async with self.engine.connect() as connection:
            for start in range(0, len(places), 500):
                statement = select(dead_letters.c.id, *place.clauses, ~_waiting()).where(
                    place.in_(places[start : start + 500])
                )
                for letter_id, topic, partition, offset, settled in await connection.execute(statement):
                    found[(topic, partition, offset)] = (letter_id, bool(settled))
        return found

    async def claim(self, letter_ids: list[int], at: datetime) -> list[int]:
        """Mark those of ``letter_ids`` still waiting as re-driven at ``at``, and return them: one request alone gets
        each, so a double click or a second operator sends none twice. :meth:`finish` (with the same ``at``) says
        which were sent and gives back the rest; a claim never finished (the re-drive killed outright, or its last
        write failed) lapses ``REDRIVE_CLAIM`` after ``at``."""
        if not letter_ids:
            return []
        at = as_utc(at)
        async with self.engine.begin() as connection:
            claimed = await connection.execute(
                update(dead_letters)
                .where(dead_letters.c.id.in_(letter_ids), _waiting())
                .values(redriven_at=at, redrive_claimed_until=at + REDRIVE_CLAIM)
                .returning(dead_letters.c.id)
            )
            return sorted(claimed.scalars())

    async def finish(self, claimed: list[int], sent: Collection[int], at: datetime) -> None:
        """End the claim made at ``at``: the letters of ``claimed`` in ``sent`` stay re-driven, the others wait again.

        A claim that lapsed meanwhile (a re-drive slower than ``REDRIVE_CLAIM``) may be another's now: only this
        claim's rows are given back, and a letter sent after its claim lapsed is marked re-driven again unless
        another re-drive holds it (which sends it too: one letter sent twice, which the stages take as a replay).
        """
        at = as_utc(at)
        sent = set(sent)
        own = dead_letters.c.redrive_claimed_until == at + REDRIVE_CLAIM
        kept = [letter_id for letter_id in claimed if letter_id in sent]
        back = [letter_id for letter_id in claimed if letter_id not in sent]
        async with self.engine.begin() as connection:
            for start in range(0, max(len(kept), len(back)), 1_000):
                if chunk := kept[start : start + 1_000]:
                    await connection.execute(
                        update(dead_letters)
                        .where(dead_letters.c.id.in_(chunk), or_(own, _waiting()))
                        .values(redriven_at=at, redrive_claimed_until=None)
                    )
                if chunk := back[start : start + 1_000]:
                    await connection.execute(
                        update(dead_letters)
                        .where(dead_letters.c.id.in_(chunk), own)
                        .values(redriven_at=None, redrive_claimed_until=None)
                    )

    async def release_lapsed_claims(self, now: datetime | None = None) -> int:
        """Letters claimed by a re-drive that never finished wait again; return how many."""
        async with self.engine.begin() as connection:
            released = await connection.execute(
                update(dead_letters)
                .where(dead_letters.c.redrive_claimed_until < as_utc(now or datetime.now(UTC)))
                .values(redriven_at=None, redrive_claimed_until=None)
            )
            return released.rowcount

    async def set_aside(
        self, *, letter_id: int | None = None, kind: tuple[str, str] | None = None, at: datetime | None = None
    ) -> int:
        """Mark one waiting letter, or every waiting letter of a (stage, error) kind, as set aside; return how many.

        A whole kind in one statement: unlike a re-drive nothing is sent, and a flood of junk input (300,000 letters
        an hour) is set aside with one click rather than thirty.
        """
        statement = update(dead_letters).where(_waiting()).values(set_aside_at=at or datetime.now(UTC))
        if letter_id is not None:
            statement = statement.where(dead_letters.c.id == letter_id)
        elif kind is not None:
            statement = statement.where(dead_letters.c.stage == kind[0], dead_letters.c.error == kind[1])
        else:
            raise ValueError("say which letter or which kind to set aside")
        async with self.engine.begin() as connection:
            return (await connection.execute(statement)).rowcount

    async def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """Delete the letters re-driven or set aside more than ``keep`` ago; return how many. Waiting letters stay.

        Read through the ``failed_at`` index (a letter is settled after it failed), a few thousand rows a
        statement, so that storage's writes wait at most a moment behind each.
        """
        cutoff = (now or datetime.now(UTC)) - keep
        settled = or_(dead_letters.c.redriven_at < cutoff, dead_letters.c.set_aside_at < cutoff)
        deleted = 0
        while True:
            batch = (
                select(dead_letters.c.id)
                .where(and_(dead_letters.c.failed_at < cutoff, settled))
                .order_by(dead_letters.c.failed_at)
                .limit(PRUNE_AT_ONCE)
            )
            async with self.engine.begin() as connection:
                gone = (await connection.execute(delete(dead_letters).where(dead_letters.c.id.in_(batch)))).rowcount
            deleted += gone
            if gone < PRUNE_AT_ONCE:
                return deleted


async def repeat_every(every: float, job: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``job`` now and every ``every`` seconds, until cancelled.

    Whatever fails (the database away, a pool timed out) is logged as "could not <what>" and tried again next time:
    a task that ended at its first error would do its job no more, and no one would see it stop.
    """
    while True:
        try:
            await job()
        except Exception as error:
            log.warning("could not %s (trying again in %.0f s): %r", what, every, error)
        await asyncio.sleep(every)


async def prune_settled(store: DeadLetterStore, keep: timedelta) -> None:
    """:meth:`DeadLetterStore.prune`, said when it deleted any. (Storage warns of a DLQ topic that keeps its records
    longer than ``keep`` once its consumers start: :func:`warn_if_kept_shorter_than_the_topic`.)"""
    if deleted := await store.prune(keep):
        log.info("deleted %d dead letters settled more than %s ago", deleted, keep)


async def release_lapsed_claims(store: DeadLetterStore) -> None:
    """:meth:`DeadLetterStore.release_lapsed_claims` (:meth:`~DeadLetterStore.claim` says why), said when it gave any
    back."""
    if released := await store.release_lapsed_claims():
        log.warning(
            "%d dead letters claimed by a re-drive that never finished (its process killed outright, or its last"
            " write to the database failed) wait again; any Kafka took will be sent again if re-driven",
            released,
        )


async def warn_if_kept_shorter_than_the_topic(settings: ServiceSettings, keep: timedelta) -> None:
    """Say so when settled letters leave this copy before their records leave ``articles.dlq``: ``newsflow dlq
    redrive`` reads the topic, finds no row for such a letter and sends it again, set aside or not."""
    try:
        retention = await asyncio.wait_for(topic_config(settings, settings.topic_dlq, "retention.ms"), 15)
    except Exception as error:  # Kafka's answer is a nicety here: storage starts without it
        log.info("could not read %s's retention.ms: %r", settings.topic_dlq, error)
        return
    if retention is None or not retention.lstrip("-").isdigit():
        return
    if int(retention) < 0 or int(retention) > keep / timedelta(milliseconds=1):  # -1: kept for ever
        log.warning(
            "STORAGE_DEAD_LETTER_KEEP_DAYS (%g) is shorter than %s keeps its records (retention.ms=%s): a letter"
            " re-driven or set aside here and deleted after %g days can be sent again by `newsflow dlq redrive`,"
            " which reads the topic; keep them here at least as long",
            keep / timedelta(days=1),
            settings.topic_dlq,
            retention,
            keep / timedelta(days=1),
        )


def _waiting() -> Any:
    """Neither re-driven nor set aside."""
    return and_(dead_letters.c.redriven_at.is_(None), dead_letters.c.set_aside_at.is_(None))


class DeadLetterKeeper:
    """The batch handler of storage's second subscriber (its own consumer group) on ``articles.dlq``."""

    def __init__(self) -> None:
        self.store: DeadLetterStore | None = None

    async def handle(self, deliveries: list[Delivery]) -> list[Output]:
        letters = []
        for delivery in deliveries:
            try:
                letters.append(placed(delivery.decode(DeadLetter), delivery.partition, delivery.offset))
            except RejectedInput as error:
                # Never dead-letter a dead letter: that would loop. Say so and go on.
                log.warning(
                    "skipped an unreadable record on %s[%d]@%d: %s",
                    delivery.topic,
                    delivery.partition,
                    delivery.offset,
                    error,
                )
        assert self.store is not None, "the lifespan opens the database before consuming"
        await self.store.keep(letters)
        return []


def placed(letter: DeadLetter, partition: int, offset: int) -> DeadLetter:
    """``letter`` at the place the page keeps it by: its refused record's, else its own on the DLQ (``partition``,
    ``offset``) written below zero. ``newsflow dlq redrive`` places each letter so too, to find the page's row.

    A letter of input that never reached its topic (``newsflow push`` refusing a record too large for Kafka) has no
    place there: each said partition 0, offset -1, and as the table keeps one letter a place, the page showed only the
    first such letter ever. A place past what the table stores (a partition of 2**40, written by another producer)
    raised OverflowError, and held to the columns' bounds two such letters would be one.
    """
    partition_fits = _fits(letter.source_partition, dead_letters.c.source_partition)
    if letter.source_offset >= 0 and partition_fits and _fits(letter.source_offset, dead_letters.c.source_offset):
        return letter
    return letter.model_copy(update={"source_partition": -1 - partition, "source_offset": -1 - offset})


def _shown_reason() -> Any:
    """A letter's reason as the pipeline page lists it: our stages cut theirs (:func:`readable_reason`), but a letter
    another producer wrote may hold megabytes of it, and 20 letters of 8 MiB made a 335 MB page (1.3 GB more memory).
    Kept cut since, and read cut for the letters kept before; the DLQ topic has the letter whole."""
    return func.substr(dead_letters.c.reason, 1, READABLE_REASON_CHARACTERS).label("reason")


def _cut_once(reason: str) -> str:
    """A reason cut as the stages cut theirs; one a stage cut already (2,000 characters and how many in all) is kept as
    it is: cut again, its count of characters became the cut one's."""
    return reason if len(reason) <= READABLE_REASON_CHARACTERS else readable_reason(reason)


def _fitted(value: str | None, column: Column[Any] | None = None) -> str | None:
    """Without NUL and cut to the column's length. A letter's key (its article_id), headers and names come from
    whatever was on the topic: PostgreSQL refuses a NUL in text and JSON, and a value longer than its column, and the
    letter would be missing from the web page. The letter on the DLQ keeps them as they were."""
    if value is None:
        return None
    length = getattr(column.type, "length", None) if column is not None else None
    return value.replace("\x00", "\ufffd")[:length]


def _within(value: int, column: Column[Any]) -> int:
    """``value`` held to what ``column`` can store: a letter another producer wrote with attempts of 2**64 raised
    OverflowError, its batch was retried and split, and the letter never reached the page."""
    bits = 64 if isinstance(column.type, BigInteger) else 32
    return min(max(value, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


def _fits(value: int, column: Column[Any]) -> bool:
    return _within(value, column) == value


def _utc_within(value: datetime) -> datetime:
    """``value`` in UTC, or the first or last time there is where that is before year 1 or after 9999 (a time of
    0001-01-01 an hour east of UTC is one)."""
    try:
        return as_utc(value)
    except OverflowError:
        return (datetime.min if value.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)


def _to_row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "source_topic": _fitted(letter.source_topic, dead_letters.c.source_topic),
        "source_partition": letter.source_partition,  # placed (:func:`placed`): within their columns
        "source_offset": letter.source_offset,
        "stage": _fitted(letter.stage, dead_letters.c.stage),
        "error": _fitted(letter.error, dead_letters.c.error),
        "reason": _fitted(_cut_once(letter.reason)),
        "article_id": _fitted(letter.article_id, dead_letters.c.article_id),
        "original": letter.original,
        "original_size": _within(letter.original_size, dead_letters.c.original_size),
        "original_truncated": letter.original_truncated,
        "original_key": _fitted(letter.original_key),
        "headers": {_fitted(name): _fitted(value) for name, value in letter.headers.items()},
        "attempts": _within(letter.attempts, dead_letters.c.attempts),
        "failed_at": _utc_within(letter.failed_at),
    }


def _from_row(row: Any) -> DeadLetter:
    m = row._mapping
    return DeadLetter(
        stage=m["stage"],
        error=m["error"],
        reason=m["reason"],
        article_id=m["article_id"],
        original=m["original"],
        original_size=m["original_size"],
        original_truncated=m["original_truncated"],
        original_key=m["original_key"],
        headers=m["headers"],
        source_topic=m["source_topic"],
        source_partition=m["source_partition"],
        source_offset=m["source_offset"],
        attempts=m["attempts"],
        failed_at=as_utc(m["failed_at"]),
    )
