"""Storage's copy of the DLQ keeps every letter, whatever a producer put in its key and names."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from newsflow_shared import Delivery
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.engine import as_utc
from newsflow_shared.db.tables import dead_letters as dead_letters_table
from newsflow_shared.dead_letter import REASON_CHARACTERS, readable_reason
from newsflow_storage import dead_letters as dead_letters_module
from newsflow_storage.dead_letters import REDRIVE_CLAIM, DeadLetterStore

from .. import webdata


async def test_a_letter_with_a_key_longer_than_its_column_is_kept(database_url: str) -> None:
    # A record put straight on a keyed topic (articles.ingested, say) with a long key: the key becomes its article_id.
    letter = webdata.dead_letter(1).model_copy(
        update={"article_id": "k" * 300, "original_key": "k" * 300, "stage": "s" * 100, "error": "E" * 300}
    )
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([letter, webdata.dead_letter(2)])
        kept = {row.source_offset: row for row in await store.recent()}
        assert set(kept) == {1, 2}
        assert (kept[1].article_id, kept[1].original_key) == ("k" * 200, "k" * 300)
        assert (kept[1].stage, kept[1].error) == ("s" * 64, "E" * 200)
    finally:
        await engine.dispose()


async def test_a_letter_with_nul_in_its_key_and_headers_is_kept(database_url: str) -> None:
    """PostgreSQL refuses a NUL in text and in JSON; the web page's copy shows U+FFFD in its place."""
    letter = webdata.dead_letter(1).model_copy(
        update={
            "article_id": "a\x00b",
            "original_key": "k\x00",
            "headers": {"newsflow-trace-id": "t\x00", "x\x00": "v"},
            "reason": "bad \x00 byte",
        }
    )
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([letter])
        [listed] = await store.recent()
        assert "headers" not in listed._fields  # the page lists none: a million of them made a letter of 16 MB
        kept = await store.letter(listed.id)
        assert kept is not None
        assert (kept.article_id, kept.original_key, kept.reason) == ("a\ufffdb", "k\ufffd", "bad \ufffd byte")
        assert kept.headers == {"newsflow-trace-id": "t\ufffd", "x\ufffd": "v"}
    finally:
        await engine.dispose()


async def test_a_letter_with_numbers_and_times_past_its_columns_is_kept(database_url: str) -> None:
    """A letter another producer wrote with a partition of 2**64, or a time of year 1 an hour east of UTC, raised
    OverflowError: its batch was retried and split, and the letter never reached the page. A place past the columns
    is the letter's own on the DLQ (as a pushed input's is): held to the columns' bounds, two would be one."""
    from newsflow_storage.dead_letters import DeadLetterKeeper

    east, west = timezone(timedelta(hours=1)), timezone(timedelta(hours=-1))
    changes: list[dict[str, object]] = [
        {"source_partition": 2**64},
        {"source_partition": 2**65},  # the same offset as the one before: a place of its own all the same
        {"attempts": 2**40, "original_size": 2**64},
        {"failed_at": datetime(1, 1, 1, tzinfo=east)},
        {"failed_at": datetime(9999, 12, 31, 23, 59, tzinfo=west)},
        {"source_offset": 2**64},
    ]
    deliveries = [
        Delivery(
            # Source offsets 1, 1, 2, 3, 4 and 5 (the last one replaced); their places on the DLQ 10 to 15.
            value=webdata.dead_letter(max(n, 1)).model_copy(update=change).model_dump_json().encode(),
            topic="articles.dlq",
            partition=0,
            offset=10 + n,
        )
        for n, change in enumerate(changes)
    ]
    assert [json.loads(d.value)["source_offset"] for d in deliveries][:5] == [1, 1, 2, 3, 4]
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        keeper = DeadLetterKeeper()
        keeper.store = DeadLetterStore(engine)
        await keeper.handle(deliveries[:3])
        await keeper.handle(deliveries[3:])
        kept = {(row.source_partition, row.source_offset): row for row in await keeper.store.recent(limit=10)}
        # Each partition or offset past its column at its own place on the DLQ, written below zero.
        assert sorted(kept) == [(-1, -16), (-1, -12), (-1, -11), (0, 2), (0, 3), (0, 4)], sorted(kept)
        whole = await keeper.store.letter(kept[(0, 2)].id)
        assert whole is not None
        assert (whole.attempts, whole.original_size) == (2**31 - 1, 2**63 - 1)
        assert as_utc(kept[(0, 3)].failed_at) == datetime.min.replace(tzinfo=UTC)  # SQLite's times come back naive
        assert as_utc(kept[(0, 4)].failed_at) == datetime.max.replace(tzinfo=UTC)
    finally:
        await engine.dispose()


async def test_a_letter_with_megabytes_of_reason_is_kept_and_listed_cut(database_url: str) -> None:
    """Our stages cut a reason to REASON_CHARACTERS; a letter another producer put on the DLQ may hold megabytes, and
    the pipeline page read and showed each whole (20 letters of 8 MiB: a 335 MB page). Rows kept before the cut are
    listed cut as well."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([webdata.dead_letter(1).model_copy(update={"reason": "why " * 250_000})])
        # As a row kept before the cut was.
        async with engine.begin() as connection:
            await connection.execute(
                dead_letters_table.update()
                .where(dead_letters_table.c.source_offset == 1)
                .values(reason="old " * 250_000)
            )
        await store.keep([webdata.dead_letter(2).model_copy(update={"reason": "new " * 250_000})])
        stage_cut = readable_reason("stage " * 2_000)  # as a stage sends it: cut already, with the whole length
        await store.keep([webdata.dead_letter(3).model_copy(update={"reason": stage_cut})])
        listed = {row.source_offset: row.reason for row in await store.recent()}
        assert listed[2] == "new " * 500 + "… (cut; 1,000,000 characters in all)"
        assert listed[3] == stage_cut
        assert stage_cut.endswith("(cut; 12,000 characters in all)")
        assert listed[1].startswith("old old")
        assert REASON_CHARACTERS <= len(listed[1]) <= REASON_CHARACTERS + 64
        assert all(len(kind.last_reason) <= REASON_CHARACTERS + 64 for kind in await store.kinds())
        kept = await store.letter(next(row.id for row in await store.recent() if row.source_offset == 2))
        assert kept is not None
        assert kept.reason == listed[2]
    finally:
        await engine.dispose()


async def test_settled_letters_go_after_the_time_kept_and_waiting_ones_stay(database_url: str) -> None:
    """Storage's copy of the DLQ grew without end: a flood of junk input (300,000 letters an hour) stayed for good."""
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    letters = [webdata.dead_letter(i).model_copy(update={"failed_at": old}) for i in range(6)]
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([*letters, webdata.dead_letter(6)])
        ids = {row.source_offset: row.id for row in await store.recent()}
        await store.finish(await store.claim([ids[0]], old), [ids[0]], old)  # re-driven 40 days ago: goes
        lately = now - timedelta(days=2)
        await store.finish(await store.claim([ids[1]], lately), [ids[1]], lately)  # re-driven lately: stays
        assert await store.set_aside(letter_id=ids[2], at=old) == 1  # set aside 40 days ago: goes
        assert await store.set_aside(letter_id=ids[3], at=now) == 1  # set aside today: stays
        assert await store.set_aside(letter_id=ids[0]) == 0  # re-driven already
        # 4 and 5 wait, however old they are; 6 failed just now.

        assert await store.prune(timedelta(days=30)) == 2
        assert sorted(row.source_offset for row in await store.recent()) == [1, 3, 4, 5, 6]
        assert await store.prune(timedelta(days=30)) == 0
        assert await store.claim([ids[3], ids[4]], now) == [ids[4]]  # one set aside is never re-driven
    finally:
        await engine.dispose()


async def test_a_redrive_that_never_finished_gives_its_letters_back(database_url: str) -> None:
    """A replica killed outright in the middle of a re-drive left every letter it had claimed marked re-driven, sent
    or not, for good: its claim lapses now, and the letters wait again."""
    now = datetime.now(UTC)
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([webdata.dead_letter(i) for i in range(6)])
        ids = [row.id for row in sorted(await store.recent(), key=lambda row: row.source_offset)]
        killed_at, finished_at = now - REDRIVE_CLAIM - timedelta(minutes=1), now - timedelta(hours=1)
        killed = await store.claim(ids[:2], killed_at)  # never finished
        finished = await store.claim(ids[2:4], finished_at)
        await store.finish(finished, [ids[2]], finished_at)  # Kafka took one: the other waits again at once
        in_flight = await store.claim(ids[4:], now)
        assert await store.claim(ids, now) == [ids[3]]
        await store.finish([ids[3]], [ids[3]], now)

        # Said in another zone, the same instant: SQLite keeps no offset, so each time is made UTC first.
        assert await store.release_lapsed_claims(now.astimezone(timezone(timedelta(hours=-5)))) == 2
        assert await store.claim(ids, now) == killed  # waiting again, and claimed by this one
        await store.finish(killed, killed, now)
        assert await store.release_lapsed_claims(now + timedelta(days=1)) == len(in_flight)  # it never finished
        assert await store.release_lapsed_claims(now + timedelta(days=1)) == 0
        assert await store.claim(ids, now) == in_flight
    finally:
        await engine.dispose()


async def test_a_redrive_slower_than_its_claim_gives_back_only_its_own(database_url: str) -> None:
    """A re-drive that outlived its claim finished after another had claimed the same letters: it gave them back
    while the other was sending them. And what it sent after its claim lapsed stayed waiting, to be sent again."""
    now = datetime.now(UTC)
    slow_at = now - REDRIVE_CLAIM - timedelta(minutes=5)
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([webdata.dead_letter(i) for i in range(3)])
        ids = [row.id for row in sorted(await store.recent(), key=lambda row: row.source_offset)]
        assert await store.claim(ids, slow_at) == ids
        assert await store.release_lapsed_claims(now) == 3
        assert await store.claim([ids[0]], now) == [ids[0]]  # a second re-drive, while the slow one still sends
        await store.finish(ids, [ids[1]], slow_at)  # the slow one sent only the second
        # The first stays the second re-drive's; the second is re-driven; the third waits again.
        assert await store.claim(ids, now) == [ids[2]]
        assert await store.release_lapsed_claims(now + timedelta(days=1)) == 2  # the two claims in flight
        assert await store.claim(ids, now) == [ids[0], ids[2]]
    finally:
        await engine.dispose()


async def test_pruning_goes_on_in_statements_of_a_bounded_size(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters_module, "PRUNE_AT_ONCE", 3)
    old = datetime.now(UTC) - timedelta(days=40)
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = DeadLetterStore(engine)
        await store.keep([webdata.dead_letter(i).model_copy(update={"failed_at": old}) for i in range(8)])
        assert await store.set_aside(kind=("ingest", "MalformedMessage"), at=old) == 8
        assert await store.prune(timedelta(days=30)) == 8
        assert await store.recent() == []
    finally:
        await engine.dispose()


async def test_letters_of_pushed_input_that_never_reached_kafka_are_each_kept(database_url: str) -> None:
    """`newsflow push` dead-letters a record too large for Kafka as partition 0, offset -1 of the raw topic: the
    table keeps one letter a place, and the page showed only the first such letter ever."""
    from newsflow_shared import ArticleTooLarge
    from newsflow_shared.dead_letter import dead_letter
    from newsflow_storage.dead_letters import DeadLetterKeeper

    def pushed(number: int) -> Delivery:
        letter = dead_letter(
            Delivery(value=b"x" * 100, topic="articles.raw", offset=-1),
            stage="push",
            error=ArticleTooLarge(f"input {number} is too large"),
            attempts=1,
            max_original_bytes=64,
        )
        return Delivery(value=letter.model_dump_json().encode(), topic="articles.dlq", partition=2, offset=number)

    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        keeper = DeadLetterKeeper()
        keeper.store = DeadLetterStore(engine)
        await keeper.handle([pushed(7), pushed(8)])
        await keeper.handle([pushed(7), pushed(9)])  # redelivered: kept once
        kept = sorted((row.source_partition, row.source_offset, row.reason) for row in await keeper.store.recent())
        assert kept == [
            (-3, -10, "input 9 is too large"),
            (-3, -9, "input 8 is too large"),
            (-3, -8, "input 7 is too large"),
        ]
    finally:
        await engine.dispose()


async def test_storage_s_upkeep_goes_on_after_a_failure_and_says_what_it_could_not_do(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage prunes settled letters and gives back lapsed claims in tasks of their own: one that ended at its first
    error (the database restarting) would do its job no more, and nobody would see it stop."""
    turns: list[str] = []
    failures = iter([ConnectionRefusedError("database restarting"), None, None])

    async def job() -> None:
        turns.append("turn")
        if (failure := next(failures)) is not None:
            raise failure

    async def sleep(seconds: float) -> None:
        assert seconds == 60
        if len(turns) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(dead_letters_module.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await dead_letters_module.repeat_every(60, job, "give back lapsed re-drive claims")
    assert turns == ["turn"] * 3
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "could not give back lapsed re-drive claims (trying again in 60 s): ConnectionRefusedError('database restarting')"
    ]
