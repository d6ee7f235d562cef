"""`newsflow dlq redrive` against storage's copy of the dead letters (the web page's): what it marks and skips."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from newsflow_cli.dlq import Found, PageCopy, Redriven, _redrive
from newsflow_shared.db import make_engine, upgrade
from newsflow_storage.dead_letters import DeadLetterStore

from .. import webdata


class Producer:
    """Takes every record but the ``refuse``-th ones (their acknowledgement fails); ``raise_at``: the send itself
    raises there, as aiokafka's does for a topic it does not know or a record too large."""

    def __init__(self, refuse: set[int] = frozenset(), raise_at: int | None = None) -> None:  # type: ignore[assignment]
        self.refuse = refuse
        self.raise_at = raise_at
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        if len(self.sent) == self.raise_at:
            raise RuntimeError("no such topic")
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self.sent) in self.refuse:
            acknowledged.set_exception(RuntimeError("the broker refused it"))
        else:
            acknowledged.set_result(None)
        self.sent.append((topic, value))
        return acknowledged


INPUTS = {"articles.raw", "articles.ingested", "articles.clean", "articles.enriched"}


def found(offset: int, **changes: Any) -> Found:
    return Found(partition=0, offset=100 + offset, letter=webdata.dead_letter(offset).model_copy(update=changes))


async def page_copy(url: str) -> PageCopy:
    await upgrade(url)
    return PageCopy(DeadLetterStore(make_engine(url)))


async def test_what_kafka_took_stays_re_driven_when_the_rest_fails(tmp_path: Any) -> None:
    """All the claimed letters were given back when one send failed: those Kafka had taken were offered again."""
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        batch = [found(0), found(1)]
        await pages.store.keep([f.letter for f in batch])
        done = Redriven()
        with pytest.raises(RuntimeError, match="refused"):
            await _redrive(batch, Producer(refuse={1}), pages, done, dry_run=False, inputs=INPUTS)
        [kind] = await pages.store.kinds()
        assert (kind.waiting, kind.redriven, done.sent) == (1, 1, 1)
    finally:
        await pages.close()


async def test_a_send_that_raises_keeps_what_was_queued_before_it(tmp_path: Any) -> None:
    """Every claimed letter was given back when a send raised part way: those queued before it were sent all the
    same (the producer flushes them), and were offered again."""
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        batch = [found(0), found(1), found(2)]
        await pages.store.keep([f.letter for f in batch])
        done = Redriven()
        with pytest.raises(RuntimeError, match="no such topic"):
            await _redrive(batch, Producer(raise_at=1), pages, done, dry_run=False, inputs=INPUTS)
        [kind] = await pages.store.kinds()
        assert (kind.waiting, kind.redriven, done.sent) == (2, 1, 1)
    finally:
        await pages.close()


async def test_a_letter_storage_has_not_kept_yet_is_kept_and_marked(tmp_path: Any) -> None:
    """Sent unmarked, it arrived on the page later as waiting and was offered again."""
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        producer, done = Producer(), Redriven()
        await _redrive([found(0)], producer, pages, done, dry_run=False, inputs=INPUTS)
        [kind] = await pages.store.kinds()
        assert (kind.waiting, kind.redriven, done.sent, len(producer.sent)) == (0, 1, 1, 1)
        # storage's reader keeps it now: nothing changes, and a second run sends nothing.
        await pages.store.keep([found(0).letter])
        again = Redriven()
        await _redrive([found(0)], producer, pages, again, dry_run=False, inputs=INPUTS)
        assert (again.sent, again.settled, len(producer.sent)) == (0, 1, 1)
    finally:
        await pages.close()


async def test_the_same_refused_record_twice_on_the_dlq_is_sent_once(tmp_path: Any) -> None:
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        producer, done = Producer(), Redriven()
        twice = found(0)
        await _redrive(
            [twice, Found(partition=1, offset=7, letter=twice.letter)],
            producer,
            pages,
            done,
            dry_run=False,
            inputs=INPUTS,
        )
        assert (done.sent, done.repeats, len(producer.sent)) == (1, 1, 1)
        without_copy, producer = Redriven(), Producer()
        await _redrive([twice, twice], producer, None, without_copy, dry_run=False, inputs=INPUTS)
        assert (without_copy.sent, without_copy.repeats, len(producer.sent)) == (1, 1, 1)
    finally:
        await pages.close()


async def test_a_letter_set_aside_on_the_page_is_not_sent(tmp_path: Any) -> None:
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        await pages.store.keep([found(0).letter, found(1).letter])
        [first, _] = sorted(row.id for row in await pages.store.recent())
        assert await pages.store.set_aside(letter_id=first) == 1
        producer, done = Producer(), Redriven()
        await _redrive([found(0), found(1)], producer, pages, done, dry_run=False, inputs=INPUTS)
        assert (done.sent, done.settled, len(producer.sent)) == (1, 1, 1)
        dry = Redriven()
        await _redrive([found(2)], producer, pages, dry, dry_run=True, inputs=INPUTS)
        assert (dry.sent, len(producer.sent), await pages.store.rows_at([("articles.raw", 0, 2)])) == (1, 1, {})
    finally:
        await pages.close()


async def test_a_letter_naming_a_topic_no_stage_reads_is_refused_and_the_rest_go(tmp_path: Any) -> None:
    """One such letter stopped `dlq redrive --all` (the send to a topic that does not exist raised), and every later
    run stopped at the same letter."""
    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        batch = [found(0), found(1, source_topic="no-such-topic"), found(2)]
        await pages.store.keep([f.letter for f in batch])
        done, client = Redriven(), Producer()
        await _redrive(batch, client, pages, done, dry_run=False, inputs=INPUTS)
        assert [topic for topic, _ in client.sent] == ["articles.raw", "articles.raw"]
        assert done.sent == 2
        [line] = done.refused
        assert line.startswith("0:101: the dead letter names 'no-such-topic'")
    finally:
        await pages.close()


async def test_letters_without_a_place_of_their_own_are_found_where_storage_keeps_them(tmp_path: Any) -> None:
    """Storage keeps a letter of pushed input (offset -1) or of a place past its columns (a partition of 2**40) at its
    own place on the DLQ: the command looked for them at the place they name, where a pushed input's letters are all
    one ("the same refused record again: sent once") and 2**40 raised OverflowError out of the command."""
    from newsflow_shared import Delivery
    from newsflow_storage.dead_letters import DeadLetterKeeper

    pages = await page_copy(f"sqlite+aiosqlite:///{tmp_path}/copy.db")
    try:
        letters = [
            Found(partition=0, offset=200 + n, letter=found(n, **changes).letter)
            for n, changes in enumerate(
                [{"source_partition": 2**40}, {"source_offset": -1}, {"source_offset": -1}], start=1
            )
        ]
        keeper = DeadLetterKeeper()  # storage's reader has kept the first one already
        keeper.store = pages.store
        first = letters[0]
        await keeper.handle(
            [Delivery(value=first.letter.model_dump_json().encode(), topic="articles.dlq", partition=0, offset=201)]
        )
        producer, done = Producer(), Redriven()
        await _redrive(letters, producer, pages, done, dry_run=False, inputs=INPUTS)
        assert (done.sent, done.repeats, len(producer.sent)) == (3, 0, 3)
        [kind] = await pages.store.kinds()
        assert (kind.waiting, kind.redriven) == (0, 3)  # the one storage kept, marked; the others kept and marked
        again = Redriven()
        await _redrive(letters, producer, pages, again, dry_run=False, inputs=INPUTS)
        assert (again.sent, again.settled, len(producer.sent)) == (0, 3, 3)
    finally:
        await pages.close()
